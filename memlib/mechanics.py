"""Each chapter's mechanism computed by hand beside what the library records: the Background sections' live checks.

Every check takes a chapter's config (or one of its runs), computes the quantity of the chapter's displayed
equation directly, on one example or a few mini-batches of the chapter's network, and returns it next to the
library's own number (autograd as train() records it, memlib.analysis, memlib.probes), as plain Python numbers.
Everything runs on the CPU at a size of seconds; networks are built from the chapter's config and seed, at
initialization unless a trained run is passed in.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from . import analysis as A
from . import data as D
from . import probes as PR
from .config import INITS, OPTIMIZERS, RunConfig
from .models import MLP, N_CLASSES, N_INPUT, layer_names, make_optimizer
from .results import RunResult
from .rng import torch_generator
from .train import prepare, steps_per_epoch, train

CPU = torch.device("cpu")
ADAM_EPS = 1e-8  # torch.optim.Adam's default epsilon, which make_optimizer keeps


# ---------------------------------------------------------------- shared pieces


def single_thread(fn):
    """Run fn with one torch thread, restored afterwards (small checks gain nothing from more; same bits anywhere)."""
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kw)
        finally:
            torch.set_num_threads(before)
    return wrapper


def small_config(cfg: RunConfig, n_train: int, **changes) -> RunConfig:
    """cfg's network, labels and seed on n_train images for 1 epoch, with nothing else recorded, on the CPU."""
    sized = dict(n_train=n_train, batch_size=min(cfg.batch_size, n_train), epochs=1, stop_at=None, rep_epochs="none",
                 rep_layers=None, eval_size=1, probe_size=1, device="cpu", progress=False)
    return cfg.replace(**{**sized, **changes})


def initial_model(cfg: RunConfig, init: str | None = None) -> MLP:
    """The MLP of cfg as train() initializes it (same seed stream); init overrides the scheme."""
    return MLP(cfg.depth, None, init or cfg.init, torch_generator(cfg.seed, "init"), widths=cfg.hidden_widths)


def training_images(cfg: RunConfig, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The n training images train() would use for small_config(cfg, n): (x [n, 784] standardised, given labels [n])."""
    p = prepare(small_config(cfg, n), CPU)
    return p.x, p.y


def forward_parts(model: MLP, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Every Linear layer's input hs[l] [B, n_in] and pre-activation output zs[l] [B, n_out] (gradients retained)."""
    hs, zs = [x], []
    for j, layer in enumerate(model.layers):
        z = layer(hs[-1])  # [B, n_out]
        if z.requires_grad:
            z.retain_grad()
        zs.append(z)
        if j < len(model.layers) - 1:
            hs.append(torch.relu(z))
    return hs, zs


def flat_grad(model: MLP) -> torch.Tensor:
    """All parameters' gradients as one float64 vector [n_params], layer by layer (weight, then bias)."""
    return torch.cat([q.grad.detach().double().flatten() for layer in model.layers for q in (layer.weight, layer.bias)])


def _rel(a, b) -> float:
    """Largest relative difference |a - b| / |b| over matching entries."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def _one_example(cfg: RunConfig):
    """One training image through cfg's initial network, backward done: (model, hs, zs, label, 1-image config)."""
    one = small_config(cfg, 1)
    x, y = training_images(cfg, 1)  # [1, 784], [1]
    model = initial_model(cfg)
    hs, zs = forward_parts(model, x)
    F.cross_entropy(zs[-1], y).backward()
    return model, hs, zs, int(y[0]), one


# ---------------------------------------------------------------- chapter 1: the outer product


@single_thread
def outer_product_check(cfg: RunConfig) -> dict:
    """||delta_l|| ||h_{l-1}|| per layer, one training image at initialization, beside autograd and train()'s record."""
    # one example: grad W_l = delta_l h_{l-1}^T (an outer product), so its norm is the product of the two norms
    model, hs, zs, _, one = _one_example(cfg)
    delta = [z.grad[0].double() for z in zs]  # delta_l [n_out] = dLoss/dz_l
    h = [a.detach()[0].double() for a in hs]  # h_{l-1} [n_in], the layer's input
    product = [float(d.norm() * v.norm()) for d, v in zip(delta, h, strict=True)]
    outer = [torch.outer(d, v) for d, v in zip(delta, h, strict=True)]  # [n_out, n_in] each
    autograd = [float(layer.weight.grad.norm()) for layer in model.layers]
    outer_diff = max(float((o - layer.weight.grad.double()).norm() / layer.weight.grad.double().norm())
                     for o, layer in zip(outer, model.layers, strict=True))
    recorded = train(one).grad_w[0].astype(np.float64).tolist()  # [depth + 1] the library's record of that step
    return {"layers": layer_names(cfg.depth), "delta_norm": [float(d.norm()) for d in delta],
            "input_norm": [float(v.norm()) for v in h], "product": product, "autograd": autograd, "recorded": recorded,
            "outer_vs_autograd": outer_diff, "max_rel_diff": max(_rel(product, autograd), _rel(product, recorded))}


# ---------------------------------------------------------------- chapter 2: mini-batch noise and batch size


def per_example_trace(model: MLP, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(tr Sigma of the per-example gradients, their mean [n_params] float64) on examples x [N, 784], y [N]."""
    # ||g_i||^2 by the outer product, layer by layer: ||delta_i||^2 (||h_i||^2 + 1) for weights and bias together
    model.zero_grad(set_to_none=True)
    hs, zs = forward_parts(model, x)
    F.cross_entropy(zs[-1], y, reduction="sum").backward()  # z.grad rows = each example's own delta
    sq = sum(z.grad.double().square().sum(1) * (h.detach().double().square().sum(1) + 1.0)
             for z, h in zip(zs, hs, strict=True))  # [N]
    mean = flat_grad(model) / len(x)  # [n_params] the mean-loss gradient
    return float(sq.mean() - mean.square().sum()), mean


@single_thread
def batch_noise_scaling(cfg: RunConfig, batch_sizes=(8, 16, 32, 64, 128, 256), pool: int = 1024,
                        draws: int = 64) -> dict:
    """Mean ||g_B - g||^2 over random mini-batches of each size B from a pool, beside tr(Sigma) / B * (N-B) / (N-1)."""
    # g: the pool's gradient; g_B: autograd on a mini-batch's mean loss, as in training; cfg's network at initialization
    x, y = training_images(cfg, pool)  # [N, 784], [N]
    model = initial_model(cfg)
    trace, g = per_example_trace(model, x, y)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    measured, predicted = [], []
    for b in batch_sizes:
        if not 1 <= b < pool:
            raise ValueError(f"batch size {b} is not allowed: between 1 and pool - 1 = {pool - 1}")
        dev = []
        for _ in range(draws):
            i = torch.randperm(pool, generator=gen)[:b]  # one mini-batch, without replacement
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[i]), y[i]).backward()
            dev.append(float((flat_grad(model) - g).square().sum()))
        measured.append(float(np.mean(dev)))
        predicted.append(trace / b * (pool - b) / (pool - 1))
    return {"batch_sizes": [int(b) for b in batch_sizes], "measured": measured, "predicted": predicted,
            "trace_per_example": trace, "full_grad_sq": float(g.square().sum()), "pool": pool, "draws": draws,
            "max_rel_dev": _rel(measured, predicted)}


# ---------------------------------------------------------------- chapter 3: back-propagation as a product


@single_thread
def backprop_product_check(cfg: RunConfig) -> dict:
    """Each layer's error signal for a training image at initialization, by explicit Jacobian products and autograd."""
    # delta_out = softmax(z) - onehot(y); delta_l = D_l W_{l+1}^T delta_{l+1} (D_l: the ReLU mask); then
    # ||delta_l|| ||h_{l-1}|| is the weight-gradient norm, set beside train()'s record of that one-image step
    model, hs, zs, y, one = _one_example(cfg)
    W = [layer.weight.detach().double().numpy() for layer in model.layers]  # W_l [n_out, n_in]
    z = [a.detach()[0].double().numpy() for a in zs]  # z_l [n_out]
    p = np.exp(z[-1] - z[-1].max())
    d_out = p / p.sum() - np.eye(N_CLASSES)[y]  # [10] dLoss/dlogits
    deltas = [d_out]  # classifier first, then backwards
    J = np.eye(N_CLASSES)  # [n_l, 10] the product so far
    for k in range(cfg.depth - 1, -1, -1):  # hidden layers, last to first
        mask = (z[k] > 0).astype(np.float64)  # [width] diagonal of D_l
        J = mask[:, None] * (W[k + 1].T @ J)
        deltas.append(J @ d_out)
    deltas = deltas[::-1]  # network order: hidden1 .. classifier
    autograd = [a.grad[0].double().numpy() for a in zs]
    in_norms = [float(np.linalg.norm(a.detach()[0].double().numpy())) for a in hs]
    norms = [float(np.linalg.norm(d)) for d in deltas]
    grad_norms = [n * m for n, m in zip(norms, in_norms, strict=True)]
    recorded = train(one).grad_w[0].astype(np.float64).tolist()
    sv = np.linalg.svd(J, compute_uv=False)  # singular values of the whole product, [10]
    return {"layers": layer_names(cfg.depth), "delta_norm": norms,
            "gain": [norms[k] / norms[k + 1] for k in range(cfg.depth)],  # ||delta_l|| / ||delta_{l+1}||
            "delta_vs_autograd": max(float(np.linalg.norm(d - a) / max(np.linalg.norm(a), 1e-30))
                                     for d, a in zip(deltas, autograd, strict=True)),
            "grad_norm": grad_norms, "recorded": recorded, "grad_vs_recorded": _rel(grad_norms, recorded),
            "product_sv_max": float(sv.max()), "product_sv_min": float(sv.min())}


# ---------------------------------------------------------------- chapter 4: initialization


def _square_layer(cfg: RunConfig) -> int:
    """Index of the first width x width layer (hidden2), or hidden1 when the network has one hidden layer."""
    return 1 if cfg.depth >= 2 else 0


CHAPTER_INITS = ("he", "xavier", "orthogonal")  # the schemes chapter 4 compares


def expected_weight_variance(init: str, fan_in: int, fan_out: int) -> float:
    """Initial weight variance: He 2 / fan_in, Xavier 2 / (fan_in + fan_out), orthogonal (gain sqrt 2) 2 / max(fans),
    torch (uniform in +-1/sqrt(fan_in)) 1 / (3 fan_in)."""
    if init == "torch":
        return 1.0 / (3.0 * fan_in)
    if init == "he":
        return 2.0 / fan_in
    if init == "xavier":
        return 2.0 / (fan_in + fan_out)
    if init == "orthogonal":
        return 2.0 / max(fan_in, fan_out)
    raise ValueError(f"init={init!r} is not allowed: one of {', '.join(INITS)}")


def init_singular_values(cfg: RunConfig, init: str) -> np.ndarray:
    """Singular values [width] of the first square layer's initial weights (cfg's seed) under a scheme."""
    w = initial_model(cfg, init).layers[_square_layer(cfg)].weight.detach().double().numpy()  # [width, width]
    return np.linalg.svd(w, compute_uv=False)


@single_thread
def init_check(cfg: RunConfig, n_images: int = 256) -> dict:
    """Per scheme: weight variance vs formula, a square layer's singular values, forward gain per layer vs the rule."""
    # the rule: E[z_{l+1}^2] = n_l Var(W) E[z_l^2] / 2 (zero-mean weights; ReLU keeps half a symmetric second moment)
    x, _ = training_images(cfg, n_images)
    out = {}
    k = _square_layer(cfg)
    for init in CHAPTER_INITS:
        model = initial_model(cfg, init)
        w = model.layers[k].weight.detach().double().numpy()  # [n_out, n_in]
        fan_out, fan_in = w.shape
        var = float(w.var())
        sv = np.linalg.svd(w, compute_uv=False)
        with torch.no_grad():
            _, zs = forward_parts(model, x)
        second = [float(z.double().square().mean()) for z in zs[:-1]]  # E[z_l^2] of every hidden layer
        gain = (second[-1] / second[0]) ** (1.0 / max(cfg.depth - 1, 1))  # geometric mean gain per layer
        out[init] = {"var": var, "expected_var": expected_weight_variance(init, fan_in, fan_out),
                     "var_times_fan_in": var * fan_in,
                     "expected_times_fan_in": expected_weight_variance(init, fan_in, fan_out) * fan_in,
                     "sv_min": float(sv.min()), "sv_max": float(sv.max()), "second_moment": second,
                     "forward_gain": gain,
                     "predicted_gain": cfg.width * expected_weight_variance(init, cfg.width, cfg.width) / 2}
    rows = out.values()
    return {"layer": layer_names(cfg.depth)[k], "inits": out,
            "max_var_dev": max(abs(r["var"] / r["expected_var"] - 1) for r in rows),
            "orthogonal_sv_dev": max(abs(out["orthogonal"][key] - math.sqrt(2)) for key in ("sv_min", "sv_max")),
            "max_gain_dev": max(abs(r["forward_gain"] / r["predicted_gain"] - 1) for r in rows)}


# ---------------------------------------------------------------- chapter 5: the first step of each optimizer


@single_thread
def first_step_check(cfg: RunConfig) -> dict:
    """Each optimizer's first update of every layer on one mini-batch (make_optimizer, default rates) vs its formula."""
    # SGD and momentum (buffer = g at the first step): lr g; Adam, bias-corrected: lr g / (|g| + eps)
    x, y = training_images(cfg, cfg.batch_size)  # one mini-batch [B, 784], [B]
    out = {}
    diffs = []
    for name in OPTIMIZERS:
        lr = cfg.replace(optimizer=name, lr=None).learning_rate
        model = initial_model(cfg)
        opt = make_optimizer(model, name, lr)
        before = [layer.weight.detach().clone().double() for layer in model.layers]
        F.cross_entropy(model(x), y).backward()
        grads = [layer.weight.grad.detach().double() for layer in model.layers]
        opt.step()
        steps = [layer.weight.detach().double() - w0 for layer, w0 in zip(model.layers, before, strict=True)]
        formula = [-lr * g / (g.abs() + ADAM_EPS) if name == "adam" else -lr * g for g in grads]
        diffs += [float((s - f).norm() / f.norm()) for s, f in zip(steps, formula, strict=True)]
        out[name] = {"lr": lr, "update": [float(s.norm()) for s in steps],
                     "formula": [float(f.norm()) for f in formula],
                     "relative": [float(s.norm() / w0.norm()) for s, w0 in zip(steps, before, strict=True)],
                     "grad": [float(g.norm()) for g in grads]}
    return {"layers": layer_names(cfg.depth), "optimizers": out, "max_rel_diff": max(diffs)}


# ---------------------------------------------------------------- chapter 6: the decomposition of training accuracy


@single_thread
def fit_decomposition_check(res: RunResult) -> dict:
    """(1-p) acc_clean + p acc_corrupted from the trained network's predictions, beside its final training accuracy."""
    x, given, true = PR.train_set(res)  # [n, 784], [n], [n]
    with torch.inference_mode():
        pred = res.model()(torch.from_numpy(x)).argmax(1).numpy()  # [n]
    changed = np.asarray(res.corrupted, bool)
    p = float(changed.mean())
    hit = pred == given
    clean = float(hit[~changed].mean()) if (~changed).any() else float("nan")
    corrupted = float(hit[changed].mean()) if changed.any() else 0.0
    combined = (1 - p) * clean + p * corrupted
    return {"p": p, "acc_clean": clean, "acc_corrupted": corrupted, "combined": combined,
            "library": res.final("train_acc"), "diff": abs(combined - res.final("train_acc")),
            "true_label_ceiling": float(np.mean(given == true)), "test_acc": res.final("test_acc"),
            "corrupted_true": float((pred == true)[changed].mean()) if changed.any() else float("nan")}


# ---------------------------------------------------------------- chapter 7: cosine and CKA


def cka_hsic(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA in kernel form: tr(KHLH) / sqrt(tr(KHKH) tr(LHLH)), K = X X^T and L = Y Y^T [P, P], H centres."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    H = np.eye(n) - 1.0 / n  # [P, P] centring matrix
    K, L = H @ (x @ x.T) @ H, H @ (y @ y.T) @ H
    den = math.sqrt(float(np.sum(K * K)) * float(np.sum(L * L)))
    return float(np.sum(K * L)) / den if den > 0 else 0.0


@single_thread
def similarity_check(res: RunResult, layer: int) -> dict:
    """Mean cosine and CKA of a layer's probe set, start vs end, by formula and by memlib.analysis; then rotated."""
    r = np.asarray(res.reps[f"hidden{layer}"], np.float64)  # [C, P, width]
    x0, x1 = r[0], r[-1]
    n0, n1 = np.linalg.norm(x0, axis=1), np.linalg.norm(x1, axis=1)
    ok = (n0 > 0) & (n1 > 0)
    cos = np.zeros(len(x0))
    cos[ok] = np.einsum("pd,pd->p", x0[ok], x1[ok]) / (n0[ok] * n1[ok])
    rng = np.random.default_rng(int(res.config.seed))
    q, _ = np.linalg.qr(rng.standard_normal((x1.shape[1], x1.shape[1])))  # [width, width] a random orthogonal matrix
    turned = 3.0 * x1 @ q  # [P, width] the same points, rotated and scaled
    out = {"layer": f"hidden{layer}", "epoch": int(res.rep_epochs[-1]), "cosine": float(cos.mean()),
           "cosine_library": float(A.cosine_drift(res, layer)[-1]), "cka": cka_hsic(x0, x1),
           "cka_library": float(A.cka_drift(res, layer)[-1])}
    out["max_diff"] = max(abs(out["cosine"] - out["cosine_library"]), abs(out["cka"] - out["cka_library"]))
    out["rotated_cka"] = A.linear_cka(x1, turned)
    out["rotated_cosine"] = float(A.cosine_similarity_rows(x1, turned).mean())
    return out


# ---------------------------------------------------------------- chapter 8: gradient noise and the noise scale


@single_thread
def gradient_noise_check(cfg: RunConfig, n_batches: int = 8) -> dict:
    """tr Cov of n_batches mini-batch weight gradients by definition and by running sums, beside train()'s noise_w."""
    # train() runs SGD at lr 1e-9: the weights stay at initialization (float32), so its epoch-1 record describes the
    # same fixed network. B_simple = tr(Sigma) / ||G||^2 with tr(Sigma) ~ B tr(Cov) (N - 1) / (N - B) (the batches
    # partition the N images) and G ~ the mean batch gradient
    small = small_config(cfg, n_batches * cfg.batch_size, batch_size=cfg.batch_size, optimizer="sgd", lr=1e-9)
    p = prepare(small, CPU)
    model = initial_model(cfg)
    order = torch.randperm(small.n_train, generator=torch_generator(cfg.seed, "batches"))  # train()'s first epoch
    batches = order[: steps_per_epoch(small) * small.batch_size].split(small.batch_size)
    grads = [[] for _ in model.layers]  # per layer: one flattened weight gradient per batch
    for i in batches:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(p.x[i]), p.y[i]).backward()
        for j, layer in enumerate(model.layers):
            grads[j].append(layer.weight.grad.detach().double().flatten().numpy())
    direct, running, signal = [], [], []
    for g in grads:
        G = np.stack(g)  # [S, n_params of the layer]
        mean = G.mean(0)
        direct.append(float(((G - mean) ** 2).sum(1).mean()))  # trace of the (biased) covariance
        running.append(float((G ** 2).sum(1).mean() - (mean ** 2).sum()))
        signal.append(float((mean ** 2).sum()))
    library = train(small).noise_w[0].tolist()  # [depth + 1]
    n, b = small.n_train, small.batch_size
    tr_sigma = b * sum(direct) * (n - 1) / (n - b)
    return {"layers": layer_names(cfg.depth), "batches": len(batches), "batch_size": b, "direct": direct,
            "running": running, "library": library, "signal": signal,
            "running_vs_direct": _rel(running, direct), "library_vs_direct": _rel(library, direct),
            "noise_scale": tr_sigma / sum(signal)}


# ---------------------------------------------------------------- chapter 9: parameters against training labels


def parameter_count(depth: int, width: int) -> int:
    """Weights and biases of the MLP: (784 + 1) w + (depth - 1)(w + 1) w + (w + 1) 10."""
    return (N_INPUT + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * N_CLASSES


@single_thread
def parameter_count_check(cfg: RunConfig, widths) -> dict:
    """Per width: the parameter count by formula, memlib's MLP.n_params(), and parameters per training image."""
    rows = []
    for w in widths:
        formula = parameter_count(cfg.depth, w)
        built = MLP(cfg.depth, w, cfg.init, torch_generator(cfg.seed, "init")).n_params()
        rows.append({"width": int(w), "formula": formula, "library": int(built), "per_label": formula / cfg.n_train})
    return {"n_train": cfg.n_train, "rows": rows, "agree": all(r["formula"] == r["library"] for r in rows)}


# ---------------------------------------------------------------- chapter 10: rotation as a linear map of pixels


def rotation_matrix(degrees: float) -> np.ndarray:
    """Rotation of a 28 x 28 image as a matrix R [784, 784]: column i is the rotated one-pixel image e_i."""
    # one batched call of the operation memlib.data.rotate_images applies image by image (torchvision, bilinear)
    from torchvision.transforms.functional import InterpolationMode, rotate

    basis = torch.eye(N_INPUT).reshape(N_INPUT, 1, 28, 28)  # [784, 1, 28, 28] one-pixel images
    cols = rotate(basis, float(degrees), interpolation=InterpolationMode.BILINEAR).reshape(N_INPUT, N_INPUT)
    return cols.double().numpy().T  # [784, 784]: R[:, i] = rotated e_i


@single_thread
def rotation_check(cfg: RunConfig, index: int = 0, angles=(10.0, 20.0, 30.0)) -> dict:
    """A test image rotated by memlib.data and as R x; per angle, its pixel cosine and shared ink with the original."""
    mn = D.load_mnist()
    x = mn.x_test[index].astype(np.float64)  # [784] intensities 0..255
    rows = []
    for a in angles:
        lib = D.rotate_images(x[None], np.array([a]))[0].astype(np.float64)  # [784]
        ink = (x > 64) & (lib > 64)
        rows.append({"degrees": float(a), "cosine": float(x @ lib / (np.linalg.norm(x) * np.linalg.norm(lib))),
                     "shared_ink": float(ink.sum() / max((x > 64).sum(), 1))})
    top = float(max(angles))
    lib = D.rotate_images(x[None], np.array([top]))[0].astype(np.float64)
    diff = float(np.abs(rotation_matrix(top) @ x - lib).max() / x.max())
    return {"index": int(index), "label": int(mn.y_test[index]), "rows": rows, "matrix_degrees": top, "max_diff": diff}


def rotated_pair(cfg: RunConfig, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A test image and its rotation by cfg.shift_degrees, as 28 x 28 float arrays (for a figure)."""
    x = D.load_mnist().x_test[index].astype(np.float32)
    r = D.rotate_images(x[None], np.array([cfg.shift_degrees]))[0]
    return x.reshape(28, 28), r.reshape(28, 28)


# ---------------------------------------------------------------- chapter 11: subspaces and angles


def class_basis(acts: np.ndarray, variance: float = 0.99) -> np.ndarray:
    """Orthonormal basis [D, k] of the principal subspace of [A; -A], acts A [n, D], keeping `variance` (by SVD)."""
    a = np.asarray(acts, np.float64)
    a = a[np.any(a != 0, axis=1)]
    if len(a) == 0:
        return np.zeros((a.shape[1], 0))
    _, s, vt = np.linalg.svd(np.vstack([a, -a]), full_matrices=False)  # the augmented set has zero mean
    share = np.cumsum(s ** 2) / np.sum(s ** 2)
    k = int(np.searchsorted(share, variance * (1 - 1e-12))) + 1
    return vt[:k].T


def principal_angles(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Principal angles in degrees [min(k1, k2)] between the spans of orthonormal bases u [D, k1] and v [D, k2]."""
    s = np.linalg.svd(u.T @ v, compute_uv=False)
    return np.degrees(np.arccos(np.clip(s, -1.0, 1.0)))


@single_thread
def subspace_angle_check(res: RunResult, layer: str, index: int = 0, variance: float = 0.99) -> dict:
    """A test image's angle to each class subspace of a layer by explicit SVD, beside MASC; and principal angles."""
    # principal angles: its true class's subspace fitted on the labels trained on vs fitted on the true labels
    x_tr, given, true = PR.train_set(res)
    x_te, y_te = PR.test_set(inputs=res.config.inputs)
    acts = PR.activations(res, x_tr, [layer])[layer]  # [n_train, D]
    point = PR.activations(res, x_te[index:index + 1], [layer])[layer][0].astype(np.float64)  # [D]
    bases = [class_basis(acts[given == c], variance) for c in range(N_CLASSES)]
    cos = [np.linalg.norm(b.T @ point) / np.linalg.norm(point) for b in bases]
    angles = np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))  # [10]
    library = np.degrees(PR.MASC(variance).fit(acts, given, N_CLASSES).angles(point[None])[0])
    c = int(y_te[index])
    pa = principal_angles(bases[c], class_basis(acts[true == c], variance))
    return {"layer": layer, "label": c, "angles": angles.tolist(), "library": library.tolist(),
            "max_diff_degrees": float(np.max(np.abs(angles - library))), "predicted": int(np.argmin(angles)),
            "dims": [int(b.shape[1]) for b in bases], "principal_angles": pa.tolist()}


def toy_subspaces(seed: int = 0, n: int = 40) -> dict:
    """Toy 3-D MASC for a figure: class A near a plane, B near a line, a test point and its angles (MASC, 95 %)."""
    rng = np.random.default_rng(seed)
    plane = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # [3, 2]: the horizontal plane
    line = np.array([0.3, 0.2, 0.93])
    line /= np.linalg.norm(line)
    a = rng.uniform(-2, 2, (n, 2)) @ plane.T + 0.08 * rng.standard_normal((n, 3))  # [n, 3]
    b = rng.uniform(-2.2, 2.2, (n, 1)) * line + 0.08 * rng.standard_normal((n, 3))
    masc = PR.MASC(0.95).fit(np.vstack([a, b]), np.repeat([0, 1], n), 2)
    x = np.array([1.6, 0.9, 0.7])  # a test point a little above the plane
    proj = masc.bases_[0] @ (masc.bases_[0].T @ x)  # its projection onto class A's subspace
    return {"points": [a, b], "basis": masc.bases_, "line": line, "x": x, "projection": proj,
            "angles": np.degrees(masc.angles(x[None])[0]).tolist(), "dims": masc.dims_.tolist()}

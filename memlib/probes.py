"""Probes on a trained run's layers: MASC (Ketha & Ramaswamy, arXiv 2501.14687), nearest class mean, linear.

MASC, the Minimum Angle Subspace Classifier, fits one subspace through the origin per class (the
principal directions of the class's activations augmented with their negatives) and labels a point
by the class whose subspace makes the smallest angle with it. Every probe here is fitted on the
training subset of a run and scored on the full 10,000-image test split against the TRUE labels.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from numbers import Real
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import data as D
from .config import RunConfig
from .evaluate import EvalForward
from .results import RunResult

N_CLASSES = D.N_CLASSES
PROBES = ("masc_corrupted", "masc_true", "ncm", "linear")  # the columns of probe_layers
_CHUNK = 8192  # rows per forward pass / projection block


# ---------------------------------------------------------------- a run's layers and data


def representation_layers(res_or_depth: RunResult | int) -> list[str]:
    """Layers a probe can read, in network order: 'input', 'hidden1'..'hidden{depth}'."""
    depth = res_or_depth if isinstance(res_or_depth, int) else res_or_depth.config.depth
    return ["input"] + [f"hidden{i}" for i in range(1, depth + 1)]


def check_layers(res: RunResult, layers=None) -> list[str]:
    """The requested layer names (None: all), validated and put in network order."""
    allowed = representation_layers(res)
    if layers is None:
        return allowed
    asked = [layers] if isinstance(layers, str) else list(layers)
    bad = [name for name in asked if name not in allowed]
    if bad or not asked:
        raise ValueError(f"layers={layers!r} is not allowed: a non-empty list of names from {', '.join(allowed)}")
    return [name for name in allowed if name in asked]


def train_set(res: RunResult, source: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A run's training set: (x [n_train, 784] standardised float32, noisy labels [n_train], true labels [n_train])."""
    mn = D.load_mnist(source)
    x = D.scale_inputs(mn.x_train[np.asarray(res.train_idx)], res.config.inputs)  # [n_train, 784]
    return x, np.asarray(res.labels, np.int64), np.asarray(res.true_labels, np.int64)


VAL_SELECT = 2_000  # validation images that choose a probe's best layer (true labels; never the test set)


def val_set(source: str | None = None, n: int = VAL_SELECT, inputs: str = "standard") -> tuple[np.ndarray, np.ndarray]:
    """The first n validation images: (x [n, 784] float32 scaled as `inputs`, labels [n])."""
    mn = D.load_mnist(source)
    return D.scale_inputs(mn.x_val[:n], inputs), np.asarray(mn.y_val[:n], np.int64)


def test_set(source: str | None = None, inputs: str = "standard") -> tuple[np.ndarray, np.ndarray]:
    """The full test split: (x [10000, 784] float32 scaled as `inputs` (see data.scale_inputs), labels [10000])."""
    mn = D.load_mnist(source)
    return D.scale_inputs(mn.x_test, inputs), np.asarray(mn.y_test, np.int64)


test_set.__test__ = False  # not a pytest test when imported into a test module


def activations(res: RunResult, x, layers=None, chunk: int = _CHUNK) -> dict[str, np.ndarray]:
    """{layer: [n, dim] float32}, network order; x [n, 784] or [n, 28, 28]: uint8 pixels, or floats already scaled the
    way the run's inputs are (config.inputs)."""
    names = check_layers(res, layers)
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[1:] == (28, 28):
        x = x.reshape(len(x), 784)
    if x.ndim != 2 or x.shape[1] != 784:
        raise ValueError(f"x of shape {x.shape} is not allowed: images as [n, 784] or [n, 28, 28]")
    if x.dtype == np.uint8:
        x = D.scale_inputs(x, res.config.inputs)
    elif np.issubdtype(x.dtype, np.floating):
        x = np.asarray(x, np.float32)
        if not np.isfinite(x).all():
            raise ValueError("x contains NaN or infinite values")
    else:
        raise ValueError(f"x of dtype {x.dtype} is not allowed: uint8 pixels or standardised floats")
    if not _is_int(chunk) or chunk < 1:
        raise ValueError(f"chunk={chunk!r} is not allowed: an integer >= 1")
    widths = res.config.hidden_widths
    out = {name: np.empty((len(x), 784 if name == "input" else widths[int(name[len("hidden"):]) - 1]), np.float32)
           for name in names}
    if "input" in out:
        out["input"][:] = x
    keep = {int(name[len("hidden"):]) for name in names if name != "input"}
    if keep:
        fwd = EvalForward(res.model())

        def store(j: int, h: torch.Tensor) -> None:  # h [rows, width]: rows row0.. of x
            if j in keep:
                out[f"hidden{j}"][fwd.row0:fwd.row0 + len(h)] = h.numpy()

        fwd.logits((torch.from_numpy(x[i:i + chunk]) for i in range(0, len(x), chunk)), store)
    return out


def model_test_acc(res: RunResult, source: str | None = None) -> float:
    """The trained network's own accuracy on the full test split."""
    x, y = test_set(source, res.config.inputs)
    logits = EvalForward(res.model()).logits(torch.from_numpy(x).split(_CHUNK))  # [10000, 10]
    return accuracy(logits.argmax(1).numpy(), y)


# ---------------------------------------------------------------- argument checks shared by the probes


def check_variance(variance) -> float:
    """The explained-variance share, validated: a number in (0, 1]."""
    if not _is_real(variance) or not (0 < variance <= 1):
        raise ValueError(f"variance={variance!r} is not allowed: a share of explained variance in (0, 1]")
    return float(variance)


class _Probe:
    """Shared fit/predict argument checks: acts [n, D] finite numbers, labels [n] ints in 0..n_classes-1."""

    dim_: int | None = None

    def _fit_args(self, acts, labels, n_classes):
        acts = _as_acts(acts, "acts")
        if len(acts) == 0:
            raise ValueError("acts has no rows: fit needs at least one training point")
        labels = np.asarray(labels)
        if labels.shape != (len(acts),):
            raise ValueError(f"labels of shape {labels.shape} do not match acts of shape {acts.shape}: "
                             f"expected ({len(acts)},)")
        if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels of dtype {labels.dtype} are not allowed: integer class indices")
        if labels.min() < 0:
            raise ValueError(f"label {labels.min()} is not allowed: class indices are >= 0")
        if n_classes is None:
            n_classes = int(labels.max()) + 1
        if not _is_int(n_classes) or n_classes <= labels.max():
            raise ValueError(f"n_classes={n_classes!r} is not allowed: "
                             f"an integer above the largest label {labels.max()}")
        self.dim_ = None  # set by fit once it succeeds
        return acts, labels.astype(np.int64), int(n_classes)

    def _predict_args(self, acts):
        if self.dim_ is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit(acts, labels) before predict")
        acts = _as_acts(acts, "acts")
        if acts.shape[1] != self.dim_:
            raise ValueError(f"acts of shape {acts.shape} are not allowed: "
                             f"this probe was fitted on {self.dim_}-d points")
        return acts


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _as_acts(acts, name: str) -> np.ndarray:
    a = np.asarray(acts)
    if a.ndim != 2:
        raise ValueError(f"{name} of shape {a.shape} is not allowed: a 2-d array [n, dim]")
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} of dtype {a.dtype} is not allowed: real numbers")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _unit_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows scaled to unit length [m, D] float64 (zero rows stay zero), mask of zero rows [m])."""
    a = np.asarray(a, np.float64)
    norm = np.linalg.norm(a, axis=1)  # [m]
    zero = norm == 0
    return a / np.where(zero, 1.0, norm)[:, None], zero


# ---------------------------------------------------------------- MASC


class MASC(_Probe):
    """Minimum Angle Subspace Classifier: the class whose origin-centred principal subspace is closest in angle.

    Per class c, the paper augments the activations A_c [n_c, D] with their negatives. [A_c; -A_c] has
    zero mean, so centring it is a no-op, and its covariance is A_c^T A_c / n_c: the principal directions
    are the right singular vectors of A_c and the explained variances its squared singular values. No
    copy is made. The subspace keeps the fewest leading directions whose variance reaches `variance` of
    the total (at most the class's numerical rank; directions with variance <= dim * eps * the largest
    are treated as zero). A point x gets angle arccos(||P_c x|| / ||x||) to class c.

    The decomposition runs in float64: np.linalg.eigh of the D x D Gram matrix A_c^T A_c when n_c > D
    (method 'auto'), else np.linalg.svd(A_c, full_matrices=False). The Gram route is ~10x faster at
    5,000 x 784; squaring the singular values only blurs directions whose singular value is below
    ~sqrt(eps) of the largest, far inside the dropped tail at variance < 1 (on MNIST pixels the angles
    of the two routes agree to ~3e-13). At variance=1.0 on rank-deficient data the routes may keep
    different noise-level directions; pass method='svd' where that matters.

    Edge cases: all-zero training rows are ignored; a class without (non-zero) samples has the zero
    subspace, angle pi/2 and is never predicted; an all-zero test point has angle pi/2 to every class and
    is given the class with the most non-zero training rows (lowest index on ties); non-finite input raises.
    """

    METHODS = ("auto", "svd", "gram")

    def __init__(self, variance: float = 0.99, method: str = "auto"):
        self.variance = check_variance(variance)
        if method not in self.METHODS:
            raise ValueError(f"method={method!r} is not allowed: one of {', '.join(map(repr, self.METHODS))}")
        self.method = method

    def fit(self, acts, labels, n_classes: int | None = None) -> "MASC":
        """Fit one subspace per class from acts [n, D] and labels [n] (n_classes: None for max label + 1)."""
        acts, labels, n_classes = self._fit_args(acts, labels, n_classes)
        live = np.any(acts != 0, axis=1)  # [n] all-zero rows are ignored
        self.counts_ = np.bincount(labels[live], minlength=n_classes)  # [C]
        if not self.counts_.any():
            raise ValueError("acts has only all-zero rows: no class subspace can be fitted")
        self.bases_ = [self._subspace(acts[live & (labels == c)]) for c in range(n_classes)]  # [D, k_c] each
        self.dims_ = np.array([b.shape[1] for b in self.bases_])  # [C]
        self.fallback_ = int(np.argmax(self.counts_))
        self._basis = np.concatenate(self.bases_, axis=1)  # [D, K] all classes side by side
        self._member = np.repeat(np.eye(n_classes), self.dims_, axis=0)  # [K, C] one-hot class of each column
        self.dim_ = acts.shape[1]
        return self

    def _subspace(self, a) -> np.ndarray:
        """Orthonormal basis [D, k] of one class's subspace from its rows a [n_c, D]."""
        a = np.asarray(a, np.float64)
        n, d = a.shape
        if n == 0:
            return np.zeros((d, 0))
        if self.method == "gram" or (self.method == "auto" and n > d):
            lam, vecs = np.linalg.eigh(a.T @ a)  # ascending eigenvalues [D], eigenvectors [D, D]
            lam, vecs = lam[::-1], vecs[:, ::-1]
        else:
            _, s, vt = np.linalg.svd(a, full_matrices=False)  # s [min(n, D)], vt [min(n, D), D]
            lam, vecs = s ** 2, vt.T
        lam = np.clip(lam, 0.0, None)
        lam[lam <= d * np.finfo(np.float64).eps * lam[0]] = 0.0  # below the numerical rank
        cum = np.cumsum(lam)
        k = int(np.searchsorted(cum, self.variance * cum[-1] * (1 - 1e-12))) + 1  # first k reaching the share
        return np.ascontiguousarray(vecs[:, :min(k, np.count_nonzero(lam))])

    def _cosines(self, acts) -> tuple[np.ndarray, np.ndarray]:
        """(||P_c x|| / ||x|| [m, C] float64, mask of all-zero rows [m])."""
        acts = self._predict_args(acts)
        unit, zero = _unit_rows(acts)  # [m, D]
        sq = np.zeros((len(unit), len(self.bases_)))  # [m, C] squared projection lengths
        for i in range(0, len(unit), _CHUNK):
            z = unit[i:i + _CHUNK] @ self._basis  # [chunk, K] coordinates in every class basis
            sq[i:i + _CHUNK] = (z * z) @ self._member  # summed per class
        return np.sqrt(np.clip(sq, 0.0, 1.0)), zero

    def angles(self, acts) -> np.ndarray:
        """Angle in radians [m, C] between each point of acts [m, D] and each class subspace (pi/2: see class doc)."""
        cos, zero = self._cosines(acts)
        ang = np.arccos(cos)
        ang[zero] = np.pi / 2
        return ang

    def predict(self, acts) -> np.ndarray:
        """Class [m] int64 of the smallest angle for each point of acts [m, D]."""
        cos, zero = self._cosines(acts)
        cos[:, self.counts_ == 0] = -np.inf  # never predict a class without samples
        pred = np.argmax(cos, axis=1)  # largest cosine = smallest angle
        pred[zero] = self.fallback_
        return pred.astype(np.int64)


# ---------------------------------------------------------------- baselines


class NearestClassMean(_Probe):
    """The class whose mean activation has the largest cosine similarity with the point.

    Class means average the raw (non-normalised) training rows. A class without samples, or whose mean
    is zero, is never predicted; an all-zero test point gets the class with the most training samples.
    """

    def fit(self, acts, labels, n_classes: int | None = None) -> "NearestClassMean":
        """Class means from acts [n, D] and labels [n]."""
        acts, labels, n_classes = self._fit_args(acts, labels, n_classes)
        self.counts_ = np.bincount(labels, minlength=n_classes)  # [C]
        self.means_ = np.zeros((n_classes, acts.shape[1]))  # [C, D]
        for c in np.flatnonzero(self.counts_):
            self.means_[c] = acts[labels == c].mean(0, dtype=np.float64)
        self._unit_means, self._dead = _unit_rows(self.means_)  # [C, D], [C]
        if self._dead.all():
            raise ValueError("every class mean is zero: nearest class mean cannot be fitted")
        self.fallback_ = int(np.argmax(self.counts_))
        self.dim_ = acts.shape[1]
        return self

    def predict(self, acts) -> np.ndarray:
        """Class [m] int64 of the most cosine-similar class mean for each point of acts [m, D]."""
        unit, zero = _unit_rows(self._predict_args(acts))
        sim = unit @ self._unit_means.T  # [m, C]
        sim[:, self._dead] = -np.inf
        pred = np.argmax(sim, axis=1)
        pred[zero] = self.fallback_
        return pred.astype(np.int64)


class LinearProbe(_Probe):
    """Multinomial logistic regression on standardised features, Adam on mini-batches in torch (CPU).

    Zero-initialised, shuffled by its own torch.Generator(seed) and with a cosine learning-rate decay,
    so it is deterministic for a seed and never touches the global RNG. weight_decay is an L2 penalty
    (weight_decay / 2 * ||W||^2, biases excluded) added to the mean cross-entropy. fit runs with
    `threads` torch threads (restored afterwards; None leaves torch's setting): its mini-batch steps are
    too small to gain from intra-op threads, and on a busy 2-core machine 2 threads made them ~10x slower.
    """

    def __init__(self, epochs: int = 10, lr: float = 1e-2, weight_decay: float = 1e-4, seed: int = 0,
                 batch_size: int = 512, threads: int | None = 1):
        for name, value, lo in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
            if not _is_int(value) or value < lo:
                raise ValueError(f"{name}={value!r} is not allowed: an integer >= {lo}")
        if threads is not None and (not _is_int(threads) or threads < 1):
            raise ValueError(f"threads={threads!r} is not allowed: an integer >= 1, or None for torch's setting")
        if not _is_real(lr) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr={lr!r} is not allowed: a positive number")
        if not _is_real(weight_decay) or not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay={weight_decay!r} is not allowed: a number >= 0")
        self.epochs, self.lr, self.weight_decay = int(epochs), float(lr), float(weight_decay)
        self.seed, self.batch_size, self.threads = int(seed), int(batch_size), threads

    def fit(self, acts, labels, n_classes: int | None = None) -> "LinearProbe":
        """Train on acts [n, D] and labels [n]."""
        acts, labels, n_classes = self._fit_args(acts, labels, n_classes)
        before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            return self._train(acts, labels, n_classes)
        finally:
            torch.set_num_threads(before)

    def _train(self, acts, labels, n_classes) -> "LinearProbe":
        mean, std = acts.mean(0, dtype=np.float64), acts.std(0, dtype=np.float64)  # [D], [D]
        self.mean_ = torch.as_tensor(mean, dtype=torch.float32)
        # constant features kept as is
        self.scale_ = torch.as_tensor(np.where(std > 1e-6, std, 1.0), dtype=torch.float32)
        x = (torch.as_tensor(np.asarray(acts, np.float32)) - self.mean_) / self.scale_  # [n, D]
        y = torch.as_tensor(labels)
        w = torch.zeros(x.shape[1], n_classes, requires_grad=True)  # [D, C]
        b = torch.zeros(n_classes, requires_grad=True)  # [C]
        opt = torch.optim.Adam([w, b], lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        n, bs = len(x), min(self.batch_size, len(x))
        steps = self.epochs * -(-n // bs)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / steps)))
        with torch.enable_grad():
            for _ in range(self.epochs):
                perm = torch.randperm(n, generator=gen)
                for i in range(0, n, bs):
                    idx = perm[i:i + bs]
                    loss = F.cross_entropy(x[idx] @ w + b, y[idx]) + 0.5 * self.weight_decay * (w * w).sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
        self.weight_, self.bias_ = w.detach(), b.detach()
        self.dim_ = acts.shape[1]
        return self

    def decision(self, acts) -> np.ndarray:
        """Logits [m, C] float32 for acts [m, D]."""
        x = torch.as_tensor(np.asarray(self._predict_args(acts), np.float32))
        with torch.inference_mode():
            return (((x - self.mean_) / self.scale_) @ self.weight_ + self.bias_).numpy()

    def predict(self, acts) -> np.ndarray:
        """Class [m] int64 of the largest logit for each point of acts [m, D]."""
        return np.argmax(self.decision(acts), axis=1).astype(np.int64)


# ---------------------------------------------------------------- all probes on all layers of a run


def accuracy(pred, labels) -> float:
    """Share of predictions equal to the labels."""
    return float(np.mean(np.asarray(pred) == np.asarray(labels)))


def probe_layers(res: RunResult, layers=None, variance: float = 0.99, validation: bool = True,
                 on_layer: Callable[[dict], None] | None = None,
                 n_test: int | None = None) -> dict[str, dict[str, float]]:
    """{layer: {masc_corrupted, masc_true, ncm, linear}} true-label test accuracies, layers in network order.

    Every probe is fitted on the run's training subset: MASC with the labels it was trained on
    (masc_corrupted) and with the true labels (masc_true); nearest class mean and the linear probe with
    the labels it was trained on. All are scored on the full test split against the true labels, and (keys ending in
    '_val') on the first VAL_SELECT validation images, which is where a best layer is chosen (validation=False skips
    them: the live explorer only draws). on_layer(table so far) is called after each layer. n_test scores on the first
    n_test test images only (None: all 10,000; the live explorer's scale).
    """
    names = check_layers(res, layers)
    variance = check_variance(variance)
    x_tr, noisy, true = train_set(res)
    x_te, y_te = test_set(inputs=res.config.inputs)
    if n_test is not None:
        if not _is_int(n_test) or not 1 <= n_test <= len(y_te):
            raise ValueError(f"n_test={n_test!r} is not allowed: None or an integer in [1, {len(y_te)}]")
        x_te, y_te = x_te[:n_test], y_te[:n_test]
    tr, te = activations(res, x_tr, names), activations(res, x_te, names)
    if validation:
        x_va, y_va = val_set(inputs=res.config.inputs)
        va = activations(res, x_va, names)
    out = {}
    for name in names:
        a = tr[name]  # [n_train, dim]
        fitted = {"masc_corrupted": MASC(variance).fit(a, noisy, N_CLASSES),
                  "masc_true": MASC(variance).fit(a, true, N_CLASSES),
                  "ncm": NearestClassMean().fit(a, noisy, N_CLASSES),
                  "linear": LinearProbe(seed=res.config.seed).fit(a, noisy, N_CLASSES)}
        out[name] = {k: accuracy(f.predict(te[name]), y_te) for k, f in fitted.items()}  # [10000] test images
        if validation:
            v = va.pop(name)  # [VAL_SELECT, dim]
            out[name].update({f"{k}_val": accuracy(f.predict(v), y_va) for k, f in fitted.items()})
        del tr[name], te[name]
        if on_layer is not None:
            on_layer(dict(out))
    return out


VARIANCES = (0.90, 0.95, 0.99, 0.999)  # the shares of variance the sensitivity figure compares


def masc_by_variance(res: RunResult, variances=VARIANCES, layers=None) -> dict[str, list[float]]:
    """{layer: [MASC test accuracy (corrupted-label subspaces, true test labels) at each variance share]}."""
    names = check_layers(res, layers)
    vs = [check_variance(v) for v in variances]
    x_tr, noisy, _ = train_set(res)
    x_te, y_te = test_set(inputs=res.config.inputs)
    tr, te = activations(res, x_tr, names), activations(res, x_te, names)
    return {n: [accuracy(MASC(v).fit(tr[n], noisy, N_CLASSES).predict(te[n]), y_te) for v in vs] for n in names}


# ---------------------------------------------------------------- cached tables and relabeling


@functools.lru_cache(maxsize=1)
def _probes_version() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]


def probe_run(cfg: RunConfig, variance: float = 0.99, validation: bool = True, on_epoch=None,
              on_layer: Callable[[dict], None] | None = None, n_test: int | None = None) -> tuple[RunResult, dict]:
    """The run for cfg (through the cache) and its probe_layers table plus the model's test accuracy, cached beside it.

    on_epoch goes to the training (cache.run); on_layer(partial table) is called as each layer's probes are done.
    """
    from .cache import run, run_path

    variance = check_variance(variance)
    res = run(cfg, on_epoch=on_epoch)
    tag = ("" if validation else "-noval") + ("" if n_test is None else f"-test{n_test}")
    path = run_path(cfg).with_name(run_path(cfg).stem + f".probes-{variance:g}{tag}-{_probes_version()}.json")
    if path.exists():
        try:
            return res, json.loads(path.read_text())
        except ValueError:
            path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    table = {"model_test_acc": model_test_acc(res), "layers": {}}
    report = None if on_layer is None else (lambda layers: on_layer({**table, "layers": layers}))
    table["layers"] = probe_layers(res, variance=variance, validation=validation, on_layer=report, n_test=n_test)
    D.atomic_write(path, lambda f: f.write(json.dumps(table).encode()))
    from .cache import log_event

    log_event("probe", time.perf_counter() - t0, key=path.name)
    return res, table


def best_layer(table: dict, probe: str = "masc_corrupted", hidden_only: bool = True,
               select_on: str = "val") -> tuple[str, float]:
    """(layer, test accuracy) of the layer where a probe scores best on validation (select_on='val'; 'test' only for
    describing a table); hidden_only leaves out the raw input (not learned)."""
    if probe not in PROBES:
        raise ValueError(f"probe={probe!r} is not allowed: one of {', '.join(PROBES)}")
    if select_on not in ("val", "test"):
        raise ValueError(f"select_on={select_on!r} is not allowed: 'val' or 'test'")
    key = f"{probe}_val" if select_on == "val" else probe
    names = [k for k in table["layers"] if not (hidden_only and k == "input")]
    name = max(names, key=lambda k: table["layers"][k][key])
    return name, float(table["layers"][name][probe])


def gain_over_input(table: dict) -> float:
    """MASC (corrupted-label subspaces) at the best hidden layer, chosen on validation, minus MASC on the raw input:
    above 0 when a hidden layer decodes the true test labels better than the pixels it started from."""
    return best_layer(table)[1] - float(table["layers"]["input"]["masc_corrupted"])


def masc_relabel(res: RunResult, layer: str, variance: float = 0.99) -> np.ndarray:
    """New training labels [n_train]: MASC's predictions at one layer, its subspaces fitted on the labels trained on."""
    name = check_layers(res, [layer])[0]
    x_tr, noisy, _ = train_set(res)
    acts = activations(res, x_tr, [name])[name]  # [n_train, dim]
    return MASC(check_variance(variance)).fit(acts, noisy, N_CLASSES).predict(acts).astype(np.int64)

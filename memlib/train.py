"""One training loop with recorders: `train(config) -> RunResult` of plain arrays, never plots."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from . import data as D
from .config import RunConfig
from .models import MLP, layer_names, make_optimizer
from .rng import rng_for, torch_generator

# Per-checkpoint metrics, in this order; checkpoint 0 is the initialization, k the end of epoch k.
METRICS = (
    "loss",  # cross-entropy on the training set against the labels as given (noisy)
    "train_acc",  # accuracy on the training labels as given
    "train_acc_clean",  # ... on the examples whose label was left unchanged
    "train_acc_corrupted_noisy",  # ... on the changed examples, against their noisy labels (memorization)
    "train_acc_corrupted_true",  # ... on the changed examples, against their true labels
    "val_acc",
    "test_acc",
    "shift_acc",  # test accuracy on the rotated test images
)


@dataclass
class RunResult:
    """What one run leaves behind: plain NumPy arrays plus the config that made them."""

    config: RunConfig
    history: dict[str, np.ndarray]  # METRICS name -> [epochs + 1] float64
    grad_w: np.ndarray  # [steps, depth + 1] float32, L2 norm of each Linear layer's weight gradient per mini-batch
    grad_b: np.ndarray  # [steps, depth + 1] float32, the same for the biases
    batch_loss: np.ndarray  # [steps] float32, mini-batch loss before each step
    step_epoch: np.ndarray  # [steps] int32, epoch (1-based) of each step
    reps: dict[str, np.ndarray]  # 'hidden{k}' -> [len(rep_epochs), probe_size, width] float16, post-ReLU
    rep_epochs: np.ndarray  # [C] int32 checkpoints (0 = init) at which reps were taken
    probe_idx: np.ndarray  # [probe_size] indices into the test split
    train_idx: np.ndarray  # [n_train] indices into the 50k training split
    labels: np.ndarray  # [n_train] int64 labels trained on (noisy)
    true_labels: np.ndarray  # [n_train] int64 original labels
    corrupted: np.ndarray  # [n_train] bool, label changed by the noise
    weights: dict[str, np.ndarray]  # final state_dict of the MLP, float32
    seconds: float = 0.0  # wall time of the training that produced this run (kept when loaded from cache)
    cached: bool = False  # True when loaded from the cache
    meta: dict = field(default_factory=dict)  # code version, device, library versions

    @property
    def epochs_run(self) -> int:
        """Epochs actually trained (fewer than config.epochs when stop_at ended training early)."""
        return len(self.history["loss"]) - 1

    @property
    def layer_names(self) -> list[str]:
        """Linear layers in network order: hidden1..hidden{depth}, classifier."""
        return layer_names(self.config.depth)

    def final(self, metric: str) -> float:
        """The metric at the end of training."""
        return float(self.history[metric][-1])

    def model(self) -> MLP:
        """The trained MLP rebuilt from the stored weights (on the CPU)."""
        net = MLP(self.config.depth, self.config.width, self.config.init)
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in self.weights.items()})
        return net.eval()

    def summary(self) -> dict:
        """Final metrics and bookkeeping as a flat, JSON-ready dict."""
        out = {m: (None if np.isnan(v) else round(v, 6)) for m, v in ((m, self.final(m)) for m in METRICS)}
        out.update(epochs=self.epochs_run, seconds=round(self.seconds, 3), cached=self.cached)
        return out


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' is not available on this machine: use 'auto' or 'cpu'")
    return torch.device(name)


@dataclass
class Prepared:
    """A run's data, ready on the device."""

    x: torch.Tensor  # [n_train, 784] float32 standardised
    y: torch.Tensor  # [n_train] int64 labels as given (noisy)
    x_eval: torch.Tensor  # [n_train + 3 * eval_size, 784]: train, val, test, shifted test
    y_eval: torch.Tensor  # [3 * eval_size] int64 true labels of val, test, shifted test
    x_probe: torch.Tensor  # [probe_size, 784]
    train_idx: np.ndarray
    labels: np.ndarray
    true_labels: np.ndarray
    corrupted: np.ndarray
    probe_idx: np.ndarray


def prepare(cfg: RunConfig, device: torch.device, source: str | None = None, labels: np.ndarray | None = None) -> Prepared:
    """Draw the subset, corrupt the labels (or take the given ones), build the evaluation and probe sets."""
    mn = D.load_mnist(source)
    idx = D.train_subset(cfg.n_train, cfg.seed, len(mn.x_train))
    true = mn.y_train[idx]
    noisy, changed = D.corrupt_labels(true, cfg.noise, cfg.noise_kind, rng_for(cfg.seed, "noise"))
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != true.shape or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= D.N_CLASSES:
            raise ValueError(f"labels: expected {len(true)} integer classes in 0..9, got shape {labels.shape}, dtype {labels.dtype}")
        noisy = labels.astype(np.int64)
        changed = noisy != true
    k = cfg.eval_size
    probe = np.sort(rng_for(cfg.seed, "probe").choice(len(mn.x_test), cfg.probe_size, replace=False))
    shifted = D.shifted_test(cfg.shift_degrees, cfg.seed, source)
    x_tr = D.standardize(mn.x_train[idx])
    x_eval = np.concatenate([x_tr, D.standardize(mn.x_val[:k]), D.standardize(mn.x_test[:k]), D.standardize(shifted[:k])])
    y_eval = np.concatenate([mn.y_val[:k], mn.y_test[:k], mn.y_test[:k]])

    def dev(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return Prepared(dev(x_tr), dev(noisy), dev(x_eval), dev(y_eval), dev(D.standardize(mn.x_test[probe])),
                    idx, noisy, true, changed, probe)


@torch.no_grad()
def _evaluate(model: MLP, p: Prepared, n_train: int, k: int, y_true_train: torch.Tensor, changed: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """All METRICS at one checkpoint as a [len(METRICS)] tensor (no host sync)."""
    logits = torch.cat([model(c) for c in p.x_eval.split(chunk)])  # [n_train + 3k, 10]
    pred = logits.argmax(1)
    tr_logits, tr_pred = logits[:n_train], pred[:n_train]
    loss = F.cross_entropy(tr_logits, p.y)
    hit_noisy = (tr_pred == p.y).float()
    hit_true = (tr_pred == y_true_train).float()
    clean = ~changed
    n_c, n_x = clean.sum().clamp(min=1), changed.sum().clamp(min=1)
    nan = torch.tensor(float("nan"), device=logits.device)
    hits = (pred[n_train:] == p.y_eval).float().view(3, k).mean(1)
    return torch.stack([
        loss,
        hit_noisy.mean(),
        torch.where(clean.any(), (hit_noisy * clean).sum() / n_c, nan),
        torch.where(changed.any(), (hit_noisy * changed).sum() / n_x, nan),
        torch.where(changed.any(), (hit_true * changed).sum() / n_x, nan),
        hits[0], hits[1], hits[2],
    ])


def _rep_checkpoints(cfg: RunConfig) -> list[int]:
    if cfg.rep_epochs == "none":
        return []
    if cfg.rep_epochs == "ends":
        return [0, cfg.epochs]
    return list(range(cfg.epochs + 1))


def train(cfg: RunConfig, source: str | None = None, labels: np.ndarray | None = None) -> RunResult:
    """Train one MLP as cfg says and record everything the chapters need.

    labels, when given, replace the (noisy) training labels the config would draw; the mask of
    corrupted examples is then labels != true labels.
    """
    t0 = time.perf_counter()
    device = pick_device(cfg.device)
    p = prepare(cfg, device, source, labels)
    model = MLP(cfg.depth, cfg.width, cfg.init, torch_generator(cfg.seed, "init")).to(device)
    opt = make_optimizer(model, cfg.optimizer, cfg.learning_rate)
    params = [q for layer in model.layers for q in (layer.weight, layer.bias)]  # w1, b1, w2, b2, ...

    n, bs, k = cfg.n_train, cfg.batch_size, cfg.eval_size
    steps_per_epoch = -(-n // bs)
    n_steps = steps_per_epoch * cfg.epochs
    gnorm = torch.empty(n_steps, len(params), device=device)  # [steps, 2 * (depth + 1)]
    bloss = torch.empty(n_steps, device=device)
    hist = torch.empty(cfg.epochs + 1, len(METRICS), device=device)
    y_true = torch.from_numpy(p.true_labels).to(device)
    changed = torch.from_numpy(p.corrupted).to(device)
    rep_at = _rep_checkpoints(cfg)
    keep = cfg.recorded_layers
    reps = {f"hidden{j}": np.empty((len(rep_at), cfg.probe_size, cfg.width), np.float16) for j in keep}

    def record_reps(slot: int):
        with torch.no_grad():
            hs, _ = model.hidden(p.x_probe, keep)
        for j, h in zip(keep, hs):
            reps[f"hidden{j}"][slot] = h.to(torch.float16).cpu().numpy()

    def checkpoint(epoch: int):
        model.eval()
        hist[epoch] = _evaluate(model, p, n, k, y_true, changed)
        if epoch in rep_at and keep:
            record_reps(rep_at.index(epoch))
        model.train()

    gen = torch_generator(cfg.seed, "batches")
    show = cfg.progress if cfg.progress is not None else (sys.stderr.isatty() and n * cfg.epochs >= 500_000)
    bar = _progress(cfg.epochs, show)
    checkpoint(0)
    step, done = 0, cfg.epochs
    for epoch in range(1, cfg.epochs + 1):
        perm = torch.randperm(n, generator=gen).to(device)
        for b in range(steps_per_epoch):
            i = perm[b * bs:(b + 1) * bs]
            loss = F.cross_entropy(model(p.x.index_select(0, i)), p.y.index_select(0, i))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.stack(torch._foreach_norm([q.grad for q in params]), out=gnorm[step])  # all layers, one call
            bloss[step] = loss.detach()
            opt.step()
            step += 1
        checkpoint(epoch)
        bar.update(1)
        if cfg.stop_at is not None and epoch < cfg.epochs and float(hist[epoch, 1]) >= cfg.stop_at:  # train_acc, given labels
            done = epoch
            if cfg.rep_epochs == "ends" and keep:  # the end came early: record it in the last slot
                record_reps(len(rep_at) - 1)
                rep_at[-1] = done
            break
    bar.close()

    n_steps = steps_per_epoch * done
    g = gnorm[:n_steps].cpu().numpy().reshape(n_steps, -1, 2)
    h = hist[: done + 1].double().cpu().numpy()
    rep_at = [e for e in rep_at if e <= done]
    reps = {k2: v[: len(rep_at)] for k2, v in reps.items()}
    return RunResult(
        config=cfg,
        history={m: h[:, j] for j, m in enumerate(METRICS)},
        grad_w=np.ascontiguousarray(g[:, :, 0]),
        grad_b=np.ascontiguousarray(g[:, :, 1]),
        batch_loss=bloss[:n_steps].cpu().numpy(),
        step_epoch=np.repeat(np.arange(1, done + 1, dtype=np.int32), steps_per_epoch),
        reps=reps,
        rep_epochs=np.asarray(rep_at, dtype=np.int32),
        probe_idx=p.probe_idx,
        train_idx=p.train_idx,
        labels=p.labels,
        true_labels=p.true_labels,
        corrupted=p.corrupted,
        weights={k2: v.detach().cpu().numpy() for k2, v in model.state_dict().items()},
        seconds=time.perf_counter() - t0,
        meta={"device": str(device), "torch": torch.__version__},
    )


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, show: bool):
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="epoch", leave=False)

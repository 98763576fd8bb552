"""Numbers from runs: gradient statistics, representation drift (cosine, linear CKA), rank correlation, seed spread."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .results import RunResult

# ---------------------------------------------------------------- gradients


def epoch_grad_stats(res: RunResult, param: str = "w") -> tuple[np.ndarray, np.ndarray]:
    """Per-epoch mean and variance over mini-batches of each layer's gradient norm: ([E, L], [E, L])."""
    g = _grads(res, param)  # [steps, L]
    e = res.step_epoch - 1  # [steps] 0-based epoch
    n_ep = res.epochs_run
    counts = np.bincount(e, minlength=n_ep)[:, None]  # [E, 1]
    mean = np.zeros((n_ep, g.shape[1]))
    np.add.at(mean, e, g)
    mean /= counts
    var = np.zeros_like(mean)
    np.add.at(var, e, (g - mean[e]) ** 2)
    var /= np.maximum(counts - 1, 1)  # sample variance within the epoch
    return mean, var


def gradient_noise(res: RunResult, param: str = "w") -> np.ndarray:
    """Per-epoch gradient noise of each layer [E, L]: trace of its mini-batch gradients' covariance (train.NOISE)."""
    _grads(res, param)  # validates param
    return np.asarray(res.noise_w if param == "w" else res.noise_b, dtype=np.float64)


def noise_to_signal(res: RunResult, param: str = "w") -> np.ndarray:
    """Per-epoch gradient noise over the squared norm of the epoch's mean gradient [E, L].

    Scale-free; > 1: noise dominates. mean_b ||g_b||^2 = ||mean_b g_b||^2 + noise, so the mean gradient's squared norm
    is the first minus the second.
    """
    g = _grads(res, param) ** 2  # [steps, L]
    e = res.step_epoch - 1
    mean_sq = np.zeros((res.epochs_run, g.shape[1]))
    np.add.at(mean_sq, e, g)
    mean_sq /= np.bincount(e, minlength=res.epochs_run)[:, None]
    noise = gradient_noise(res, param)
    signal = np.maximum(mean_sq - noise, 1e-30)
    return noise / signal


def relative_gradient(res: RunResult) -> np.ndarray:
    """Per-epoch mean weight-gradient norm over the weight's norm at the start of the epoch [E, L] (scale-free)."""
    return epoch_grad_stats(res, "w")[0] / np.asarray(res.weight_norm, dtype=np.float64)[:-1]


EPOCH_STATS = ("mean", "var", "noise", "nsr", "rel")


def epoch_stat(res: RunResult, stat: str = "mean", param: str = "w") -> np.ndarray:
    """One per-epoch gradient statistic [E, L]: 'mean' or 'var' of the norm, 'noise', 'nsr' (noise / signal), 'rel'."""
    if stat not in EPOCH_STATS:
        raise ValueError(f"stat={stat!r} is not allowed: one of {', '.join(EPOCH_STATS)}")
    if stat in ("mean", "var"):
        return epoch_grad_stats(res, param)[0 if stat == "mean" else 1]
    if stat == "noise":
        return gradient_noise(res, param)
    return noise_to_signal(res, param) if stat == "nsr" else relative_gradient(res)


def early(res: RunResult) -> slice:
    """The first fifth of training's epochs (at least one): 'early training'."""
    return slice(0, max(1, res.epochs_run // 5))


def layer_grad_summary(res: RunResult, param: str = "w", per_entry: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each layer's per-batch gradient norm over the whole run: ([L], [L]).

    per_entry=True divides each norm by sqrt(number of entries): the root-mean-square gradient of one weight (or bias),
    which removes the plain effect of a layer's size on its norm.
    """
    g = _grads(res, param)
    if per_entry:
        g = g / np.sqrt(layer_sizes(res, param))
    return g.mean(0), g.var(0, ddof=1) if len(g) > 1 else np.zeros(g.shape[1])


def layer_sizes(res: RunResult, param: str = "w") -> np.ndarray:
    """Number of entries of each Linear layer's weight (or bias) [L]."""
    suffix = "weight" if param == "w" else "bias"
    return np.array([np.asarray(res.weights[f"layers.{i}.{suffix}"]).size for i in range(res.config.depth + 1)])


def _grads(res: RunResult, param: str) -> np.ndarray:
    if param not in ("w", "b"):
        raise ValueError(f"param={param!r} is not allowed: 'w' (weights) or 'b' (biases)")
    return np.asarray(res.grad_w if param == "w" else res.grad_b, dtype=np.float64)


# ---------------------------------------------------------------- representations


def _rep(res: RunResult, layer: int | str) -> np.ndarray:
    name = layer if isinstance(layer, str) else f"hidden{layer}"
    if name not in res.reps:
        raise ValueError(f"layer={layer!r} is not allowed: recorded layers are {sorted(res.reps)}")
    return np.asarray(res.reps[name], dtype=np.float64)  # [C, P, width]


def cosine_similarity_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows of a and b [P, D] -> [P]; a zero row gives 0."""
    num = np.einsum("pd,pd->p", a, b)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def cosine_drift(res: RunResult, layer: int | str) -> np.ndarray:
    """Mean cosine similarity of each probe point's representation to its own at initialization, per checkpoint [C]."""
    r = _rep(res, layer)
    return np.array([cosine_similarity_rows(r[c], r[0]).mean() for c in range(len(r))])


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al., 2019) between two representations of the same points x [P, D1], y [P, D2]."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x {x.shape} and y {y.shape}: expected 2-D arrays with the same number of rows")
    x = x - x.mean(0)
    y = y - y.mean(0)
    # ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), computed with the smaller of the two Gram forms
    cross = np.linalg.norm(y.T @ x) ** 2
    den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / den) if den > 0 else 0.0


def cka_drift(res: RunResult, layer: int | str) -> np.ndarray:
    """Linear CKA of each checkpoint's probe representation with the one at initialization [C]."""
    r = _rep(res, layer)
    return np.array([linear_cka(r[c], r[0]) for c in range(len(r))])


def drift_speed(res: RunResult, layer: int | str, measure: str = "cosine") -> np.ndarray:
    """How much similarity to initialization is lost in each epoch [E] (needs reps at every epoch)."""
    if res.config.rep_epochs != "all":
        raise ValueError(f"rep_epochs={res.config.rep_epochs!r}: drift per epoch needs rep_epochs='all'")
    sim = cosine_drift(res, layer) if measure == "cosine" else cka_drift(res, layer)
    return -np.diff(sim)


def noise_drift_changes(res: RunResult, layer: int | str) -> tuple[np.ndarray, np.ndarray]:
    """Epoch-to-epoch changes of the first layer's gradient noise and of a layer's drift speed ([E - 1], [E - 1])."""
    return np.diff(gradient_noise(res)[:, 0]), np.diff(drift_speed(res, layer))


def noise_drift_rho(res: RunResult, layer: int | str) -> float:
    """Spearman rho of noise_drift_changes (changes, not levels: two series that both trend with training correlate
    in level whatever their relation)."""
    return spearman(*noise_drift_changes(res, layer))


def measure_agreement(groups: dict, lo, hi) -> list[dict]:
    """Per hidden layer, final cosine and CKA similarity to init (means over seeds) at two conditions, and whether
    both measures agree on which condition drifted further."""
    depth = groups[lo][0].config.depth
    rows = []
    for k in range(1, depth + 1):
        cos = {c: float(np.mean([cosine_drift(r, k)[-1] for r in groups[c]])) for c in (lo, hi)}
        cka = {c: float(np.mean([cka_drift(r, k)[-1] for r in groups[c]])) for c in (lo, hi)}
        rows.append({"layer": f"hidden{k}", "cos_lo": cos[lo], "cos_hi": cos[hi], "cka_lo": cka[lo], "cka_hi": cka[hi],
                     "agree": (cos[hi] < cos[lo]) == (cka[hi] < cka[lo])})
    return rows


# ---------------------------------------------------------------- accuracies


def peak(res: RunResult, metric: str = "val_acc") -> tuple[int, float]:
    """(epoch, value) of a metric's maximum over the checkpoints after initialization (pick epochs on validation)."""
    h = np.asarray(res.history[metric])[1:]
    i = int(np.nanargmax(h))
    return i + 1, float(h[i])


def at_epoch(res: RunResult, metric: str, epoch: int) -> float:
    """A metric of the network at an epoch: final() at the run's last epoch, else that checkpoint's history entry."""
    if not 1 <= epoch <= res.epochs_run:
        raise ValueError(f"epoch={epoch!r} is not allowed: 1 to {res.epochs_run}, the epochs this run trained")
    return res.final(metric) if epoch == res.epochs_run else float(res.history[metric][epoch])


def wrong_share(p: float, kind: str, n_classes: int = 10) -> float:
    """Expected share of wrong labels at noise p: p ('symmetric'), or p * (1 - 1/n_classes) ('uniform' redraws)."""
    if kind not in ("symmetric", "uniform"):
        raise ValueError(f"kind={kind!r} is not allowed: 'symmetric' or 'uniform'")
    return p if kind == "symmetric" else p * (1 - 1 / n_classes)


SWING_EPOCHS = 5  # shift_numbers' window for the epoch-to-epoch swing of rotated-test accuracy
SHIFT_METRICS = ("train_acc", "test_acc", "shift_acc", "train_acc_clean", "train_acc_corrupted_noisy")


def shift_numbers(groups: dict, epochs: int) -> dict:
    """Chapter 10's numbers at epoch min(epochs, every run's last): per condition, each metric per seed (at_epoch),
    the measured share of wrong labels, and each run's rotated-test swing over the last epochs."""
    last = min(r.epochs_run for rs in groups.values() for r in rs)
    e = min(epochs, last)
    first = max(1, e - SWING_EPOCHS + 1)
    return {"epoch": e, "last": e == last, "seeds": min(len(rs) for rs in groups.values()),
            "acc": {p: {m: [at_epoch(r, m, e) for r in rs] for m in SHIFT_METRICS} for p, rs in groups.items()},
            "wrong": {p: float(np.mean([np.mean(r.corrupted) for r in rs])) for p, rs in groups.items()},
            "swing_from": first,
            "swing": {p: [swing(r, "shift_acc", first, e) for r in rs] for p, rs in groups.items()}}


def swing(res: RunResult, metric: str, first: int, last: int) -> float:
    """Max minus min of a held-out metric over epochs first..last."""
    h = np.asarray(res.history[metric], dtype=np.float64)[first: last + 1]
    return float(h.max() - h.min())


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of per-seed numbers."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError(f"shape {v.shape}: expected a non-empty 1-D sequence of per-seed numbers")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def paired_gap(a, b) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds of a - b, paired seed by seed."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes {a.shape} and {b.shape}: expected one number per seed in each")
    return mean_sd(a - b)


# ---------------------------------------------------------------- statistics over seeds


def rankdata(a) -> np.ndarray:
    """Ranks starting at 1, ties given their average rank (scipy.stats.rankdata)."""
    return stats.rankdata(np.asarray(a, dtype=np.float64))


def spearman(a, b) -> float:
    """Spearman rank correlation of two equally long sequences (nan when either is constant; ranks by scipy.stats)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"shapes {a.shape} and {b.shape}: expected two 1-D sequences of the same length >= 2")
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra**2).sum() * (rb**2).sum())  # Pearson of the ranks, summed as the first edition did (same bits)
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


@dataclass(frozen=True)
class Spread:
    """Mean, minimum and maximum over seeds of an array (any shape after the seed axis)."""

    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: int

    def fmt(self, digits: int = 3, index=()) -> str:
        """'mean [min, max]' of one element, for prose and verdicts."""
        m, lo, hi = (float(np.asarray(v)[index]) for v in (self.mean, self.lo, self.hi))
        return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if self.n > 1 else f"{m:.{digits}f}"


def spread(values) -> Spread:
    """Seed spread of a list of same-shaped arrays (one per seed)."""
    v = np.asarray([np.asarray(x, dtype=np.float64) for x in values])
    if len(v) == 0:
        raise ValueError("spread() needs at least one value")
    return Spread(v.mean(0), v.min(0), v.max(0), len(v))


def by_seed(results: list[RunResult], fn) -> Spread:
    """Apply fn to each run (one per seed) and summarize the spread."""
    return spread([fn(r) for r in results])

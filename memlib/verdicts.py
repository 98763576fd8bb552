"""Each chapter's claim as checks on this build's numbers, decided against seed noise: runs in, Verdict out.

A check measures one effect per seed, signed so that a positive value is what the claim predicts. It holds when
the effect is positive in every seed and its mean exceeds the seed-to-seed standard deviation (with five seeds that
is a one-sided t statistic above 2.2, about p < 0.05; with one seed, the sign alone decides and the box says so).
A check of the form "does not fall" holds unless the effect is decidedly negative by the same rule. Nothing is
chosen on the test set: peaks, best epochs and best layers are picked on validation.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from . import analysis as A
from .results import RunResult

OUTCOMES = ("supported", "partly supported", "not supported at this scale")
DECISION = ("A check holds when its effect has the claimed sign in every seed and its mean exceeds the seed-to-seed "
            "standard deviation; \"does not fall\" checks hold unless the effect is negative by that rule.")


@dataclass(frozen=True)
class Check:
    """One effect per seed, signed so that > 0 is what the claim predicts, and how it is decided."""

    label: str
    effects: tuple[float, ...]
    kind: str = "greater"  # 'greater': the claim says > 0; 'not_less': the claim says it does not fall below 0

    @property
    def mean(self) -> float:
        return A.mean_sd(self.effects)[0] if self.effects else float("nan")

    @property
    def sd(self) -> float:
        """Seed-to-seed standard deviation (0 with one seed)."""
        return A.mean_sd(self.effects)[1] if self.effects else float("nan")

    def _usable(self) -> bool:
        """At least one seed, and every effect finite (otherwise no check holds)."""
        e = np.asarray(self.effects, dtype=np.float64)
        return len(e) > 0 and bool(np.isfinite(e).all())

    def _decided(self, sign: int) -> bool:
        """The effect has this sign in every seed and its mean exceeds the seed-to-seed spread (the rule's core)."""
        e = sign * np.asarray(self.effects, dtype=np.float64)
        return self._usable() and bool((e > 0).all() and (len(e) == 1 or sign * self.mean > self.sd))

    @property
    def below(self) -> bool:
        """The effect is decidedly negative by the same rule (the opposite of what a 'greater' check claims)."""
        return self._decided(-1)

    @property
    def holds(self) -> bool:
        """The decision rule (module docstring)."""
        if self.kind == "greater":
            return self._decided(1)
        return self._usable() and not self.below

    def fmt(self, digits: int = 3) -> str:
        """'mean ± sd [min, max], k/n seeds > 0' for the box."""
        e = np.asarray(self.effects, dtype=np.float64)
        pos = int((e > 0).sum())
        if len(e) == 1:
            return f"{e[0]:+.{digits}f} (1 seed: sign only)"
        return (f"{self.mean:+.{digits}f} ± {self.sd:.{digits}f} [{e.min():+.{digits}f}, {e.max():+.{digits}f}], "
                f"{pos}/{len(e)} seeds > 0")

    def to_dict(self) -> dict:
        return {"label": self.label, "effects": [float(x) for x in self.effects], "kind": self.kind,
                "mean": self.mean, "sd": self.sd, "holds": self.holds}


@dataclass(frozen=True)
class Verdict:
    """A claim (quoted from its source), the checks testing it, the numbers deciding it, and what could have failed."""

    claim: str
    rule: str
    checks: tuple[Check, ...]
    numbers: tuple[tuple[str, str], ...]  # (label, formatted value) pairs, in display order
    note: str = ""  # where the book's rule or scale differs from the source's
    could_fail: str = ""  # what result would have overturned the verdict

    @property
    def holds(self) -> tuple[bool, ...]:
        return tuple(c.holds for c in self.checks)

    @property
    def outcome(self) -> str:
        """'supported' if every check held, 'partly supported' if some did, else 'not supported at this scale'."""
        if self.holds and all(self.holds):
            return OUTCOMES[0]
        return OUTCOMES[1] if any(self.holds) else OUTCOMES[2]

    def to_dict(self) -> dict:
        """JSON-ready form (the evidence map reads this)."""
        return {"claim": self.claim, "rule": self.rule, "holds": list(self.holds), "numbers": dict(self.numbers),
                "order": [k for k, _ in self.numbers], "checks": [c.to_dict() for c in self.checks],
                "note": self.note, "could_fail": self.could_fail, "outcome": self.outcome}


def verdict(claim: str, checks: list[Check], extra: dict | None = None, note: str = "",
            could_fail: str = "") -> Verdict:
    """Build a Verdict: the rule lists the checks; the numbers are each check's effect, then the extra context."""
    rule = " ".join(f"({i}) {c.label}{' does not fall below 0' if c.kind == 'not_less' else ' > 0'}."
                    for i, c in enumerate(checks, start=1)) + " " + DECISION
    nums = [(f"({i}) {c.label}", c.fmt()) for i, c in enumerate(checks, start=1)]
    nums += [(k, str(v)) for k, v in (extra or {}).items()]
    return Verdict(claim, rule, tuple(checks), tuple(nums), note, could_fail)


def _log(x) -> float:
    return float(np.log(x))


def _paired(groups: dict, a, b, fn) -> tuple[float, ...]:
    """fn(run of a, run of b) for each seed (the runs of two conditions, paired by seed)."""
    return tuple(fn(x, y) for x, y in zip(groups[a], groups[b], strict=True))


def _mean(values) -> str:
    return A.spread(values).fmt(3)


# ---------------------------------------------------------------- chapter 1


def layer_gradients(runs: list[RunResult]) -> Verdict:
    """Chapter 1 (Day 3): early layers get smaller gradients; the classifier's varies most; biases vary less."""
    d = runs[0].config.depth

    def rel(r):  # run mean of each layer's ||g|| / ||W|| [L]
        return A.relative_gradient(r).mean(0)

    def rel_noise(r):  # run mean of each layer's gradient noise / ||W||^2 [L]
        return (A.gradient_noise(r, "w") / np.asarray(r.weight_norm)[:-1] ** 2).mean(0)

    def per_entry(r, param):  # run mean of each layer's gradient noise per entry [L]
        return A.gradient_noise(r, param).mean(0) / A.layer_sizes(r, param)

    checks = [Check("log(classifier / hidden1) of the relative gradient ||g||/||W||",
                    tuple(_log(rel(r)[-1] / rel(r)[0]) for r in runs))]
    if d >= 3:  # two hidden layers of the same shape (width x width): raw norms compare like with like
        checks.append(Check(f"log(hidden{d} / hidden2) of the mean weight-gradient norm (both {runs[0].config.width} x "
                            f"{runs[0].config.width})",
                            tuple(_log(A.layer_grad_summary(r)[0][d - 1] / A.layer_grad_summary(r)[0][1])
                                  for r in runs)))
    checks.append(Check("log(classifier / largest hidden layer) of the relative gradient noise (noise / ||W||^2)",
                        tuple(_log(rel_noise(r)[-1] / rel_noise(r)[:-1].max()) for r in runs)))
    checks.append(Check("smallest over layers of log(weight / bias) gradient noise per entry",
                        tuple(float(np.log(per_entry(r, "w") / per_entry(r, "b")).min()) for r in runs)))
    extra = {"relative gradient, hidden1 / classifier": _mean([rel(r)[0] / rel(r)[-1] for r in runs]),
             "raw mean norm, hidden1 / classifier (not used: measures input scale)":
                 _mean([A.layer_grad_summary(r)[0][0] / A.layer_grad_summary(r)[0][-1] for r in runs])}
    return verdict(
        "\"Early layers exhibit smaller average gradients compared to later layers.\" \"The classifier layer exhibits "
        "significantly higher gradient variance compared to earlier feature extraction layers.\" \"Bias parameters "
        "consistently show lower variance than weights.\" (Day 3)",
        checks, extra,
        note="The study compared raw norms. Here layers of different shapes are compared only through scale-free "
             "measures (gradient over weight norm), and 'variance' is the gradient noise (trace of the mini-batch "
             "gradient covariance). Per entry, a weight gradient is the bias gradient times that weight's input, so "
             "check (4) asks whether the layers' inputs are larger than 1 in mean square, not where learning happens.",
        could_fail="A first layer whose weights move as fast relative to their size as the classifier's, a deeper "
                   "hidden layer with smaller gradients than an earlier one of the same shape, or a hidden layer "
                   "with more relative noise than the classifier would each have failed a check.")


# ---------------------------------------------------------------- chapter 2


def epoch_dynamics(runs: list[RunResult]) -> Verdict:
    """Chapter 2 (Days 4-5): mini-batch noise dominates within epochs, early layers trail later ones, it persists."""

    def nsr(r):  # first layer's noise-to-signal ratio per epoch [E]
        return A.noise_to_signal(r)[:, 0]

    def late(r):
        return slice(r.epochs_run - max(1, r.epochs_run // 5), r.epochs_run)

    rel = [A.relative_gradient(r) for r in runs]
    checks = [
        Check("median over epochs of log(noise / signal), hidden1", tuple(_log(np.median(nsr(r))) for r in runs)),
        Check("smallest over epochs of log(classifier / hidden1) relative gradient",
              tuple(float(np.log(g[:, -1] / g[:, 0]).min()) for g in rel)),
        Check("log(last fifth / first fifth) of hidden1's noise / signal",
              tuple(_log(nsr(r)[late(r)].mean() / nsr(r)[A.early(r)].mean()) for r in runs), kind="not_less"),
    ]
    extra = {"noise / signal, hidden1, first fifth of epochs": _mean([nsr(r)[A.early(r)].mean() for r in runs]),
             "noise / signal, hidden1, last fifth of epochs": _mean([nsr(r)[late(r)].mean() for r in runs]),
             "training accuracy, first / last epoch": f"{_mean([r.history['train_acc'][1] for r in runs])} / "
                                                     f"{_mean([r.history['train_acc'][-1] for r in runs])}"}
    return verdict(
        "\"Epoch-wise gradient plots show significant vertical dispersion within each epoch\"; \"early layers ... "
        "exhibit lower gradient magnitudes overall, while later layers retain higher-magnitude updates\"; "
        "\"optimization noise persists throughout training\" (Days 4-5)",
        checks, extra,
        note="'Significant dispersion' becomes a scale-free test: the within-epoch noise of the gradient vector (trace "
             "of its covariance over mini-batches) exceeds the squared norm of the epoch's mean gradient. The study "
             "looked at the spread of the norm; the norm can stay constant while the vector swings, so the noise is "
             "the quantity its interpretation (noisy, inconsistent updates) needs.",
        could_fail="A mean gradient larger than the batch-to-batch noise, a first layer that moves faster than the "
                   "classifier relative to its size in any epoch, or noise that dies away as training goes on.")


# ---------------------------------------------------------------- chapter 3


def depth_attenuation(groups: dict[int, list[RunResult]]) -> Verdict:
    """Chapter 3 (Day 5): deeper nets' early-layer gradients decay faster, are more suppressed and noisier early."""
    lo, hi = min(groups), max(groups)

    def decay(r):  # log(first-epoch / last-epoch) mean norm of the first layer
        m = A.epoch_grad_stats(r)[0][:, 0]
        return _log(m[0] / m[-1])

    def suppression(r):  # run-mean first-layer / classifier norm (the same shapes at every depth)
        m = A.layer_grad_summary(r)[0]
        return m[0] / m[-1]

    def early_noise(r):
        return A.gradient_noise(r)[A.early(r), 0].mean()

    checks = [
        Check(f"first-layer decay (log first / last epoch norm), depth {hi} minus depth {lo}",
              _paired(groups, hi, lo, lambda a, b: decay(a) - decay(b))),
        Check(f"log(hidden1 / classifier norm) at depth {lo} minus at depth {hi}",
              _paired(groups, lo, hi, lambda a, b: _log(suppression(a)) - _log(suppression(b)))),
        Check(f"log(first-layer gradient noise in the first fifth of epochs), depth {hi} over depth {lo}",
              _paired(groups, hi, lo, lambda a, b: _log(early_noise(a) / early_noise(b)))),
    ]
    extra = {f"first-layer decay, depth {d}": _mean([decay(r) for r in groups[d]]) for d in sorted(groups)}
    extra.update({f"hidden1 / classifier norm, depth {d}": _mean([suppression(r) for r in groups[d]])
                  for d in sorted(groups)})
    return verdict(
        "\"Shallower networks (depth=2) maintain stable gradient magnitudes across epochs, while deeper networks "
        "(depth=8) exhibit faster decay and higher variance early in training. Early layers in deeper networks show "
        "suppressed gradient magnitudes relative to later layers.\" (Day 5)",
        checks, extra,
        note="The first layer (784 x width) and the classifier (width x 10) have the same shapes at every depth, so "
             "their norms compare like with like across depths; decay compares a layer with itself over time. "
             "'Variance' is the gradient noise.",
        could_fail=f"A first-layer gradient that decays no faster at depth {hi} than at depth {lo}, is no more "
                   f"suppressed relative to the classifier, or is no noisier early on.")


# ---------------------------------------------------------------- chapter 4


def _flow(r: RunResult) -> np.ndarray:
    """Per epoch, log(hidden2 / hidden{depth}) mean weight-gradient norm [E]: two layers of the same shape; 0 = even."""
    m = A.epoch_grad_stats(r)[0]
    return np.log(m[:, 1] / m[:, r.config.depth - 1])


def init_early_flow(groups: dict[str, list[RunResult]]) -> Verdict:
    """Chapter 4 (Day 6): He attenuates less than Xavier early; orthogonal starts most even but loses ground later."""
    d = groups["he"][0].config.depth
    early_flow = {k: [float(_flow(r)[A.early(r)].mean()) for r in rs] for k, rs in groups.items()}
    first = {k: [float(abs(_flow(r)[0])) for r in rs] for k, rs in groups.items()}
    n = len(groups["he"])
    checks = [
        Check("early-epoch gradient flow log(hidden2 / hidden%d), He minus Xavier" % d,
              tuple(early_flow["he"][s] - early_flow["xavier"][s] for s in range(n))),
        Check("epoch-1 imbalance |flow|, smaller of He and Xavier minus orthogonal",
              tuple(min(first["he"][s], first["xavier"][s]) - first["orthogonal"][s] for s in range(n))),
        Check("orthogonal's flow in epoch 1 minus in the last epoch",
              tuple(float(_flow(r)[0] - _flow(r)[-1]) for r in groups["orthogonal"])),
    ]
    extra = {f"early flow, {k}": _mean(v) for k, v in early_flow.items()}
    extra.update({f"epoch-1 |flow|, {k}": _mean(v) for k, v in first.items()})
    return verdict(
        "\"He initialization maintains higher gradient magnitudes in early layers during initial epochs, while Xavier "
        "exhibits faster attenuation. Orthogonal initialization shows more stable gradient propagation initially, but "
        "does not fully prevent gradient decay over training.\" (Day 6)",
        checks, extra,
        note=f"He draws twice Xavier's variance for square layers, so its raw gradients start larger by design. The "
             f"checks instead compare gradient flow: the norm of an early hidden layer over a late one of the same "
             f"shape (hidden2 / hidden{d}, width x width), which does not depend on the overall scale. 'Decay' for "
             f"orthogonal means the early layer losing ground against the late one, not the decay every layer shows "
             f"as the loss falls.",
        could_fail="Xavier attenuating no more than He, another scheme starting as evenly as orthogonal, or "
                   "orthogonal's early layer keeping (or gaining) ground over training.")


# ---------------------------------------------------------------- chapter 5


def optimizer_flow(groups: dict[str, list[RunResult]]) -> Verdict:
    """Chapter 5 (Day 7): SGD's early gradients decay and are noisiest; momentum is less noisy; Adam retains most."""

    def retention(r):  # log(last / first epoch) mean first-layer norm
        m = A.epoch_grad_stats(r)[0][:, 0]
        return _log(m[-1] / m[0])

    def nsr(r):  # log of the first layer's run-mean noise-to-signal ratio
        return _log(A.noise_to_signal(r)[:, 0].mean())

    checks = [
        Check("first-layer retention log(last / first epoch norm), Adam minus SGD",
              _paired(groups, "adam", "sgd", lambda a, b: retention(a) - retention(b))),
        Check("first-layer log(noise / signal), SGD minus Adam",
              _paired(groups, "sgd", "adam", lambda a, b: nsr(a) - nsr(b))),
        Check("first-layer log(noise / signal), SGD minus momentum",
              _paired(groups, "sgd", "momentum", lambda a, b: nsr(a) - nsr(b))),
    ]
    extra = {f"retention, {k}": _mean([np.exp(retention(r)) for r in rs]) for k, rs in groups.items()}
    extra.update({f"noise / signal, {k}": _mean([np.exp(nsr(r)) for r in rs]) for k, rs in groups.items()})
    return verdict(
        "\"SGD exhibits rapid decay of gradient magnitudes in early layers, accompanied by high variance ... Momentum "
        "partially stabilizes gradient flow, reducing variance ... Adam maintains higher and more stable gradient "
        "magnitudes across epochs, particularly in early layers, with narrower variance bands.\" (Day 7)",
        checks, extra,
        note="Retention compares a layer with itself; variance is the gradient noise relative to the squared mean "
             "gradient, which is scale-free across optimizers whose gradients differ in size. Each optimizer uses "
             "its own default learning rate (SGD 0.05, momentum 0.01, Adam 0.001).",
        could_fail="SGD's first-layer gradient retained as well as Adam's, or its noise-to-signal no higher than "
                   "Adam's or momentum's.")


# ---------------------------------------------------------------- chapter 6


def memorization(groups: dict[float, list[RunResult]]) -> Verdict:
    """Chapter 6 (Day 8): the gap widens with noise; clean examples are fitted first; test accuracy peaks then falls."""
    noises = sorted(groups)
    hi = noises[-1]

    def gap(r):
        return r.final("train_acc") - r.final("test_acc")

    n = len(groups[hi])
    widen = tuple(min(gap(groups[b][s]) - gap(groups[a][s]) for a, b in itertools.pairwise(noises))
                  for s in range(n))
    lead, fall = [], []
    for r in groups[hi]:
        e, _ = A.peak(r, "val_acc")  # the epoch is chosen on validation
        lead.append(float(r.history["train_acc_clean"][e] - r.history["train_acc_corrupted_noisy"][e]))
        fall.append(float(r.history["test_acc"][e] - r.final("test_acc")))
    checks = [
        Check(f"smallest step of the train - test gap over noise {', '.join(f'{p:.0%}' for p in noises)}", widen),
        Check(f"at {hi:.0%}, clean minus corrupted fit at the validation peak", tuple(lead)),
        Check(f"at {hi:.0%}, test accuracy at the validation peak minus at the end", tuple(fall)),
    ]
    extra = {f"train - test gap, {p:.0%} noise": _mean([gap(r) for r in groups[p]]) for p in noises}
    extra[f"validation peak epoch, {hi:.0%}"] = ", ".join(str(A.peak(r, "val_acc")[0]) for r in groups[hi])
    return verdict(
        "\"With increasing label noise, training accuracy remains high while test accuracy degrades substantially\"; "
        "\"The gap between training and test accuracy widens with noise\" (Day 8), with clean examples fitted before "
        "corrupted ones and test accuracy falling as memorization sets in (Arpit et al., 2017).",
        checks, extra,
        note="The peak epoch is picked on validation, and test accuracy is read at that epoch.",
        could_fail="A gap that stays level between two noise rates, corrupted examples fitted as early as clean "
                   "ones, or test accuracy that keeps its validation-peak level to the end.")


# ---------------------------------------------------------------- chapter 7


def representation_drift(groups: dict[float, list[RunResult]], layer: int | None = None) -> Verdict:
    """Chapter 7 (Day 9): under noise the representation drifts further, with a sharper early drop (cosine and CKA)."""
    lo, hi = min(groups), max(groups)
    layer = layer or groups[lo][0].config.depth
    cos = {k: [A.cosine_drift(r, layer) for r in groups[k]] for k in (lo, hi)}
    cka = {k: [A.cka_drift(r, layer) for r in groups[k]] for k in (lo, hi)}
    k_end = A.early(groups[lo][0]).stop  # checkpoint at the end of early training
    n = len(groups[lo])
    checks = [
        Check(f"final cosine to init, {lo:.0%} minus {hi:.0%} noise",
              tuple(cos[lo][s][-1] - cos[hi][s][-1] for s in range(n))),
        Check(f"final CKA with init, {lo:.0%} minus {hi:.0%} noise",
              tuple(cka[lo][s][-1] - cka[hi][s][-1] for s in range(n))),
        Check(f"cosine lost by epoch {k_end}, {hi:.0%} minus {lo:.0%}",
              tuple(cos[lo][s][k_end] - cos[hi][s][k_end] for s in range(n))),
        Check(f"cosine lost after epoch {k_end}, {hi:.0%} minus {lo:.0%}",
              tuple((cos[hi][s][k_end] - cos[hi][s][-1]) - (cos[lo][s][k_end] - cos[lo][s][-1]) for s in range(n))),
    ]
    extra = {f"final cosine to init, {k:.0%}": _mean([c[-1] for c in cos[k]]) for k in (lo, hi)}
    extra.update({f"final CKA with init, {k:.0%}": _mean([c[-1] for c in cka[k]]) for k in (lo, hi)})
    return verdict(
        "\"Under 40% label noise, representations drift significantly faster, with a sharp drop in similarity during "
        "early training epochs followed by continued divergence.\" (Day 9)",
        checks, extra,
        note=f"Layer hidden{layer}, the last hidden layer, as in the study; 'early' is the first fifth of the epochs. "
             "The study used 2,000 probe images; the probe set here depends on the mode.",
        could_fail="Noisy-label representations ending as close to their start as clean ones, by either measure, or "
                   "drifting no faster early on or later.")


# ---------------------------------------------------------------- chapter 8


def gradient_variance_drift(groups: dict[float, list[RunResult]], layer: int | None = None) -> Verdict:
    """Chapter 8 (Day 10): early-layer gradient noise rises under noise early on and moves with the drift."""
    lo, hi = min(groups), max(groups)
    layer = layer or groups[hi][0].config.depth

    def early_noise(r):
        return A.gradient_noise(r)[A.early(r), 0].mean()

    def rise(r):  # log(mean over epochs 2..end of early / epoch 1) of the first layer's gradient noise
        g = A.gradient_noise(r)[:, 0]
        stop = max(2, A.early(r).stop)
        return _log(g[1:stop].mean() / g[0])

    checks = [
        Check(f"log(first-layer gradient noise in the first fifth of epochs), {hi:.0%} over {lo:.0%}",
              _paired(groups, hi, lo, lambda a, b: _log(early_noise(a) / early_noise(b)))),
        Check(f"rise of that noise after epoch 1, {hi:.0%} minus {lo:.0%}",
              _paired(groups, hi, lo, lambda a, b: rise(a) - rise(b))),
        Check(f"at {hi:.0%}, Spearman rho of epoch-to-epoch changes: gradient noise vs drift of hidden{layer}",
              tuple(A.noise_drift_rho(r, layer) for r in groups[hi])),
    ]
    rho_levels = [A.spearman(A.gradient_noise(r)[:, 0], A.drift_speed(r, layer)) for r in groups[hi]]
    extra = {f"early first-layer gradient noise, {k:.0%}": A.spread([early_noise(r) for r in groups[k]]).fmt(4)
             for k in (lo, hi)}
    extra["rho of the levels (not used: both trend with time)"] = A.spread(rho_levels).fmt(2)
    return verdict(
        "\"Under label noise, early-layer gradient variance increases substantially during early training epochs\"; "
        "\"The temporal rise in gradient variance aligns closely with the onset of rapid representation drift.\" "
        "(Day 10)",
        checks, extra,
        note="'Variance' is the gradient noise (trace of the mini-batch gradient covariance). The study judged the "
             "alignment by eye; here it is the rank correlation of the two series' epoch-to-epoch changes, because "
             "two series that both fall over training correlate in level whatever their relation.",
        could_fail="First-layer gradient noise no higher (or rising no more) under noise than with clean labels, or "
                   "its changes unrelated to the changes of the drift.")


# ---------------------------------------------------------------- chapter 9


def width_capacity(groups: dict[int, list[RunResult]]) -> Verdict:
    """Chapter 9 (Day 11): wider nets fit faster, test accuracy gains less than training, the gap rises then holds."""
    widths = sorted(groups)
    w0, w1, wn = widths[0], widths[1], widths[-1]

    def mid(r):
        return float(r.history["train_acc"][max(1, r.epochs_run // 2)])

    def gap(r):
        return r.final("train_acc") - r.final("test_acc")

    n = len(groups[w0])
    checks = [
        Check(f"training accuracy at mid-training, width {wn} minus {w0}",
              _paired(groups, wn, w0, lambda a, b: mid(a) - mid(b))),
        Check(f"training gain minus test gain from width {w0} to {wn}",
              _paired(groups, wn, w0, lambda a, b: (a.final("train_acc") - b.final("train_acc"))
                      - (a.final("test_acc") - b.final("test_acc")))),
        Check(f"gap at width {w1} minus at width {w0}", _paired(groups, w1, w0, lambda a, b: gap(a) - gap(b))),
        Check(f"smallest gap beyond width {w1} minus the gap at {w1}",
              tuple(min(gap(groups[w][s]) for w in widths[2:]) - gap(groups[w1][s]) for s in range(n))
              if len(widths) > 2 else (0.0,) * n, kind="not_less"),
    ]
    extra = {f"width {w}: train / test / gap": f"{np.mean([r.final('train_acc') for r in groups[w]]):.3f} / "
                                             f"{np.mean([r.final('test_acc') for r in groups[w]]):.3f} / "
                                             f"{_mean([gap(r) for r in groups[w]])}" for w in widths}
    return verdict(
        "\"Increasing model width improves optimization efficiency, as reflected by faster convergence and higher "
        "training accuracy. However, test accuracy does not improve proportionally ... The train-test generalization "
        "gap ... initially increases and then plateaus or worsens for larger widths.\" (Day 11)",
        checks, extra,
        note="'Plateaus or worsens' is tested as 'does not fall by more than the seed spread' (check 4); train/test "
             "values in the table are means over seeds.",
        could_fail="Wider nets fitting no faster, test accuracy gaining as much as training accuracy, a gap that "
                   "shrinks from the narrowest widths, or one that falls back at the largest.")


# ---------------------------------------------------------------- chapter 10


def _matched_drop(clean: RunResult, noisy: RunResult) -> tuple[float, float, int]:
    """(relative rotation drop of the clean run at the checkpoint whose validation accuracy is closest to the noisy
    run's final one, that checkpoint's validation accuracy, its epoch)."""
    val = np.asarray(clean.history["val_acc"])[1:]
    e = int(np.argmin(np.abs(val - noisy.history["val_acc"][-1]))) + 1
    drop = 1 - clean.history["shift_acc"][e] / clean.history["test_acc"][e]
    return float(drop), float(clean.history["val_acc"][e]), e


def dataset_shift(groups: dict[float, list[RunResult]]) -> Verdict:
    """Chapter 10 (Day 12): noisy-label models do worse under rotation, also relative to their plain accuracy."""
    lo, hi = min(groups), max(groups)

    def rel_drop(r):
        return 1 - r.final("shift_acc") / r.final("test_acc")

    matched = [_matched_drop(c, z) for c, z in zip(groups[lo], groups[hi], strict=True)]
    checks = [
        Check(f"rotated-test accuracy, {lo:.0%} minus {hi:.0%} noise",
              _paired(groups, lo, hi, lambda a, b: a.final("shift_acc") - b.final("shift_acc"))),
        Check(f"relative rotation drop at {hi:.0%} minus the clean run's at matched validation accuracy",
              tuple(rel_drop(z) - m[0] for z, m in zip(groups[hi], matched, strict=True))),
    ]
    extra = {f"rotated-test accuracy, {k:.0%}": _mean([r.final("shift_acc") for r in groups[k]]) for k in (lo, hi)}
    extra[f"relative drop (1 - rotated / test), {hi:.0%}"] = _mean([rel_drop(r) for r in groups[hi]])
    extra["relative drop, clean at matched accuracy"] = _mean([m[0] for m in matched])
    extra["validation accuracy: noisy final / clean matched"] = (
        f"{_mean([r.history['val_acc'][-1] for r in groups[hi]])} / {_mean([m[1] for m in matched])}")
    extra["matched clean epoch per seed"] = ", ".join(str(m[2]) for m in matched)
    return verdict(
        "\"Models trained under noisy supervision perform significantly worse under distribution shift\"; \"Despite "
        "the noisy model not fully memorizing the training data, it generalizes significantly worse under "
        "distribution shift.\" (Day 12)",
        checks, extra,
        note="Check (2) asks whether the noisy model is more brittle than a clean one of the same plain accuracy: "
             "the clean run's checkpoint is chosen by validation accuracy, and the drop is relative (rotated over "
             "plain test accuracy), so a model is not called brittle merely for being less accurate.",
        could_fail="Noisy-label models doing as well on rotated images, or losing no larger share of their accuracy "
                   "under rotation than a clean model of the same accuracy.")


# ---------------------------------------------------------------- chapter 11


def masc_decoding(tables: dict[float, list[dict]], high: tuple[float, ...] = (0.6, 0.8)) -> Verdict:
    """Chapter 11: at high corruption the best hidden layer's MASC beats the network and MASC on the raw input."""
    from .probes import best_layer, gain_over_input

    ps = [p for p in high if p in tables]
    n = len(tables[ps[0]])

    def best(t):  # the best hidden layer, chosen on validation; its test accuracy
        return best_layer(t, select_on="val")

    gain = tuple(min(best(tables[p][s])[1] - tables[p][s]["model_test_acc"] for p in ps) for s in range(n))
    over = tuple(min(gain_over_input(tables[p][s]) for p in ps) for s in range(n))
    levels = ", ".join(map(str, ps))  # the corruption levels this build tested
    checks = [Check(f"smallest over p in {levels} of best hidden layer's MASC minus the network", gain),
              Check(f"smallest over p in {levels} of best hidden layer's MASC minus MASC on the raw input", over)]
    extra = {}
    for p in ps:
        extra[f"p = {p}: network test accuracy"] = _mean([t["model_test_acc"] for t in tables[p]])
        extra[f"p = {p}: MASC, best hidden layer / raw input"] = (
            f"{_mean([best(t)[1] for t in tables[p]])} / "
            f"{_mean([t['layers']['input']['masc_corrupted'] for t in tables[p]])}")
        extra[f"p = {p}: best hidden layer per seed (on validation)"] = ", ".join(best(t)[0] for t in tables[p])
    return verdict(
        "Networks trained on corrupted labels keep layers from which MASC decodes the true test labels significantly "
        "better than the network's own output, even at high corruption (Ketha & Ramaswamy, 2025).",
        checks, extra,
        note="The best layer is chosen on validation images, not on the test set. Check (2) asks whether a hidden "
             "layer retains more than the pixels already give: MASC on the raw input is the baseline the claim of "
             "'retained' information needs.",
        could_fail="A network whose own output decodes as well as its best layer, or a best hidden layer no better "
                   f"than MASC on the raw pixels, at p = {' or '.join(map(str, ps))}.")

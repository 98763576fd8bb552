"""Each chapter's claim as a rule on this build's numbers: runs in, Verdict out (nothing hard-coded)."""
from __future__ import annotations

import numpy as np

from . import analysis as A
from .analysis import Verdict, verdict
from .train import RunResult


def _cv(res: RunResult, layer: int) -> np.ndarray:
    """Within-epoch coefficient of variation (std / mean) of one layer's weight-gradient norm [E]."""
    m, v = A.epoch_grad_stats(res, "w")
    return np.sqrt(v[:, layer]) / m[:, layer]


def _early(res: RunResult) -> slice:
    """The first fifth of training's epochs (at least one): 'early training'."""
    return slice(0, max(1, res.epochs_run // 5))


def _count(flags) -> str:
    return f"{sum(map(bool, flags))}/{len(flags)}"


def layer_gradients(runs: list[RunResult]) -> Verdict:
    """Chapter 1: early layers get smaller gradients; the classifier varies most; biases vary less than weights."""
    mean_w = [A.layer_grad_summary(r, "w")[0] for r in runs]
    var_w = [A.layer_grad_summary(r, "w")[1] for r in runs]
    var_b = [A.layer_grad_summary(r, "b")[1] for r in runs]
    c1 = [m[0] < m[-1] for m in mean_w]
    c2 = [int(v.argmax()) == len(v) - 1 for v in var_w]
    c3 = [bool((vb < vw).all()) for vb, vw in zip(var_b, var_w)]
    return verdict(
        "Early layers receive smaller gradients than later ones; the classifier's gradient varies most; "
        "bias gradients vary less than weight gradients.",
        "Per seed: (1) first hidden layer's mean weight-gradient norm < classifier's; (2) the classifier has the "
        "largest weight-gradient variance; (3) bias variance < weight variance in every layer.",
        c1 + c2 + c3,
        {"mean weight-gradient norm, hidden1 / classifier": A.spread([m[0] / m[-1] for m in mean_w]).fmt(3),
         "(1) seeds": _count(c1), "(2) seeds": _count(c2), "(3) seeds": _count(c3)},
    )


def epoch_dynamics(runs: list[RunResult]) -> Verdict:
    """Chapter 2: large within-epoch spread; early layers below later ones in most epochs; accuracy still rises."""
    cv_first = [float(np.median(_cv(r, 0))) for r in runs]
    frac_below = []
    for r in runs:
        m, _ = A.epoch_grad_stats(r, "w")
        frac_below.append(float((m[:, 0] < m[:, -1]).mean()))
    rises = [r.history["train_acc"][-1] > r.history["train_acc"][1] for r in runs]
    c1 = [c >= 0.1 for c in cv_first]
    c2 = [f > 0.5 for f in frac_below]
    return verdict(
        "Gradient norms spread widely within each epoch, early layers stay below later ones, and this noise persists "
        "while training accuracy improves.",
        "Per seed: (1) median within-epoch coefficient of variation (std/mean) of the first layer's gradient norm >= 0.1; "
        "(2) first layer's epoch-mean norm below the classifier's in more than half of the epochs; "
        "(3) training accuracy at the last epoch above that after epoch 1.",
        c1 + c2 + rises,
        {"median within-epoch CV, hidden1": A.spread(cv_first).fmt(3),
         "share of epochs with hidden1 < classifier": A.spread(frac_below).fmt(2),
         "(1) seeds": _count(c1), "(2) seeds": _count(c2), "(3) seeds": _count(rises)},
        note="The threshold 0.1 for 'wide spread' is this book's choice; the study judged the spread by eye.",
    )


def _ratio_first_last(r: RunResult) -> float:
    m = A.layer_grad_summary(r, "w")[0]
    return float(m[0] / m[-1])


def depth_attenuation(groups: dict[int, list[RunResult]]) -> Verdict:
    """Chapter 3: deeper nets attenuate early-layer gradients more and their first-layer spread widens."""
    depths = sorted(groups)
    lo, hi = depths[0], depths[-1]
    ratios = {d: [_ratio_first_last(r) for r in groups[d]] for d in depths}
    cvs = {d: [float(np.mean(_cv(r, 0))) for r in groups[d]] for d in depths}
    n = len(groups[lo])
    c1 = [all(ratios[a][s] > ratios[b][s] for a, b in zip(depths, depths[1:])) for s in range(n)]
    c2 = [cvs[hi][s] > cvs[lo][s] for s in range(n)]
    nums = {f"hidden1 / classifier mean norm, depth {d}": A.spread(ratios[d]).fmt(3) for d in depths}
    nums.update({f"first-layer within-epoch CV, depth {d}": A.spread(cvs[d]).fmt(3) for d in (lo, hi)})
    nums.update({"(1) seeds": _count(c1), "(2) seeds": _count(c2)})
    return verdict(
        "With depth, early layers' gradients shrink relative to the classifier's and their spread widens.",
        f"Per seed: (1) the first-layer / classifier ratio of mean weight-gradient norms falls at every step of depth "
        f"{', '.join(map(str, depths))}; (2) the first layer's mean within-epoch CV is larger at depth {hi} than at depth {lo}.",
        c1 + c2, nums)


def init_early_flow(groups: dict[str, list[RunResult]]) -> Verdict:
    """Chapter 4: He keeps early-layer gradients larger than Xavier early on; orthogonal delays, not prevents, decay."""
    def early_first(r):
        return float(A.epoch_grad_stats(r, "w")[0][_early(r), 0].mean())

    def balance(r):  # |log(first / classifier)| in the first epoch: 0 means equal gradient size
        m = A.epoch_grad_stats(r, "w")[0][0]
        return float(abs(np.log(m[0] / m[-1])))

    def decays(r):
        m = A.epoch_grad_stats(r, "w")[0][:, 0]
        return bool(m[-1] < m[0])

    n = len(groups["he"])
    he, xa = [early_first(r) for r in groups["he"]], [early_first(r) for r in groups["xavier"]]
    bal = {k: [balance(r) for r in groups[k]] for k in groups}
    c1 = [he[s] > xa[s] for s in range(n)]
    c2 = [bal["orthogonal"][s] == min(bal[k][s] for k in groups) for s in range(n)]
    c3 = [decays(r) for r in groups["orthogonal"]]
    return verdict(
        "He initialization keeps early-layer gradients larger than Xavier in the first epochs; orthogonal starts with the "
        "most even gradient flow but does not stop the first layer's gradient from decaying.",
        "Per seed, at depth 8: (1) He's first-layer mean weight-gradient norm over the first fifth of epochs > Xavier's; "
        "(2) orthogonal has the smallest |log(first layer / classifier)| in epoch 1; (3) orthogonal's first-layer norm in "
        "the last epoch < in epoch 1.",
        c1 + c2 + c3,
        {"early first-layer norm, He": A.spread(he).fmt(3), "early first-layer norm, Xavier": A.spread(xa).fmt(3),
         **{f"epoch-1 imbalance |log ratio|, {k}": A.spread(bal[k]).fmt(2) for k in groups},
         "(1) seeds": _count(c1), "(2) seeds": _count(c2), "(3) seeds": _count(c3)})


def optimizer_flow(groups: dict[str, list[RunResult]]) -> Verdict:
    """Chapter 5: SGD's early-layer gradients decay and vary most; momentum calms them; Adam keeps them largest and steadiest."""
    def retention(r):  # last-epoch over first-epoch mean first-layer norm
        m = A.epoch_grad_stats(r, "w")[0][:, 0]
        return float(m[-1] / m[0])

    def cv(r):
        return float(np.mean(_cv(r, 0)))

    n = len(groups["adam"])
    ret = {k: [retention(r) for r in groups[k]] for k in groups}
    cvs = {k: [cv(r) for r in groups[k]] for k in groups}
    c1 = [ret["adam"][s] > ret["sgd"][s] for s in range(n)]
    c2 = [cvs["adam"][s] < cvs["sgd"][s] for s in range(n)]
    c3 = [cvs["momentum"][s] < cvs["sgd"][s] for s in range(n)]
    nums = {f"first-layer retention (last/first epoch), {k}": A.spread(ret[k]).fmt(3) for k in groups}
    nums.update({f"first-layer within-epoch CV, {k}": A.spread(cvs[k]).fmt(3) for k in groups})
    nums.update({"(1) seeds": _count(c1), "(2) seeds": _count(c2), "(3) seeds": _count(c3)})
    return verdict(
        "SGD's early-layer gradients decay fastest and vary most; momentum reduces the variation; Adam keeps early-layer "
        "gradients larger and steadier.",
        "Per seed, at depth 8: (1) Adam's first-layer gradient retention (last-epoch / first-epoch mean norm) > SGD's; "
        "(2) Adam's mean within-epoch CV of the first layer < SGD's; (3) momentum's CV < SGD's.",
        c1 + c2 + c3, nums,
        note="Each optimizer uses its own default learning rate (SGD 0.05, momentum 0.01, Adam 0.001): the comparison "
             "is of typical settings, not of equal step sizes.")


def _last_hidden(r: RunResult) -> int:
    return r.config.depth


def memorization(groups: dict[float, list[RunResult]]) -> Verdict:
    """Chapter 6: the train-test gap widens with noise; clean examples are fitted before corrupted ones; test accuracy peaks then falls."""
    noises = sorted(groups)
    hi = noises[-1]
    n = len(groups[hi])
    gap = {p: [r.final("train_acc") - r.final("test_acc") for r in groups[p]] for p in noises}
    c1 = [all(gap[a][s] < gap[b][s] for a, b in zip(noises, noises[1:])) for s in range(n)]
    lead, fall = [], []
    for r in groups[hi]:
        e, best = A.peak(r, "test_acc")
        lead.append(r.history["train_acc_clean"][e] - r.history["train_acc_corrupted_noisy"][e])
        fall.append(best - r.final("test_acc"))
    c2 = [x > 0.3 for x in lead]
    c3 = [x >= 0.01 for x in fall]
    nums = {f"train - test gap, {p:.0%} noise": A.spread(gap[p]).fmt(3) for p in noises}
    nums.update({f"clean minus corrupted fit at peak test epoch, {hi:.0%}": A.spread(lead).fmt(3),
                 f"test accuracy lost after its peak, {hi:.0%}": A.spread(fall).fmt(3),
                 "(1) seeds": _count(c1), "(2) seeds": _count(c2), "(3) seeds": _count(c3)})
    return verdict(
        "Training accuracy stays high under label noise while test accuracy falls: the network first fits the clean "
        "examples, then memorizes the corrupted ones, and test accuracy drops as it does.",
        f"Per seed: (1) the final train-test gap grows at every step of noise {', '.join(f'{p:.0%}' for p in noises)}; "
        f"(2) at {hi:.0%} noise, when test accuracy peaks, the clean examples are fitted at least 0.3 better than the "
        f"corrupted ones (against their noisy labels); (3) test accuracy ends at least 1 point below its peak.",
        c1 + c2 + c3, nums)


def representation_drift(groups: dict[float, list[RunResult]], layer: int | None = None) -> Verdict:
    """Chapter 7: under noise the representation moves further from its initial state (cosine), also by CKA."""
    clean = groups[min(groups)]
    layer = layer or _last_hidden(clean[0])
    cos = {k: [float(A.cosine_drift(r, layer)[-1]) for r in groups[k]] for k in (min(groups), max(groups))}
    cka = {k: [float(A.cka_drift(r, layer)[-1]) for r in groups[k]] for k in (min(groups), max(groups))}
    lo, hi = min(groups), max(groups)
    c1 = [cos[hi][s] < cos[lo][s] for s in range(len(clean))]
    c2 = [cka[hi][s] < cka[lo][s] for s in range(len(clean))]
    return verdict(
        f"Under {hi:.0%} label noise the hidden representation drifts further from its initial state than with clean labels.",
        f"Per seed, layer hidden{layer}, final epoch: (1) mean cosine similarity to initialization lower at {hi:.0%} noise "
        f"than at {lo:.0%}; (2) the same for linear CKA.",
        c1 + c2,
        {**{f"cosine to init, {k:.0%} noise": A.spread(cos[k]).fmt(3) for k in (lo, hi)},
         **{f"CKA with init, {k:.0%} noise": A.spread(cka[k]).fmt(3) for k in (lo, hi)},
         "(1) seeds": _count(c1), "(2) seeds": _count(c2)},
        note="The study measured the final hidden layer on 2,000 samples; here the probe set size depends on the mode.")


def gradient_variance_drift(groups: dict[float, list[RunResult]], layer: int | None = None) -> Verdict:
    """Chapter 8: early-layer gradient variance is higher under noise early on, and moves with the drift over epochs."""
    lo, hi = min(groups), max(groups)
    layer = layer or _last_hidden(groups[hi][0])

    def early_var(r):
        return float(A.epoch_grad_stats(r, "w")[1][_early(r), 0].mean())

    ev = {k: [early_var(r) for r in groups[k]] for k in (lo, hi)}
    rho = [A.spearman(A.epoch_grad_stats(r, "w")[1][:, 0], A.drift_speed(r, layer)) for r in groups[hi]]
    c1 = [ev[hi][s] > ev[lo][s] for s in range(len(groups[hi]))]
    c2 = [bool(x >= 0.5) for x in rho]
    return verdict(
        f"Under {hi:.0%} noise the first layer's gradient variance rises in early training, and it moves together with the "
        "representation's drift.",
        f"Per seed: (1) first-layer within-epoch gradient variance over the first fifth of epochs higher at {hi:.0%} than "
        f"{lo:.0%} noise; (2) at {hi:.0%}, Spearman correlation over epochs between that variance and the per-epoch drift "
        f"(loss of cosine similarity) of hidden{layer} >= 0.5.",
        c1 + c2,
        {**{f"early first-layer gradient variance, {k:.0%}": A.spread(ev[k]).fmt(4) for k in (lo, hi)},
         "Spearman rho (variance vs drift)": A.spread(rho).fmt(2), "(1) seeds": _count(c1), "(2) seeds": _count(c2)},
        note="The study judged the alignment by eye; 0.5 is this book's threshold for 'moves together'.")


def width_capacity(groups: dict[int, list[RunResult]]) -> Verdict:
    """Chapter 9: wider nets fit noisy labels faster, test accuracy does not improve with width, the gap is non-monotonic."""
    widths = sorted(groups)
    n = len(groups[widths[0]])
    mid = lambda r: float(r.history["train_acc"][max(1, r.epochs_run // 2)])  # noqa: E731
    speed = {w: [mid(r) for r in groups[w]] for w in widths}
    test = {w: [r.final("test_acc") for r in groups[w]] for w in widths}
    gap = {w: [r.final("train_acc") - r.final("test_acc") for r in groups[w]] for w in widths}
    c1 = [speed[widths[-1]][s] > speed[widths[0]][s] for s in range(n)]
    c2 = [test[widths[-1]][s] <= test[widths[0]][s] + 0.02 for s in range(n)]
    c3 = [not all(gap[a][s] <= gap[b][s] for a, b in zip(widths, widths[1:])) for s in range(n)]
    nums = {f"width {w}: train acc at mid-training / final test acc / gap":
            f"{np.mean(speed[w]):.3f} / {np.mean(test[w]):.3f} / {np.mean(gap[w]):.3f}" for w in widths}
    nums.update({"(1) seeds": _count(c1), "(2) seeds": _count(c2), "(3) seeds": _count(c3)})
    return verdict(
        "Wider networks fit noisy labels faster but do not generalize better, and the train-test gap is non-monotonic in width.",
        f"Per seed, at 40% noise: (1) training accuracy at mid-training higher at width {widths[-1]} than {widths[0]}; "
        f"(2) final test accuracy at width {widths[-1]} at most 2 points above width {widths[0]}; (3) the final gap is "
        f"not monotonically increasing over widths {', '.join(map(str, widths))}.",
        c1 + c2 + c3, nums, note="Values in the table are means over seeds.")


def dataset_shift(groups: dict[float, list[RunResult]]) -> Verdict:
    """Chapter 10: noisy-label models lose more under rotation than clean ones."""
    lo, hi = min(groups), max(groups)
    n = len(groups[lo])
    shift = {k: [r.final("shift_acc") for r in groups[k]] for k in (lo, hi)}
    penalty = {k: [r.final("test_acc") - r.final("shift_acc") for r in groups[k]] for k in (lo, hi)}
    c1 = [shift[hi][s] < shift[lo][s] - 0.02 for s in range(n)]
    c2 = [penalty[hi][s] > penalty[lo][s] for s in range(n)]
    return verdict(
        f"Models trained with {hi:.0%} label noise do worse on rotated test images, beyond their loss on the plain test set.",
        f"Per seed, final epoch: (1) rotated-test accuracy at {hi:.0%} noise at least 2 points below {lo:.0%}; (2) the "
        "rotation penalty (test minus rotated-test accuracy) larger with noise than without.",
        c1 + c2,
        {**{f"rotated-test accuracy, {k:.0%} noise": A.spread(shift[k]).fmt(3) for k in (lo, hi)},
         **{f"rotation penalty, {k:.0%} noise": A.spread(penalty[k]).fmt(3) for k in (lo, hi)},
         "(1) seeds": _count(c1), "(2) seeds": _count(c2)})


def masc_decoding(tables: dict[float, list[dict]], high: tuple[float, ...] = (0.6, 0.8)) -> Verdict:
    """Chapter 11: at high corruption some layer's MASC decodes the true labels clearly better than the network itself."""
    from .probes import best_layer

    ps = [p for p in high if p in tables]
    n = len(tables[ps[0]])
    gain = {p: [best_layer(t)[1] - t["model_test_acc"] for t in tables[p]] for p in ps}
    c1 = [all(gain[p][s] >= 0.05 for p in ps) for s in range(n)]
    noisy_ps = [p for p in sorted(tables) if p > 0]
    c2 = [all(best_layer(tables[p][s], "masc_true")[1] >= best_layer(tables[p][s])[1] for p in noisy_ps) for s in range(n)]
    over_input = {p: [best_layer(t)[1] - t["layers"]["input"]["masc_corrupted"] for t in tables[p]] for p in ps}
    nums = {f"p = {p}: best hidden layer's MASC minus network": A.spread(gain[p]).fmt(3) for p in ps}
    nums.update({f"p = {p}: best hidden layer, per seed": ", ".join(best_layer(t)[0] for t in tables[p]) for p in ps})
    nums.update({f"p = {p}: best hidden layer's MASC minus MASC on the raw input": A.spread(over_input[p]).fmt(3) for p in ps})
    nums.update({"(1) seeds": _count(c1), "(2) seeds": _count(c2)})
    return verdict(
        "Networks that memorized corrupted labels keep hidden layers from which MASC decodes the true labels far better "
        "than the network's own output does, and true-label subspaces do better still.",
        f"Per seed: (1) at every p in {', '.join(map(str, ps))}, the best hidden layer's MASC (corrupted-label subspaces) "
        "test accuracy is at least 5 points above the network's; (2) at every p > 0, the best hidden layer's true-label MASC "
        "is at least as good as its best corrupted-label MASC.",
        c1 + c2, nums,
        note="The paper's 'significantly higher' has no threshold; 5 points is this book's. The raw input is left out of "
             "'best layer' (it is not learned); the 'minus raw input' rows show whether a hidden layer keeps more than the "
             "pixels already give. Scale: far fewer images than the paper.")

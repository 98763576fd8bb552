"""Every verdict can fail: synthetic runs with planted effects, one where the claim is true, one where it is false."""
from __future__ import annotations

import numpy as np
import pytest

from memlib import verdicts as V
from memlib.config import RunConfig
from memlib.train import METRICS, RunResult

SEEDS = range(5)


def _jitter(seed: int, scale: float = 0.02) -> float:
    return 1.0 + scale * (seed - 2) / 2  # a small, seed-dependent wobble: the spread is never zero


def fake(seed=0, depth=4, width=8, epochs=10, steps=4, mean=None, nsr=1.0, wnorm=None, bias_ratio=0.5, hist=None,
         cos=None, rep_layer=None, noise=None) -> RunResult:
    """A RunResult built from per-epoch knobs: mean [E, L] gradient norms, nsr noise/signal, wnorm [E + 1, L], the
    bias/weight per-entry noise ratio, history curves, and a cosine-to-init curve [E + 1] for the recorded layer."""
    L, E = depth + 1, epochs
    cfg = RunConfig(n_train=steps * 16, batch_size=16, epochs=E, depth=depth, width=width, seed=seed, probe_size=40,
                    rep_layers=(rep_layer or depth,))
    mean = np.broadcast_to(np.ones((E, L)) if mean is None else np.asarray(mean, float), (E, L)).copy()
    mean *= _jitter(seed)
    nsr = np.broadcast_to(np.asarray(nsr, float), (E, L))
    noise_w = (nsr / (1 + nsr) * mean**2 if noise is None
               else np.broadcast_to(np.asarray(noise, float), (E, L)) * _jitter(seed))
    sizes_w = np.array([784 * width] + [width * width] * (depth - 1) + [width * 10], float)
    sizes_b = np.array([width] * depth + [10], float)
    noise_b = noise_w / sizes_w * sizes_b * bias_ratio
    wnorm = np.ones((E + 1, L)) if wnorm is None else np.broadcast_to(np.asarray(wnorm, float), (E + 1, L)).copy()
    history = {m: np.linspace(0.1, 0.9, E + 1) for m in METRICS}
    history.update({k: np.asarray(v, float) * _jitter(seed, 0.002) for k, v in (hist or {}).items()})
    weights = {}
    for i, (a, b) in enumerate(zip([784] + [width] * depth, [width] * depth + [10], strict=True)):
        weights[f"layers.{i}.weight"] = np.zeros((b, a), np.float32)
        weights[f"layers.{i}.bias"] = np.zeros(b, np.float32)
    reps = {}
    if cos is not None:
        rng = np.random.default_rng(seed)
        x0, y = rng.normal(size=(40, 256)), rng.normal(size=(40, 256))
        c = np.clip(np.asarray(cos, float) * _jitter(seed, 0.002), 0, 1)
        reps[f"hidden{rep_layer or depth}"] = np.stack([ci * x0 + np.sqrt(1 - ci**2) * y
                                                         for ci in c]).astype(np.float16)
    return RunResult(
        config=cfg, history=history, grad_w=np.repeat(mean, steps, 0).astype(np.float32),
        grad_b=np.repeat(mean * 0.1, steps, 0).astype(np.float32), noise_w=noise_w, noise_b=noise_b, weight_norm=wnorm,
        batch_loss=np.ones(E * steps, np.float32), step_epoch=np.repeat(np.arange(1, E + 1, dtype=np.int32), steps),
        reps=reps, rep_epochs=np.arange(E + 1, dtype=np.int32), probe_idx=np.arange(40),
        train_idx=np.arange(cfg.n_train), labels=np.zeros(cfg.n_train, np.int64),
        true_labels=np.zeros(cfg.n_train, np.int64),
        corrupted=np.zeros(cfg.n_train, bool), weights=weights)


def seeds(**kw) -> list[RunResult]:
    return [fake(seed=s, **kw) for s in SEEDS]


# ---------------------------------------------------------------- the decision rule


@pytest.mark.parametrize("effects, kind, holds", [
    ((0.3, 0.31, 0.29, 0.3, 0.32), "greater", True),  # same sign everywhere, mean far above the spread
    ((0.3, 0.31, -0.01, 0.3, 0.32), "greater", False),  # one seed disagrees
    ((0.05, 0.9, 0.02, 0.01, 0.03), "greater", False),  # all positive, but the mean does not exceed the spread
    ((0.2,), "greater", True),  # one seed: the sign alone
    ((-0.2,), "greater", False),
    ((-0.01, 0.02, -0.02, 0.01, 0.0), "not_less", True),  # no decided fall
    ((-0.3, -0.31, -0.29, -0.3, -0.32), "not_less", False),  # a decided fall
    ((0.3, float("nan"), 0.3, 0.3, 0.3), "greater", False),  # a missing number never holds
])
def test_decision_rule(effects, kind, holds):
    assert V.Check("x", effects, kind).holds is holds


def test_outcomes_are_the_books_three():
    assert V.OUTCOMES == ("supported", "partly supported", "not supported at this scale")


def test_outcomes_and_box_numbers():
    good, bad = V.Check("a", (1.0, 1.1)), V.Check("b", (-1.0, -1.1))
    assert V.verdict("c", [good, good]).outcome == "supported"
    assert V.verdict("c", [good, bad]).outcome == "partly supported"
    assert V.verdict("c", [bad]).outcome == "not supported at this scale"
    v = V.verdict("c", [good, bad], {"context": "1"})
    assert [k for k, _ in v.numbers] == ["(1) a", "(2) b", "context"]  # display order kept
    d = v.to_dict()
    assert d["order"] == ["(1) a", "(2) b", "context"] and d["holds"] == [True, False]
    assert "2/2 seeds > 0" in v.numbers[0][1] and "0/2 seeds > 0" in v.numbers[1][1]


# ---------------------------------------------------------------- chapters 1-5: gradients


def ch1(true: bool) -> list[RunResult]:
    L = 5
    up = np.linspace(1, 3, L)  # the later the layer, the larger its gradient
    mean = up if true else up[::-1]
    noise = np.array([1, 1, 1, 1, 4.0]) if true else np.array([4.0, 1, 1, 1, 1])
    return seeds(mean=mean, noise=noise, bias_ratio=0.5 if true else 2.0)


def test_ch1_layer_gradients():
    assert V.layer_gradients(ch1(True)).outcome == "supported"
    assert V.layer_gradients(ch1(False)).outcome == "not supported at this scale"


def ch2(true: bool) -> list[RunResult]:
    E = 10
    nsr = np.full((E, 5), 3.0) if true else np.full((E, 5), 0.3)  # noise over signal
    if not true:
        nsr[:, 0] = np.linspace(0.5, 0.05, E)  # noise dies away as training goes on
    mean = np.linspace(1, 2, 5) if true else np.linspace(2, 1, 5)
    return seeds(mean=mean, nsr=nsr)


def test_ch2_epoch_dynamics():
    assert V.epoch_dynamics(ch2(True)).outcome == "supported"
    assert V.epoch_dynamics(ch2(False)).outcome == "not supported at this scale"


def ch3(true: bool) -> dict[int, list[RunResult]]:
    E = 10

    def run(depth, decay, ratio, noise0):
        m = np.ones((E, depth + 1))
        m[:, 0] = ratio * np.exp(-decay * np.arange(E))  # the first layer against a classifier of norm 1
        noise = np.ones((E, depth + 1)) * noise0
        return seeds(depth=depth, mean=m, noise=noise)

    shallow = run(2, 0.02, 1.0, 1.0)
    deep = run(8, 0.2, 0.3, 3.0) if true else run(8, 0.01, 2.0, 0.5)
    return {2: shallow, 8: deep}


def test_ch3_depth_attenuation():
    assert V.depth_attenuation(ch3(True)).outcome == "supported"
    assert V.depth_attenuation(ch3(False)).outcome == "not supported at this scale"


def _flow_mean(E, start, end, depth=8):
    """Mean norms whose hidden2 / hidden{depth} ratio goes from exp(start) to exp(end) over the epochs."""
    m = np.ones((E, depth + 1))
    m[:, 1] = np.exp(np.linspace(start, end, E))
    return m


def ch4(true: bool) -> dict[str, list[RunResult]]:
    E = 10
    if true:
        return {"he": seeds(depth=8, mean=_flow_mean(E, -0.3, -0.3)),
                "xavier": seeds(depth=8, mean=_flow_mean(E, -1.5, -1.5)),
                "orthogonal": seeds(depth=8, mean=_flow_mean(E, -0.05, -0.8))}
    return {"he": seeds(depth=8, mean=_flow_mean(E, -1.5, -1.5)),
            "xavier": seeds(depth=8, mean=_flow_mean(E, -0.02, -0.02)),
            "orthogonal": seeds(depth=8, mean=_flow_mean(E, -0.8, -0.05))}


def test_ch4_init_early_flow():
    assert V.init_early_flow(ch4(True)).outcome == "supported"
    assert V.init_early_flow(ch4(False)).outcome == "not supported at this scale"


def ch5(true: bool) -> dict[str, list[RunResult]]:
    E = 10

    def run(decay, nsr):
        m = np.ones((E, 9))
        m[:, 0] = np.exp(-decay * np.arange(E))
        return seeds(depth=8, mean=m, nsr=nsr)

    if true:
        return {"sgd": run(0.3, 5.0), "momentum": run(0.2, 2.0), "adam": run(0.02, 1.0)}
    return {"sgd": run(0.02, 0.5), "momentum": run(0.2, 2.0), "adam": run(0.3, 5.0)}


def test_ch5_optimizer_flow():
    assert V.optimizer_flow(ch5(True)).outcome == "supported"
    assert V.optimizer_flow(ch5(False)).outcome == "not supported at this scale"


# ---------------------------------------------------------------- chapters 6, 9, 10: accuracies


def _fixed_final(runs, train_acc):
    for r, t in zip(runs, train_acc, strict=True):
        r._fit = {"loss": 1.0, "train_acc": t, "train_acc_clean": t, "train_acc_corrupted_noisy": t,
                  "train_acc_corrupted_true": t}
    return runs


def ch6(true: bool) -> dict[float, list[RunResult]]:
    E = 10
    rise_fall = np.r_[0.1, np.linspace(0.6, 0.9, 4), np.linspace(0.88, 0.7, 6)]  # peaks at epoch 4, then falls
    flat = np.r_[0.1, np.linspace(0.6, 0.8, E)]
    groups = {}
    for p, test_end in ((0.0, 0.95), (0.2, 0.85), (0.4, 0.7)):
        curve = rise_fall if (true and p == 0.4) else flat * (test_end / 0.8)
        hist = {"test_acc": curve, "val_acc": curve,
                "train_acc_clean": np.linspace(0.1, 0.99, E + 1) if true else np.linspace(0.1, 0.6, E + 1),
                "train_acc_corrupted_noisy": (np.r_[0.1, np.linspace(0.05, 0.9, E)] if true
                                              else np.linspace(0.1, 0.9, E + 1))}
        groups[p] = _fixed_final(seeds(hist=hist), [0.99] * 5 if true else [curve[-1] + 0.05] * 5)
    return groups


def test_ch6_memorization():
    assert V.memorization(ch6(True)).outcome == "supported"
    assert V.memorization(ch6(False)).outcome == "not supported at this scale"


def test_ch6_peak_is_chosen_on_validation():
    """A test curve that peaks where validation does not: the test peak is never used."""
    g = ch6(True)
    for r in g[0.4]:
        r.history["val_acc"] = np.r_[0.1, np.linspace(0.6, 0.95, 10)]  # validation peaks at the last epoch
    assert not V.memorization(g).checks[2].holds  # the fall is measured from the last epoch: no fall


def ch9(true: bool) -> dict[int, list[RunResult]]:
    E = 10
    groups = {}
    for i, w in enumerate((64, 128, 256, 512)):
        speed = (0.5 + 0.1 * i) if true else (0.8 - 0.1 * i)
        train_end = (0.8 + 0.05 * i) if true else 0.8
        test_end = 0.6 if true else 0.5 + 0.1 * i
        hist = {"train_acc": np.r_[0.1, np.full(E, speed)], "test_acc": np.r_[0.1, np.full(E, test_end)]}
        groups[w] = _fixed_final(seeds(width=w, hist=hist), [train_end] * 5)
    return groups


def test_ch9_width_capacity():
    assert V.width_capacity(ch9(True)).outcome == "supported"
    assert V.width_capacity(ch9(False)).outcome == "not supported at this scale"


def ch10(true: bool) -> dict[float, list[RunResult]]:
    E = 10
    acc = np.r_[0.1, np.linspace(0.85, 0.97, E)]
    clean = {"val_acc": acc, "test_acc": acc, "shift_acc": acc * 0.9}  # loses 10 % of its accuracy under rotation
    noisy_acc = np.r_[0.1, np.full(E, 0.9)]
    noisy = {"val_acc": noisy_acc, "test_acc": noisy_acc, "shift_acc": noisy_acc * (0.7 if true else 0.98)}
    return {0.0: seeds(hist=clean), 0.4: seeds(hist=noisy)}


def test_ch10_dataset_shift():
    assert V.dataset_shift(ch10(True)).outcome == "supported"
    assert V.dataset_shift(ch10(False)).outcome == "not supported at this scale"


def test_ch10_less_accurate_is_not_brittle():
    """A noisy model that is as brittle as a clean one of the same accuracy: only the raw check holds."""
    g = ch10(True)
    for r in g[0.4]:
        r.history["shift_acc"] = r.history["test_acc"] * 0.9
    v = V.dataset_shift(g)
    assert v.holds == (True, False) and v.outcome == "partly supported"


# ---------------------------------------------------------------- chapters 7, 8: representations


def ch7(true: bool) -> dict[float, list[RunResult]]:
    E = 10
    clean = np.r_[1.0, np.linspace(0.95, 0.85, E)]
    noisy = np.r_[1.0, np.linspace(0.7, 0.3, E)] if true else np.r_[1.0, np.linspace(0.97, 0.9, E)]
    return {0.0: seeds(depth=2, cos=clean), 0.4: seeds(depth=2, cos=noisy)}


def test_ch7_representation_drift():
    assert V.representation_drift(ch7(True)).outcome == "supported"
    assert V.representation_drift(ch7(False)).outcome == "not supported at this scale"


def ch8(true: bool) -> dict[float, list[RunResult]]:
    E = 10
    wiggle = np.array([0, 1, -1, 2, -2, 1, -1, 2, 0, 1], float) * 0.01
    cos = 1 - np.r_[0.0, np.cumsum(0.03 + wiggle)]  # drift speed 0.03 + wiggle per epoch
    groups = {}
    for p in (0.0, 0.4):
        noise = np.ones((E, 3))
        if p == 0.4 and true:
            # higher, rising, and moving with the drift
            noise[:, 0] = 2.0 * np.r_[1.0, np.full(E - 1, 1.5)] + 20 * wiggle
        elif p == 0.4:
            noise[:, 0] = 0.5 - 10 * wiggle  # lower, and moving against the drift
        groups[p] = seeds(depth=2, cos=cos, noise=noise)
    return groups


def test_ch8_gradient_variance_drift():
    assert V.gradient_variance_drift(ch8(True)).outcome == "supported"
    assert V.gradient_variance_drift(ch8(False)).outcome == "not supported at this scale"


# ---------------------------------------------------------------- chapter 11: probe tables


def table(net, inp, hidden_test, hidden_val):
    layers = {"input": {"masc_corrupted": inp, "masc_corrupted_val": inp}}
    for i, (t, v) in enumerate(zip(hidden_test, hidden_val, strict=True), start=1):
        layers[f"hidden{i}"] = {"masc_corrupted": t, "masc_corrupted_val": v}
    return {"model_test_acc": net, "layers": layers}


def ch11(net, inp, hidden_test, hidden_val=None):
    return {p: [table(net * _jitter(s), inp, hidden_test, hidden_val or hidden_test) for s in SEEDS]
            for p in (0.6, 0.8)}


def test_ch11_masc_decoding():
    assert V.masc_decoding(ch11(0.3, 0.7, [0.85, 0.9])).outcome == "supported"
    assert V.masc_decoding(ch11(0.95, 0.96, [0.85, 0.9])).outcome == "not supported at this scale"
    # beats the network, not the pixels
    assert V.masc_decoding(ch11(0.3, 0.92, [0.85, 0.9])).outcome == "partly supported"


def test_ch11_best_layer_is_chosen_on_validation():
    """hidden2 scores best on the test set, hidden1 on validation: the verdict uses hidden1's test accuracy."""
    v = V.masc_decoding(ch11(0.3, 0.8, [0.78, 0.95], hidden_val=[0.9, 0.8]))
    assert not v.checks[1].holds  # chosen on the test set, hidden2 (0.95) would have beaten the input (0.8)
    assert "hidden1" in dict(v.numbers)["p = 0.6: best hidden layer per seed (on validation)"]


def test_ch11_says_only_the_corruption_levels_it_tested():
    """The cpu scope trains p = 0.6 alone: its rule and its 'would have failed it' name 0.6, not 0.8."""
    both = V.masc_decoding(ch11(0.3, 0.7, [0.85, 0.9]))
    only = V.masc_decoding({0.6: ch11(0.3, 0.7, [0.85, 0.9])[0.6]})
    assert both.could_fail.endswith("at p = 0.6 or 0.8.")
    assert only.could_fail.endswith("at p = 0.6.") and "0.8" not in only.rule + only.could_fail

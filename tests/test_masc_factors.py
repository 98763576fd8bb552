"""Chapter 11's factor comparison (what the gain over the input depends on), planted both ways, and the cpu scope's
marks on the page: the verdict box and the setup table."""
from __future__ import annotations

import json
from types import SimpleNamespace

import matplotlib
import pytest

from memlib import plots as P
from memlib import probes as PR
from memlib import report as R
from memlib.config import RunConfig
from memlib.report import VERDICT_MIME
from memlib.verdicts import Check, verdict

matplotlib.use("Agg")
SEEDS = range(3)
NAMES = ("big", "small", "wide", "sgd")


def table(net, inp, hidden_test, hidden_val=None):
    """A probe table: the network's test accuracy, MASC on the input and on each hidden layer (test and validation)."""
    layers = {"input": {"masc_corrupted": inp, "masc_corrupted_val": inp}}
    for i, (t, v) in enumerate(zip(hidden_test, hidden_val or hidden_test, strict=True), start=1):
        layers[f"hidden{i}"] = {"masc_corrupted": t, "masc_corrupted_val": v}
    return {"model_test_acc": net, "layers": layers}


def variants(gains: dict, wobble: float = 0.004) -> dict:
    """{name: [table per seed]} with best hidden MASC = input + gain + a seed wobble (-1, 0, +1 x wobble)."""
    return {n: [table(0.4, 0.5, [0.3, 0.5 + g + wobble * (s - 1)]) for s in SEEDS] for n, g in gains.items()}


def test_gain_over_input_uses_the_layer_best_on_validation():
    t = table(0.4, 0.6, [0.7, 0.9], hidden_val=[0.8, 0.5])  # hidden2 best on test, hidden1 on validation
    assert PR.gain_over_input(t) == pytest.approx(0.7 - 0.6)


def test_a_planted_width_effect_is_found_and_a_null_one_is_not():
    tables = variants({"big": 0.0, "small": 0.0, "wide": 0.05, "sgd": 0.0})
    effects = R.factor_effects(tables, "small")
    assert set(effects) == {"big", "wide", "sgd"}
    assert effects["wide"].holds and effects["wide"].mean == pytest.approx(0.05)
    assert not effects["sgd"].holds and not effects["big"].holds
    text = R.factor_findings(tables, "small")
    assert "wide gives a larger gain" in text and "sgd gives no change beyond the spread" in text
    assert text.endswith("Changes beyond the seed-to-seed spread: wide.")


def test_a_planted_drop_is_named_as_smaller_and_no_effect_says_so():
    drop = R.factor_findings(variants({"big": 0.0, "small": 0.0, "wide": -0.05, "sgd": 0.0}), "small")
    assert "wide gives a smaller gain" in drop
    flat = R.factor_findings(variants({n: 0.0 for n in NAMES}, wobble=0.0), "small")
    assert flat.endswith("No single change moves the gain over the input beyond the seed-to-seed spread.")


def test_noise_larger_than_the_effect_is_not_called_an_effect():
    # the effect (+0.004 per seed on average) is smaller than the seed-to-seed wobble of the difference
    tables = variants({"big": 0.0, "small": 0.0, "wide": 0.0, "sgd": 0.0})
    tables["wide"] = [table(0.4, 0.5, [0.3, 0.5 + d]) for d in (0.03, -0.02, 0.002)]
    assert not R.factor_effects(tables, "small")["wide"].holds
    assert "wide gives no change beyond the spread" in R.factor_findings(tables, "small")


def _run(train_acc, stop_at=0.99, epochs=150, ran=40):
    cfg = SimpleNamespace(stop_at=stop_at, epochs=epochs)
    return SimpleNamespace(config=cfg, epochs_run=ran if train_acc >= stop_at else epochs,
                           final=lambda metric: train_acc)


def test_the_table_and_the_runs_that_stopped_at_their_cap():
    tables = variants({"big": 0.0, "small": 0.0, "wide": 0.05, "sgd": 0.0})
    runs = {n: [_run(0.995) for _ in SEEDS] for n in NAMES}
    runs["sgd"] = [_run(0.995), _run(0.6), _run(0.7)]
    t = R.factor_table(tables, runs, "small")
    rows = {r[0]: r for r in t.rows}
    assert rows["small"][-1] == "(reference)" and rows["wide"][-1].startswith("0.050 ± ")
    assert rows["wide"][5].startswith("0.050 ± ") and rows["wide"][1] == "40 ± 0"  # the gain; epochs
    text = R.factor_findings(tables, "small", runs)
    assert "sgd: 2 of 3 runs stopped at the 150-epoch cap" in text and "wide: " not in text.split("spread: ")[-1]


def test_the_factor_figure_has_a_row_per_variant():
    tables = variants({"big": 0.0, "small": 0.0, "wide": 0.05, "sgd": 0.0})
    fig, (ax,) = P.figure(width=6, height=3)
    assert P.masc_factors(tables, ax) is fig
    assert [t.get_text() for t in ax.get_yticklabels()] == list(NAMES)
    assert len(ax.get_legend_handles_labels()[1]) == 3


def test_the_scope_shows_on_the_verdict_box_and_in_its_json():
    v = verdict("claim", [Check("effect", (0.1,))])
    box = R.VerdictBox(v, chapter="11-masc", mode="full", scope="cpu scope: noise = 0.6 and seed 0 only")
    out = box._repr_mimebundle_()
    assert out[VERDICT_MIME]["scope"].startswith("cpu scope") and "seed 0 only" in out["text/html"]
    assert out["text/plain"].startswith("Verdict (full; cpu scope")
    plain = R.VerdictBox(v, chapter="11-masc", mode="full")._repr_mimebundle_()
    assert "scope" not in plain[VERDICT_MIME] and plain["text/plain"].startswith("Verdict (full): ")
    json.dumps(out[VERDICT_MIME])


def test_setup_table_names_per_layer_widths_and_the_scopes_seeds():
    cfg = RunConfig(n_train=500, widths=(128, 512, 2048, 2048), init="torch")
    rows = dict(R.setup_table(cfg, "full", seeds=(0,)).rows)
    assert rows["architecture"].startswith("MLP 784-128-512-2048-2048-10") and rows["seeds"] == "0"
    assert "depth 4 (hidden layers) x width 256" in dict(R.setup_table(RunConfig(), "quick").rows)["architecture"]


@pytest.mark.parametrize("effects, holds, below", [
    ((0.05, 0.06, 0.04), True, False),
    ((-0.05, -0.06, -0.04), False, True),
    ((0.03, -0.02, 0.002), False, False),  # mixed signs: neither way
    ((-0.01, -0.5, -0.02), False, False),  # all negative, but the mean is within the spread
    ((-0.01,), False, True),  # one seed: the sign alone decides
])
def test_a_check_is_decided_up_down_or_not_at_all(effects, holds, below):
    c = Check("effect", effects)
    assert (c.holds, c.below) == (holds, below)
    assert Check("effect", effects, kind="not_less").holds == (not below)

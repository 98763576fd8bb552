"""plots, report, verdicts, widgets: figures from results (never training or showing), computed verdicts, explorers."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memlib import plots as P
from memlib import report as R
from memlib import verdicts as V
from memlib.cache import run, sweep
from memlib.modes import base_config, scale
from memlib.verdicts import OUTCOMES


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    """Plot code must never call pyplot.show."""
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() called"))


@pytest.fixture(scope="module")
def noise_groups(memlib_cache):
    """Tiny runs at noise 0 and 0.4, two seeds each."""
    from memlib.config import RunConfig

    base = RunConfig(n_train=256, epochs=3, depth=2, width=16, probe_size=40, eval_size=200, batch_size=64)
    return sweep(base, "noise", [0.0, 0.4], seeds=(0, 1))


def test_every_plot_returns_its_figure(noise_groups):
    """Each plot function draws into the given axes and returns that axes' figure, with labelled axes."""
    runs = noise_groups[0.4]
    calls = [
        lambda ax: P.layer_grad_bars(runs, ax),
        lambda ax: P.batch_grad_scatter(runs[0], ax),
        lambda ax: P.epoch_grad_curves(noise_groups, "noise", ax),
        lambda ax: P.layer_epoch_curves(runs, ax, stat="var"),
        lambda ax: P.metric_curves(noise_groups, "noise", ax, "loss", log=True),
        lambda ax: P.drift_curves(noise_groups, "noise", ax, 2, "cka"),
        lambda ax: P.final_vs_condition(noise_groups, "noise", ax),
        lambda ax: P.layer_profile(noise_groups, "noise", ax),
        lambda ax: P.fit_decomposition(runs, ax),
        lambda ax: P.layer_similarity(noise_groups, "noise", ax),
        lambda ax: P.variance_vs_drift(runs, ax, 2),
        lambda ax: P.final_gap(noise_groups, "noise", ax),
        lambda ax: P.layer_drift_curves(runs, ax),
        lambda ax: P.accuracy_curves(runs, ax, ("train_acc", "test_acc", "shift_acc")),
    ]
    for call in calls:
        fig, (ax,) = P.figure()
        assert call(ax) is fig
        assert ax.get_xlabel() and ax.get_ylabel()
        assert ax.lines or ax.collections or ax.patches


def test_condition_colours_are_stable_and_bands_show_spread(noise_groups):
    """A condition keeps its colour in every figure; two seeds give a min-max band, one seed none."""
    fig, (ax,) = P.figure()
    P.metric_curves(noise_groups, "noise", ax, "test_acc")
    assert ax.lines[0].get_color() == P.color("noise", 0.0) and ax.lines[1].get_color() == P.color("noise", 0.4)
    assert len(ax.collections) == 2
    fig, (ax,) = P.figure()
    P.metric_curves({0.0: noise_groups[0.0][:1]}, "noise", ax, "test_acc")
    assert len(ax.collections) == 0


def test_log_axes_use_plain_numbers(noise_groups):
    """Log-scaled gradient plots say so in the label and use a log axis."""
    fig, (ax,) = P.figure()
    P.epoch_grad_curves(noise_groups, "noise", ax)
    assert ax.get_yscale() == "log" and "log scale" in ax.get_ylabel()


def test_verdict_box_bundle(noise_groups):
    """The box carries HTML, text and the machine-readable verdict the evidence map reads."""
    v = V.memorization(noise_groups)
    bundle = R.VerdictBox(v, chapter="06-memorization", mode="quick")._repr_mimebundle_()
    data = bundle[R.VERDICT_MIME]
    assert data["chapter"] == "06-memorization" and data["outcome"] in OUTCOMES
    assert v.outcome in bundle["text/html"] and v.outcome in bundle["text/plain"]
    assert len(data["holds"]) == 3 and len(data["checks"][0]["effects"]) == 2  # three checks, each over two seeds


def _fake(res, **history):
    """A copy of a run with some per-epoch histories replaced."""
    h = dict(res.history)
    h.update({k: np.asarray(v, dtype=float) for k, v in history.items()})
    return dataclasses.replace(res, history=h)


def test_shift_verdict_follows_the_numbers(noise_groups):
    """The same rule gives 'supported' or 'not supported' depending only on the numbers it is given."""
    r = noise_groups[0.0][0]
    ep = r.config.epochs + 1
    clean = _fake(r, test_acc=[0.9] * ep, shift_acc=[0.85] * ep)
    brittle = _fake(r, test_acc=[0.8] * ep, shift_acc=[0.6] * ep)
    robust = _fake(r, test_acc=[0.9] * ep, shift_acc=[0.86] * ep)
    assert V.dataset_shift({0.0: [clean], 0.4: [brittle]}).outcome == "supported"
    assert V.dataset_shift({0.0: [clean], 0.4: [robust]}).outcome == "not supported at this scale"


def test_chapter_verdicts_run_on_tiny_sweeps(noise_groups, memlib_cache):
    """Every chapter's verdict function runs on small real runs and returns a valid outcome with numbers."""
    base = noise_groups[0.0][0].config
    depth = sweep(dataclasses.replace(base, rep_epochs="none"), "depth", [1, 2, 3], seeds=(0,))
    inits = sweep(dataclasses.replace(base, rep_epochs="none"), "init", ["he", "xavier", "orthogonal"], seeds=(0,))
    opts = sweep(dataclasses.replace(base, rep_epochs="none"), "optimizer", ["sgd", "momentum", "adam"], seeds=(0,))
    widths = sweep(dataclasses.replace(base, rep_epochs="none", noise=0.4), "width", [8, 16], seeds=(0,))
    runs = noise_groups[0.0]
    for v in (V.layer_gradients(runs), V.epoch_dynamics(runs), V.depth_attenuation(depth), V.init_early_flow(inits),
              V.optimizer_flow(opts), V.memorization(noise_groups), V.representation_drift(noise_groups),
              V.gradient_variance_drift(noise_groups), V.width_capacity(widths), V.dataset_shift(noise_groups)):
        assert v.outcome in OUTCOMES and v.numbers and v.holds


def test_setup_table_and_tables():
    """The setup table names the mode and seeds; tables render as HTML and aligned text."""
    cfg = base_config("quick", depth=3)
    t = R.setup_table(cfg, "quick", varied="depth")
    assert "quick" in repr(t) and "depth 3" in repr(t) and str(scale("quick").seeds[0]) in repr(t)
    assert t._repr_html_().startswith("<table")
    assert "a  b" in repr(R.Table([("x", "y")], ("a", "b")))


def test_modes_reject_unknown():
    """An unknown mode names itself and the allowed ones."""
    with pytest.raises(ValueError, match="'fast'.*quick"):
        scale("fast")


def test_explorer_redraws_and_uses_the_cache(noise_groups):
    """Setting a control redraws the image from the same plot function; the base value must be among the choices."""
    pytest.importorskip("ipywidgets")
    from memlib.widgets import Explorer

    base = noise_groups[0.0][0].config
    drawn = []

    def draw(axes, rs):
        drawn.append(rs[0].config)
        P.accuracy_curves(rs, axes[0])

    ex = Explorer(base, {"noise": [0.0, 0.4]}, draw)
    first = ex.image.value
    assert first[:4] == b"\x89PNG" and drawn[-1] == base
    ex.set(noise=0.4)
    second = ex.image.value
    assert drawn[-1].noise == 0.4 and second != first
    assert ex.configs()[0] == dataclasses.replace(base, noise=0.4)
    ex.sliders["noise"].value = 0.0  # a reader's move: cached, so drawn at once
    assert drawn[-1].noise == 0.0 and ex.image.value != second
    with pytest.raises(ValueError, match="base value"):
        Explorer(base, {"noise": [0.2, 0.4]}, draw)
    assert run(base).cached


def test_explorer_trains_in_the_background_with_live_frames_and_cancels_stale_runs(noise_groups):
    """A move to an uncached setting returns at once, draws a frame per epoch; a newer move cancels the older run."""
    import time

    from memlib.cache import is_cached
    from memlib.widgets import Explorer

    base = dataclasses.replace(noise_groups[0.0][0].config, epochs=6, seed=5)
    frames = []

    def draw(axes, rs):
        frames.append((rs[0].config.noise, rs[0].epochs_run))
        P.accuracy_curves(rs, axes[0])

    ex = Explorer(base, {"noise": [0.0, 0.2, 0.6]}, draw)
    t = time.perf_counter()
    ex.sliders["noise"].value = 0.2  # a reader's move: training starts off the main thread
    assert time.perf_counter() - t < 0.5 and "training" in ex.status.value
    ex.sliders["noise"].value = 0.6  # moved again before 0.2 finished: the 0.2 run is stopped
    deadline = time.perf_counter() + 120
    while "done" not in ex.timings and time.perf_counter() < deadline:
        time.sleep(0.02)
    assert "done" in ex.timings and ex.timings["first_frame"] <= ex.timings["done"]
    live = [e for p, e in frames if p == 0.6]
    assert live == [1, 2, 3, 4, 5, 6]  # epoch by epoch from the first, then the finished run
    assert is_cached(dataclasses.replace(base, noise=0.6)) and not is_cached(dataclasses.replace(base, noise=0.2))


def test_streaming_explorer_draws_training_then_probes_layer_by_layer(memlib_cache, monkeypatch):
    """Chapter 11's explorer: training curves while the run trains, then probe bars as each layer's probes finish."""
    import time

    import memlib.widgets as Wd
    from memlib.config import RunConfig
    from memlib.explorers import SPECS, live_explorer
    from memlib.train import RunResult

    monkeypatch.setattr(Wd, "FRAME_INTERVAL", 0.0)  # every partial result drawn
    base = RunConfig(n_train=256, epochs=3, depth=2, width=16, probe_size=40, eval_size=100, batch_size=64,
                     noise_kind="uniform", rep_epochs="none")
    seen = []
    spec = SPECS["11-masc"]
    monkeypatch.setitem(SPECS, "11-masc", dataclasses.replace(
        spec, controls={"noise": [0.0, 0.6], "depth": [2], "width": [16]},
        draw=lambda axes, objs, layer: (seen.append(objs[0]), spec.draw(axes, objs, layer))))
    ex = live_explorer("11-masc", base)
    seen.clear()
    ex.sliders["noise"].value = 0.6
    deadline = time.perf_counter() + 120
    while "done" not in ex.timings and time.perf_counter() < deadline:
        time.sleep(0.02)
    kinds = ["run" if isinstance(o, RunResult) else len(o["layers"]) for o in seen]
    assert kinds == ["run", "run", 1, 2, 3, 3]  # epochs 1 and 2 live, then input, hidden1, hidden2, the finished table
    assert ex.timings["first_frame"] <= ex.timings["done"]

"""Each chapter's live explorer in one place: its controls and the plot function it redraws.

The chapters and the benchmark share them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import plots as P
from .config import RunConfig

NOISE = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
WIDTHS = [64, 128, 256, 512]
EXPLORER_TEST_IMAGES = 5_000  # chapter 11's live explorer scores its probes on the first 5,000 test images


def _scatter_and_accuracy(axes, rs):
    P.batch_grad_scatter(rs[0], axes[0], layers=[0, rs[0].config.depth])
    P.metric_curves({rs[0].config.noise: rs}, "noise", axes[1], "train_acc")


def _probe_stages(cfg, frame):
    """Chapter 11's explorer: training curves epoch by epoch, then probe bars layer by layer (frame(...) each)."""
    from .probes import probe_run

    return probe_run(cfg, validation=False, on_epoch=frame, on_layer=frame, n_test=EXPLORER_TEST_IMAGES)[1]


def _masc_frame(axes, objs, layer):
    """A partial run (while training) as accuracy curves; a probe table (whole or so far) as probe bars."""
    from .results import RunResult

    if isinstance(objs[0], RunResult):
        P.accuracy_curves(objs, axes[0])
        axes[0].set_title(f"training… epoch {objs[0].epochs_run} of {objs[0].config.epochs}; probes follow")
    else:
        P.probe_bars(objs[0], axes[0], highlight=layer)


@dataclass(frozen=True)
class Spec:
    """What a chapter's explorer controls and draws."""

    controls: dict
    draw: Callable
    size: dict = field(default_factory=lambda: {"width": 6})
    views: dict | None = None
    load: Callable | None = None  # what draw receives per seed (default: the run)
    stream: bool = False  # load(cfg, frame) hands partial results to frame(...) as they come (drawn live)


SPECS = {
    "01-gradient-statistics": Spec({"depth": [1, 2, 4, 8], "width": WIDTHS, "noise": NOISE},
                                   lambda axes, rs: P.layer_grad_bars(rs, axes[0])),
    "02-gradient-dynamics": Spec({"depth": [1, 2, 4, 8], "width": WIDTHS, "noise": NOISE}, _scatter_and_accuracy,
                                 {"ncols": 2}),
    "03-depth": Spec({"depth": [1, 2, 4, 8, 16], "width": WIDTHS, "noise": NOISE},
                     lambda axes, rs: P.layer_epoch_curves(rs, axes[0])),
    "04-initialization": Spec({"init": ["he", "xavier", "orthogonal"], "depth": [2, 4, 8, 16], "width": WIDTHS,
                               "noise": NOISE},
                              lambda axes, rs: P.layer_epoch_curves(rs, axes[0])),
    "05-optimizers": Spec({"optimizer": ["sgd", "momentum", "adam"], "depth": [2, 4, 8, 16], "width": WIDTHS,
                           "noise": NOISE},
                          lambda axes, rs: P.layer_epoch_curves(rs, axes[0])),
    "06-memorization": Spec({"noise": NOISE, "depth": [2, 4, 8], "width": WIDTHS},
                            lambda axes, rs: P.fit_decomposition(rs, axes[0]), {"width": 6.5, "height": 3.6}),
    "07-representation-drift": Spec({"noise": NOISE, "depth": [2, 4, 8], "width": WIDTHS},
                                    lambda axes, rs: P.layer_drift_curves(rs, axes[0])),
    "08-gradient-variance": Spec({"noise": NOISE, "depth": [2, 4, 8], "width": WIDTHS},
                                 lambda axes, rs: P.variance_vs_drift(rs, axes[0], rs[0].config.depth),
                                 {"width": 6, "height": 3.6}),
    "09-width": Spec({"width": [64, 128, 256, 512, 1024], "noise": NOISE, "depth": [2, 4, 8]},
                     lambda axes, rs: P.accuracy_curves(rs, axes[0])),
    "10-dataset-shift": Spec({"noise": NOISE, "depth": [2, 4, 8], "width": WIDTHS},
                             lambda axes, rs: P.accuracy_curves(rs, axes[0], ("train_acc", "test_acc", "shift_acc"))),
    "11-masc": Spec({"noise": NOISE, "depth": [2, 4, 6], "width": [128, 256, 512]}, _masc_frame,
                    {"width": 7.5, "height": 3.6},
                    views={"layer": ["hidden1", "hidden2", "hidden3", "hidden4", "input"]},
                    load=_probe_stages, stream=True),
}


def live_explorer(chapter: str, base: RunConfig):
    """The chapter's live explorer around base (its default setting)."""
    from .widgets import Explorer

    if chapter not in SPECS:
        raise ValueError(f"chapter={chapter!r} is not allowed: one of {', '.join(SPECS)}")
    s = SPECS[chapter]
    return Explorer(base, s.controls, s.draw, views=s.views, load=s.load, stream=s.stream, **s.size)

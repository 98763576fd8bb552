"""The book's three scales: quick (CI, seconds), standard (the default book), full (the study's scale)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import RunConfig

MODES = ("quick", "standard", "full")


@dataclass(frozen=True)
class Scale:
    """What a mode changes in every chapter's runs."""

    n_train: int
    epochs: int
    seeds: tuple[int, ...]
    eval_size: int
    probe_size: int


SCALES = {
    "quick": Scale(n_train=1_000, epochs=4, seeds=(0,), eval_size=1_000, probe_size=200),
    "standard": Scale(n_train=5_000, epochs=20, seeds=(0, 1, 2, 3, 4), eval_size=2_000, probe_size=1_000),
    "full": Scale(n_train=50_000, epochs=15, seeds=(0, 1, 2), eval_size=10_000, probe_size=2_000),
}


def scale(mode: str) -> Scale:
    """The Scale for a mode name."""
    if mode not in SCALES:
        raise ValueError(f"mode={mode!r} is not allowed: one of {', '.join(MODES)}")
    return SCALES[mode]


def base_config(mode: str, **fields) -> RunConfig:
    """A RunConfig at the mode's scale (seed 0), with the given fields set."""
    s = scale(mode)
    sized = dict(n_train=s.n_train, epochs=s.epochs, eval_size=s.eval_size, probe_size=s.probe_size)
    return RunConfig(**{**sized, **fields})


# Chapter 11 trains until the corrupted labels are fitted (stop_at), so its scale is set apart.
# The MASC paper's protocol (the authors' code): 784-128-512-2048-2048-10, nn.Linear's default initialization, SGD with
# momentum 0.9 at learning rate 0.001, pixels in [-1, 1], uniform label noise, trained to 99.9 % training accuracy
# (at most 500 epochs). The full mode runs exactly that on our 50,000 training images.
PAPER_PROTOCOL = dict(widths=(128, 512, 2048, 2048), init="torch", optimizer="momentum", lr=1e-3, inputs="symmetric",
                      noise_kind="uniform", stop_at=0.999)
# Quick and standard keep the first edition's uniform 4 x 256 Adam network: measured here (2 cores), the paper's
# protocol at 1,000 images and p = 0.6 needs 272 epochs at batch 32 (320 s) or, with a 10x learning rate, 219 epochs
# (99 s) per run; at p = 0.8 and the paper's learning rate, 400 epochs reach only 37 % training accuracy. Eighteen such
# runs do not fit the standard book's 15 minutes.
FIRST_EDITION = dict(depth=4, width=256, noise_kind="uniform", stop_at=0.99)
MASC_SCALES = {
    "quick": dict(FIRST_EDITION, n_train=500, epochs=40),
    "standard": dict(FIRST_EDITION, n_train=4_000, epochs=150),
    "full": dict(PAPER_PROTOCOL, n_train=50_000, epochs=500),
}


def masc_config(mode: str, **fields) -> RunConfig:
    """Chapter 11's run at a mode's scale (MASC_SCALES): uniformly corrupted labels, trained until they are fitted."""
    scale(mode)  # validates the mode
    sized = dict(rep_epochs="none", eval_size=min(2_000, SCALES[mode].eval_size))
    return base_config(mode, **{**sized, **MASC_SCALES[mode], **fields})


# Live explorers retrain on every slider move, so they run a lighter version of the chapter's config.
EXPLORER_SCALES = {
    "quick": dict(n_train=1_000, epochs=4, eval_size=1_000, probe_size=200),
    "standard": dict(n_train=2_000, epochs=10, eval_size=2_000, probe_size=500),
    "full": dict(n_train=10_000, epochs=15, eval_size=10_000, probe_size=2_000),
}


def explorer_config(mode: str, base: RunConfig) -> RunConfig:
    """A chapter's config at the live explorers' scale for a mode (fewer images and epochs: seconds per retrain)."""
    scale(mode)
    return dataclasses.replace(base, **EXPLORER_SCALES[mode])


def masc_explorer_config(mode: str) -> RunConfig:
    """Chapter 11's live explorer: the first edition's uniform network (its depth and width are the sliders) at the
    explorers' scale, trained for a fixed number of epochs and evaluated on 500 held-out images per epoch."""
    base = base_config(mode, **{**FIRST_EDITION, "stop_at": None}, rep_epochs="none")
    return dataclasses.replace(explorer_config(mode, base), eval_size=500)

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
    "standard": Scale(n_train=5_000, epochs=20, seeds=(0, 1, 2, 3, 4), eval_size=5_000, probe_size=1_000),
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
MASC_SCALES = {
    "quick": dict(n_train=500, epochs=40, width=256),
    "standard": dict(n_train=4_000, epochs=150, width=256),
    "full": dict(n_train=50_000, epochs=300, width=512),
}


def masc_config(mode: str, **fields) -> RunConfig:
    """Chapter 11's run at a mode's scale: the paper's uniform label corruption, trained until 99 % training accuracy (or the epoch cap)."""
    scale(mode)  # validates the mode
    sized = dict(depth=4, noise_kind="uniform", stop_at=0.99, rep_epochs="none", eval_size=min(2_000, SCALES[mode].eval_size))
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

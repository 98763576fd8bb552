"""Shared by the test modules: the tiny smoke-test config, a bit-for-bit comparison of two runs, MNIST cache seeding."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from memlib.config import RunConfig
from memlib.train import ARRAY_FIELDS, RunResult

# The tiny config of the smoke tests: trains in well under a second on a CPU.
TINY = dict(n_train=256, epochs=2, depth=2, width=16, probe_size=50, eval_size=200, batch_size=64, device="cpu")
ARRAYS = ARRAY_FIELDS


def hidden_ref(model, x):
    """The reference for every evaluation pass: (post-ReLU activation of each hidden layer, logits), layer by layer."""
    import torch

    reps = []
    with torch.no_grad():
        *hidden, last = model.layers
        for layer in hidden:
            x = torch.relu(layer(x))
            reps.append(x)
        return reps, last(x)


def tiny(**changes) -> RunConfig:
    """The tiny config with some fields changed."""
    return RunConfig(**{**TINY, **changes})


def assert_same_result(a: RunResult, b: RunResult) -> None:
    """Every array of two runs is bit-identical (NaNs in the same places), configs equal."""
    assert a.config.key() == b.config.key()
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name
    for group in ("history", "reps", "weights"):
        ga, gb = getattr(a, group), getattr(b, group)
        assert sorted(ga) == sorted(gb), group
        for k in ga:
            assert ga[k].dtype == gb[k].dtype and np.array_equal(ga[k], gb[k], equal_nan=True), f"{group}/{k}"


def seed_cache(target: Path, source: Path) -> None:
    """Copy the converted MNIST files and rotated test sets (source/mnist/*.npz|*.npy) into target/mnist."""
    (target / "mnist").mkdir(parents=True, exist_ok=True)
    if (source / "mnist").is_dir():
        for f in (source / "mnist").iterdir():
            if f.is_file() and f.suffix in (".npz", ".npy") and not f.name.startswith("."):
                shutil.copy2(f, target / "mnist" / f.name)

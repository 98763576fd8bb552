"""Randomness split by purpose: one independent stream per (seed, purpose), no global state."""
from __future__ import annotations

import zlib

import numpy as np

PURPOSES = ("subset", "noise", "init", "batches", "probe", "shift", "probe_fit")


def _purpose_id(purpose: str) -> int:
    if purpose not in PURPOSES:
        raise ValueError(f"purpose={purpose!r} is not allowed: one of {', '.join(PURPOSES)}")
    return zlib.crc32(purpose.encode())


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """A NumPy generator for one purpose of one run's seed."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _purpose_id(purpose)]))


def torch_generator(seed: int, purpose: str, device: str = "cpu"):
    """A torch.Generator for one purpose of one run's seed."""
    import torch

    s = np.random.SeedSequence([int(seed), _purpose_id(purpose)]).generate_state(2, np.uint64)[0]
    g = torch.Generator(device=device)
    g.manual_seed(int(s) & ((1 << 63) - 1))
    return g

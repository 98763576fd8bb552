"""How a cached run was trained: a small JSON record beside it (<run>.npz -> <run>.trained.json), written atomically.

Not part of a run's cache key (memlib.cache._RESULT_MODULES): where a run was trained does not change its numbers.
"""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from .files import atomic_write_text

HOWS = ("kernel", "prepare-local", "prepare-ray")  # cache.run in the asking process; prepare's local pool; Ray
SUFFIX = ".trained.json"


def path_for(run: Path) -> Path:
    """The record's path beside the run's file."""
    run = Path(run)
    return run.with_name(run.name.removesuffix(".npz") + SUFFIX)


def device_name(device: str) -> str:
    """A run's meta['device'] as a reader would name it: 'cpu', or 'cuda (NVIDIA H200)' for a GPU."""
    if not str(device).startswith("cuda"):
        return str(device)
    import torch

    try:
        return f"{device} ({torch.cuda.get_device_name(torch.device(device).index or 0)})"
    except Exception:  # noqa: BLE001 - the name is a courtesy; the device string alone is still true
        return str(device)


def record(how: str, *, seconds: float, threads: int, device: str, workers: int | None = None,
           host: str | None = None) -> dict:
    """The record of one training: {how, workers, threads, device, host, seconds, when}."""
    if how not in HOWS:
        raise ValueError(f"how={how!r} is not allowed: one of {', '.join(HOWS)}")
    return {"how": how, "workers": workers, "threads": int(threads), "device": str(device),
            "host": host or socket.gethostname(), "seconds": round(float(seconds), 3),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write(run: Path, rec: dict) -> dict:
    """Write rec beside the run (atomic); returns rec."""
    atomic_write_text(path_for(run), json.dumps(rec, sort_keys=True) + "\n")
    return rec


def read(run: Path) -> dict | None:
    """The run's record, or None when it has none (trained before provenance was recorded) or it is unreadable."""
    try:
        rec = json.loads(path_for(run).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None

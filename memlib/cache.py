"""Runs on disk, keyed by config and code version; .npz files (no pickle), atomic writes."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from . import provenance
from .config import RunConfig
from .data import MNIST_DIR_ENV, cache_dir
from .files import atomic_write, discard, locked
from .results import RunResult, from_arrays, to_arrays
from .train import train

# Modules whose code changes what a run produces; their source is hashed into every key.
_RESULT_MODULES = ("config", "data", "models", "rng", "evaluate", "results", "train")
FORMAT = 2


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the source of the modules that determine a run's results."""
    h = hashlib.sha256(f"format{FORMAT}".encode())
    here = Path(__file__).parent
    for name in _RESULT_MODULES:
        h.update((here / f"{name}.py").read_bytes())
    return h.hexdigest()[:12]


RUN_LOG_ENV = "MEMLIB_RUN_LOG"  # when set: one JSON line per run trained or loaded (and probe table computed)


def log_event(kind: str, seconds: float, **fields) -> None:
    """Append {kind, seconds, ...} to $MEMLIB_RUN_LOG (the book build sets it per chapter; bench/book.py reads it)."""
    path = os.environ.get(RUN_LOG_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"kind": kind, "seconds": round(seconds, 4), **fields}) + "\n")


def run_path(cfg: RunConfig, labels: np.ndarray | None = None, threads: int | None = None) -> Path:
    """Where the cached run for cfg (trained on `labels` when given) lives.

    The CPU thread count is part of the key (default: torch's current one): the BLAS splits its sums by thread, so a
    run trained with 1 thread differs in its last bits from one trained with 2, and neither is served for the other.
    """
    tag = "" if labels is None else (
        "-L" + hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()[:12])
    threads = torch.get_num_threads() if threads is None else threads
    return cache_dir() / "runs" / f"{cfg.key()}{tag}-t{threads}-{code_version()}.npz"


def partial_path(cfg: RunConfig, labels: np.ndarray | None = None, threads: int | None = None) -> Path:
    """Where a run being trained keeps its state between epochs (memlib.train's checkpoint), beside its cache file."""
    path = run_path(cfg, labels, threads)
    return path.with_name(path.stem + ".partial.pt")


def save(res: RunResult, path: Path | None = None) -> Path:
    """Write a run atomically (.npz, uncompressed: loads fast for the explorers)."""
    path = path or run_path(res.config)
    arrays = to_arrays(res)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def load(cfg: RunConfig, path: Path | None = None) -> RunResult:
    """Read a cached run; raises on a missing or damaged file."""
    path = path or run_path(cfg)
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:  # the file closes even when the zip is damaged
        arrays = {k: z[k] for k in z.files}  # reading every member checks its CRC
    return from_arrays(arrays, cfg)


def run(cfg: RunConfig, *, cache: bool = True, source: str | None = None, labels: np.ndarray | None = None,
        on_epoch=None) -> RunResult:
    """The door every chapter, widget and command uses: the cached run for cfg, trained if needed.

    labels: train on these instead of the config's noisy labels (cached separately, keyed by their hash).
    on_epoch: passed to train() when the run is trained here (live frames, cancellation); unused for a cached run.
    A run trained here gets a provenance record (memlib.provenance, how='kernel'); $MEMLIB_RUN_LOG gets a 'train'
    event, or a 'load' event with the cached run's record ('trained': null when it has none).
    """
    if not cache or source is not None or os.environ.get(MNIST_DIR_ENV):  # runs on other data are never cached
        return train(cfg, source, labels, on_epoch)
    path = run_path(cfg, labels)
    t0 = time.perf_counter()
    if path.exists():
        got = _try_load(cfg, path)
        if got is not None:
            return _loaded(got, path, t0)
    with locked(path):  # another process may be training the same config: wait for it
        if path.exists():
            t0 = time.perf_counter()
            got = _try_load(cfg, path)
            if got is not None:
                return _loaded(got, path, t0)
        partial = partial_path(cfg, labels)  # a killed run resumes from here (memlib.train)
        res = train(cfg, labels=labels, on_epoch=on_epoch, checkpoint=partial)
        save(res, path)
        discard(partial)
        rec = provenance.write(path, provenance.record(
            "kernel", seconds=res.seconds, threads=res.meta.get("threads", torch.get_num_threads()),
            device=provenance.device_name(res.meta.get("device", "cpu"))))
        log_event("train", res.seconds, eval_seconds=res.meta.get("eval_seconds", 0.0), key=path.name, trained=rec)
    return res


def _loaded(res: RunResult, path: Path, t0: float) -> RunResult:
    """A run served from the cache: a 'load' event with its provenance record in $MEMLIB_RUN_LOG (when set)."""
    if os.environ.get(RUN_LOG_ENV):
        log_event("load", time.perf_counter() - t0, key=path.name, trained=provenance.read(path))
    return res


class DamagedCacheWarning(UserWarning):
    """A cached run could not be read; it is deleted and trained again. The message is one line (the command line
    prints it as `warning: ...`)."""


def _try_load(cfg: RunConfig, path: Path) -> RunResult | None:
    """The cached run at path, or None (with a DamagedCacheWarning, the file deleted) when it cannot be read."""
    try:
        return load(cfg, path)
    except Exception as err:
        why = " ".join(f"{type(err).__name__}: {err}".split())  # one line, whatever the error says
        warnings.warn(f"cached run {path.name} is damaged ({why}); retraining it", DamagedCacheWarning, stacklevel=3)
        path.unlink(missing_ok=True)
        return None


def run_many(cfgs, **kw) -> list[RunResult]:
    """run() for each config, in order (each run trained and cached as run() does)."""
    return [run(c, **kw) for c in cfgs]


def sweep(base: RunConfig, field: str, values, seeds, **kw) -> dict:
    """{value: [run for each seed]} for base with `field` set to each value (one run_many over them all)."""
    values, seeds = list(values), list(seeds)
    runs = run_many([dataclasses.replace(base, **{field: v}, seed=s) for v in values for s in seeds], **kw)
    return {v: runs[i * len(seeds):(i + 1) * len(seeds)] for i, v in enumerate(values)}


def seeds_of(base: RunConfig, seeds, **kw) -> list[RunResult]:
    """The runs of base for each seed."""
    return run_many([dataclasses.replace(base, seed=s) for s in seeds], **kw)


def is_cached(cfg: RunConfig) -> bool:
    """True when a run for cfg is on disk (it may still prove damaged on load)."""
    return run_path(cfg).exists()

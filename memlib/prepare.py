"""Train ahead of the build every uncached run the chosen chapters need: locally (processes) or on a Ray cluster.

Workers train with memlib.train.train (the same call memlib.cache.run makes) and return the run's arrays
(memlib.cache.to_arrays); the driver alone writes the cache (memlib.cache.save: atomic), so workers need no shared
filesystem, a dead worker loses only the runs it held, and running prepare again trains what is missing. Beside each
run the driver writes how it was trained (memlib.provenance: prepare-local or prepare-ray, workers, device, host).
"""
from __future__ import annotations

import multiprocessing
import os
import re
import socket
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from . import experiments as E
from .config import RunConfig
from .models import N_CLASSES, N_INPUT

# The cost model, seconds = SECONDS_PER_RUN + SECONDS_PER_UNIT x cost_units(cfg) on one CPU thread: a least-squares
# fit through one 1-epoch run on 5,000 images of each network shape in the full-mode plan (10 shapes; bench/prepare.py's
# measured_rate, 1 thread, on a shared and busy 2-core x86 VM, December 2026: load average about 5). The quick book's
# own run log (28 runs of 1,000 images) fits 1.08 s + 1.11e-10 s/unit: small runs pay more per unit.
SECONDS_PER_RUN = 0.63
SECONDS_PER_UNIT = 6.6e-11
ADDRESS = re.compile(r"^(auto|ray://[^\s:/]+(:\d+)?|[^\s:/]+:\d+)$")


@dataclass(frozen=True)
class Job:
    """One run to train: a config, on its own noisy labels or on given ones (a relabeled run)."""

    cfg: RunConfig
    chapters: tuple[str, ...]
    labels: np.ndarray | None = None

    @property
    def name(self) -> str:
        """The config's key, marked when the run is on given labels."""
        return self.cfg.key() + ("" if self.labels is None else "+labels")


def parameters(cfg: RunConfig) -> int:
    """The network's parameter count (weights and biases)."""
    sizes = [N_INPUT, *cfg.hidden_widths, N_CLASSES]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def cost_units(cfg: RunConfig) -> float:
    """epochs x (3 passes over the training images + the held-out sets evaluated per epoch) x parameters (an upper
    bound for runs that stop early, stop_at)."""
    return cfg.epochs * (3 * cfg.n_train + 3 * cfg.eval_size) * parameters(cfg)


def estimate_seconds(cfg: RunConfig) -> float:
    """Estimated single-thread CPU seconds to train cfg (the cost model, calibrated: SECONDS_PER_UNIT)."""
    return SECONDS_PER_RUN + cost_units(cfg) * SECONDS_PER_UNIT


def check_chapters(names) -> list[str]:
    """The chapter names (None: all), each a registry key; a ValueError names a bad one."""
    if names is None:
        return list(E.CHAPTERS)
    for n in names:
        E.chapter(n)
    return list(names)


def plan(mode: str, chapters=None, scope: str = "all") -> tuple[list[Job], list[E.Relabeled]]:
    """(jobs on the configs' own labels, relabeled runs whose labels need their trained source) for the chapters."""
    names = check_chapters(chapters)
    owners: dict[str, list[str]] = {}
    for n in names:
        for c in E.configs(n, mode, scope) + [r.source for r in E.relabeled(n, mode, scope)]:
            owners.setdefault(c.key(), []).append(n)
    cfgs, again = E.plan(mode, names, scope)
    return [Job(c, tuple(dict.fromkeys(owners[c.key()]))) for c in cfgs], again


def is_cached(job: Job, threads: int) -> bool:
    """True when the run is in the cache under the key for `threads` CPU threads."""
    from .cache import run_path

    return run_path(job.cfg, job.labels, threads).exists()


def describe(cfg: RunConfig) -> str:
    """A config's fields that set it apart, short (key=value)."""
    shape = f"widths={','.join(map(str, cfg.widths))}" if cfg.widths else f"depth={cfg.depth} width={cfg.width}"
    return (f"{shape} noise={cfg.noise:g} init={cfg.init} opt={cfg.optimizer} seed={cfg.seed} "
            f"n={cfg.n_train} epochs={cfg.epochs}{' (stop_at)' if cfg.stop_at else ''}")


def listing(mode: str, chapters=None, threads: int = 1, scope: str = "all") -> list[str]:
    """The plan as text lines: each run, whether cached, its estimated cost; then the totals. Trains nothing."""
    jobs, again = plan(mode, chapters, scope)
    lines, total, todo = [], 0.0, 0.0
    for j in jobs:
        s = estimate_seconds(j.cfg)
        cached = is_cached(j, threads)
        total += s
        todo += 0 if cached else s
        lines.append(f"{'cached ' if cached else 'to do  '} {s:>9.1f} s  {j.cfg.key()}  {describe(j.cfg)}  "
                     f"[{', '.join(j.chapters)}]")
    for r in again:
        s = estimate_seconds(r.source)
        total += s
        todo += s
        lines.append(f"{'later  '} {s:>9.1f} s  {r.source.key()}+labels  on MASC's labels of that run "
                     f"(they are computed once it is trained)")
    lines.append(f"{len(jobs) + len(again)} runs, about {_span(total)} of 1-thread CPU time ({_span(todo)} not "
                 f"cached); runs that stop early (stop_at) are estimated at their epoch cap")
    return lines


def _span(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def train_arrays(cfg: RunConfig, labels, threads: int) -> dict:
    """Worker side: train cfg with `threads` CPU threads; {'arrays', 'seconds', 'code'} for the driver to store."""
    import torch

    from .cache import code_version, partial_path, to_arrays
    from .files import discard
    from .provenance import device_name
    from .train import train

    torch.set_num_threads(threads)
    partial = partial_path(cfg, labels, threads)  # on this node: a run killed here resumes when it lands here again
    res = train(cfg, labels=labels, checkpoint=partial)
    discard(partial)
    return {"arrays": to_arrays(res), "seconds": res.seconds, "eval_seconds": res.meta.get("eval_seconds", 0.0),
            "epochs": int(res.epochs_run), "code": code_version(), "threads": torch.get_num_threads(),
            "device": device_name(res.meta.get("device", "cpu")), "host": socket.gethostname()}


def store(job: Job, out: dict, threads: int, how: str = "prepare-local", workers: int | None = None) -> None:
    """Driver side: write a worker's run into the cache (atomic), as memlib.cache.run would have, and beside it how
    it was trained (memlib.provenance)."""
    from . import provenance
    from .cache import code_version, from_arrays, log_event, run_path, save

    if out["code"] != code_version() or out["threads"] != threads:
        raise RuntimeError(f"worker ran code {out['code']} with {out['threads']} threads; the driver expects "
                           f"{code_version()} with {threads}: install the same memlib on every node")
    path = run_path(job.cfg, job.labels, threads)
    save(from_arrays(out["arrays"], job.cfg), path)
    rec = provenance.write(path, provenance.record(how, seconds=out["seconds"], threads=out["threads"],
                                                   device=out.get("device", "unknown"), workers=workers,
                                                   host=out.get("host")))
    log_event("train", out["seconds"], eval_seconds=out["eval_seconds"], key=path.name, trained=rec)


class LocalPool:
    """Processes on this machine, one run each at a time (workers=1: in this process)."""

    how = "prepare-local"

    def __init__(self, workers: int, threads: int):
        self.threads, self.workers = threads, workers
        self.pool = None if workers == 1 else ProcessPoolExecutor(
            workers, multiprocessing.get_context("spawn"), initializer=_worker_init, initargs=(threads,))

    def submit(self, job: Job):
        if self.pool is None:
            return _Done(job, self.threads)
        return self.pool.submit(train_arrays, job.cfg, job.labels, self.threads)

    def wait(self, futures):
        """(done, pending) futures; done ones give .result() (raising when their run failed)."""
        if self.pool is None:
            return set(futures), set()
        return wait(futures, return_when=FIRST_COMPLETED)

    def result(self, fut):
        return fut.result()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


class _Done:
    """A run trained on the spot (one local worker): no pool, no pickling."""

    def __init__(self, job, threads):
        self.job, self.threads = job, threads

    def result(self):
        return train_arrays(self.job.cfg, self.job.labels, self.threads)


def _worker_init(threads: int) -> None:
    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(threads)


class RayPool:
    """Ray tasks (`threads` CPUs each) on an existing cluster, or on a local one started here for `workers` tasks."""

    how = "prepare-ray"

    def __init__(self, address: str | None, workers: int, threads: int, tries: int = 3):
        import ray

        self.ray, self.threads, self.workers = ray, threads, workers
        opts = dict(log_to_driver=False, configure_logging=False)
        if address is None:  # the embedded default; on a loaded machine Ray's agents may miss its fixed start-up
            opts.update(num_cpus=workers * threads, num_gpus=0, include_dashboard=False)  # timeout: try again
        for attempt in range(1, tries + 1):
            try:
                ray.init(address=address, **opts)
                break
            except Exception as err:
                ray.shutdown()
                if address is not None or attempt == tries:
                    raise ConnectionError(" ".join(f"{type(err).__name__}: {err}".split())) from err
        if address is not None:  # an existing cluster: as many tasks at once as its CPUs allow
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 0)) // threads)
        self.task = ray.remote(num_cpus=threads, max_retries=0)(train_arrays)

    def submit(self, job: Job):
        return self.task.remote(job.cfg, job.labels, self.threads)

    def wait(self, futures):
        done, pending = self.ray.wait(list(futures), num_returns=1)
        return set(done), set(pending)

    def result(self, fut):
        return self.ray.get(fut)

    def close(self):
        self.ray.shutdown()


def check_address(address: str) -> str:
    """A Ray address: auto, HOST:PORT or ray://HOST[:PORT]; a ValueError otherwise."""
    if not ADDRESS.match(address):
        raise ValueError(f"ray address={address!r} is not allowed: auto, HOST:PORT or ray://HOST[:PORT]")
    return address


def longest_first(jobs: list[Job]) -> list[Job]:
    """jobs by estimated cost, longest first (ties keep the plan's order)."""
    return sorted(jobs, key=lambda j: -estimate_seconds(j.cfg))


def train_jobs(pool, jobs: list[Job], threads: int, bar) -> list[tuple[Job, str]]:
    """Train jobs through pool, storing each as it arrives; the (job, why) pairs that failed.

    The longest runs (estimate_seconds) are handed out first, so that no worker starts a long run while the others
    sit idle at the end (longest-first scheduling); a run's result does not depend on when it was trained.
    """
    futures = {pool.submit(j): j for j in longest_first(jobs)}
    failed = []
    pending = set(futures)
    while pending:
        done, pending = pool.wait(pending)
        for fut in done:
            job = futures[fut]
            try:
                out = pool.result(fut)
                store(job, out, threads, pool.how, pool.workers)
            except Exception as err:  # a dead worker, a bad node: this run only
                failed.append((job, " ".join(f"{type(err).__name__}: {err}".split())[:300]))
                continue
            bar(job, out["epochs"])
    return failed


def prepare(mode: str, chapters=None, *, ray: str | bool = False, workers: int | None = None, threads: int = 1,
            progress: bool = True, say=print, scope: str = "all") -> int:
    """Train every uncached run of the chapters' plan; returns the number of runs that failed (0: all cached)."""
    import torch
    from tqdm.auto import tqdm

    torch.set_num_threads(threads)  # the driver's own cache lookups (run_path, probes) key by this thread count
    jobs, again = plan(mode, chapters, scope)
    todo = [j for j in jobs if not is_cached(j, threads)]
    workers = workers or max(1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                 else os.cpu_count() or 1) // threads)
    n_total = len(todo) + len(again)
    if not n_total:
        say(f"all {len(jobs)} runs are cached")
        return 0
    runs_bar = tqdm(total=n_total, unit="run", desc="runs", disable=not progress)
    epochs_bar = tqdm(total=sum(j.cfg.epochs for j in todo) + sum(r.source.epochs for r in again), unit="epoch",
                      desc="epochs", disable=not progress)

    def tick(job, epochs):
        runs_bar.update(1)
        epochs_bar.update(epochs)

    pool = None
    failed = []
    try:
        if todo or again:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            pool = RayPool(None if ray is True else ray, workers, threads) if ray else LocalPool(workers, threads)
        failed = train_jobs(pool, todo, threads, tick) if todo else []
        bad = {j.cfg.key() for j, _ in failed}
        second = []
        for r in again:  # relabeled runs: labels from the trained source (the driver computes them; probes cached)
            if r.source.key() in bad:
                failed.append((Job(r.source, (), None), "its source run was not trained"))
                continue
            job = Job(r.source, (), r.labels()[1])
            if is_cached(job, threads):
                tick(job, 0)
            else:
                second.append(job)
        failed += train_jobs(pool, second, threads, tick) if second else []
    finally:
        runs_bar.close()
        epochs_bar.close()
        if pool is not None:
            pool.close()
    for job, why in failed:
        say(f"not trained: {job.name} ({describe(job.cfg)}): {why}")
    if failed:
        say(f"{len(failed)} of {n_total} runs not trained; run prepare again to train what is missing")
    return len(failed)


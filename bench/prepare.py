"""`python -m memlib prepare` on one machine and through Ray, and what the full-mode book costs to train.

    python bench/prepare.py                 # a readable table
    python bench/prepare.py --json          # one JSON object
    python bench/prepare.py --json --mode quick --chapter 03-depth --measure-n 500     # a smoke test (seconds)

Three prepares of one chapter's runs (--chapter, in --mode; default chapter 9 in standard mode: 20 runs), each into
an empty cache of its own, every run on one CPU thread:

  local_s   in this process, one run after another (prepare --workers 1, no Ray)
  ray1_s    a local Ray cluster with 1 single-thread worker, started for the purpose (its start-up is included)
  ray2_s    the same with 2 single-thread workers

ray_overhead_per_run_s = (ray1_s - ray_start_s - local_s) / runs: what Ray adds to a run besides starting the cluster
(shipping the config out and the arrays back, scheduling). Per-run costs: one run of each network shape in the
full-mode plan is trained for one epoch on --measure-n images (timed, 1 thread) and the cost model
(memlib.prepare.cost_units: images x epochs x parameters) is fitted through them; full_book_run_seconds is that
model summed over every run of the full-mode plan, chapter 11's runs at their epoch cap (500; they stop once the
labels are fitted, so this is an upper bound for them). Timings are never asserted: the goals are printed with how
far they are met or missed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from environment import describe, goal, goal_at_most, goal_state, load_average, warning_lines  # noqa: E402  (bench/ is the script folder)

import memlib.data as D  # noqa: E402
from memlib import experiments as E  # noqa: E402
from memlib import prepare as PP  # noqa: E402
from memlib.train import train  # noqa: E402

GOAL_RAY2_OVER_RAY1 = 1.6  # 2 single-thread workers against 1 on a 2-core machine
GOAL_OVERHEAD_S = 0.5  # Ray's cost per run, besides starting the cluster


def _fresh_cache(root: Path, name: str) -> Path:
    """An empty run cache under root with the converted MNIST copied in; $MEMLIB_CACHE points at it."""
    import shutil

    cache = root / name
    (cache / "mnist").mkdir(parents=True)
    for f in (D.cache_dir() / "mnist").iterdir():
        if f.suffix in (".npz", ".npy") and not f.name.startswith("."):
            shutil.copy2(f, cache / "mnist" / f.name)
    os.environ[D.CACHE_ENV] = str(cache)
    return cache


def _timed_prepare(jobs, pool_of) -> tuple[float, float]:
    """(wall seconds in all, seconds to start the pool) of training jobs through a fresh pool."""
    t0 = time.perf_counter()
    pool = pool_of()
    started = time.perf_counter() - t0
    try:
        failed = PP.train_jobs(pool, jobs, 1, lambda job, epochs: None)
    finally:
        pool.close()
    if failed:
        raise RuntimeError(f"{len(failed)} runs failed: {failed[0][1]}")
    return time.perf_counter() - t0, started


def measured_rate(n: int) -> dict:
    """Seconds per cost unit, least squares through one 1-epoch run per network shape of the full plan (1 thread)."""
    cfgs, _ = E.plan("full")
    shapes = {}
    for c in cfgs:
        shapes.setdefault((c.hidden_widths, c.rep_epochs, c.init), c)
    xs, ys = [], []
    for c in shapes.values():
        small = c.replace(n_train=n, epochs=1, eval_size=min(c.eval_size, n), probe_size=min(c.probe_size, n),
                          stop_at=None)
        train(small)  # warm-up (data, allocations)
        t0 = time.perf_counter()
        train(small)
        ys.append(time.perf_counter() - t0)
        xs.append(PP.cost_units(small))
    a = np.c_[np.ones(len(xs)), xs]
    per_run, per_unit = np.linalg.lstsq(a, np.array(ys), rcond=None)[0]
    return {"shapes": len(xs), "n_train": n, "seconds_per_run": float(max(per_run, 0.0)),
            "seconds_per_unit": float(per_unit)}


def bench(mode: str, chapter: str, measure_n: int) -> dict:
    torch.set_num_threads(1)
    load0 = load_average()
    real_cache = os.environ.get(D.CACHE_ENV)
    try:
        with tempfile.TemporaryDirectory(prefix="memlib-bench-prepare-") as tmp:
            root = Path(tmp)
            jobs, _ = PP.plan(mode, [chapter])
            _fresh_cache(root, "local")
            local_s, _ = _timed_prepare(jobs, lambda: PP.LocalPool(1, 1))
            _fresh_cache(root, "ray1")
            ray1_s, ray1_start = _timed_prepare(jobs, lambda: PP.RayPool(None, 1, 1))
            _fresh_cache(root, "ray2")
            ray2_s, ray2_start = _timed_prepare(jobs, lambda: PP.RayPool(None, 2, 1))
            rate = measured_rate(measure_n)
    finally:
        if real_cache is None:
            os.environ.pop(D.CACHE_ENV, None)
        else:
            os.environ[D.CACHE_ENV] = real_cache
    cfgs, again = E.plan("full")
    per_run = [rate["seconds_per_run"] + rate["seconds_per_unit"] * PP.cost_units(c)
               for c in cfgs + [r.source for r in again]]
    total = float(sum(per_run))
    overhead = (ray1_s - ray1_start - local_s) / len(jobs)
    return {
        "what": f"prepare of {chapter}'s {len(jobs)} {mode}-mode runs into an empty cache, 1 thread per run",
        "mode": mode, "chapter": chapter, "runs": len(jobs),
        "local_s": round(local_s, 2), "ray1_s": round(ray1_s, 2), "ray2_s": round(ray2_s, 2),
        "ray_start_s": {"ray1": round(ray1_start, 2), "ray2": round(ray2_start, 2)},
        "ray2_over_ray1": round(ray1_s / ray2_s, 3),
        "ray_overhead_per_run_s": round(overhead, 3),
        "full_book_run_seconds": round(total),
        "full_book_runs": len(per_run),
        "full_book_note": (f"estimated, not trained: the cost model (images x epochs x parameters) fitted to "
                           f"{rate['shapes']} measured 1-epoch runs on {measure_n} images, one per network shape, "
                           f"1 thread; chapter 11's runs counted at their 500-epoch cap (an upper bound)"),
        "cost_model": {k: rate[k] for k in ("seconds_per_run", "seconds_per_unit")},
        "longest_run_s": round(max(per_run)),
        "extrapolated": {
            "cores_32_s": round(max(total / 32, max(per_run))),
            "note": ("32 single-thread workers: the run-seconds spread evenly, or the longest run when that is "
                     "longer. An 8-GPU figure needs a GPU run measured (none here): divide by 8 x the measured "
                     "GPU speed-up per run."),
        },
        "goals": {
            "ray2_over_ray1": goal(ray1_s / ray2_s, GOAL_RAY2_OVER_RAY1),
            "overhead_under_0_5_s_per_run": goal_at_most(overhead, GOAL_OVERHEAD_S),
        },
        "goals_note": ("overhead_under_0_5_s_per_run: the measured overhead per run in seconds, met when at most "
                       "0.5 (a negative figure means Ray's runs took less time than the local ones: noise)"),
        **describe(torch.device("cpu"), load0, load_average(), "compare ray2_over_ray1 between runs"),
    }


def table(r: dict) -> str:
    g = r["goals"]
    lines = [r["what"], "",
             f"  local (1 process)     {r['local_s']:8.2f} s",
             f"  Ray, 1 worker         {r['ray1_s']:8.2f} s  (start-up {r['ray_start_s']['ray1']:.2f} s)",
             f"  Ray, 2 workers        {r['ray2_s']:8.2f} s  (start-up {r['ray_start_s']['ray2']:.2f} s)",
             f"  ray2 over ray1        {r['ray2_over_ray1']:8.3f}x  goal >= {GOAL_RAY2_OVER_RAY1}: "
             f"{goal_state(g['ray2_over_ray1'])}",
             f"  Ray overhead per run  {r['ray_overhead_per_run_s']:8.3f} s  goal < {GOAL_OVERHEAD_S}: "
             f"{goal_state(g['overhead_under_0_5_s_per_run'])}", "",
             f"full-mode book: {r['full_book_runs']} runs, about {r['full_book_run_seconds'] / 3600:.1f} run-hours "
             f"(longest run {r['longest_run_s'] / 3600:.1f} h); "
             f"32 cores: {r['extrapolated']['cores_32_s'] / 3600:.1f} h",
             "  " + r["full_book_note"]]
    return "\n".join(lines + warning_lines(r))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--mode", default="standard", help="the mode of the timed prepares (default standard)")
    p.add_argument("--chapter", default="09-width", help="the chapter whose runs are prepared (default 09-width)")
    p.add_argument("--measure-n", dest="measure_n", type=int, default=5_000,
                   help="training images of each 1-epoch run the cost model is fitted to (default 5,000)")
    args = p.parse_args(argv)
    try:
        E.base(args.chapter, args.mode)
    except ValueError as err:
        p.error(str(err))
    if not 100 <= args.measure_n <= 50_000:
        p.error(f"--measure-n={args.measure_n} is not allowed: an integer in [100, 50000]")
    result = bench(args.mode, args.chapter, args.measure_n)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

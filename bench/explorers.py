"""How fast the chapters' live explorers answer a slider move (a benchmark, not a test).

    python bench/explorers.py [--json] [--mode standard] [--moves 3] [--chapters 06-memorization ...] [--tiny]

For every chapter's explorer (memlib.explorers.SPECS, around the chapter's own default config at the
explorers' scale), this sets controls the way a reader would (assigning a slider's value fires the same
callback a mouse release does) and measures, per move: the first live frame (first_frame_s), the
finished figure after a full retrain (retrain_s), and a move back to a setting already in the cache
(cached_s); median and worst of several moves. It runs in a fresh temporary run cache, so every new
setting really trains. --tiny shrinks every run to a smoke-test size (the output's shape is checked by
tests/test_bench_json.py; its timings mean nothing). With --json the output is one JSON object.

sweep_speedup is kept for the scripts that read it, and is null: it was the speedup of lockstep sweep
training (memlib.batched, measured by bench/sweeps.py), which was removed because it gained only 1.01-1.02x
at the book's widths; memlib.cache.run_many now trains run by run, so there is no sweep speedup left to
measure. sweep_speedup_note says so.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"first_frame_s": 1.0, "retrain_s": 5.0, "cached_s": 0.2}
TINY = dict(n_train=256, epochs=1, eval_size=100, probe_size=50)  # --tiny: every run at a smoke-test size
SWEEP_SPEEDUP_NOTE = ("null: lockstep sweep training (memlib.batched, measured by bench/sweeps.py) was removed, as it "
                      "gained only 1.01-1.02x at the book's widths; memlib.cache.run_many trains run by run, so there "
                      "is no sweep speedup to measure")


def wait_done(ex, timeout: float = 300.0) -> None:
    """Wait for the explorer's background training and drawing to finish."""
    t0 = time.perf_counter()
    while "done" not in ex.timings:
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"explorer did not finish within {timeout} s (status: {ex.status.value})")
        time.sleep(0.01)


def moves_for(spec, base, n: int) -> list[tuple[str, object]]:
    """n slider moves to uncached settings (real retrains): the first control's other values, then the next's."""
    from memlib.cache import is_cached

    out = []
    for name, values in spec.controls.items():
        for v in values:
            if v != getattr(base, name) and len(out) < n and not is_cached(dataclasses.replace(base, **{name: v})):
                out.append((name, v))
    return out


def bench_chapter(slug: str, mode: str, n_moves: int, tiny: bool = False) -> dict:
    """Timings of one chapter's explorer (tiny: its runs at the TINY size)."""
    from memlib import experiments as E
    from memlib.explorers import SPECS, live_explorer

    base = E.explorer(slug, mode)  # the chapter's live explorer's first view, from the registry
    if tiny:
        base = dataclasses.replace(base, **TINY)
    spec = SPECS[slug]
    ex = live_explorer(slug, base)  # draws the default (trained now: a fresh cache)
    first, full, cached = [], [], []
    for name, value in moves_for(spec, base, n_moves):
        ex.sliders[name].value = value  # what a slider release does
        wait_done(ex)
        full.append(ex.timings["done"])
        first.append(ex.timings.get("first_frame", ex.timings["done"]))
        ex.sliders[name].value = getattr(base, name)  # back to a cached setting
        wait_done(ex)
        cached.append(ex.timings["done"])

    def stats(xs):
        return {"median": round(statistics.median(xs), 3), "worst": round(max(xs), 3)} if xs else None

    return {"config": {k: getattr(base, k) for k in ("n_train", "epochs", "depth", "width", "noise")},
            "first_frame_s": stats(first), "retrain_s": stats(full), "cached_s": stats(cached), "moves": len(full)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--mode", default="standard", choices=["quick", "standard", "full"])
    ap.add_argument("--moves", type=int, default=3, help="slider moves per chapter")
    ap.add_argument("--chapters", nargs="*", help="chapter slugs (default: all)")
    ap.add_argument("--tiny", action="store_true",
                    help="smoke test: every run on 256 images for 1 epoch (timings mean nothing)")
    ap.add_argument("--no-sweep", action="store_true",
                    help="no effect (kept for old scripts): there is no sweep benchmark")
    args = ap.parse_args(argv)

    from memlib import data as D

    real = D.cache_dir()
    tmp = Path(tempfile.mkdtemp(prefix="memlib-bench-"))
    (tmp / "mnist").mkdir()
    for f in (real / "mnist").glob("*.np[yz]"):
        shutil.copy2(f, tmp / "mnist" / f.name)
    os.environ[D.CACHE_ENV] = str(tmp)
    try:
        from memlib.explorers import SPECS

        slugs = args.chapters or list(SPECS)
        result = {"mode": args.mode, "targets": TARGETS, "chapters": {}}
        for slug in slugs:
            result["chapters"][slug] = r = bench_chapter(slug, args.mode, args.moves, args.tiny)
            if not args.json:
                print(f"{slug:<26} first frame {r['first_frame_s']}  retrain {r['retrain_s']}  cached {r['cached_s']}",
                      flush=True)
        worst = {k: max((c[k]["worst"] for c in result["chapters"].values() if c[k]), default=None) for k in TARGETS}
        result["worst"] = worst  # None where no move was timed (--moves 0, or no setting left to train)
        result["targets_met"] = {k: None if worst[k] is None else worst[k] <= TARGETS[k] for k in TARGETS}
        result["sweep_speedup"] = None  # the key is a contract; see SWEEP_SPEEDUP_NOTE
        result["sweep_speedup_note"] = SWEEP_SPEEDUP_NOTE
        if args.tiny:
            result["tiny"] = TINY
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"worst over chapters: {worst}; targets {TARGETS}; met: {result['targets_met']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

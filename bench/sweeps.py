"""Sweep throughput: K configs trained one after another with train() against together with train_many().

    python bench/sweeps.py                  # a readable table
    python bench/sweeps.py --json           # one JSON object
    python bench/sweeps.py --widths 64,128,256 --k 8 --repeats 3 --threads 1
    python bench/sweeps.py --mode standard --epochs 5     # a book mode's n_train / eval_size / probe_size

The sweep is K configs of one shape that differ only in the seed (seeds 0..K-1), each a full
memlib run with everything recorded (per-batch gradient norms, per-epoch metrics on the training
set and the val / test / rotated-test images, probe representations); by default 784-W-W-W-W-10
MLPs (depth 4) on 5,000 images for 3 epochs with RunConfig's evaluation and probe sizes. For every
width the two ways are timed side by side:

  sequential  [memlib.train.train(c) for c in cfgs]: what memlib.cache.run_many did before batching.
  batched     memlib.batched.train_many(cfgs): the K networks in lockstep through batched products.

Both are warmed up once (MNIST and the rotated test sets loaded, the batched operations checked),
then timed --repeats times round-robin; the best (least disturbed) wall time is the headline figure,
the median and the CPU time (time.process_time) are reported beside it: on a shared machine the CPU
time ratio is the steadier estimate. sweep_speedup is the smallest best-time speedup over the widths
measured. The last timed results of both ways are compared array by array (bit_identical). Timings
are never asserted; the goal is printed with how far it is met or missed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from environment import describe, goal, goal_state, load_average, warning_lines  # noqa: E402  (bench/ is the script folder)
from memlib.batched import train_many  # noqa: E402
from memlib.config import RunConfig  # noqa: E402
from memlib.modes import MODES, scale  # noqa: E402
from memlib.train import RunResult, pick_device, train  # noqa: E402

GOAL = 1.5  # a sweep of 8 configs at width <= 256 at least this many times faster batched


def configs(k: int, width: int, args) -> list[RunConfig]:
    """The sweep: k seeds of one config."""
    sized = {}
    if args.mode:
        s = scale(args.mode)
        sized = dict(n_train=s.n_train, eval_size=s.eval_size, probe_size=s.probe_size)
    for name in ("n_train", "eval_size", "probe_size"):
        if getattr(args, name) is not None:
            sized[name] = getattr(args, name)
    sized.setdefault("n_train", 5_000)
    return [RunConfig(depth=args.depth, width=width, epochs=args.epochs, seed=s, device=args.device, progress=False,
                      **sized) for s in range(k)]


def identical(a: RunResult, b: RunResult) -> bool:
    """Every array of the two runs bit-identical (NaNs in the same places)."""
    arrays = ("grad_w", "grad_b", "batch_loss", "step_epoch", "rep_epochs", "probe_idx", "train_idx", "labels",
              "true_labels", "corrupted")
    if not all(getattr(a, n).dtype == getattr(b, n).dtype and np.array_equal(getattr(a, n), getattr(b, n)) for n in arrays):
        return False
    for group in ("history", "reps", "weights"):
        ga, gb = getattr(a, group), getattr(b, group)
        if sorted(ga) != sorted(gb) or not all(
                ga[k].dtype == gb[k].dtype and np.array_equal(ga[k], gb[k], equal_nan=True) for k in ga):
            return False
    return True


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_width(width: int, args) -> dict:
    cfgs = configs(args.k, width, args)
    device = pick_device(args.device)
    ways = {"sequential": lambda: [train(c) for c in cfgs], "batched": lambda: train_many(cfgs)}
    last = {}
    for name, fn in ways.items():  # warm-up
        fn()
    wall = {k: [] for k in ways}
    cpu = {k: [] for k in ways}
    for _ in range(args.repeats):
        for name, fn in ways.items():
            t0, c0 = time.perf_counter(), time.process_time()
            last[name] = fn()
            sync(device)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    best = {k: min(v) for k, v in wall.items()}
    med = {k: statistics.median(v) for k, v in wall.items()}
    cpu_best = {k: min(v) for k, v in cpu.items()}
    return {
        "width": width,
        "speedup_best": round(best["sequential"] / best["batched"], 3),
        "speedup_median": round(med["sequential"] / med["batched"], 3),
        "speedup_cpu_time": round(cpu_best["sequential"] / cpu_best["batched"], 3),
        "seconds_best": {k: round(v, 3) for k, v in best.items()},
        "seconds_median": {k: round(v, 3) for k, v in med.items()},
        "seconds_all": {k: [round(x, 3) for x in v] for k, v in wall.items()},
        "cpu_seconds_best": {k: round(v, 3) for k, v in cpu_best.items()},
        "bit_identical": all(identical(a, b) for a, b in zip(last["sequential"], last["batched"])),
    }


def bench(args) -> dict:
    load0 = load_average()
    rows = [time_width(w, args) for w in args.widths]
    load = load_average()
    speedup = min(r["speedup_best"] for r in rows)
    c = configs(1, args.widths[0], args)[0]
    device = pick_device(args.device)
    return {
        "sweep_speedup": speedup,
        "statistic": "smallest over the widths of sequential / batched best-of-repeats wall time",
        "goal": goal(speedup, GOAL),
        "bit_identical": all(r["bit_identical"] for r in rows),
        "by_width": {str(r["width"]): r for r in rows},
        "config": {"k": args.k, "seeds": list(range(args.k)), "widths": args.widths, "depth": c.depth,
                   "n_train": c.n_train, "epochs": c.epochs, "batch_size": c.batch_size, "optimizer": c.optimizer,
                   "eval_size": c.eval_size, "probe_size": c.probe_size, "rep_epochs": c.rep_epochs,
                   "mode": args.mode, "repeats": args.repeats},
        **describe(device, load0, load, "compare the CPU-time ratios"),
    }


def table(r: dict) -> str:
    c = r["config"]
    lines = [f"sweep of {c['k']} seeds: depth {c['depth']}, n_train {c['n_train']}, {c['epochs']} epochs, batch "
             f"{c['batch_size']}, {c['optimizer']}, eval {c['eval_size']}, probe {c['probe_size']}; {r['device']}, "
             f"torch {r['torch']}, {r['threads']} threads, {c['repeats']} repeats", "",
             f"{'width':>6}{'sequential s':>14}{'batched s':>11}{'speedup':>9}{'median':>8}{'cpu time':>10}{'identical':>11}"]
    for w, row in r["by_width"].items():
        s = row["seconds_best"]
        lines.append(f"{w:>6}{s['sequential']:>14.3f}{s['batched']:>11.3f}{row['speedup_best']:>9.2f}"
                     f"{row['speedup_median']:>8.2f}{row['speedup_cpu_time']:>10.2f}{str(row['bit_identical']):>11}")
    g = r["goal"]
    lines += ["", f"goal: sweep_speedup >= {g['target']}: measured {g['measured']} {goal_state(g)}"] + warning_lines(r)
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--widths", default="64,128,256", help="comma-separated widths (default 64,128,256)")
    p.add_argument("--k", type=int, default=8, help="configs in the sweep (default 8)")
    p.add_argument("--depth", type=int, default=4, help="hidden layers (default 4)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    p.add_argument("--mode", choices=MODES, default=None, help="take n_train, eval_size and probe_size from a book mode")
    p.add_argument("--n-train", dest="n_train", type=int, default=None, help="training images (default 5000)")
    p.add_argument("--eval-size", dest="eval_size", type=int, default=None, help=f"default: RunConfig's ({RunConfig().eval_size})")
    p.add_argument("--probe-size", dest="probe_size", type=int, default=None, help="default: RunConfig's (2000)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per way after one warm-up (default 3)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="as RunConfig.device (default auto)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = p.parse_args(argv)
    try:
        args.widths = [int(w) for w in args.widths.split(",") if w.strip()]
    except ValueError:
        p.error("--widths: comma-separated integers")
    if not args.widths or args.k < 1 or args.epochs < 1 or args.repeats < 1:
        p.error("--widths, --k, --epochs and --repeats must be positive")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = bench(args)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

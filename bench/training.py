"""Training throughput: memlib's fully instrumented loop against a bare loop and a tutorial-style loop.

    python bench/training.py            # a readable table
    python bench/training.py --json     # one JSON object
    python bench/training.py --epochs 5 --repeats 5 --device cpu --threads 2
    python bench/training.py --json --n-train 256 --epochs 1 --repeats 1     # a smoke test (timings mean nothing)

Every variant trains the same network (784-256-256-256-256-10, He init from the same seed) with Adam
(lr 1e-3) on the same 20,000 standardised MNIST images (--n-train changes it) in batches of 128, for memlib's
default number of epochs (RunConfig().epochs; --epochs changes it). Every timed call starts from the MNIST arrays in
memory and covers everything its loop does: drawing and standardising its images into tensors, the
training, and whatever it evaluates and records. Throughput is training samples per second of wall
time over the whole call (n_train * epochs / seconds):

  instrumented  memlib.train.train(RunConfig(...)) with memlib's defaults for every field not named above:
                no cache, everything recorded (per-batch gradient norms of every layer and loss; per epoch
                the training-set metrics of the epoch's pass, accuracy on eval_size validation, test and
                rotated-test images, and the representations of every hidden layer on the probe set).
  bare          the same MLP and memlib.models.make_optimizer (fused Adam), the subset standardised into one
                tensor, torch.randperm batches: forward, loss, zero_grad, backward, step. Nothing else.
  tutorial      DataLoader(TensorDataset, shuffle=True), torch.optim.Adam with defaults, p.grad.norm().item()
                per parameter per batch into a Python list, train and test accuracy after every epoch.

The breakdown adds three variants that separate where the instrumented time goes:

  prepare       memlib.train.prepare() alone (subset, labels, standardised train/eval/probe tensors).
  bare+gradnorm the bare loop plus memlib's per-batch recording (one torch._foreach_norm over all
                parameters written into a preallocated tensor, and the batch loss).
  cheap         memlib.train.train with eval_size=1 and rep_epochs='none': the held-out evaluation and the
                representations are nearly free; what remains is memlib's recording and bookkeeping.
  bare_default_adam  the bare loop with torch.optim.Adam's defaults (PyTorch's per-tensor implementation on a CPU)
                instead of memlib's fused Adam: context for the headline, which compares like with like.
  full_eval     memlib.train.train with eval_size=10,000: every epoch evaluates the whole validation, test and
                rotated-test splits (the price of exact curves on all 30,000 held-out images).

Each variant is warmed up once (one epoch), then all are timed --repeats times round-robin; the best
(least disturbed) time is the headline figure, the median is reported beside it. Timings are never asserted:
the goals are printed with how far they are met or missed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from environment import describe, goal, goal_state, load_average, warning_lines  # noqa: E402  (bench/ is the script folder)

import memlib.data as D  # noqa: E402
from memlib.config import RunConfig  # noqa: E402
from memlib.models import MLP, make_optimizer  # noqa: E402
from memlib.rng import torch_generator  # noqa: E402
from memlib.train import pick_device, prepare, train  # noqa: E402

N_TRAIN, DEPTH, WIDTH, BATCH, LR, SEED = 20_000, 4, 256, 128, 1e-3, 0
GOAL_OVER_TUTORIAL = 1.3  # instrumented must be at least this many times faster than the tutorial loop
GOAL_WITHIN_BARE = 0.15  # ... and at most this much slower than the bare loop


def config(epochs: int, device: str, n_train: int = N_TRAIN, **changes) -> RunConfig:
    """The benchmark's RunConfig (memlib's defaults for every field the benchmark does not fix)."""
    return RunConfig(n_train=n_train, depth=DEPTH, width=WIDTH, batch_size=BATCH, optimizer="adam", lr=LR,
                     epochs=epochs, seed=SEED, device=device, progress=False, **changes)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so that wall time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Data:
    """A loop's data drawn from the MNIST arrays in memory (as memlib.train.prepare starts from them): the seed's
    n_train (20,000) training images standardised into one tensor, and the standardised test split when asked for."""

    def __init__(self, device: torch.device, n_train: int = N_TRAIN, test: bool = False):
        mn = D.load_mnist()
        idx = D.train_subset(n_train, SEED)
        self.x = torch.from_numpy(D.standardize(mn.x_train[idx])).to(device)
        self.y = torch.from_numpy(mn.y_train[idx]).to(device)
        if test:
            self.x_test = torch.from_numpy(D.standardize(mn.x_test)).to(device)
            self.y_test = torch.from_numpy(mn.y_test).to(device)


def new_model(device: torch.device) -> MLP:
    """The benchmark's MLP, initialised as memlib.train does for the seed."""
    return MLP(DEPTH, WIDTH, "he", torch_generator(SEED, "init")).to(device)


# ---------------------------------------------------------- the variants (each returns nothing; timed from outside)


def run_instrumented(epochs: int, device: str, n_train: int = N_TRAIN, **changes) -> None:
    """memlib.train.train as the book calls it (no cache)."""
    train(config(epochs, device, n_train, **changes))


def run_prepare(epochs: int, device: str, n_train: int = N_TRAIN) -> None:
    """memlib.train.prepare alone."""
    prepare(config(epochs, device, n_train), pick_device(device))


def run_bare(epochs: int, device: torch.device, n_train: int = N_TRAIN, record: bool = False,
             default_adam: bool = False) -> None:
    """The minimal loop; with record=True it also stores memlib's per-batch gradient norms and loss.

    default_adam: torch.optim.Adam with its defaults instead of memlib.models.make_optimizer's fused Adam.
    """
    data = Data(device, n_train)
    model = new_model(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR) if default_adam else make_optimizer(model, "adam", LR)
    gen = torch_generator(SEED, "batches")
    n = len(data.x)
    steps = n // BATCH  # full mini-batches only, as memlib trains (the remainder sits each epoch out)
    params = [q for layer in model.layers for q in (layer.weight, layer.bias)]
    if record:
        gnorm = torch.empty(steps * epochs, len(params), device=device)
        bloss = torch.empty(steps * epochs, device=device)
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(device)
        for b in range(steps):
            i = perm[b * BATCH:(b + 1) * BATCH]
            loss = F.cross_entropy(model(data.x.index_select(0, i)), data.y.index_select(0, i))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if record:
                torch.stack(torch._foreach_norm([q.grad for q in params]), out=gnorm[step])
                bloss[step] = loss.detach()
            opt.step()
            step += 1
    if record:
        gnorm.cpu(), bloss.cpu()
    sync(device)


def run_tutorial(epochs: int, device: torch.device, n_train: int = N_TRAIN) -> None:
    """The loop most tutorials show: DataLoader, default Adam, .item() logging, per-epoch accuracy."""
    from torch.utils.data import DataLoader, TensorDataset

    data = Data(device, n_train, test=True)
    torch.manual_seed(SEED)  # DataLoader shuffling draws from the global generator
    model = new_model(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    train_loader = DataLoader(TensorDataset(data.x, data.y), batch_size=BATCH, shuffle=True)
    eval_train = DataLoader(TensorDataset(data.x, data.y), batch_size=1000)
    eval_test = DataLoader(TensorDataset(data.x_test, data.y_test), batch_size=1000)
    grad_log, history = [], []

    def accuracy(loader):
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for xb, yb in loader:
                correct += (model(xb).argmax(1) == yb).sum().item()
                total += len(yb)
        model.train()
        return correct / total

    for _ in range(epochs):
        model.train()
        for xb, yb in train_loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            grad_log.append([p.grad.norm().item() for p in model.parameters()])
            opt.step()
        history.append((loss.item(), accuracy(eval_train), accuracy(eval_test)))
    sync(device)


# ---------------------------------------------------------------- timing


def one_thread(fn, *args):
    """fn(*args) with torch limited to one CPU thread (the alternative to keying the run cache by thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(before)


def timed(fns: dict, repeats: int) -> dict:
    """Warm every variant up once (fn(True)), then time fn(False) `repeats` times, round-robin.

    Interleaving the variants spreads any change in machine load evenly over all of them.
    """
    for fn in fns.values():
        fn(True)
    secs = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn(False)
            secs[k].append(time.perf_counter() - t0)
    return {k: {"best_s": min(v), "median_s": statistics.median(v), "all_s": [round(x, 4) for x in v]}
            for k, v in secs.items()}


def sps(t: dict, samples: int) -> dict:
    """Samples per second from the best and the median time."""
    return {"best": samples / t["best_s"], "median": samples / t["median_s"]}


def bench(epochs: int, repeats: int, device_name: str, n_train: int = N_TRAIN) -> dict:
    load0 = load_average()
    device = pick_device(device_name)
    D.load_mnist()  # read from disk once, before any timing: every variant starts from the arrays in memory
    samples = n_train * epochs
    ep = lambda warm: 1 if warm else epochs  # noqa: E731  (warm-up: one epoch)
    n = n_train
    times = timed({
        "instrumented": lambda w: run_instrumented(ep(w), device_name, n),
        "bare": lambda w: run_bare(ep(w), device, n),
        "tutorial": lambda w: run_tutorial(ep(w), device, n),
        "prepare": lambda w: run_prepare(ep(w), device_name, n),
        "bare_gradnorm": lambda w: run_bare(ep(w), device, n, record=True),
        "bare_default_adam": lambda w: run_bare(ep(w), device, n, default_adam=True),
        "cheap": lambda w: run_instrumented(ep(w), device_name, n, eval_size=1, rep_epochs="none"),
        "full_eval": lambda w: run_instrumented(ep(w), device_name, n, eval_size=10_000),
        "instrumented_1thread": lambda w: one_thread(run_instrumented, ep(w), device_name, n),
    }, repeats)
    rate = {k: sps(v, samples) for k, v in times.items() if k != "prepare"}
    best = {k: v["best_s"] for k, v in times.items()}
    med = {k: v["median_s"] for k, v in times.items()}
    full = config(epochs, device_name, n_train)

    def headline(stat):
        r = {k: v[stat] for k, v in rate.items()}
        return {
            "instrumented_sps": round(r["instrumented"], 1),
            "bare_sps": round(r["bare"], 1),
            "tutorial_sps": round(r["tutorial"], 1),
            "instrumented_over_tutorial": round(r["instrumented"] / r["tutorial"], 3),
            "instrumented_over_bare": round(r["instrumented"] / r["bare"], 3),
            "instrumented_over_bare_default_adam": round(r["instrumented"] / r["bare_default_adam"], 3),
        }

    top = headline("best")
    load = load_average()
    return {
        **top,
        "statistic": "best of repeats (the least disturbed call; medians under 'median')",
        "median": headline("median"),
        "goals": {
            "instrumented_over_tutorial": goal(top["instrumented_over_tutorial"], GOAL_OVER_TUTORIAL),
            "instrumented_over_bare": goal(top["instrumented_over_bare"], 1 - GOAL_WITHIN_BARE),
        },
        "reproducibility": {  # issue: the same numbers at any thread count
            "approach": "the run cache keys each run by its CPU thread count (memlib.cache.run_path); training is "
                        "unchanged, so this costs nothing per run, only a retrain when the thread count differs",
            "alternative": "train every run on one thread (bit-identical everywhere on one CPU kind)",
            "one_thread_sps": round(rate["instrumented_1thread"]["best"], 1),
            "one_thread_over_default": round(rate["instrumented_1thread"]["best"] / rate["instrumented"]["best"], 3),
            "default_threads": torch.get_num_threads(),
        },
        "breakdown": {
            "sps_best": {k: round(v["best"], 1) for k, v in rate.items()},
            "sps_median": {k: round(v["median"], 1) for k, v in rate.items()},
            "seconds_best": {k: round(v, 3) for k, v in best.items()},
            "seconds_median": {k: round(v, 3) for k, v in med.items()},
            "seconds_all": {k: v["all_s"] for k, v in times.items()},
            "estimated_seconds": {  # by difference of best times; small negative values are timing noise
                "bare_loop_with_its_data": round(best["bare"], 3),
                "per_batch_gradnorm_and_loss_recording": round(best["bare_gradnorm"] - best["bare"], 3),
                "memlib_data_preparation": round(best["prepare"], 3),
                "training_set_metrics_init_eval_and_bookkeeping": round(best["cheap"] - best["bare_gradnorm"], 3),
                "held_out_eval_and_representations": round(best["instrumented"] - best["cheap"], 3),
                "full_splits_instead_of_eval_size": round(best["full_eval"] - best["instrumented"], 3),
            },
            "forward_passes_per_call": {  # images through the network (a training sample costs ~3 forward passes)
                "instrumented_eval": full.n_train + (epochs + 1) * 3 * full.eval_size,  # training set at init only
                "instrumented_probe": (epochs + 1) * full.probe_size,
                "full_eval_eval": full.n_train + (epochs + 1) * 3 * 10_000,
                "tutorial_eval": epochs * (n_train + 10_000),
                "training": samples,
            },
        },
        "config": {
            "n_train": n_train, "depth": DEPTH, "width": WIDTH, "batch_size": BATCH, "optimizer": "adam", "lr": LR,
            "epochs": epochs, "seed": SEED, "repeats": repeats, "eval_size": full.eval_size,
            "probe_size": full.probe_size, "rep_epochs": full.rep_epochs, "samples_per_call": samples,
        },
        **describe(device, load0, load, "compare the best-of figures"),
    }


def table(r: dict) -> str:
    b = r["breakdown"]
    c = r["config"]
    lines = [f"training throughput: {c['n_train']} samples x {c['epochs']} epochs, depth {DEPTH} width {WIDTH}, "
             f"batch {BATCH}, Adam {LR:g}; {r['device']}, torch {r['torch']}, {r['threads']} threads, "
             f"{c['repeats']} repeats", "",
             f"{'variant':<19}{'best sps':>12}{'median sps':>12}{'best s':>10}{'median s':>10}"]
    for k in ("instrumented", "bare", "tutorial", "bare_gradnorm", "bare_default_adam", "cheap", "full_eval",
              "prepare"):
        bs = f"{b['sps_best'][k]:>12.0f}" if k in b["sps_best"] else f"{'-':>12}"
        ms = f"{b['sps_median'][k]:>12.0f}" if k in b["sps_median"] else f"{'-':>12}"
        lines.append(f"{k:<19}{bs}{ms}{b['seconds_best'][k]:>10.3f}{b['seconds_median'][k]:>10.3f}")
    lines += ["", "where the instrumented time goes (seconds, by difference of best times):"]
    for k, v in b["estimated_seconds"].items():
        lines.append(f"  {k:<52}{v:>8.3f}")
    lines += ["", "images through the network per call: " + ", ".join(
        f"{k} {v:,}" for k, v in b["forward_passes_per_call"].items()), "", "goals (best of repeats):"]
    for name, g in r["goals"].items():
        lines.append(f"  {name:<28} target >= {g['target']:<5} measured {g['measured']:<7} {goal_state(g)}")
    return "\n".join(lines + warning_lines(r))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--epochs", type=int, default=RunConfig().epochs,
                   help=f"epochs per timed call (default {RunConfig().epochs}, memlib's default)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per variant after one warm-up (default 5)")
    p.add_argument("--n-train", dest="n_train", type=int, default=N_TRAIN,
                   help=f"training images (default {N_TRAIN:,}; small values for a smoke test)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="as RunConfig.device (default auto)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1:
        p.error("--epochs and --repeats must be >= 1")
    if not BATCH <= args.n_train <= 50_000:
        p.error(f"--n-train must be in [{BATCH}, 50000] (at least one batch of {BATCH})")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = bench(args.epochs, args.repeats, args.device, args.n_train)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

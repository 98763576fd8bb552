"""`python -m memlib run|masc key=value ... [--json]`: train (or load) one run; print its final metrics or its probes.
`python -m memlib prepare --mode MODE [--chapters ...] [--list] [--ray [ADDRESS]]`: train the chapters' runs ahead."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings

from .config import FIELD_TYPES, config_from_pairs
from .data import MNISTSourceError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m memlib", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train one run (cache aware) and print its final metrics",
                       description="keys: " + ", ".join(FIELD_TYPES))
    r.add_argument("pairs", nargs="*", metavar="key=value", help="RunConfig fields, e.g. noise=0.4 depth=8")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--no-cache", action="store_true", help="train even when the run is cached, and do not store it")
    m = sub.add_parser("masc",
                       help="train one run (cache aware) and print MASC and baseline probe accuracies per layer",
                       description="Probe test accuracies (true labels) of every layer, input first. keys: "
                       + ", ".join(FIELD_TYPES))
    m.add_argument("pairs", nargs="*", metavar="key=value", help="RunConfig fields, e.g. noise=0.6 noise_kind=uniform")
    m.add_argument("--variance", type=float, default=0.99,
                   help="share of variance each MASC class subspace keeps, in (0, 1] (default 0.99)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.add_argument("--no-cache", action="store_true", help="train even when the run is cached, and do not store it")
    q = sub.add_parser("prepare", help="train every uncached run the chosen chapters need (locally or on Ray)",
                       description="Trains ahead of the build what the book's chapters need; the cache is the meeting "
                                   "point (copy its folder to other machines).")
    q.add_argument("--mode", required=True, help="quick, standard or full")
    q.add_argument("--chapters", help="comma-separated chapters, by name or number (01,06,11-masc); default: all")
    q.add_argument("--list", action="store_true", help="print the runs with their estimated cost; train nothing")
    q.add_argument("--scope", default="all",
                   help="all (default) or cpu: the full mode's CPU build, which trains chapter 11's sweep at p = 0.6 "
                        "with one seed only (make book MODE=full SCOPE=cpu)")
    q.add_argument("--ray", nargs="?", const=True, default=False, metavar="ADDRESS",
                   help="train on Ray: a cluster's ADDRESS (auto, HOST:PORT, ray://HOST:PORT) or, with no "
                        "address, a local cluster started here")
    q.add_argument("--workers", type=int, help="runs trained at once (default: the machine's cores / threads)")
    q.add_argument("--threads", type=int, default=1,
                   help="CPU threads per run (default 1; part of the cache key: build the book with the same)")
    return p


@contextlib.contextmanager
def _plain_warnings():
    """While it is open, warnings of memlib's own categories (a damaged cache file being rebuilt) print as one plain
    `warning: ...` line on stderr, without the file, line number and source line Python adds; others as usual."""
    with warnings.catch_warnings():  # restores warnings.showwarning on exit
        show = warnings.showwarning

        def plain(message, category, filename, lineno, file=None, line=None):
            if category.__module__.partition(".")[0] == __package__:  # a category memlib defines
                print(f"warning: {message}", file=sys.stderr if file is None else file)
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = plain
        yield


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status.

    Bad input (a config field, a key given twice, an unreadable MNIST folder or file, even when that shows only
    while the run is being trained) is one `error: ...` line on stderr and exit status 2.
    """
    args = _parser().parse_args(argv)
    with _plain_warnings():
        try:
            return _main(args)
        except MNISTSourceError as err:  # $MEMLIB_MNIST_DIR (or the bundled copy) missing or damaged
            print(f"error: {err}", file=sys.stderr)
            return 2


def _main(args) -> int:
    """main() after the arguments are parsed, inside its error and warning handling."""
    if args.command == "prepare":
        return _prepare(args)
    try:
        cfg = config_from_pairs(args.pairs)
        from .train import pick_device

        pick_device(cfg.device)  # device=cuda on a machine without one: a clear error, before anything is written
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "masc":
        return _masc(cfg, args)
    from .cache import run

    res = run(cfg, cache=not args.no_cache)
    out = res.summary()
    if args.json:
        print(json.dumps(out))
    else:
        width = max(map(len, out))
        for k, v in out.items():
            print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    return 0


def _masc(cfg, args) -> int:
    """The `masc` subcommand: the model's accuracies, then every layer's four probe accuracies."""
    from . import probes
    from .cache import run

    try:
        variance = probes.check_variance(args.variance)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    res = run(cfg, cache=not args.no_cache)
    out = {"train_acc": round(res.final("train_acc"), 6), "test_acc": probes.model_test_acc(res),
           "layers": probes.probe_layers(res, variance=variance)}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"model  train_acc {out['train_acc']:.4f} (labels as trained)  test_acc {out['test_acc']:.4f}")
    print(f"{'layer':<10}" + "".join(f"{k:>16}" for k in probes.PROBES))
    for layer, accs in out["layers"].items():
        print(f"{layer:<10}" + "".join(f"{accs[k]:>16.4f}" for k in probes.PROBES))
    return 0


def _chapter_names(text: str | None) -> list[str] | None:
    """--chapters: names or their number prefixes (06 -> 06-memorization); a ValueError names a bad one."""
    from .experiments import CHAPTERS

    if text is None:
        return None
    names = []
    for part in filter(None, (t.strip() for t in text.split(","))):
        hits = [c for c in CHAPTERS if c == part or c.split("-", 1)[0] == part]
        if len(hits) != 1:
            raise ValueError(f"chapter={part!r} is not allowed: one of {', '.join(CHAPTERS)} (or its number)")
        names.append(hits[0])
    return names


def _prepare(args) -> int:
    """The `prepare` subcommand: list or train the chapters' uncached runs; exit 1 when some run failed."""
    import os

    from . import prepare as PP
    from .data import MNIST_DIR_ENV
    from .experiments import check_scope
    from .modes import scale

    try:
        scale(args.mode)
        names = _chapter_names(args.chapters)
        check_scope(args.scope)
        for flag in ("workers", "threads"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                raise ValueError(f"--{flag}={value} is not allowed: an integer >= 1")
        if isinstance(args.ray, str):
            PP.check_address(args.ray)
        if os.environ.get(MNIST_DIR_ENV):
            raise ValueError(f"${MNIST_DIR_ENV} is set: runs on other data are never cached, so there is nothing "
                             "to prepare (unset it)")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.list:
        for line in PP.listing(args.mode, names, args.threads, args.scope):
            print(line)
        return 0
    try:
        failed = PP.prepare(args.mode, names, ray=args.ray, workers=args.workers, threads=args.threads,
                            scope=args.scope)
    except ConnectionError as err:
        print(f"error: cannot reach the Ray cluster at {args.ray}: {' '.join(str(err).split())[:200]}",
              file=sys.stderr)
        return 2
    return 1 if failed else 0

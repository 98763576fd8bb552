"""`python -m memlib run|masc key=value ... [--json]`: train (or load) one run; print its final metrics or its layer probes."""
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
    m = sub.add_parser("masc", help="train one run (cache aware) and print MASC and baseline probe accuracies per layer",
                       description="Probe test accuracies (true labels) of every layer, input first. keys: " + ", ".join(FIELD_TYPES))
    m.add_argument("pairs", nargs="*", metavar="key=value", help="RunConfig fields, e.g. noise=0.6 noise_kind=uniform")
    m.add_argument("--variance", type=float, default=0.99, help="share of variance each MASC class subspace keeps, in (0, 1] (default 0.99)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.add_argument("--no-cache", action="store_true", help="train even when the run is cached, and do not store it")
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

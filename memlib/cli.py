"""`python -m memlib run key=value ... [--json]`: train (or load) one run and print its final metrics."""
from __future__ import annotations

import argparse
import json
import sys

from .config import FIELD_TYPES, config_from_pairs


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m memlib", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train one run (cache aware) and print its final metrics",
                       description="keys: " + ", ".join(FIELD_TYPES))
    r.add_argument("pairs", nargs="*", metavar="key=value", help="RunConfig fields, e.g. noise=0.4 depth=8")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--no-cache", action="store_true", help="train even when the run is cached, and do not store it")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        cfg = config_from_pairs(args.pairs)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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

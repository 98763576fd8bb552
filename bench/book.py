"""Where one book build's time went: kernel time per chapter and the share spent training, evaluating and probing.

    python bench/book.py [--json] [--mode standard] [--executed _build/executed]

Reads what the last build of a mode left behind (a benchmark of a build, not a build): timings.json (each chapter's
papermill kernel time) and, per chapter, logs/<chapter>.runs.jsonl, where memlib appends one line for every run it
trained (its wall time and, within it, the seconds spent in held-out evaluation and representations) and every probe
table it computed. A chapter whose runs came from the cache spends little time in any of these; its remainder
("other": drawing, explorers' figures, loading) is the kernel time left over. With --json the output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("quick", "standard", "full")


def read_log(path: Path) -> dict[str, float]:
    """Seconds of training (evaluation excluded), evaluation and probing in one chapter's run log, and run counts."""
    out = {"train_s": 0.0, "eval_s": 0.0, "probe_s": 0.0, "runs_trained": 0, "probe_tables": 0}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a line cut off by a killed build
        if e.get("kind") == "train":
            out["eval_s"] += e.get("eval_seconds", 0.0)
            out["train_s"] += e["seconds"] - e.get("eval_seconds", 0.0)
            out["runs_trained"] += 1
        elif e.get("kind") == "probe":
            out["probe_s"] += e["seconds"]
            out["probe_tables"] += 1
    return out


def summarize(mode: str, executed: Path) -> dict:
    """The JSON object: per chapter and in total, kernel seconds and the shares of training, evaluating and probing."""
    exe = executed / mode
    timings = json.loads((exe / "timings.json").read_text())
    chapters, total = {}, {"kernel_s": 0.0, "train_s": 0.0, "eval_s": 0.0, "probe_s": 0.0}
    for slug, kernel in sorted(timings.get("chapters", {}).items()):
        parts = read_log(exe / "logs" / f"{slug}.runs.jsonl")
        row = {"kernel_s": round(kernel, 1),
               **{k: round(v, 1) if isinstance(v, float) else v for k, v in parts.items()}}
        known = parts["train_s"] + parts["eval_s"] + parts["probe_s"]
        row["other_s"] = round(max(0.0, kernel - known), 1)
        row["shares"] = {k: round(parts[f"{k}_s"] / kernel, 3) if kernel else None for k in ("train", "eval", "probe")}
        chapters[slug] = row
        total["kernel_s"] += kernel
        for k in ("train_s", "eval_s", "probe_s"):
            total[k] += parts[k]
    shares = {k: round(total[f"{k}_s"] / total["kernel_s"], 3) if total["kernel_s"] else None
              for k in ("train", "eval", "probe")}
    return {"mode": mode, "source": str(exe.relative_to(ROOT) if exe.is_relative_to(ROOT) else exe),
            "chapters": chapters, "kernel_s": round(total["kernel_s"], 1), "train_s": round(total["train_s"], 1),
            "eval_s": round(total["eval_s"], 1), "probe_s": round(total["probe_s"], 1), "shares": shares,
            "note": "kernel seconds add up over parallel chapters (JOBS)"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--mode", default="standard", help="the mode whose last build to read (default standard)")
    ap.add_argument("--executed", type=Path, default=ROOT / "_build" / "executed", help="the builds' executed folder")
    args = ap.parse_args(argv)
    if args.mode not in MODES:
        print(f"error: --mode {args.mode!r} is not allowed: one of {', '.join(MODES)}", file=sys.stderr)
        return 2
    if not (args.executed / args.mode / "timings.json").is_file():
        print(f"error: no build of mode {args.mode!r} under {args.executed} (no timings.json): build it first with "
              f"`make book MODE={args.mode}`", file=sys.stderr)
        return 2
    out = summarize(args.mode, args.executed.resolve())
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{'chapter':<26}{'kernel s':>9}{'train':>8}{'eval':>8}{'probe':>8}{'other':>8}  runs")
    for slug, r in out["chapters"].items():
        print(f"{slug:<26}{r['kernel_s']:>9.1f}{r['train_s']:>8.1f}{r['eval_s']:>8.1f}{r['probe_s']:>8.1f}"
              f"{r['other_s']:>8.1f}  {r['runs_trained']}")
    print(f"{'total':<26}{out['kernel_s']:>9.1f}{out['train_s']:>8.1f}{out['eval_s']:>8.1f}{out['probe_s']:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

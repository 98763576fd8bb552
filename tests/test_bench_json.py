"""Every benchmark's --json output is one JSON object a script can parse, with the keys scripts rely on.

Each script runs as a subprocess at a smoke-test size (its timings mean nothing here; they are never asserted).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import memlib.data as D

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DESCRIBE = {"device", "device_name", "torch", "numpy", "memlib", "threads", "interop_threads", "cpu_count",
            "load_average_1min", "warning"}  # bench/environment.describe

# script -> (smoke-test arguments, top-level keys its JSON must have)
CASES = {
    "training.py": (["--n-train", "256", "--epochs", "1", "--repeats", "1", "--device", "cpu"],
                    {"instrumented_sps", "bare_sps", "tutorial_sps", "instrumented_over_tutorial",
                     "instrumented_over_bare", "instrumented_over_bare_default_adam", "statistic", "median", "goals",
                     "breakdown", "config", "reproducibility"} | DESCRIBE),
    "explorers.py": (["--tiny", "--mode", "quick", "--moves", "1", "--chapters", "01-gradient-statistics"],
                     {"mode", "targets", "chapters", "worst", "targets_met", "sweep_speedup", "sweep_speedup_note"}),
    "book.py": (["--mode", "quick"],
                {"mode", "source", "chapters", "kernel_s", "train_s", "eval_s", "probe_s", "shares"}),
    "prepare.py": (["--mode", "quick", "--chapter", "03-depth", "--measure-n", "200"],
                   {"mode", "chapter", "local_s", "ray1_s", "ray2_s", "ray_overhead_per_run_s", "full_book_run_seconds",
                    "full_book_note", "goals"} | DESCRIBE),
}

pytestmark = pytest.mark.slow  # about 25 s in all: two subprocesses that import torch and train small networks


def test_every_json_benchmark_is_covered():
    """A benchmark with a --json option that is not in CASES would go unchecked."""
    with_json = {p.name for p in BENCH.glob("*.py") if re.search(r"""["']--json["']""", p.read_text())}
    assert with_json == set(CASES)


@pytest.fixture(scope="module")
def rotated(memlib_cache) -> None:
    """The rotated test set the benchmarks' seed-0 runs use, made once in the session cache (not in each script)."""
    D.shifted_test(30.0, 0)


def _bench_json(script: str, args: list[str], cache: Path) -> dict:
    env = {**os.environ, D.CACHE_ENV: str(cache), "PYTHONPATH": str(ROOT)}
    env.pop(D.MNIST_DIR_ENV, None)
    proc = subprocess.run([sys.executable, str(BENCH / script), "--json", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)  # the whole of stdout is one JSON object, however it is indented
    assert isinstance(out, dict)
    return out


def test_training_json(rotated, fresh_cache):
    args, keys = CASES["training.py"]
    out = _bench_json("training.py", args, fresh_cache)
    assert keys <= set(out), keys - set(out)
    assert out["config"]["n_train"] == 256 and out["config"]["epochs"] == 1 and out["config"]["repeats"] == 1
    assert set(out["goals"]) == {"instrumented_over_tutorial", "instrumented_over_bare"}
    for g in out["goals"].values():
        assert {"target", "measured", "met", "short_by"} <= set(g)
    assert out["instrumented_sps"] > 0 and out["device"] == "cpu"


def test_explorers_json(rotated, fresh_cache):
    args, keys = CASES["explorers.py"]
    out = _bench_json("explorers.py", args, fresh_cache)
    assert keys <= set(out), keys - set(out)
    assert list(out["chapters"]) == ["01-gradient-statistics"]
    chapter = out["chapters"]["01-gradient-statistics"]
    assert {"config", "first_frame_s", "retrain_s", "cached_s", "moves"} <= set(chapter)
    assert chapter["moves"] == 1 and chapter["config"]["n_train"] == 256
    assert set(out["worst"]) == set(out["targets_met"]) == set(out["targets"])
    # memlib.batched (what bench/sweeps.py measured) is gone: the key stays, null, with the reason beside it
    assert out["sweep_speedup"] is None and "removed" in out["sweep_speedup_note"]


def test_book_json_reads_a_build(tmp_path):
    """bench/book.py on a made-up build: per-chapter kernel time split into training, evaluation, probing and the rest;
    a line cut off by a killed build is skipped; a mode never built is one clear error line with exit status 2."""
    exe = tmp_path / "executed"
    (exe / "quick" / "logs").mkdir(parents=True)
    (exe / "quick" / "timings.json").write_text(json.dumps({"mode": "quick", "chapters": {"01-a": 10.0, "02-b": 4.0}}))
    log = [{"kind": "train", "seconds": 5.0, "eval_seconds": 2.0}, {"kind": "probe", "seconds": 1.5}]
    (exe / "quick" / "logs" / "01-a.runs.jsonl").write_text("\n".join(map(json.dumps, log)) + '\n{"kind": "tr')
    args, keys = CASES["book.py"]
    proc = subprocess.run([sys.executable, str(BENCH / "book.py"), "--json", *args, "--executed", str(exe)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert keys <= set(out)
    a, b = out["chapters"]["01-a"], out["chapters"]["02-b"]
    assert (a["train_s"], a["eval_s"], a["probe_s"], a["other_s"], a["runs_trained"]) == (3.0, 2.0, 1.5, 3.5, 1)
    assert a["shares"] == {"train": 0.3, "eval": 0.2, "probe": 0.15} and b["other_s"] == 4.0 and b["runs_trained"] == 0
    assert out["kernel_s"] == 14.0 and out["train_s"] == 3.0
    bad = subprocess.run([sys.executable, str(BENCH / "book.py"), "--mode", "full", "--executed", str(exe)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")


def test_prepare_json(fresh_cache):
    args, keys = CASES["prepare.py"]
    out = _bench_json("prepare.py", args, fresh_cache)
    assert keys <= set(out), keys - set(out)
    assert (out["mode"], out["chapter"], out["runs"]) == ("quick", "03-depth", 3)
    assert set(out["goals"]) == {"ray2_over_ray1", "overhead_under_0_5_s_per_run"}
    over = out["goals"]["overhead_under_0_5_s_per_run"]  # the overhead itself, met when at most 0.5 s
    assert over["measured"] == out["ray_overhead_per_run_s"] and over["met"] == (over["measured"] <= 0.5)
    assert min(out["local_s"], out["ray1_s"], out["ray2_s"], out["full_book_run_seconds"]) > 0
    assert not (fresh_cache / "runs").exists()  # it trains into caches of its own, then removes them

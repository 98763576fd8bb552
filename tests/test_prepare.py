"""`python -m memlib prepare`: bad input, the plan listed without training, Ray workers' runs bit-identical to local
ones, and a worker killed mid-run costing only its own runs."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from memlib import prepare as PP
from memlib import provenance as PV
from memlib.cache import run_path, to_arrays
from memlib.cli import main
from memlib.config import RunConfig
from memlib.train import train

ROOT = Path(__file__).resolve().parent.parent
TWO = ["03-depth", "09-width"]  # 3 + 4 quick runs
TIMING = ("seconds", "eval_seconds")  # the only fields a retrained run may change


def _runs(cache: Path) -> list[Path]:
    return sorted((cache / "runs").glob("*.npz")) if (cache / "runs").is_dir() else []


@pytest.mark.parametrize("argv, says", [
    (["--mode", "huge"], "mode='huge'"),
    (["--mode", "quick", "--chapters", "06,12"], "chapter='12'"),
    (["--mode", "quick", "--ray", "no port"], "ray address='no port'"),
    (["--mode", "quick", "--workers", "0"], "--workers=0"),
    (["--mode", "full", "--scope", "gpu"], "scope='gpu'"),
])
def test_bad_input_is_one_line_and_status_2(argv, says, capsys, fresh_cache):
    assert main(["prepare", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and err.count("\n") == 1
    assert _runs(fresh_cache) == []


def test_list_prints_the_whole_plan_and_trains_nothing(capsys, fresh_cache):
    assert main(["prepare", "--mode", "full", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    jobs, again = PP.plan("full")
    assert len(lines) == len(jobs) + len(again) + 1 and lines[-1].startswith(f"{len(jobs) + len(again)} runs")
    assert all(j.cfg.key() in "\n".join(lines) for j in jobs)
    assert _runs(fresh_cache) == []
    # the cost model grows with images, epochs and parameters
    small = jobs[0].cfg.replace(n_train=1_000, eval_size=500)
    big = small.replace(n_train=2_000, eval_size=1_000)
    assert PP.cost_units(big) == 2 * PP.cost_units(small) == PP.cost_units(small.replace(epochs=2 * small.epochs))
    assert PP.estimate_seconds(big) > PP.estimate_seconds(small) > 0


def _same_run(path: Path, local: dict) -> None:
    with np.load(path, allow_pickle=False) as z:
        stored = {k: z[k] for k in z.files}
    assert stored.keys() == local.keys()
    for k, v in local.items():
        if k == "meta_json":
            a, b = (json.loads(x.tobytes()) for x in (stored[k], v))
            assert {k2: a[k2] for k2 in a if k2 not in TIMING} == {k2: b[k2] for k2 in b if k2 not in TIMING}
        else:
            a, b = stored[k], np.asarray(v)
            assert (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes()), k  # bit for bit


def test_ray_two_workers_match_local_training_bit_for_bit(fresh_cache):
    assert PP.prepare("quick", TWO, ray=True, workers=2, threads=1, progress=False) == 0
    jobs, _ = PP.plan("quick", TWO)
    assert len(_runs(fresh_cache)) == len(jobs) == 7
    for j in jobs:  # the driver recorded how each run was trained
        rec = PV.read(run_path(j.cfg, threads=1))
        assert (rec["how"], rec["workers"], rec["threads"], rec["device"]) == ("prepare-ray", 2, 1, "cpu"), rec
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        for j in jobs:
            _same_run(run_path(j.cfg, threads=1), to_arrays(train(j.cfg)))
    finally:
        torch.set_num_threads(threads)


def test_prepare_and_cache_run_record_how_each_run_was_trained_and_log_it_on_load(fresh_cache, monkeypatch, tmp_path):
    """prepare's driver and cache.run write <run>.trained.json beside the run; a cached run served by cache.run logs
    a 'load' event with that record ('trained': null for a run without one, cached before records were kept)."""
    from helpers import tiny

    from memlib import cache as C

    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv(C.RUN_LOG_ENV, str(log))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        by_prepare, by_kernel = tiny(seed=5), tiny(seed=6)
        assert PP.train_jobs(PP.LocalPool(1, 1), [PP.Job(by_prepare, ("test",))], 1, lambda job, epochs: None) == []
        path = run_path(by_prepare, threads=1)
        assert PV.path_for(path).name == path.name.removesuffix(".npz") + ".trained.json"
        rec = PV.read(path)
        assert (rec["how"], rec["workers"], rec["threads"], rec["device"]) == ("prepare-local", 1, 1, "cpu")
        assert rec["seconds"] > 0 and rec["host"] and re.match(r"\d{4}-\d\d-\d\dT", rec["when"])
        C.run(by_prepare)  # served from the cache
        res = C.run(by_kernel)  # trained here
        rec = PV.read(run_path(by_kernel, threads=1))
        assert (rec["how"], rec["workers"], rec["threads"]) == ("kernel", None, 1)
        assert rec["seconds"] == round(res.seconds, 3)
        PV.path_for(run_path(by_kernel, threads=1)).unlink()  # as a run cached before provenance was recorded
        C.run(by_kernel)
    finally:
        torch.set_num_threads(threads)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["kind"], e["key"], (e["trained"] or {}).get("how")) for e in events] == [
        ("train", path.name, "prepare-local"), ("load", path.name, "prepare-local"),
        ("train", run_path(by_kernel, threads=1).name, "kernel"), ("load", run_path(by_kernel, threads=1).name, None)]
    assert not [p for p in (fresh_cache / "runs").iterdir() if p.name.startswith(".")], "nothing half-written"
    with pytest.raises(ValueError, match="how='gpu' is not allowed"):
        PV.record("gpu", seconds=1, threads=1, device="cpu")


def _descendants(pid: int) -> list[int]:
    kids = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def _training_worker(pid: int) -> int | None:
    """A Ray worker process below pid that is running a training task (Ray titles it ray::train_arrays)."""
    for k in _descendants(pid):
        try:
            if Path(f"/proc/{k}/cmdline").read_bytes().startswith(b"ray::train_arrays"):
                return k
        except OSError:
            pass
    return None


def test_a_killed_worker_loses_only_its_runs_and_prepare_again_completes(fresh_cache):
    cmd = [sys.executable, "-m", "memlib", "prepare", "--mode", "quick", "--chapters", "09", "--ray", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    victim, deadline = None, time.monotonic() + 120
    while victim is None and proc.poll() is None and time.monotonic() < deadline:
        victim = _training_worker(proc.pid)
        time.sleep(0.05)
    assert victim is not None, "no Ray worker was seen training"
    os.kill(victim, signal.SIGKILL)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 1, out
    assert "not trained:" in out and "run prepare again" in out
    jobs, _ = PP.plan("quick", ["09-width"])
    done = _runs(fresh_cache)
    assert len(jobs) - len(done) == 1  # the killed worker's run only
    assert not list((fresh_cache / "runs").glob(".*"))  # nothing half-written
    assert PP.prepare("quick", ["09-width"], workers=2, threads=1, progress=False) == 0  # local processes now
    assert len(_runs(fresh_cache)) == len(jobs)
    assert all(PP.is_cached(j, 1) for j in jobs)
    hows = sorted((PV.read(run_path(j.cfg, threads=1)) or {}).get("how") for j in jobs)
    assert hows == ["prepare-local"] + ["prepare-ray"] * (len(jobs) - 1), "the second prepare trained the lost run"


def test_cpu_scope_lists_chapter_11_at_p_06_with_one_seed(capsys, fresh_cache):
    """--scope cpu: chapter 11's full sweep shrinks to p = 0.6, seed 0 (and its relabeled run); the factor comparison
    and the explorer's first view stay; nothing is trained."""
    assert main(["prepare", "--mode", "full", "--chapters", "11", "--scope", "cpu", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    paper = [ln for ln in lines if "n=50000" in ln and ln.startswith("to do")]
    assert len(paper) == 1 and "noise=0.6 " in paper[0] and "seed=0 " in paper[0]
    assert sum(ln.startswith("later") for ln in lines) == 1
    jobs, again = PP.plan("full", ["11-masc"], scope="cpu")
    assert len(lines) == len(jobs) + len(again) + 1
    full_jobs, _ = PP.plan("full", ["11-masc"])
    assert {j.cfg.key() for j in jobs} < {j.cfg.key() for j in full_jobs}
    assert _runs(fresh_cache) == []


def test_the_longest_runs_are_handed_out_first():
    """train_jobs submits jobs by estimated cost, longest first, ties in the plan's order, and stores every one."""

    class Recording:
        how, workers = "prepare-local", 1

        def __init__(self):
            self.order = []

        def submit(self, job):
            self.order.append(job.chapters[0])
            return job

        def wait(self, futures):
            return set(futures), set()

        def result(self, fut):
            raise RuntimeError("not trained in this test")

    small = RunConfig(n_train=100, batch_size=50, eval_size=100, probe_size=50, epochs=2, width=16)
    jobs = [PP.Job(small, ("a",)), PP.Job(small.replace(width=256), ("b",)), PP.Job(small.replace(seed=1), ("c",)),
            PP.Job(small.replace(epochs=20), ("d",))]
    pool = Recording()
    failed = PP.train_jobs(pool, jobs, 1, lambda job, epochs: None)
    costs = {j.chapters[0]: PP.estimate_seconds(j.cfg) for j in jobs}
    assert costs["b"] > costs["d"] > costs["a"] == costs["c"]
    assert pool.order == ["b", "d", "a", "c"] and len(failed) == 4

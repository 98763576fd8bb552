"""A run stopped between epochs resumes from its checkpoint and ends bit for bit as if it had never stopped: after a
cancelled epoch, after a damaged or foreign checkpoint file, and after the training process is killed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from memlib import cache
from memlib.config import RunConfig
from memlib.results import to_arrays
from memlib.train import Cancelled, train

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "adam, representations every epoch": RunConfig(n_train=256, batch_size=32, epochs=5, probe_size=40, eval_size=100,
                                                   noise=0.2, rep_epochs="all"),
    "momentum, stops early": RunConfig(n_train=256, batch_size=32, epochs=40, eval_size=100, probe_size=40,
                                       optimizer="momentum", lr=0.05, stop_at=0.9, rep_epochs="ends"),
    "per-layer widths, torch init": RunConfig(n_train=256, batch_size=64, epochs=4, eval_size=100, probe_size=40,
                                              widths=(32, 64), init="torch", inputs="symmetric"),
}


def bits(a: np.ndarray) -> tuple:
    return a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes()


def same(a, b) -> None:
    """Every array of two runs equal bit for bit (the meta JSON holds wall times: it is left out)."""
    x, y = to_arrays(a), to_arrays(b)
    assert set(x) == set(y)
    for k in x:
        if k != "meta_json":
            assert bits(x[k]) == bits(y[k]), k


def stop_after(epoch: int):
    def on_epoch(r):
        if r.epochs_run >= epoch:
            raise Cancelled
    return on_epoch


@pytest.mark.parametrize("name", CASES)
def test_a_cancelled_run_resumes_bit_for_bit(name, tmp_path):
    torch.set_num_threads(1)
    cfg, ckpt = CASES[name], tmp_path / "run.partial.pt"
    whole = train(cfg)
    with pytest.raises(Cancelled):
        train(cfg, on_epoch=stop_after(2), checkpoint=ckpt, checkpoint_seconds=0)
    assert ckpt.exists()
    seen = []
    again = train(cfg, on_epoch=lambda r: seen.append(r.epochs_run), checkpoint=ckpt, checkpoint_seconds=0)
    assert seen[0] == 2  # it went on from epoch 2, not from the start
    same(whole, again)
    assert again.epochs_run == whole.epochs_run


def test_a_run_stopped_twice_still_matches(tmp_path):
    cfg, ckpt = CASES["adam, representations every epoch"], tmp_path / "p.pt"
    for stop in (1, 3):
        with pytest.raises(Cancelled):
            train(cfg, on_epoch=stop_after(stop), checkpoint=ckpt, checkpoint_seconds=0)
    same(train(cfg), train(cfg, checkpoint=ckpt))


@pytest.mark.parametrize("content", ["damaged", "another run's"])
def test_a_bad_checkpoint_is_ignored(content, tmp_path):
    cfg, ckpt = CASES["per-layer widths, torch init"], tmp_path / "p.pt"
    if content == "damaged":
        ckpt.write_bytes(b"not a checkpoint")
    else:
        with pytest.raises(Cancelled):
            train(cfg.replace(seed=1), on_epoch=stop_after(2), checkpoint=ckpt, checkpoint_seconds=0)
    seen = []
    again = train(cfg, on_epoch=lambda r: seen.append(r.epochs_run), checkpoint=ckpt, checkpoint_seconds=0)
    assert seen[0] == 0  # from the start
    same(train(cfg), again)


def test_without_a_checkpoint_path_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train(CASES["per-layer widths, torch init"], checkpoint_seconds=0)
    assert list(tmp_path.iterdir()) == []


KILLED = """
import importlib, sys, numpy as np, torch
T = importlib.import_module("memlib.train")  # the module (memlib.train, the attribute, is the function)
from memlib import cache
from memlib.config import RunConfig
from memlib.results import to_arrays
torch.set_num_threads(1)
T.CHECKPOINT_SECONDS = 0.0
cfg = RunConfig(n_train=512, batch_size=32, epochs=400, eval_size=100, probe_size=40, rep_epochs="none")
print(cache.partial_path(cfg), flush=True)
r = cache.run(cfg)
if len(sys.argv) > 1:
    np.savez(sys.argv[1], **{k: v for k, v in to_arrays(r).items() if k != "meta_json"})
"""
KILLED_CFG = RunConfig(n_train=512, batch_size=32, epochs=400, eval_size=100, probe_size=40, rep_epochs="none")


def test_a_killed_training_process_resumes_through_the_cache(tmp_path):
    """cache.run in a process killed (SIGKILL) mid-run leaves a checkpoint and no run; the next cache.run resumes
    from it, stores the run, removes the checkpoint, and the run equals one trained in one go."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    log = tmp_path / "killed.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", KILLED], env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    partial = Path(proc.stdout.readline().strip())
    deadline = time.time() + 120
    while not partial.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial.exists(), (f"the run finished or never saved before it was killed (status {proc.returncode}, "
                              f"files {sorted(p.name for p in partial.parent.iterdir())}): {log.read_text()[-2000:]}")
    stem = partial.name.removesuffix(".partial.pt")
    assert not (partial.parent / f"{stem}.npz").exists(), "the killed run left no run in the cache"
    # SIGKILL during a checkpoint write leaves that write's temporary file (no process can remove its own then): it
    # names the killed process, and no reader opens it; the next writer removes it (memlib.files.sweep)
    left = list(partial.parent.glob(f".{stem}*.tmp"))
    assert all(f"-{proc.pid}." in p.name for p in left), left
    cfg = KILLED_CFG
    saved_epoch = torch.load(partial, weights_only=True)["epoch"]
    assert 0 < saved_epoch < cfg.epochs
    out = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path / "resumed.npz")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert not partial.exists() and cache.run_path(cfg, threads=1).name in {p.name for p in partial.parent.iterdir()}
    assert not list(partial.parent.glob(f".{stem}*.tmp")), "nothing half-written is left once the run is stored"
    torch.set_num_threads(1)
    whole = to_arrays(train(cfg))
    resumed = np.load(tmp_path / "resumed.npz")
    assert set(resumed.files) == set(whole) - {"meta_json"}
    for k in resumed.files:
        assert bits(resumed[k]) == bits(whole[k]), k

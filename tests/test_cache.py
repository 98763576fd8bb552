"""The run cache: round trips, damage detection and repair, atomic writes, keys."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from helpers import assert_same_result, tiny  # tests/ is on sys.path under pytest

import memlib.cache as C
import memlib.data as D
from memlib.train import RunResult, train


@pytest.fixture(scope="module")
def trained(memlib_cache) -> RunResult:
    """A tiny noisy run, trained once for this module."""
    return train(tiny(noise=0.3))


def test_save_load_round_trip(trained, tmp_path):
    """save() then load() gives identical arrays, cached=True, and keeps seconds and meta."""
    path = C.save(trained, tmp_path / "run.npz")
    assert path == tmp_path / "run.npz" and path.exists()
    back = C.load(trained.config, path)
    assert_same_result(trained, back)
    assert back.cached is True and trained.cached is False
    assert back.seconds == pytest.approx(trained.seconds)
    assert back.meta == trained.meta
    assert back.config == trained.config
    assert back.summary() == {**trained.summary(), "cached": True}


def test_round_trip_without_reps(tmp_path):
    """A run that recorded no representations round-trips too (empty reps dict)."""
    res = train(tiny(rep_epochs="none", noise=1.0))
    back = C.load(res.config, C.save(res, tmp_path / "r.npz"))
    assert back.reps == {} and back.rep_epochs.shape == (0,)
    assert_same_result(res, back)


def test_load_refuses_another_config(trained, tmp_path):
    """Loading a file under a different config raises ValueError."""
    path = C.save(trained, tmp_path / "run.npz")
    with pytest.raises(ValueError, match="does not match"):
        C.load(trained.config.replace(seed=5), path)


def test_run_trains_then_reads_the_cache(fresh_cache):
    """cache.run trains and stores on the first call, then returns the identical run from disk with cached=True."""
    cfg = tiny(noise=0.3)
    assert not C.is_cached(cfg)
    first = C.run(cfg)
    assert first.cached is False and C.is_cached(cfg)
    path = C.run_path(cfg)
    assert path.parent == fresh_cache / "runs" and path.name.startswith(cfg.key())
    assert C.code_version() in path.name
    second = C.run(cfg)
    assert second.cached is True
    assert_same_result(first, second)


def test_run_without_cache_writes_nothing(fresh_cache):
    """cache=False trains without touching the disk."""
    res = C.run(tiny(), cache=False)
    assert res.cached is False
    assert not (fresh_cache / "runs").exists()


def test_run_many(fresh_cache):
    """run_many returns one run per config, in order."""
    cfgs = [tiny(), tiny(noise=0.5)]
    out = C.run_many(cfgs)
    assert [r.config for r in out] == cfgs
    assert [r.cached for r in C.run_many(cfgs)] == [True, True]


def test_device_and_progress_share_the_cached_run(fresh_cache):
    """device and progress are not in the key: the run cached for one setting serves the other."""
    C.run(tiny(device="cpu", progress=False))
    assert C.run(tiny(device="auto", progress=True)).cached is True


def test_lr_none_and_explicit_default_share_the_cached_run(fresh_cache):
    """lr=None and lr=the optimizer's default are the same run."""
    C.run(tiny(optimizer="sgd"))
    res = C.run(tiny(optimizer="sgd", lr=0.05))
    assert res.cached is True and res.config.learning_rate == 0.05


def _truncate(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _flip_middle(path):
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    for i in range(mid, mid + 16):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def _garbage(path):
    path.write_bytes(b"not a zip archive at all")


def _empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_truncate, _flip_middle, _garbage, _empty], ids=lambda f: f.__name__[1:])
def test_damaged_cache_is_detected_and_repaired(fresh_cache, damage):
    """A damaged cached run warns once, is retrained to the same numbers, and the file is repaired."""
    cfg = tiny(noise=0.3)
    original = C.run(cfg)
    path = C.run_path(cfg)
    damage(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = C.run(cfg)
    damaged = [w for w in caught if issubclass(w.category, UserWarning) and "is damaged" in str(w.message)]
    assert len(damaged) == 1
    assert path.name in str(damaged[0].message)
    assert again.cached is False
    assert_same_result(original, again)
    assert_same_result(original, C.load(cfg, path))  # repaired on disk
    assert C.run(cfg).cached is True


def test_damaged_cache_warning_is_a_userwarning(fresh_cache):
    """The damage warning can be caught with pytest.warns(UserWarning)."""
    cfg = tiny()
    C.run(cfg)
    _flip_middle(C.run_path(cfg))
    with pytest.warns(UserWarning, match="damaged.*retraining"):
        assert C.run(cfg).cached is False


def test_foreign_file_under_the_key_is_retrained(fresh_cache):
    """A file holding another config's run (e.g. a copied file) is detected, and replaced."""
    a, b = tiny(), tiny(noise=0.5)
    C.run(a)
    os.replace(C.run_path(a), C.run_path(b))
    with pytest.warns(UserWarning, match="does not match"):
        res = C.run(b)
    assert res.cached is False and res.corrupted.sum() == 128
    assert C.load(b).config == b


def test_writes_are_atomic(fresh_cache):
    """After writing, the runs folder holds the final .npz (plus its lock file) and no temporary files."""
    C.run(tiny())
    names = [p.name for p in (fresh_cache / "runs").iterdir()]
    assert [n for n in names if n.endswith(".npz")] == [C.run_path(tiny()).name]
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")], names


def test_failed_serialisation_leaves_no_file(fresh_cache, trained, monkeypatch):
    """If building the archive fails, save() raises and leaves nothing behind."""
    def boom(*a, **k):
        raise OSError("no space left on device")

    monkeypatch.setattr(np, "savez_compressed", boom)
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="no space"):
        C.save(trained)
    runs = fresh_cache / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []
    assert not C.is_cached(trained.config)


def test_failed_write_leaves_no_partial_file(fresh_cache, trained, monkeypatch):
    """If the disk write fails after the data went out (fsync), save() leaves neither a partial file nor a temp file."""
    def boom(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(D.os, "fsync", boom)
    with pytest.raises(OSError, match="I/O error"):
        C.save(trained)
    assert list((fresh_cache / "runs").iterdir()) == []
    assert not C.is_cached(trained.config)


def test_failed_write_keeps_the_previous_file(fresh_cache, trained, monkeypatch):
    """A failing rewrite leaves the previously cached run intact."""
    path = C.save(trained)
    before = path.read_bytes()
    monkeypatch.setattr(D.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("I/O error")))
    with pytest.raises(OSError):
        C.save(trained)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_source_bypasses_the_cache(fresh_cache, tmp_path, monkeypatch):
    """A run from an explicit MNIST source is never cached (the cache key does not know the source)."""
    calls = []
    monkeypatch.setattr(C, "train",
                        lambda cfg, source=None, labels=None, on_epoch=None: calls.append(source) or "trained")
    assert C.run(tiny(), source=str(tmp_path)) == "trained"
    assert calls == [str(tmp_path)]
    assert not (fresh_cache / "runs").exists()


def test_code_version_is_stable():
    """code_version() is a 12-hex-digit hash, the same on every call."""
    v = C.code_version()
    assert len(v) == 12 and int(v, 16) >= 0 and v == C.code_version()


def test_sweep_and_seeds_of(fresh_cache):
    """sweep() maps each value to one run per seed; seeds_of() gives the base config's run per seed."""
    base = tiny(epochs=1)
    out = C.sweep(base, "noise", [0.0, 0.5], seeds=[0, 1])
    assert list(out) == [0.0, 0.5]
    assert [[r.config for r in runs] for runs in out.values()] == [
        [base.replace(noise=v, seed=s) for s in (0, 1)] for v in (0.0, 0.5)]
    assert [r.config.seed for r in C.seeds_of(base, [1, 0])] == [1, 0]
    assert all(r.cached for r in C.seeds_of(base.replace(noise=0.5), [0, 1]))


def test_concurrent_runs_train_once(fresh_cache, monkeypatch):
    """Two threads asking for the same uncached run: one trains, the other waits and reads its file."""
    import threading
    import time

    real_train, calls = C.train, []

    def slow_train(cfg, source=None, labels=None, on_epoch=None, **kw):
        calls.append(cfg)
        time.sleep(0.3)
        return real_train(cfg, source, labels, on_epoch, **kw)

    monkeypatch.setattr(C, "train", slow_train)
    cfg, out = tiny(), []
    threads = [threading.Thread(target=lambda: out.append(C.run(cfg))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(r.cached for r in out) == [False, True]
    assert_same_result(out[0], out[1])


def test_thread_counts_are_cached_apart(fresh_cache):
    """The same config trained at 1 and at 2 threads: two cache files, each served only to its own thread count."""
    import torch

    cfg = tiny(n_train=512, width=64, batch_size=128)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = C.run(cfg)
        torch.set_num_threads(2)
        two = C.run(cfg)
        assert not one.cached and not two.cached  # the 1-thread file was not served at 2 threads
        assert C.run_path(cfg, threads=1) != C.run_path(cfg, threads=2)
        assert C.run_path(cfg, threads=1).exists() and C.run_path(cfg, threads=2).exists()
        assert one.meta["threads"] == 1 and two.meta["threads"] == 2
        assert C.run(cfg).cached and C.run(cfg).meta["threads"] == 2
        torch.set_num_threads(1)
        again = C.run(cfg)
        assert again.cached and again.meta["threads"] == 1
        np.testing.assert_array_equal(again.weights["layers.0.weight"], one.weights["layers.0.weight"])
    finally:
        torch.set_num_threads(before)


def test_runs_on_another_mnist_copy_are_not_cached(fresh_cache, monkeypatch, tmp_path):
    """With $MEMLIB_MNIST_DIR set, run() trains on that copy and writes nothing under the bundled copy's key."""
    calls = []
    monkeypatch.setattr(C, "train", lambda cfg, source=None, labels=None, on_epoch=None: calls.append(cfg) or "trained")
    monkeypatch.setenv("MEMLIB_MNIST_DIR", str(tmp_path))
    cfg = tiny(seed=99)
    assert C.run(cfg) == "trained" and calls == [cfg]
    assert not C.run_path(cfg).exists()


def test_trained_runs_are_logged_for_the_book_benchmark(fresh_cache, monkeypatch, tmp_path):
    """With $MEMLIB_RUN_LOG set, run() appends one line per run it trains, and one 'load' line per cached run served,
    each with the run's provenance record (memlib.provenance)."""
    import json

    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv(C.RUN_LOG_ENV, str(log))
    cfg = tiny(seed=77)
    res = C.run(cfg)
    C.run(cfg)  # cached: a 'load' line
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["train", "load"]
    assert 0 < lines[0]["eval_seconds"] <= lines[0]["seconds"] and res.meta["eval_seconds"] > 0
    assert lines[0]["key"] == lines[1]["key"] == C.run_path(cfg).name
    assert lines[0]["trained"]["how"] == "kernel" and lines[1]["trained"] == lines[0]["trained"]

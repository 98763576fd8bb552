"""memlib.batched.train_many: bit-identical to train() config by config; memlib.cache.run_many trains through it."""
from __future__ import annotations

import threading

import pytest
import torch

import memlib.batched as B
import memlib.data as D
import memlib.cache as C
from memlib.batched import SHAPE_FIELDS, group_by_shape, plan, train_many
from memlib.train import train

from helpers import assert_same_result, tiny  # tests/ is on sys.path under pytest

# Configs of one shape that differ in everything train_many lets differ. (Seeds 0..5 only: each new seed costs a
# rotated test set, about a second and a half.)
MIXED = [
    dict(noise=0.3),
    dict(seed=1, init="xavier", noise=0.5, noise_kind="uniform"),
    dict(seed=2, optimizer="sgd", lr=0.1, rep_layers=(2,)),
    dict(seed=3, optimizer="momentum", init="orthogonal", rep_epochs="ends"),
    dict(seed=4, lr=0.003, epochs=1, eval_size=120, probe_size=30),
    dict(seed=5, noise=0.8, stop_at=0.2, epochs=4, rep_epochs="ends"),
    dict(seed=0, noise=0.1, epochs=3, rep_epochs="none", shift_degrees=15.0),
]


@pytest.fixture
def threads():
    """Set torch's thread count for one test and restore it afterwards."""
    old = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(old)


def assert_as_train(cfgs, results):
    assert [r.config for r in results] == list(cfgs)
    for c, r in zip(cfgs, results):
        assert_same_result(train(c), r)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_mixed_batch_is_bit_identical_to_train(threads, n_threads):
    """Seven configs differing in seed, noise, init, optimizer, lr, epochs, stop_at, eval and recording settings."""
    threads(n_threads)
    cfgs = [tiny(**c) for c in MIXED]
    out = train_many(cfgs)
    assert_as_train(cfgs, out)
    assert out[4].epochs_run == 1 and out[6].epochs_run == 3
    assert all(r.meta["batch_runs"] == len(cfgs) and not r.cached for r in out)


def test_evaluation_sets_over_several_blocks_are_bit_identical_to_train():
    """Held-out sets larger than one EVAL_CHUNK block (the standard book's 3 x 5,000 images): blocks that straddle
    the validation/test/shifted seams are built in one scratch buffer, which must be used before the next is built."""
    from memlib.train import EVAL_CHUNK

    cfgs = [tiny(seed=s, noise=0.2, eval_size=5_000) for s in range(2)]
    assert 3 * cfgs[0].eval_size > 1.5 * EVAL_CHUNK  # at least two blocks, both across a seam
    out = train_many(cfgs)
    assert_as_train(cfgs, out)
    mn = D.load_mnist()
    for r in out:  # and right, not just equal: the trained network's own accuracy on the first 5,000 of each split
        with torch.no_grad():
            model = r.model()
            for split, metric in ((mn.x_val, "val_acc"), (mn.x_test, "test_acc")):
                y = mn.y_val if metric == "val_acc" else mn.y_test
                pred = model(torch.from_numpy(D.standardize(split[:5_000]))).argmax(1).numpy()
                assert r.history[metric][-1] == pytest.approx((pred == y[:5_000]).mean(), abs=1e-3), metric


@pytest.mark.parametrize("shape", [dict(n_train=300, batch_size=64),  # a short last batch (44)
                                   dict(depth=1, width=64, batch_size=50),
                                   dict(depth=3, width=128, n_train=200, batch_size=200, epochs=1)])
def test_shapes_are_bit_identical_to_train(shape):
    cfgs = [tiny(seed=s, noise=0.2 * s, **shape) for s in range(3)]
    assert_as_train(cfgs, train_many(cfgs))


def test_results_do_not_depend_on_the_batch():
    """A config's run is the same alone, with one partner or with several (and equal to train())."""
    a = tiny(seed=1, noise=0.4)
    ref = train(a)
    for partners in ([], [tiny(seed=2)], [tiny(seed=3, init="xavier"), tiny(seed=4, optimizer="sgd"), a]):
        assert_same_result(ref, train_many([a, *partners])[0])


def test_empty_and_single():
    assert train_many([]) == []
    cfg = tiny(seed=2)
    (res,) = train_many([cfg])
    assert_same_result(train(cfg), res)


@pytest.mark.parametrize("field,value", [("n_train", 320), ("depth", 3), ("width", 32), ("batch_size", 32)])
def test_shape_mismatch_names_the_field(field, value):
    assert field in SHAPE_FIELDS
    with pytest.raises(ValueError, match=f"differ in {field}"):
        train_many([tiny(), tiny(**{field: value})])


def test_refuses_what_is_not_a_config():
    with pytest.raises(TypeError, match="RunConfig"):
        train_many([tiny(), {"seed": 1}])


def test_group_by_shape():
    cfgs = [tiny(), tiny(width=32), tiny(seed=1), tiny(width=32, seed=1), tiny(depth=3)]
    assert group_by_shape(cfgs) == [[0, 2], [1, 3], [4]]
    assert group_by_shape([tiny(seed=s) for s in range(5)], max_group=2) == [[0, 1], [2, 3], [4]]
    assert group_by_shape([tiny(seed=s) for s in range(9)], max_group=8) == [[0, 1, 2, 3, 4], [5, 6, 7, 8]]
    assert group_by_shape([]) == []
    assert group_by_shape([tiny(width=300, seed=s) for s in range(3)], max_width=256) == [[0], [1], [2]]


def test_a_batched_operation_that_differs_is_run_network_by_network(monkeypatch):
    """When the batched form of an operation changes any bit, plan() picks the per-network form: still exact."""
    batched, *rest = B._OPS["linear"]
    monkeypatch.setitem(B._OPS, "linear", (lambda h, w, b, out=None: batched(h, w, b) * (1 + 2 ** -20), *rest))
    monkeypatch.setattr(B, "_PLANS", {})
    cfgs = [tiny(seed=s) for s in range(3)]
    assert_as_train(cfgs, train_many(cfgs))
    assert {v for (name, *_), v in B._PLANS.items() if name == "linear"} == {"looped"}


def test_no_exact_plan_falls_back_to_train(monkeypatch):
    """When neither form reproduces train(), train_many trains the configs one by one with train()."""
    monkeypatch.setattr(B, "_PLANS", {})
    real = B.plan
    monkeypatch.setattr(B, "plan", lambda name, shapes, device: None if name == "grad_bias" else real(name, shapes, device))
    cfgs = [tiny(seed=s) for s in range(2)]
    out = train_many(cfgs)
    assert_as_train(cfgs, out)
    assert all("batch_runs" not in r.meta for r in out)


def test_plan_is_cached_per_shape_and_thread_count(threads):
    shapes = ((2, 8, 16), (2, 4, 16), (2, 4))
    threads(1)
    assert plan("linear", shapes, torch.device("cpu")) in ("batched", "looped")
    assert ("linear", shapes, "cpu", 1) in B._PLANS


# ---------------------------------------------------------------- the cache's run_many


@pytest.fixture
def counted(monkeypatch):
    """Record every call of train_many made by the cache (the configs of each batch)."""
    calls = []
    real = C.train_many

    def spy(cfgs, source=None):
        calls.append(list(cfgs))
        return real(cfgs, source)

    monkeypatch.setattr(C, "train_many", spy)
    return calls


def test_run_many_trains_the_uncached_together_once(fresh_cache, counted):
    cached = tiny(seed=1)
    C.run(cached)
    cfgs = [tiny(seed=0), cached, tiny(seed=2, noise=0.5), tiny(seed=0, width=32)]
    out = C.run_many(cfgs)
    assert [r.config for r in out] == cfgs
    assert [r.cached for r in out] == [False, True, False, False]
    assert counted == [[cfgs[0], cfgs[2]], [cfgs[3]]]  # one batch per shape; the cached run is not retrained
    for c, r in zip(cfgs, out):
        assert_same_result(train(c), r)
        assert C.run_path(c).exists()
    again = C.run_many(cfgs)
    assert all(r.cached for r in again) and len(counted) == 2
    for a, b in zip(out, again):
        assert_same_result(a, b)


def test_run_many_same_config_twice(fresh_cache, counted):
    cfg = tiny(seed=3)
    first, second = C.run_many([cfg, cfg.replace(progress=False)])
    assert counted == [[cfg]]
    assert (first.cached, second.cached) == (False, True)
    assert_same_result(first, second)


def test_run_many_without_cache_writes_nothing(fresh_cache, counted):
    cfgs = [tiny(seed=s) for s in range(2)]
    out = C.run_many(cfgs, cache=False)
    assert not (fresh_cache / "runs").exists() or not any((fresh_cache / "runs").iterdir())
    assert len(counted) == 1 and not any(r.cached for r in out)


def test_run_many_and_run_share_files(fresh_cache):
    """A run cached by run_many is the one run() reads, and the other way round."""
    a, b = tiny(seed=4), tiny(seed=5)
    C.run_many([a, b])
    assert C.run(a).cached and C.run(b).cached


def test_concurrent_run_many_trains_each_run_once(fresh_cache, counted):
    """Two threads asking for overlapping uncached runs: every run is trained once, both get all of theirs."""
    cfgs = [tiny(seed=s) for s in range(3)]
    out = {}
    jobs = {"x": cfgs[:2], "y": cfgs[1:]}
    threads = [threading.Thread(target=lambda k=k, v=v: out.__setitem__(k, C.run_many(v))) for k, v in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trained = [c for batch in counted for c in batch]
    assert sorted(c.seed for c in trained) == [0, 1, 2]
    for k, v in jobs.items():
        assert [r.config for r in out[k]] == v
    assert_same_result(out["x"][1], out["y"][0])


def test_run_many_with_labels_goes_one_by_one(fresh_cache, counted):
    cfgs = [tiny(seed=0), tiny(seed=1)]
    labels = train(cfgs[0]).true_labels  # the same (clean) labels for both: both subsets have 256 images
    out = C.run_many(cfgs, labels=labels)
    assert counted == []
    for c, r in zip(cfgs, out):
        assert_same_result(train(c, labels=labels), r)

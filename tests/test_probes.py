"""memlib.probes: MASC against known subspaces and an independent SVD, edge cases, the baselines, probe_layers, CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import hidden_ref  # tests/ is on sys.path under pytest

import memlib.data as D
from memlib.cache import run
from memlib.cli import main
from memlib.config import RunConfig
from memlib.probes import (
    MASC,
    PROBES,
    LinearProbe,
    NearestClassMean,
    activations,
    check_layers,
    model_test_acc,
    probe_layers,
    representation_layers,
    train_set,
)
from memlib.probes import test_set as split_test

TINY_PAIRS = ["n_train=300", "epochs=2", "depth=2", "width=16", "probe_size=20", "eval_size=100", "batch_size=50",
              "noise=0.4", "noise_kind=uniform", "device=cpu"]


def subspace_data(n_classes=10, dim=50, rank=3, n_per=40, seed=0):
    """Points drawn from known class subspaces: (bases [C, dim, rank], x [C * n_per, dim], labels [C * n_per])."""
    rng = np.random.default_rng(seed)
    bases = rng.standard_normal((n_classes, dim, rank))
    x = np.concatenate([rng.standard_normal((n_per, rank)) @ b.T for b in bases])
    return bases, x, np.repeat(np.arange(n_classes), n_per)


def reference_masc(a, labels, points, variance, n_classes):
    """MASC written out plainly: [A; -A], centring, SVD, k by cumulative explained variance, min angle."""
    angles = np.empty((len(points), n_classes))
    for c in range(n_classes):
        ac = a[labels == c].astype(np.float64)
        aug = np.concatenate([ac, -ac])
        aug = aug - aug.mean(0)  # a no-op: the augmented set has zero mean
        _, s, vt = np.linalg.svd(aug, full_matrices=False)
        share = np.cumsum(s ** 2) / np.sum(s ** 2)
        k = int(np.argmax(share >= variance)) + 1
        u = vt[:k].T  # [dim, k]
        proj = np.linalg.norm(points @ u, axis=1) / np.linalg.norm(points, axis=1)
        angles[:, c] = np.arccos(np.clip(proj, 0, 1))
    return angles, angles.argmin(1)


# ---------------------------------------------------------------- MASC: correctness


def test_masc_recovers_known_subspaces_exactly():
    """Noiseless points from 10 random 3-d subspaces of R^50: dimension 3 each, accuracy 1, angle 0 to own class."""
    bases, x, y = subspace_data()
    rng = np.random.default_rng(1)
    xt = np.concatenate([rng.standard_normal((25, 3)) @ b.T for b in bases])
    yt = np.repeat(np.arange(10), 25)
    for method in MASC.METHODS:  # 40 > 50 is false: 'auto' takes the SVD; 'gram' forces eigh
        m = MASC(0.99, method).fit(x, y)
        assert m.dims_.tolist() == [3] * 10
        assert np.array_equal(m.predict(xt), yt)
        ang = m.angles(xt)
        assert np.allclose(ang[np.arange(len(yt)), yt], 0, atol=1e-6)
        ang[np.arange(len(yt)), yt] = np.inf
        assert (ang > 0.1).all()  # well away from every other class
    assert MASC(1.0).fit(x, y).dims_.tolist() == [3] * 10  # variance=1 keeps the numerical rank


@pytest.mark.parametrize("n_per, dim", [(60, 20), (15, 20)])  # n > dim (eigh of the Gram) and n < dim (SVD)
def test_masc_matches_independent_svd(n_per, dim):
    """Predictions equal and angles within 1e-8 of the plain [A; -A] SVD computation, on random data."""
    rng = np.random.default_rng(n_per)
    centres = rng.standard_normal((5, dim)) * 2
    y = np.repeat(np.arange(5), n_per)
    x = centres[y] + rng.standard_normal((len(y), dim))
    xt = centres[rng.integers(0, 5, 300)] + rng.standard_normal((300, dim))
    for variance in (0.5, 0.9, 0.99):
        ref_ang, ref_pred = reference_masc(x, y, xt, variance, 5)
        for method in MASC.METHODS:
            m = MASC(variance, method).fit(x, y)
            assert np.array_equal(m.predict(xt), ref_pred), (variance, method)
            assert np.abs(m.angles(xt) - ref_ang).max() < 1e-8, (variance, method)


def test_masc_gram_and_svd_agree_on_mnist_pixels():
    """The fast Gram/eigh path gives the SVD's subspaces on real, ill-conditioned inputs (constant borders)."""
    x, y = split_test()
    a, b = MASC(0.99, "gram").fit(x[:3000], y[:3000]), MASC(0.99, "svd").fit(x[:3000], y[:3000])
    assert np.array_equal(a.dims_, b.dims_)
    assert np.abs(a.angles(x[3000:4000]) - b.angles(x[3000:4000])).max() < 1e-9


def test_masc_is_scale_invariant():
    """Multiplying test points by positive scalars changes neither angles nor predictions."""
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((400, 30)), rng.integers(0, 10, 400)
    xt = rng.standard_normal((500, 30))
    m = MASC(0.9).fit(x, y)
    pred, ang = m.predict(xt), m.angles(xt)
    for scale in (1e-6, 0.37, 3.0, 1e6):
        assert np.array_equal(m.predict(xt * scale), pred)
        assert np.allclose(m.angles(xt * scale), ang, atol=1e-12)
    per_point = rng.uniform(1e-3, 1e3, (500, 1))
    assert np.array_equal(m.predict(xt * per_point), pred)


# ---------------------------------------------------------------- MASC: edge cases


def test_masc_class_with_fewer_samples_than_dimensions():
    """Two points in R^10 span at most a 2-d subspace, whatever the variance share."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal((2, 10)), rng.standard_normal((20, 6)) @ rng.standard_normal((6, 10))])
    y = np.array([0, 0] + [1] * 20)  # class 1 fills a 6-d subspace
    m = MASC(1.0).fit(x, y)
    assert m.dims_.tolist() == [2, 6]
    assert m.predict(x[:2]).tolist() == [0, 0]  # its own points lie in it (angle 0)


def test_masc_empty_class_is_never_predicted():
    """A class without samples has the zero subspace: angle pi/2, never predicted."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((60, 8)), rng.choice([0, 2], 60)
    m = MASC(0.99).fit(x, y, n_classes=4)
    assert m.dims_[1] == 0 and m.dims_[3] == 0
    assert np.allclose(m.angles(x[:5])[:, [1, 3]], np.pi / 2)
    pred = m.predict(rng.standard_normal((200, 8)))
    assert set(pred.tolist()) <= {0, 2}


def test_masc_zero_vectors():
    """All-zero training rows are ignored; an all-zero test row has angle pi/2 everywhere and gets the largest class."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 6))
    y = np.array([0] * 10 + [1] * 25 + [2] * 15)
    with_zeros = np.concatenate([x, np.zeros((40, 6))])
    y_zeros = np.concatenate([y, np.full(40, 2)])  # 40 zero rows of class 2 must not make it the largest
    m, ref = MASC(0.9).fit(with_zeros, y_zeros), MASC(0.9).fit(x, y)
    assert m.counts_.tolist() == [10, 25, 15] and m.fallback_ == 1
    xt = np.concatenate([rng.standard_normal((20, 6)), np.zeros((3, 6))])
    assert np.array_equal(m.predict(xt[:20]), ref.predict(xt[:20]))
    assert m.predict(xt)[-3:].tolist() == [1, 1, 1]
    assert np.allclose(m.angles(xt)[-3:], np.pi / 2)
    with pytest.raises(ValueError, match="all-zero"):
        MASC().fit(np.zeros((5, 3)), np.arange(5))


@pytest.mark.parametrize("variance", [0, -0.1, 1.5, float("nan"), True, "0.9"])
def test_masc_rejects_bad_variance(variance):
    with pytest.raises(ValueError, match=r"variance=.*\(0, 1\]"):
        MASC(variance)


def test_masc_rejects_bad_arguments():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((20, 4)), rng.integers(0, 3, 20)
    with pytest.raises(ValueError, match="not fitted"):
        MASC().predict(x)
    with pytest.raises(ValueError, match="not fitted"):
        MASC().angles(x)
    with pytest.raises(ValueError, match=r"labels of shape \(19,\) do not match"):
        MASC().fit(x, y[:19])
    with pytest.raises(ValueError, match="2-d array"):
        MASC().fit(x[0], y[:1])
    with pytest.raises(ValueError, match="integer class indices"):
        MASC().fit(x, y.astype(float))
    with pytest.raises(ValueError, match="n_classes=2"):
        MASC().fit(x, np.full(20, 2), n_classes=2)
    with pytest.raises(ValueError, match="label -1"):
        MASC().fit(x, np.full(20, -1))
    with pytest.raises(ValueError, match="NaN or infinite"):
        MASC().fit(np.where(x > 1, np.inf, x), y)
    with pytest.raises(ValueError, match="method='qr'"):
        MASC(method="qr")
    m = MASC().fit(x, y)
    with pytest.raises(ValueError, match=r"fitted on 4-d points"):
        m.predict(rng.standard_normal((3, 5)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        m.predict(np.full((2, 4), np.nan))
    assert m.predict(np.zeros((0, 4))).shape == (0,)


# ---------------------------------------------------------------- baselines


def blobs(seed=7, n_per=200, dim=20, n_classes=4):
    """Well-separated Gaussian blobs: (x, y, x_test, y_test)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim)) * 6
    y, yt = np.repeat(np.arange(n_classes), n_per), np.repeat(np.arange(n_classes), 50)
    return centres[y] + rng.standard_normal((len(y), dim)), y, centres[yt] + rng.standard_normal((len(yt), dim)), yt


def test_ncm_and_linear_probe_separate_blobs():
    x, y, xt, yt = blobs()
    assert (NearestClassMean().fit(x, y).predict(xt) == yt).mean() >= 0.99
    assert (LinearProbe(epochs=5, seed=0).fit(x, y).predict(xt) == yt).mean() >= 0.99


def test_ncm_empty_class_and_zero_point():
    x, y, xt, _ = blobs()
    m = NearestClassMean().fit(x, np.where(y == 1, 0, y), n_classes=5)
    assert not np.isin(m.predict(xt), [1, 4]).any()
    assert m.predict(np.zeros((1, x.shape[1]))).tolist() == [m.fallback_] == [0]  # class 0 now holds 400 points
    with pytest.raises(ValueError, match="not fitted"):
        NearestClassMean().predict(xt)


def test_linear_probe_is_deterministic_and_leaves_global_rng_alone():
    x, y, xt, _ = blobs(n_per=100)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    a, b = LinearProbe(epochs=3, seed=5).fit(x, y), LinearProbe(epochs=3, seed=5).fit(x, y)
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads
    assert torch.equal(a.weight_, b.weight_) and np.array_equal(a.decision(xt), b.decision(xt))
    c = LinearProbe(epochs=3, seed=6, batch_size=64).fit(x, y)
    assert not torch.equal(a.weight_, c.weight_)


@pytest.mark.parametrize("kw, match", [(dict(epochs=0), "epochs=0"), (dict(lr=-1.0), "lr=-1.0"),
                                       (dict(weight_decay=float("inf")), "weight_decay=inf"),
                                       (dict(seed=-3), "seed=-3"), (dict(threads=0), "threads=0")])
def test_linear_probe_rejects_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        LinearProbe(**kw)


def test_linear_probe_rejects_wrong_dimension():
    x, y, _, _ = blobs(n_per=20)
    with pytest.raises(ValueError, match="not fitted"):
        LinearProbe().predict(x)
    with pytest.raises(ValueError, match="fitted on 20-d points"):
        LinearProbe(epochs=1).fit(x, y).predict(x[:, :5])


# ---------------------------------------------------------------- on a trained run


@pytest.fixture(scope="module")
def tiny_run(memlib_cache):
    """The tiny noisy run of the brief, trained once into the session cache (the CLI tests reload it)."""
    return run(RunConfig(n_train=300, epochs=2, depth=2, width=16, probe_size=20, eval_size=100, batch_size=50,
                         noise=0.4, noise_kind="uniform", device="cpu"))


def test_activations_layers_and_values(tiny_run):
    x, noisy, true = train_set(tiny_run)
    assert x.shape == (300, 784) and x.dtype == np.float32
    assert np.array_equal(noisy, tiny_run.labels) and np.array_equal(true, tiny_run.true_labels)
    assert representation_layers(tiny_run) == ["input", "hidden1", "hidden2"] == representation_layers(2)
    mn = D.load_mnist()
    raw = mn.x_train[tiny_run.train_idx[:50]]
    acts = activations(tiny_run, raw, layers=["hidden2", "input"])
    assert list(acts) == ["input", "hidden2"]  # network order, whatever the request's order
    assert np.array_equal(acts["input"], x[:50])  # uint8 is standardised; floats are taken as standardised
    with torch.no_grad():
        hs, _ = hidden_ref(tiny_run.model(), torch.from_numpy(x[:50]))
    assert np.allclose(acts["hidden2"], hs[1].numpy(), atol=1e-6) and (acts["hidden2"] >= 0).all()
    both = activations(tiny_run, raw.reshape(50, 28, 28), chunk=7)
    assert np.allclose(both["hidden1"], hs[0].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"layers=\['hidden3'\].*input, hidden1, hidden2"):
        activations(tiny_run, raw, layers=["hidden3"])
    with pytest.raises(ValueError, match="shape"):
        activations(tiny_run, raw[:, :100])
    assert check_layers(tiny_run, "hidden1") == ["hidden1"]


def test_probe_layers_on_a_tiny_run(tiny_run):
    out = probe_layers(tiny_run)
    assert list(out) == ["input", "hidden1", "hidden2"]
    for accs in out.values():
        assert list(PROBES) == ["masc_corrupted", "masc_true", "ncm", "linear"]
        assert list(accs) == [*PROBES, *(f"{k}_val" for k in PROBES)]  # test accuracies, then validation ones
        assert all(0.0 <= v <= 1.0 for v in accs.values())
    assert out["input"]["masc_true"] > 0.5  # 300 true-labelled digits: far above chance
    assert 0.0 <= model_test_acc(tiny_run) <= 1.0
    assert list(probe_layers(tiny_run, layers=["hidden1"])) == ["hidden1"]
    with pytest.raises(ValueError, match="layers="):
        probe_layers(tiny_run, layers=["classifier"])
    with pytest.raises(ValueError, match="variance="):
        probe_layers(tiny_run, variance=0)


# ---------------------------------------------------------------- CLI


def test_cli_masc_json(tiny_run, capsys):
    assert main(["masc", *TINY_PAIRS, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"train_acc", "test_acc", "layers"}
    assert list(out["layers"]) == ["input", "hidden1", "hidden2"]
    assert out["layers"] == probe_layers(tiny_run)
    assert out["train_acc"] == round(tiny_run.final("train_acc"), 6)


def test_cli_masc_table_and_variance(tiny_run, capsys):
    assert main(["masc", *TINY_PAIRS, "--variance", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model") and lines[1].split() == ["layer", *PROBES]
    assert [ln.split()[0] for ln in lines[2:]] == ["input", "hidden1", "hidden2"]
    want = probe_layers(tiny_run, variance=0.5)["hidden2"]["masc_true"]
    assert float(lines[4].split()[2]) == pytest.approx(want, abs=6e-5)


@pytest.mark.parametrize("args, message", [(["bogus=1"], "unknown RunConfig field 'bogus'"),
                                           (["noise=2"], "RunConfig.noise=2.0 is not allowed"),
                                           (["--variance", "1.5"], "variance=1.5 is not allowed")])
def test_cli_masc_rejects_bad_input(args, message, capsys):
    assert main(["masc", *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_masc_as_a_module(tiny_run):
    """`python -m memlib masc ... --json` in a subprocess reads the cached run and prints one JSON object."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-m", "memlib", "masc", *TINY_PAIRS, "--json"], capture_output=True,
                          text=True, timeout=120, cwd=root)  # inherits the session's MEMLIB_CACHE
    assert done.returncode == 0, done.stderr
    assert list(json.loads(done.stdout)["layers"]) == ["input", "hidden1", "hidden2"]

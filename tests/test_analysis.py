"""analysis: gradient statistics, drift measures, CKA and rank correlation against independent computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from memlib import analysis as A
from memlib.cache import run
from memlib.train import train


def _hsic_cka(x, y):
    """Linear CKA the kernel way (Gretton's HSIC, centring matrix H), independent of memlib's feature-space formula."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, l_) / math.sqrt(hsic(k, k) * hsic(l_, l_))


@pytest.mark.parametrize("d1,d2", [(5, 5), (8, 3), (3, 20)])
def test_linear_cka_matches_kernel_formula(d1, d2):
    """Feature-space CKA equals the HSIC (Gram-matrix) definition on random data."""
    rng = np.random.default_rng(d1 * 100 + d2)
    x, y = rng.normal(size=(40, d1)), rng.normal(size=(40, d2)) + 0.5 * rng.normal(size=(40, 1))
    assert A.linear_cka(x, y) == pytest.approx(_hsic_cka(x, y), rel=1e-10)


def test_linear_cka_invariances():
    """CKA is 1 for a representation with itself, unchanged by rotation and isotropic scaling, not by anisotropic."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert A.linear_cka(x, x) == pytest.approx(1.0)
    assert A.linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0)
    y = x * np.array([10, 1, 1, 1, 1, 0.1])
    assert A.linear_cka(x, y) < 0.99


def test_linear_cka_rejects_bad_shapes():
    """Different numbers of points, or non-2-D input, raise a clear error."""
    with pytest.raises(ValueError, match="same number of rows"):
        A.linear_cka(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError):
        A.linear_cka(np.zeros(4), np.zeros(4))


def test_cosine_rows_reference_and_zero_rows():
    """Row-wise cosine equals a plain loop; a zero row gives 0, not nan."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(7, 4)), rng.normal(size=(7, 4))
    a[3] = 0
    ref = [0.0 if not np.any(u) else float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
           for u, v in zip(a, b, strict=True)]
    np.testing.assert_allclose(A.cosine_similarity_rows(a, b), ref, rtol=1e-12)


def _spearman_by_hand(a, b) -> float:
    """The first edition's own Spearman (average ranks, Pearson of ranks): the reference scipy must match."""
    def ranks(x):
        x = np.asarray(x, dtype=np.float64)
        r = np.empty(len(x))
        r[np.argsort(x, kind="mergesort")] = np.arange(1, len(x) + 1)
        for v in np.unique(x):
            r[x == v] = r[x == v].mean()
        return r - r.mean()

    ra, rb = ranks(a), ranks(b)
    return float((ra * rb).sum() / np.sqrt((ra**2).sum() * (rb**2).sum()))


@pytest.mark.parametrize("n,ties", [(5, False), (20, False), (20, True), (200, True)])
def test_scipy_spearman_matches_the_hand_written_one(n, ties):
    """The swap to scipy.stats keeps the numbers: the first edition's computation to the bit, and scipy's own
    spearmanr to 1e-12."""
    g = np.random.default_rng(n)
    a, b = g.normal(size=n), g.normal(size=n) + g.normal(size=n)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    assert A.spearman(a, b) == _spearman_by_hand(a, b)
    assert A.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)


def test_spearman_against_textbook_formula_and_ties():
    """Without ties Spearman equals 1 - 6 sum d^2 / (n (n^2 - 1)); ties get average ranks."""
    rng = np.random.default_rng(2)
    a, b = rng.permutation(12).astype(float), rng.permutation(12).astype(float)
    d = a - b  # ranks are the values + 1 here
    assert A.spearman(a, b) == pytest.approx(1 - 6 * (d**2).sum() / (12 * (144 - 1)))
    np.testing.assert_array_equal(A.rankdata([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    assert A.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    assert math.isnan(A.spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        A.spearman([1, 2], [1, 2, 3])


def test_epoch_grad_stats_against_loops(make_cfg):
    """Per-epoch mean and variance equal explicit per-epoch NumPy computations."""
    res = train(make_cfg(epochs=3, n_train=200, batch_size=64))
    mean, var = A.epoch_grad_stats(res, "w")
    assert mean.shape == var.shape == (3, res.config.depth + 1)
    for e in range(3):
        g = res.grad_w[res.step_epoch == e + 1].astype(np.float64)
        np.testing.assert_allclose(mean[e], g.mean(0), rtol=1e-12)
        np.testing.assert_allclose(var[e], g.var(0, ddof=1), rtol=1e-10)
    m_b, _ = A.epoch_grad_stats(res, "b")
    assert not np.allclose(m_b, mean)
    with pytest.raises(ValueError, match="param"):
        A.epoch_grad_stats(res, "x")


def test_drift_starts_at_one_and_matches_manual(make_cfg):
    """Similarity to init: 1 at checkpoint 0, later equal to a manual computation; drift speed is its negative diff."""
    res = run(make_cfg(epochs=3))
    cos = A.cosine_drift(res, 1)
    assert cos[0] == pytest.approx(1.0)
    r = res.reps["hidden1"].astype(np.float64)
    assert cos[2] == pytest.approx(A.cosine_similarity_rows(r[2], r[0]).mean())
    assert A.cka_drift(res, "hidden2")[3] == pytest.approx(_hsic_cka(res.reps["hidden2"][3].astype(float),
                                                                     res.reps["hidden2"][0].astype(float)), rel=1e-6)
    np.testing.assert_allclose(A.drift_speed(res, 1), -np.diff(cos))
    with pytest.raises(ValueError, match="recorded layers"):
        A.cosine_drift(res, 7)


def test_drift_speed_needs_every_epoch(make_cfg):
    """Per-epoch drift on a run that kept only the ends raises a clear error."""
    with pytest.raises(ValueError, match="rep_epochs"):
        A.drift_speed(run(make_cfg(rep_epochs="ends")), 1)


def test_spread_and_peak(make_cfg):
    """Seed spread gives mean/min/max; peak finds the best epoch after initialization."""
    s = A.spread([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_array_equal(s.mean, [2.0, 4.0])
    assert s.fmt(1, 1) == "4.0 [2.0, 6.0]"
    assert A.spread([0.5]).fmt(2) == "0.50"
    with pytest.raises(ValueError):
        A.spread([])
    res = run(make_cfg(epochs=3))
    e, v = A.peak(res, "test_acc")
    assert 1 <= e <= 3 and v == res.history["test_acc"][1:].max()


@pytest.mark.parametrize("holds,outcome", [((True, True), "supported"), ((True, False), "partly supported"),
                                           ((False, False), "not supported at this scale"),
                                           ((), "not supported at this scale")])
def test_verdict_outcome(holds, outcome):
    """The outcome follows the per-check booleans only."""
    from memlib.verdicts import Check, Verdict

    v = Verdict("c", "r", tuple(Check("x", (1.0,) if h else (-1.0,)) for h in holds), (("x", "1"),))
    assert v.holds == holds
    assert v.outcome == outcome
    assert v.to_dict()["outcome"] == outcome

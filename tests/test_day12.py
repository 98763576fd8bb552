"""Chapter 10's table beside the study's Day 12: planted numbers on both sides of the study's figures."""
from __future__ import annotations

import numpy as np
import pytest
from test_verdicts import fake  # tests/ is on sys.path under pytest

from memlib import analysis as A
from memlib import report as R
from memlib.data import corrupt_labels
from memlib.experiments import base
from memlib.study import DAY12, Reported


def test_reported_format_and_offset():
    r = Reported(0.84, 0.87)
    assert r.fmt() == "~84-87 %" and Reported(0.99, 0.99).fmt() == "~99 %"
    assert r.offset(0.85) == 0 and r.offset(0.87) == 0
    assert r.offset(0.80) == pytest.approx(-0.04) and r.offset(0.90) == pytest.approx(0.03)
    with pytest.raises(ValueError, match="0 <= lo <= hi <= 1"):
        Reported(0.9, 0.8)


def test_day12_is_the_study_setup_of_chapter_10_at_full_scale():
    """The full mode's chapter 10 runs have every setting the study's Day 12 states."""
    cfg = base("10-dataset-shift", "full")
    assert {k: getattr(cfg, k) for k in DAY12.setup} == DAY12.setup
    assert sorted(DAY12.figures) == [0.0, 0.4]


@pytest.mark.parametrize("kind", ["symmetric", "uniform"])
def test_wrong_share_matches_corrupt_labels(kind):
    y = np.random.default_rng(0).integers(0, 10, 200_000)
    _, changed = corrupt_labels(y, 0.4, kind, np.random.default_rng(1))
    assert changed.mean() == pytest.approx(A.wrong_share(0.4, kind), abs=0.005)
    with pytest.raises(ValueError, match="kind='gaussian'"):
        A.wrong_share(0.4, "gaussian")


def _run(seed, epochs, fit=0.9, train=0.7):
    r = fake(seed=seed, epochs=epochs)
    r.history["train_acc"] = np.full(epochs + 1, train)
    r._fit = {"train_acc": fit, "train_acc_clean": fit, "train_acc_corrupted_noisy": 0.0, "loss": 1.0,
              "train_acc_corrupted_true": 0.0}
    return r


def test_at_epoch_takes_the_finished_network_only_at_the_last_epoch():
    r = _run(0, 20)
    assert A.at_epoch(r, "train_acc", 20) == 0.9  # final_fit
    assert A.at_epoch(r, "train_acc", 15) == 0.7  # the epoch's own pass
    assert A.at_epoch(r, "test_acc", 15) == r.history["test_acc"][15]
    with pytest.raises(ValueError, match="epoch=21 is not allowed"):
        A.at_epoch(r, "train_acc", 21)


@pytest.mark.parametrize("epochs, epoch, last", [(20, 15, False), (15, 15, True), (4, 4, True)])
def test_shift_numbers_epoch(epochs, epoch, last):
    groups = {p: [_run(s, epochs) for s in range(3)] for p in (0.0, 0.4)}
    n = A.shift_numbers(groups, 15)
    assert (n["epoch"], n["last"], n["seeds"], n["swing_from"]) == (epoch, last, 3, max(1, epoch - 4))
    assert n["acc"][0.4]["train_acc"] == [0.9 if last else 0.7] * 3


def _nums(clean, noisy, wrong=0.4, clean_fit=0.9, memorized=0.3, seeds=3, swings=(0.01, 0.04)):
    """Planted shift_numbers: clean and noisy (train, test, shift) means, with a small per-seed wobble."""
    wob = np.linspace(-0.005, 0.005, seeds) if seeds > 1 else np.zeros(1)

    def acc(tr, te, sh, fit, mem):
        vals = dict(train_acc=tr, test_acc=te, shift_acc=sh, train_acc_clean=fit, train_acc_corrupted_noisy=mem)
        return {k: list(v + wob) for k, v in vals.items()}

    return {"epoch": 15, "last": True, "seeds": seeds, "wrong": {0.0: 0.0, 0.4: wrong}, "swing_from": 11,
            "swing": {0.0: [swings[0]] * seeds, 0.4: [swings[1]] * seeds},
            "acc": {0.0: acc(*clean, clean[0], np.nan), 0.4: acc(*noisy, clean_fit, memorized)}}


# The build's noisy networks lose more to rotation than the study's; then the other way round.
MORE = _nums(clean=(0.995, 0.97, 0.92), noisy=(0.75, 0.90, 0.70))
LESS = _nums(clean=(0.97, 0.95, 0.80), noisy=(0.55, 0.93, 0.79), memorized=0.05, swings=(0.03, 0.02))


def test_table_rows_and_differences_both_ways():
    more, less = R.day12_table(MORE, "full").rows, R.day12_table(LESS, "quick").rows
    assert [r[:3] for r in more] == [
        ("0 % noise", "training images, labels as given", "~99 %"),
        ("0 % noise", "test images", "not reported"),
        ("0 % noise", "rotated test images", "~90-91 %"),
        ("40 % noise", "training images, labels as given", "~60-61 %"),
        ("40 % noise", "test images", "not reported"),
        ("40 % noise", "rotated test images", "~84-87 %")]
    assert more[0][3] == "99.5 ± 0.5 %" and more[0][4] == "+0.5 points"
    assert more[5][4] == "-14.0 points" and more[3][4] == "+14.0 points"
    assert less[0][4] == "-2.0 points" and less[2][4] == "-10.0 points" and less[3][4] == "-5.0 points"
    assert R.day12_table(_nums((0.99, 0.97, 0.905), (0.605, 0.9, 0.85)), "full").rows[2][4] == "within"
    assert "epoch 15" in R.day12_table(MORE, "full").head[3]


def test_notes_follow_the_numbers_both_ways():
    more, less = "\n".join(R.day12_notes(MORE, "symmetric")), "\n".join(R.day12_notes(LESS, "symmetric"))
    assert "22.0 ± 0.0 points (mean ± sd) below the clean ones" in more and "gap is larger than the study's" in more
    assert "1.0 ± 0.0 points (mean ± sd) below the clean ones" in less and "gap is smaller than the study's" in less
    assert "the larger penalty is the noisy networks', by 15.0 points" in more
    assert "the larger penalty is the clean networks', by 1.0 points" in less
    assert "they are 15.0 points above that mark" in more and "they are 5.0 points below that mark" in less
    assert "they fit 90.0 ± 0.5 % of the unchanged labels and 30.0 ± 0.5 % of the changed ones" in more
    # the study's ~60-61 % against the two ways of drawing noise: at 60 % (symmetric), below 64 % (uniform)
    assert "scores 60 %, and the study's ~60-61 % is at that mark" in more
    assert "scores 64 %, and the study's ~60-61 % is below that mark" in more
    assert "from epoch 11 to 15, it moves within 4.0 points for the noisy networks and 1.0 for the clean" in more
    assert "the noisy networks' is the larger" in more and "the noisy networks' is the smaller" in less
    assert "the finished network's" in more
    assert "epoch 15's own pass" in "\n".join(R.day12_notes({**MORE, "last": False}, "symmetric"))


def test_notes_with_one_seed_give_no_spread():
    notes = "\n".join(R.day12_notes(_nums((0.96, 0.85, 0.77), (0.61, 0.69, 0.62), seeds=1), "symmetric"))
    assert "15.0 points below the clean ones;" in notes and "±" not in notes


@pytest.mark.parametrize("mode, epoch, says", [
    ("full", 15, "Scale: the study's (50,000 training images, epoch 15, the runs' last)"),
    ("standard", 15, "Scale differs from the study's: training images 5,000 (study: 50,000). The table is at "
                     "epoch 15 of the runs' 20"),
    ("quick", 4, "Scale differs from the study's: training images 1,000 (study: 50,000); epochs 4 (study: 15)."),
])
def test_scale_line(mode, epoch, says):
    line = R.day12_scale(base("10-dataset-shift", mode), epoch)
    assert line.startswith(says)
    assert ("not expected to match" in line) == (mode != "full")


def test_shift_numbers_on_trained_runs(make_cfg):
    """Real tiny runs: before the last epoch the numbers are the history's, at it the finished network's; the training
    accuracy is the clean and the memorized parts weighted by the measured share of wrong labels."""
    from memlib.train import train

    groups = {p: [train(make_cfg(epochs=3, noise=p, seed=s)) for s in (0, 1)] for p in (0.0, 0.4)}
    early, last = A.shift_numbers(groups, 2), A.shift_numbers(groups, 15)
    assert (early["epoch"], early["last"], last["epoch"], last["last"]) == (2, False, 3, True)
    h = groups[0.4][1].history["shift_acc"]
    assert (early["swing_from"], early["swing"][0.4][1]) == (1, max(h[1:3]) - min(h[1:3]))
    assert early["acc"][0.4]["shift_acc"] == [r.history["shift_acc"][2] for r in groups[0.4]]
    assert last["acc"][0.4]["train_acc"] == [r.final_fit()["train_acc"] for r in groups[0.4]]
    n = groups[0.4][0].config.n_train
    w = round(0.4 * n) / n  # symmetric noise changes exactly round(p * n) labels
    assert last["wrong"] == {0.0: 0.0, 0.4: w}
    acc = last["acc"][0.4]
    for t, c, m in zip(acc["train_acc"], acc["train_acc_clean"], acc["train_acc_corrupted_noisy"], strict=True):
        assert t == pytest.approx((1 - w) * c + w * m, abs=1e-6)

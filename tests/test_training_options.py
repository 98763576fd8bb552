"""Training options used by chapter 11: early stopping at a training accuracy, and training on given labels."""
from __future__ import annotations

import numpy as np
import pytest

from memlib import analysis as A
from memlib import probes as PR
from memlib.cache import run, run_path
from memlib.config import RunConfig
from memlib.modes import masc_config
from memlib.train import train


def test_stop_at_ends_training_early_and_trims_every_record(make_cfg):
    """Training stops at the first epoch whose train accuracy reaches stop_at; all arrays cover only the epochs run."""
    cfg = make_cfg(epochs=30, stop_at=0.5, rep_epochs="all")
    res = train(cfg)
    acc = res.history["train_acc"]
    assert res.epochs_run < 30 and acc[-1] >= 0.5 and (acc[1:-1] < 0.5).all()
    steps = res.epochs_run * -(-cfg.n_train // cfg.batch_size)
    assert res.grad_w.shape[0] == res.batch_loss.shape[0] == len(res.step_epoch) == steps
    assert list(res.rep_epochs) == list(range(res.epochs_run + 1))
    assert res.reps["hidden1"].shape[0] == res.epochs_run + 1
    assert A.epoch_grad_stats(res)[0].shape[0] == res.epochs_run
    assert res.summary()["epochs"] == res.epochs_run


def test_stop_at_with_end_representations(make_cfg):
    """With rep_epochs='ends', the last slot holds the epoch training actually stopped at."""
    res = train(make_cfg(epochs=30, stop_at=0.5, rep_epochs="ends"))
    full = train(make_cfg(epochs=res.epochs_run, rep_epochs="ends"))
    assert list(res.rep_epochs) == [0, res.epochs_run]
    np.testing.assert_array_equal(res.reps["hidden2"], full.reps["hidden2"])


def test_stop_at_never_reached_runs_every_epoch(make_cfg):
    """A threshold above what the run reaches trains all epochs."""
    res = train(make_cfg(epochs=2, stop_at=1.0, noise=1.0))
    assert res.epochs_run == 2


@pytest.mark.parametrize("bad", [0, 1.5, -0.2, True, "0.9"])
def test_stop_at_validated(bad):
    """stop_at outside (0, 1] is refused with the field's name."""
    with pytest.raises(ValueError, match="stop_at"):
        RunConfig(stop_at=bad)


def test_labels_override_and_its_cache(make_cfg):
    """Given labels replace the noisy ones, set the corrupted mask, and are cached under their own key."""
    cfg = make_cfg()
    plain = run(cfg)
    new = (plain.true_labels + 3) % 10
    res = run(cfg, labels=new)
    np.testing.assert_array_equal(res.labels, new)
    assert res.corrupted.all() and not res.cached
    assert run(cfg, labels=new).cached and run_path(cfg, new) != run_path(cfg)
    assert not np.array_equal(res.weights["layers.0.weight"], plain.weights["layers.0.weight"])
    with pytest.raises(ValueError, match="labels"):
        train(cfg, labels=new[:10])
    with pytest.raises(ValueError, match="labels"):
        train(cfg, labels=new + 10)


def test_probe_run_caches_its_table(make_cfg):
    """probe_run computes the probe table once and then reads it from beside the run."""
    cfg = make_cfg(noise=0.4, noise_kind="uniform")
    res, table = PR.probe_run(cfg)
    assert set(table) == {"model_test_acc", "layers"} and list(table["layers"]) == ["input", "hidden1", "hidden2"]
    again = PR.probe_run(cfg)[1]
    assert again == table
    layer, acc = PR.best_layer(table)
    assert layer != "input" and acc == max(v["masc_corrupted"] for k, v in table["layers"].items() if k != "input")
    assert PR.best_layer(table, hidden_only=False)[1] == max(v["masc_corrupted"] for v in table["layers"].values())
    relabeled = PR.masc_relabel(res, layer)
    assert relabeled.shape == res.labels.shape and relabeled.min() >= 0 and relabeled.max() <= 9
    with pytest.raises(ValueError, match="probe"):
        PR.best_layer(table, "svm")


def test_masc_config_scales():
    """Chapter 11's config uses the paper's uniform noise, stops at 99 % and keeps no representations."""
    cfg = masc_config("quick", noise=0.6)
    assert cfg.noise_kind == "uniform" and cfg.stop_at == 0.99 and cfg.rep_epochs == "none" and cfg.noise == 0.6
    with pytest.raises(ValueError, match="mode"):
        masc_config("huge")


def test_on_epoch_sees_every_epoch_and_changes_nothing(make_cfg):
    """on_epoch gets the run so far after init and each epoch but the last; the finished run is bit-identical."""
    from helpers import assert_same_result

    cfg = make_cfg(epochs=3)
    seen = []
    res = train(cfg, on_epoch=lambda part: seen.append(part))
    assert [p.epochs_run for p in seen] == [0, 1, 2]
    assert seen[1].grad_w.shape[0] == -(-cfg.n_train // cfg.batch_size)
    np.testing.assert_array_equal(seen[2].history["test_acc"], res.history["test_acc"][:3])
    assert_same_result(res, train(cfg))


def test_cancelled_run_stops_and_caches_nothing(make_cfg):
    """Raising Cancelled from on_epoch stops training, propagates, and leaves nothing in the cache."""
    from memlib.train import Cancelled

    cfg = make_cfg(epochs=5, seed=11)

    def stop(part):
        if part.epochs_run == 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        run(cfg, on_epoch=stop)
    assert not run_path(cfg).exists()

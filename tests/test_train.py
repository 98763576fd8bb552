"""memlib.train.train: checked against plain autograd, smoke runs on tiny configs, edge cases, determinism."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_same_result, hidden_ref, tiny  # tests/ is on sys.path under pytest

import memlib.data as D
from memlib.config import INITS, OPTIMIZERS, RunConfig
from memlib.models import MLP, layer_names
from memlib.rng import rng_for, torch_generator
from memlib.train import METRICS, EvalForward, RunResult, pick_device, train


@pytest.fixture(scope="module")
def noisy_run(memlib_cache) -> RunResult:
    """One tiny run with 30% symmetric noise, shared by the read-only checks."""
    return train(tiny(noise=0.3))


def reference_data(cfg: RunConfig):
    """The run's training tensors rebuilt by hand: standardised images, noisy labels, true labels."""
    mn = D.load_mnist()
    idx = D.train_subset(cfg.n_train, cfg.seed)
    true = mn.y_train[idx]
    noisy, _ = D.corrupt_labels(true, cfg.noise, cfg.noise_kind, rng_for(cfg.seed, "noise"))
    x = torch.from_numpy((mn.x_train[idx].astype(np.float32) / 256 - 0.1307) / 0.3081)
    return idx, x, torch.from_numpy(noisy), true


# ---------------------------------------------------------------- against an independent computation


def test_first_batch_gradient_norms_match_autograd():
    """grad_w[0] / grad_b[0] equal each Linear layer's weight/bias gradient norm on the first mini-batch, by hand."""
    cfg = tiny(noise=0.3, depth=3)
    res = train(cfg)
    idx, x, y, _ = reference_data(cfg)
    model = MLP(cfg.depth, cfg.width, cfg.init, torch_generator(cfg.seed, "init"))
    batch = torch.randperm(cfg.n_train, generator=torch_generator(cfg.seed, "batches"))[: cfg.batch_size]
    h = x[batch]
    for layer in model.layers[:-1]:
        h = torch.relu(h @ layer.weight.T + layer.bias)
    logits = h @ model.layers[-1].weight.T + model.layers[-1].bias
    loss = -torch.log_softmax(logits, 1)[torch.arange(len(batch)), y[batch]].mean()
    loss.backward()
    gw = np.array([math.sqrt((layer.weight.grad.double() ** 2).sum().item()) for layer in model.layers])
    gb = np.array([math.sqrt((layer.bias.grad.double() ** 2).sum().item()) for layer in model.layers])
    assert res.grad_w.shape == (res.step_epoch.size, cfg.depth + 1)
    np.testing.assert_allclose(res.grad_w[0], gw, rtol=1e-5)
    np.testing.assert_allclose(res.grad_b[0], gb, rtol=1e-5)
    np.testing.assert_allclose(res.batch_loss[0], loss.item(), rtol=1e-6)
    assert np.all(gw > 0) and np.all(gb > 0)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("n_train", [250, 256])  # 250 / 64: a short last batch, which sits out; 256: none
def test_whole_run_matches_a_hand_written_loop(optimizer, n_train):
    """Every step's gradient norms and loss, each epoch's gradient noise and weight norms, and the final weights
    match a plain PyTorch loop (unfused optimizer, full mini-batches only)."""
    cfg = tiny(noise=0.2, optimizer=optimizer, n_train=n_train)
    res = train(cfg)
    idx, x, y, true = reference_data(cfg)
    assert np.array_equal(res.train_idx, idx) and np.array_equal(res.labels, y.numpy())
    assert np.array_equal(res.true_labels, true)
    model = MLP(cfg.depth, cfg.width, cfg.init, torch_generator(cfg.seed, "init"))
    lr = cfg.learning_rate
    opt = {"sgd": lambda p: torch.optim.SGD(p, lr=lr), "momentum": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
           "adam": lambda p: torch.optim.Adam(p, lr=lr)}[optimizer](model.parameters())
    gen = torch_generator(cfg.seed, "batches")
    gw, gb, losses, fit, noise_w, noise_b, wnorm = [], [], [], [], [], [], []
    changed = res.corrupted
    steps = cfg.n_train // cfg.batch_size
    wnorm.append([layer.weight.norm().item() for layer in model.layers])
    for _ in range(cfg.epochs):
        perm = torch.randperm(cfg.n_train, generator=gen)
        order = perm[: steps * cfg.batch_size]  # the examples that train this epoch
        pred = np.empty(len(order), dtype=np.int64)  # each example's prediction when its batch came, in that order
        vecs = {"w": [], "b": []}  # this epoch's gradients, one flattened copy per batch and layer
        for b, batch in enumerate(order.split(cfg.batch_size)):
            logits = model(x[batch])
            pred[b * cfg.batch_size:(b + 1) * cfg.batch_size] = logits.argmax(1).numpy()
            loss = F.cross_entropy(logits, y[batch])
            opt.zero_grad()
            loss.backward()
            gw.append([layer.weight.grad.norm().item() for layer in model.layers])
            gb.append([layer.bias.grad.norm().item() for layer in model.layers])
            vecs["w"].append([layer.weight.grad.double().flatten().numpy() for layer in model.layers])
            vecs["b"].append([layer.bias.grad.double().flatten().numpy() for layer in model.layers])
            losses.append(loss.item())
            opt.step()
        for key, out in (("w", noise_w), ("b", noise_b)):  # trace of the covariance over the epoch's batches
            out.append([np.var(np.stack([v[j] for v in vecs[key]]), axis=0).sum() for j in range(cfg.depth + 1)])
        wnorm.append([layer.weight.norm().item() for layer in model.layers])
        o = order.numpy()
        hit, hit_true = pred == y.numpy()[o], pred == true[o]
        ch = changed[o]
        fit.append([np.mean(losses[-steps:]), hit.mean(), hit[~ch].mean(), hit[ch].mean(), hit_true[ch].mean()])
    assert res.grad_w.shape == (len(gw), cfg.depth + 1) == (cfg.epochs * steps, 3)
    assert res.noise_w.shape == res.noise_b.shape == (cfg.epochs, cfg.depth + 1)
    np.testing.assert_allclose(res.grad_w, gw, rtol=1e-4)
    np.testing.assert_allclose(res.grad_b, gb, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(res.noise_w, noise_w, rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(res.noise_b, noise_b, rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(res.weight_norm, wnorm, rtol=1e-4)
    np.testing.assert_allclose(res.batch_loss, losses, rtol=1e-5)
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(res.weights[k], v.numpy(), rtol=1e-4, atol=1e-6, err_msg=k)
    # epochs >= 1: the training-set metrics are those of the epoch's own pass (the unfused optimizer may move a
    # prediction that sits on a tie, so accuracies may differ by one example)
    fit = np.array(fit)
    np.testing.assert_allclose(res.history["loss"][1:], fit[:, 0], rtol=1e-5)
    for j, m in enumerate(METRICS[1:5], start=1):
        np.testing.assert_allclose(res.history[m][1:], fit[:, j], atol=1.01 / changed.sum(), err_msg=m)


def test_gradient_noise_is_not_the_variance_of_the_norm():
    """Batches whose gradients point in different directions with equal norms: zero norm variance, positive noise."""
    from memlib.train import Recorder

    g = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # four unit vectors, mean 0
    rec = Recorder.__new__(Recorder)
    rec.noise = torch.empty(1, 1, dtype=torch.float64)
    rec.record_noise(1, g.norm(dim=1, keepdim=True), [g.sum(0)])
    assert float(rec.noise[0, 0]) == pytest.approx(1.0)  # mean ||g||^2 = 1, ||mean g||^2 = 0
    assert float(g.norm(dim=1).var()) == 0.0


def evaluated_test(cfg) -> np.ndarray:
    """The test images a run evaluates each epoch, drawn here independently of memlib.train."""
    order = rng_for(cfg.seed, "probe").permutation(10_000)
    return np.sort(order[: cfg.eval_size])


def test_evaluated_and_probe_images_nest():
    """The probe images and the evaluated test images are prefixes of one order: the smaller inside the larger."""
    for probe, ev in ((50, 200), (200, 50), (64, 64)):
        p, e = D.test_subsets(probe, ev, seed=3)
        small, big = (p, e) if len(p) <= len(e) else (e, p)
        assert len(np.unique(p)) == probe and len(np.unique(e)) == ev and np.isin(small, big).all()
    assert np.array_equal(D.test_subsets(10_000, 10, 0)[0], np.arange(10_000))
    with pytest.raises(ValueError, match="eval_size=0"):
        D.test_subsets(10, 0, 0)


@pytest.mark.parametrize("probe_size,eval_size,chunk", [(30, 120, 8192), (120, 30, 8192), (120, 30, 37)])
def test_probe_representations_match_the_model_at_either_nesting(probe_size, eval_size, chunk, monkeypatch):
    """Representations taken from the shared pass equal the model's own on the probe images, whichever set is larger
    and however the pass is cut into blocks (chunk 37 splits the probe rows across blocks)."""
    monkeypatch.setattr(sys.modules["memlib.train"], "EVAL_CHUNK", chunk)  # the name train() splits by
    cfg = tiny(probe_size=probe_size, eval_size=eval_size, rep_epochs="ends")
    res = train(cfg)
    mn = D.load_mnist()
    hs, _ = hidden_ref(res.model(), torch.from_numpy(D.standardize(mn.x_test[res.probe_idx])))
    for j, h in enumerate(hs, start=1):
        np.testing.assert_allclose(res.reps[f"hidden{j}"][-1].astype(np.float32), h.detach().numpy(),
                                   rtol=2e-3, atol=1e-3)
    t = evaluated_test(cfg)
    with torch.no_grad():
        acc = (res.model()(torch.from_numpy(D.standardize(mn.x_test[t]))).argmax(1).numpy() == mn.y_test[t]).mean()
    assert res.history["test_acc"][-1] == pytest.approx(acc, abs=1e-6)


@pytest.mark.parametrize("n,k", [(256, 200), (5000, 2000), (100, 100), (100, 10_000), (7, 3)])
def test_initial_rows_are_distinct_evenly_spread_and_whole_when_eval_size_covers(n, k):
    """Checkpoint 0 scores min(n, k) distinct training rows in order, spread over the whole subset."""
    from memlib.train import init_rows

    r = init_rows(n, k)
    assert len(r) == min(n, k) and (np.diff(r) >= 1).all() and r[0] == 0 and r[-1] >= n - n // len(r) - 1
    if k >= n:
        assert np.array_equal(r, np.arange(n))


def test_initial_checkpoint_matches_the_initial_model():
    """Checkpoint 0: metrics and probe representations of the untrained model, recomputed by hand."""
    cfg = tiny(noise=0.3)
    res = train(cfg)
    mn = D.load_mnist()
    _, x, y, true = reference_data(cfg)
    model = MLP(cfg.depth, cfg.width, cfg.init, torch_generator(cfg.seed, "init"))
    k = cfg.eval_size
    rows = (np.arange(min(cfg.n_train, k)) * cfg.n_train) // min(cfg.n_train, k)  # evenly spread, as documented
    x, y = x[rows], y[rows]
    with torch.no_grad():
        logits = model(x)
        acc = lambda xs, ys: (model(torch.from_numpy(D.standardize(xs))).argmax(1).numpy() == ys).mean()  # noqa: E731
        assert res.history["loss"][0] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
        assert res.history["train_acc"][0] == pytest.approx((logits.argmax(1) == y).float().mean().item(), abs=1e-6)
        assert res.history["val_acc"][0] == pytest.approx(acc(mn.x_val[:k], mn.y_val[:k]), abs=1e-6)
        t = evaluated_test(cfg)
        assert res.history["test_acc"][0] == pytest.approx(acc(mn.x_test[t], mn.y_test[t]), abs=1e-6)
        shifted = D.shifted_test(cfg.shift_degrees, cfg.seed)[t]
        assert res.history["shift_acc"][0] == pytest.approx(acc(shifted, mn.y_test[t]), abs=1e-6)
        hs, _ = hidden_ref(model, torch.from_numpy(D.standardize(mn.x_test[res.probe_idx])))
    for j, h in enumerate(hs, start=1):
        np.testing.assert_allclose(res.reps[f"hidden{j}"][0].astype(np.float32), h.numpy(), rtol=2e-3, atol=1e-3)


def test_final_metrics_match_the_returned_model(noisy_run):
    """final(): each metric redone by hand from result.model(): the whole training set, held-out as last checkpoint."""
    res, cfg = noisy_run, noisy_run.config
    mn = D.load_mnist()
    k, t = cfg.eval_size, evaluated_test(cfg)
    model = res.model()
    with torch.no_grad():
        pred = lambda xs: model(torch.from_numpy(D.standardize(xs))).argmax(1).numpy()  # noqa: E731
        p_train = pred(mn.x_train[res.train_idx])
        logits = model(torch.from_numpy(D.standardize(mn.x_train[res.train_idx])))
    c = res.corrupted
    expected = dict(
        loss=F.cross_entropy(logits, torch.from_numpy(res.labels)).item(),
        train_acc=(p_train == res.labels).mean(),
        train_acc_clean=(p_train == res.labels)[~c].mean(),
        train_acc_corrupted_noisy=(p_train == res.labels)[c].mean(),
        train_acc_corrupted_true=(p_train == res.true_labels)[c].mean(),
        val_acc=(pred(mn.x_val[:k]) == mn.y_val[:k]).mean(),
        test_acc=(pred(mn.x_test[t]) == mn.y_test[t]).mean(),
        shift_acc=(pred(D.shifted_test(cfg.shift_degrees, cfg.seed)[t]) == mn.y_test[t]).mean(),
    )
    for m in METRICS:
        assert res.final(m) == pytest.approx(expected[m], rel=1e-5, abs=1e-6), m
    for m in ("val_acc", "test_acc", "shift_acc"):  # held-out: the last checkpoint itself
        assert res.final(m) == res.history[m][-1], m
    assert set(res.final_fit()) == set(METRICS[:5])


def test_final_fit_is_computed_once_and_survives_the_cache(memlib_cache):
    """final_fit() is cached on the result; a run read back from the cache gives the same numbers."""
    from memlib.cache import run

    cfg = tiny(noise=0.3, seed=5)
    a = run(cfg)
    fit = a.final_fit()
    assert a.final_fit() is fit
    b = run(cfg)
    assert b.cached and b.final_fit() == fit


@pytest.mark.parametrize("depth,width,rows,chunk",
                         [(4, 256, 3000, 1024), (2, 16, 50, 7), (1, 1, 3, 3), (3, 64, 10, 100)])
def test_eval_forward_gives_the_models_own_bits(depth, width, rows, chunk):
    """EvalForward (reused buffers) gives the exact bits of MLP.forward and of a layer-by-layer reference, per block."""
    model = MLP(depth, width, "he", torch_generator(3, "init"))
    x = torch.randn(rows, 784, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, (hs, _) = model(x), hidden_ref(model, x)
        ref_chunked = torch.cat([model(c) for c in x.split(chunk)])
    fwd, seen = EvalForward(model), {}
    fwd.logits([x[:1]])  # buffers sized by an earlier, smaller call are grown, not misused
    assert torch.equal(fwd.logits(x.split(chunk)), ref_chunked)
    assert torch.equal(fwd.logits([x], lambda j, h: seen.__setitem__(j, h.clone())), ref)
    assert sorted(seen) == list(range(1, depth + 1))
    for j, h in seen.items():
        assert torch.equal(h, hs[j - 1]), j


def test_epoch_loss_is_the_mean_of_its_batch_losses(noisy_run):
    """history['loss'][k] (k >= 1) is epoch k's mini-batch losses weighted by batch size."""
    res, cfg = noisy_run, noisy_run.config
    rows = np.diff(np.r_[0:cfg.n_train:cfg.batch_size, cfg.n_train])  # examples in each batch of an epoch
    for e in range(1, res.epochs_run + 1):
        expected = (res.batch_loss[res.step_epoch == e].astype(np.float64) * rows).sum() / cfg.n_train
        assert res.history["loss"][e] == pytest.approx(expected, rel=1e-6), e


# ---------------------------------------------------------------- tiny smoke runs: shapes and ranges


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("rep_epochs,checkpoints", [("all", [0, 1, 2]), ("ends", [0, 2]), ("none", [])])
def test_result_shapes(depth, rep_epochs, checkpoints):
    """Every array of a tiny run has the documented shape and dtype."""
    cfg = tiny(depth=depth, rep_epochs=rep_epochs)
    res = train(cfg)
    steps = 4 * cfg.epochs
    assert set(res.history) == set(METRICS)
    for m in METRICS:
        assert res.history[m].shape == (cfg.epochs + 1,) and res.history[m].dtype == np.float64
    assert res.grad_w.shape == res.grad_b.shape == (steps, depth + 1)
    assert res.grad_w.dtype == res.grad_b.dtype == np.float32
    assert res.batch_loss.shape == (steps,) and res.batch_loss.dtype == np.float32
    assert res.step_epoch.dtype == np.int32 and res.step_epoch.tolist() == [1] * 4 + [2] * 4
    assert res.rep_epochs.dtype == np.int32 and res.rep_epochs.tolist() == checkpoints
    expected_reps = [] if rep_epochs == "none" else [f"hidden{j}" for j in range(1, depth + 1)]
    assert list(res.reps) == expected_reps
    for r in res.reps.values():
        assert r.shape == (len(checkpoints), cfg.probe_size, cfg.width) and r.dtype == np.float16
        assert (r >= 0).all() and np.isfinite(r).all() and r.any()
    assert res.probe_idx.shape == (cfg.probe_size,) and len(np.unique(res.probe_idx)) == cfg.probe_size
    assert res.probe_idx.max() < 10_000
    for name in ("train_idx", "labels", "true_labels", "corrupted"):
        assert getattr(res, name).shape == (cfg.n_train,), name
    assert res.labels.dtype == res.true_labels.dtype == np.int64 and res.corrupted.dtype == bool
    assert res.layer_names == layer_names(depth)
    assert [k for k in res.weights] == [f"layers.{i}.{p}" for i in range(depth + 1) for p in ("weight", "bias")]
    assert all(v.dtype == np.float32 for v in res.weights.values())
    assert res.seconds > 0 and res.cached is False and res.meta["device"] == "cpu"
    assert res.meta["threads"] == torch.get_num_threads()


def test_rep_layers_subset():
    """rep_layers picks which hidden layers are recorded."""
    res = train(tiny(depth=3, rep_layers=(3, 1)))
    assert list(res.reps) == ["hidden1", "hidden3"]


def test_steps_with_a_short_last_batch():
    """n_train not a multiple of batch_size: floor(n / bs) full steps per epoch; the short remainder sits out."""
    res = train(tiny(n_train=130, batch_size=64, epochs=3))
    assert res.step_epoch.tolist() == [1] * 2 + [2] * 2 + [3] * 2


def test_metrics_in_range_and_consistent(noisy_run):
    """Accuracies lie in [0, 1]; train_acc is the clean/corrupted mix; the corrupted mask matches the labels."""
    res = noisy_run
    for m in METRICS[1:]:
        assert np.all((res.history[m] >= 0) & (res.history[m] <= 1)), m
    assert np.all(res.history["loss"] > 0) and np.isfinite(res.grad_w).all()
    assert np.array_equal(res.corrupted, res.labels != res.true_labels)
    assert res.corrupted.sum() == round(0.3 * res.config.n_train)
    from memlib.train import init_rows

    f = np.full(res.epochs_run + 1, res.corrupted.mean())  # the corrupted share of the examples scored
    f[0] = res.corrupted[init_rows(res.config.n_train, res.config.eval_size)].mean()  # checkpoint 0: its rows
    mix = (1 - f) * res.history["train_acc_clean"] + f * res.history["train_acc_corrupted_noisy"]
    np.testing.assert_allclose(res.history["train_acc"], mix, atol=1e-5)
    assert res.history["loss"][-1] < res.history["loss"][0]  # it learned something


def test_model_reproduces_weights_and_predictions(noisy_run):
    """result.model() holds the stored weights and predicts like the trained network."""
    res = noisy_run
    m = res.model()
    assert isinstance(m, MLP) and not m.training
    for k, v in m.state_dict().items():
        assert np.array_equal(v.numpy(), res.weights[k])
    mn = D.load_mnist()
    x = torch.from_numpy(D.standardize(mn.x_test[res.probe_idx]))
    with torch.no_grad():
        hs, _ = hidden_ref(m, x)
    for j, h in enumerate(hs, start=1):
        np.testing.assert_allclose(res.reps[f"hidden{j}"][-1].astype(np.float32), h.numpy(), rtol=2e-3, atol=1e-3)


def test_summary(noisy_run):
    """summary(): final metrics (rounded), epochs, seconds, cached; JSON-ready."""
    import json

    s = noisy_run.summary()
    assert list(s) == list(METRICS) + ["epochs", "seconds", "cached"]
    assert s["epochs"] == 2 and s["cached"] is False and s["seconds"] >= 0
    for m in METRICS:
        assert s[m] == round(noisy_run.final(m), 6)
    assert json.loads(json.dumps(s)) == s


# ---------------------------------------------------------------- edge cases


@pytest.mark.parametrize("kind", ["symmetric", "uniform"])
@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_noise_extremes(kind, noise):
    """noise 0: nothing corrupted (corrupted metrics NaN); noise 1 symmetric: every label wrong (clean metric NaN)."""
    res = train(tiny(noise=noise, noise_kind=kind, depth=1))
    h = res.history
    assert np.array_equal(res.corrupted, res.labels != res.true_labels)
    if noise == 0:
        assert not res.corrupted.any()
        assert np.isnan(h["train_acc_corrupted_noisy"]).all() and np.isnan(h["train_acc_corrupted_true"]).all()
        np.testing.assert_array_equal(h["train_acc_clean"], h["train_acc"])
        assert res.summary()["train_acc_corrupted_noisy"] is None
    elif kind == "symmetric":
        assert res.corrupted.all()
        assert np.isnan(h["train_acc_clean"]).all()
        np.testing.assert_array_equal(h["train_acc_corrupted_noisy"], h["train_acc"])
        assert res.summary()["train_acc_clean"] is None
    else:  # uniform, p = 1: about 90% end up wrong, both groups exist
        assert 0.8 < res.corrupted.mean() < 0.97
        for m in ("train_acc_clean", "train_acc_corrupted_noisy", "train_acc_corrupted_true"):
            assert np.isfinite(h[m]).all(), m
    for m in ("loss", "train_acc", "val_acc", "test_acc", "shift_acc"):
        assert np.isfinite(h[m]).all(), m


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_init_and_optimizer_trains(init, optimizer):
    """Every init x optimizer runs, stays finite and lowers the training loss."""
    res = train(tiny(init=init, optimizer=optimizer, depth=1, epochs=3))
    assert np.isfinite(res.grad_w).all() and all(np.isfinite(v).all() for v in res.weights.values())
    assert res.history["loss"][-1] < res.history["loss"][0]


def test_smallest_config():
    """One training image, batch 1, depth 1, width 1, one probe and one eval image still run."""
    res = train(RunConfig(n_train=1, batch_size=1, depth=1, width=1, epochs=1, probe_size=1, eval_size=1, device="cpu"))
    assert res.grad_w.shape == (1, 2) and res.reps["hidden1"].shape == (2, 1, 1)
    assert res.history["val_acc"][-1] in (0.0, 1.0)


def test_pick_device():
    """'auto' picks CUDA only when present; 'cuda' without a GPU is refused with a ValueError."""
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            pick_device("cuda")


def test_progress_bar_does_not_change_results(capsys):
    """progress=True shows a bar but trains exactly the same run."""
    a, b = train(tiny(progress=True)), train(tiny(progress=False))
    assert_same_result(a, b)


# ---------------------------------------------------------------- determinism and randomness split by purpose


def test_same_config_is_bit_identical():
    """Two runs of one config give bit-identical arrays, weights and representations."""
    cfg = tiny(noise=0.2, depth=3)
    assert_same_result(train(cfg), train(cfg))


def test_different_seeds_differ():
    """Another seed changes subset, noise, init, batches and probe set."""
    a, b = train(tiny(noise=0.2)), train(tiny(noise=0.2, seed=1))
    for name in ("train_idx", "corrupted", "probe_idx", "grad_w"):
        assert not np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.weights["layers.0.weight"], b.weights["layers.0.weight"])


@pytest.mark.parametrize("changes", [dict(noise=0.5), dict(noise=0.5, noise_kind="uniform"), dict(n_train=320),
                                     dict(optimizer="sgd"), dict(batch_size=32), dict(epochs=1)], ids=str)
def test_init_and_probe_do_not_depend_on_other_fields(changes):
    """Noise, subset size, optimizer, batches or epochs leave the init (epoch-0 reps, eval) and the probe set alone."""
    a, b = train(tiny()), train(tiny(**changes))
    assert np.array_equal(a.probe_idx, b.probe_idx)
    for k in a.reps:
        assert np.array_equal(a.reps[k][0], b.reps[k][0]), k
    for m in ("val_acc", "test_acc", "shift_acc"):
        assert a.history[m][0] == b.history[m][0], m


def test_noise_does_not_change_the_subset_or_batches():
    """Changing only the noise keeps the training subset and its true labels; only the given labels change."""
    a, b = train(tiny()), train(tiny(noise=0.4))
    assert np.array_equal(a.train_idx, b.train_idx) and np.array_equal(a.true_labels, b.true_labels)
    assert not np.array_equal(a.labels, b.labels)


def test_fewer_epochs_is_a_prefix():
    """A 1-epoch run is exactly the first epoch of the 2-epoch run."""
    a, b = train(tiny(epochs=1, noise=0.2)), train(tiny(epochs=2, noise=0.2))
    assert np.array_equal(a.grad_w, b.grad_w[:4]) and np.array_equal(a.batch_loss, b.batch_loss[:4])
    for m in METRICS:
        assert np.array_equal(a.history[m], b.history[m][:2], equal_nan=True), m
    for k in a.reps:
        assert np.array_equal(a.reps[k], b.reps[k][:2])


@pytest.mark.parametrize("changes", [dict(rep_epochs="none"), dict(rep_epochs="ends"), dict(rep_layers=(2,)),
                                     dict(probe_size=7), dict(eval_size=13), dict(shift_degrees=0.0)], ids=str)
def test_recording_does_not_perturb_training(changes):
    """What is recorded (reps, probe and eval sizes, shift) never changes the training trajectory."""
    a, b = train(tiny(noise=0.2)), train(tiny(noise=0.2, **changes))
    assert np.array_equal(a.grad_w, b.grad_w) and np.array_equal(a.batch_loss, b.batch_loss)
    for k in a.weights:
        assert np.array_equal(a.weights[k], b.weights[k]), k


def test_results_do_not_depend_on_the_global_seed():
    """torch.manual_seed / np.random.seed before train() do not change the run."""
    torch.manual_seed(123)
    np.random.seed(123)
    a = train(tiny(noise=0.2))
    torch.manual_seed(7)
    np.random.seed(7)
    assert_same_result(a, train(tiny(noise=0.2)))


def test_numpy_global_rng_untouched():
    """train() does not draw from NumPy's global RNG."""
    before = np.random.get_state()
    train(tiny(noise=0.2))
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_torch_global_rng_untouched():
    """train() does not draw from torch's global RNG (so it cannot shift a user's own random stream)."""
    before = torch.get_rng_state()
    train(tiny(noise=0.2))
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("inputs", ["standard", "unit", "symmetric"])
def test_paper_style_run(inputs):
    """Per-layer widths, torch init and each input scaling: shapes follow the widths, and the recorded accuracies are
    those of the stored model on inputs scaled the same way."""
    cfg = tiny(widths=(16, 48), width=None, init="torch", inputs=inputs, optimizer="momentum", lr=0.01)
    res = train(cfg)
    assert [w.shape for k, w in res.weights.items() if k.endswith("weight")] == [(16, 784), (48, 16), (10, 48)]
    assert res.reps["hidden1"].shape[-1] == 16 and res.reps["hidden2"].shape[-1] == 48
    mn = D.load_mnist()
    t = evaluated_test(cfg)
    x = D.scale_inputs(mn.x_test[t], inputs)
    lo, hi = {"standard": (-1, 4), "unit": (0, 1), "symmetric": (-1, 1)}[inputs]
    assert x.min() >= lo and x.max() <= hi and (inputs == "standard" or (x.min() == lo and x.max() == hi))
    with torch.no_grad():
        acc = (res.model()(torch.from_numpy(x)).argmax(1).numpy() == mn.y_test[t]).mean()
    assert res.history["test_acc"][-1] == pytest.approx(acc, abs=1e-6)

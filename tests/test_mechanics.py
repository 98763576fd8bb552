"""memlib.mechanics: every Background check against an independent computation, on tiny networks."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import tiny

import memlib.data as D
from memlib import analysis as A
from memlib import mechanics as M
from memlib import plots as P
from memlib import probes as PR
from memlib.models import MLP
from memlib.rng import torch_generator
from memlib.train import train


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread for this module, as the checks themselves use: tiny networks, and a busy CPU stays usable."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def per_example_grads(model: MLP, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Every example's flattened gradient [N, n_params] float64, one backward pass each."""
    rows = []
    for i in range(len(x)):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        rows.append(M.flat_grad(model).numpy())
    return np.stack(rows)


def test_single_thread_restores_the_thread_count():
    torch.set_num_threads(2)
    try:
        seen = M.single_thread(torch.get_num_threads)()
        assert seen == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_small_config_keeps_the_network_and_the_seed():
    cfg = tiny(noise=0.3, seed=4, init="xavier")
    small = M.small_config(cfg, 32)
    assert (small.depth, small.width, small.init, small.seed, small.noise) == (cfg.depth, cfg.width, "xavier", 4, 0.3)
    assert small.n_train == 32 and small.epochs == 1 and small.rep_epochs == "none" and small.device == "cpu"
    net = M.initial_model(cfg)
    ref = MLP(cfg.depth, cfg.width, cfg.init, torch_generator(cfg.seed, "init"))
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ref.state_dict().values(), strict=True))


def test_training_images_are_the_ones_train_uses():
    cfg = tiny(noise=0.5)
    x, y = M.training_images(cfg, 40)
    res = train(M.small_config(cfg, 40))
    mn = D.load_mnist()
    np.testing.assert_array_equal(x.numpy(), D.standardize(mn.x_train[res.train_idx]))
    np.testing.assert_array_equal(y.numpy(), res.labels)


def test_outer_product_matches_autograd_and_the_record():
    cfg = tiny()
    c = M.outer_product_check(cfg)
    assert c["layers"] == ["hidden1", "hidden2", "classifier"]
    # independent: the gradient of one example's loss by torch.autograd.grad, its Frobenius norm
    x, y = M.training_images(cfg, 1)
    net = M.initial_model(cfg)
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), [layer.weight for layer in net.layers])
    np.testing.assert_allclose(c["product"], [float(g.norm()) for g in grads], rtol=1e-5)
    np.testing.assert_allclose(c["recorded"], [float(g.norm()) for g in grads], rtol=1e-5)
    assert c["outer_vs_autograd"] < 1e-6 and c["max_rel_diff"] < 1e-5
    assert c["input_norm"][0] == pytest.approx(float(x.norm()), rel=1e-6)


def test_per_example_trace_matches_explicit_per_example_gradients():
    cfg = tiny()
    x, y = M.training_images(cfg, 24)
    trace, mean = M.per_example_trace(M.initial_model(cfg), x, y)
    G = per_example_grads(M.initial_model(cfg), x, y)  # [24, n_params]
    np.testing.assert_allclose(mean.numpy(), G.mean(0), rtol=1e-5, atol=1e-6)
    assert trace == pytest.approx(float(((G - G.mean(0)) ** 2).sum(1).mean()), rel=1e-5)


def test_without_replacement_formula_is_exact_over_all_batches():
    """E||g_B - g||^2 over every B-subset of N examples equals tr(Sigma) / B * (N - B) / (N - 1)."""
    cfg = tiny()
    x, y = M.training_images(cfg, 7)
    G = per_example_grads(M.initial_model(cfg), x, y)
    g = G.mean(0)
    trace, _ = M.per_example_trace(M.initial_model(cfg), x, y)
    for b in (1, 2, 3, 6):
        dev = [((G[list(s)].mean(0) - g) ** 2).sum() for s in itertools.combinations(range(7), b)]
        assert np.mean(dev) == pytest.approx(trace / b * (7 - b) / 6, rel=1e-5)


def test_batch_noise_scaling_follows_one_over_b():
    cfg = tiny()
    c = M.batch_noise_scaling(cfg, batch_sizes=(4, 16, 64), pool=128, draws=48)
    trace, g = M.per_example_trace(M.initial_model(cfg), *M.training_images(cfg, 128))
    assert c["trace_per_example"] == pytest.approx(trace, rel=1e-6)  # float32 sums: thread counts may differ
    assert c["full_grad_sq"] == pytest.approx(float(g.square().sum()), rel=1e-6)
    np.testing.assert_allclose(c["predicted"], [c["trace_per_example"] / b * (128 - b) / 127 for b in (4, 16, 64)],
                               rtol=1e-12)
    assert c["max_rel_dev"] < 0.3  # a sampling estimate: 48 batches per size
    assert c["measured"][0] > c["measured"][1] > c["measured"][2]
    assert c == M.batch_noise_scaling(cfg, batch_sizes=(4, 16, 64), pool=128, draws=48)  # same seed, same numbers
    with pytest.raises(ValueError, match="batch size"):
        M.batch_noise_scaling(cfg, batch_sizes=(128,), pool=128)


def test_backprop_product_matches_autograd_jacobian():
    cfg = tiny(depth=3)
    c = M.backprop_product_check(cfg)
    assert len(c["delta_norm"]) == 4 and len(c["gain"]) == 3
    assert c["delta_vs_autograd"] < 1e-5 and c["grad_vs_recorded"] < 1e-4
    # independent: the Jacobian of the logits with respect to z_1, by torch.autograd.functional.jacobian
    x, y = M.training_images(cfg, 1)
    net = M.initial_model(cfg)
    z1 = net.layers[0](x)[0].detach()

    def rest(z):  # z_1 [width] -> logits [10]
        h = torch.relu(z)
        for layer in net.layers[1:-1]:
            h = torch.relu(layer(h))
        return net.layers[-1](h)

    jac = torch.autograd.functional.jacobian(rest, z1).double()  # [10, width]
    sv = torch.linalg.svdvals(jac)
    assert c["product_sv_max"] == pytest.approx(float(sv.max()), rel=1e-5)
    assert c["product_sv_min"] == pytest.approx(float(sv.min()), rel=1e-4, abs=1e-6)  # may be 0: dead ReLU units
    with torch.no_grad():
        d_out = torch.softmax(rest(z1).double(), 0) - F.one_hot(y[0], 10).double()
    assert c["delta_norm"][0] == pytest.approx(float((jac.T @ d_out).norm()), rel=1e-5)
    assert c["delta_norm"][-1] == pytest.approx(float(d_out.norm()), rel=1e-6)


@pytest.mark.parametrize("init, fan_in, fan_out, expected", [("he", 100, 30, 0.02), ("xavier", 100, 30, 2 / 130),
                                                              ("orthogonal", 100, 30, 0.02)])
def test_expected_weight_variance(init, fan_in, fan_out, expected):
    assert M.expected_weight_variance(init, fan_in, fan_out) == pytest.approx(expected)
    w = torch.empty(fan_out, fan_in)
    gen = torch.Generator().manual_seed(0)
    if init == "he":
        torch.nn.init.kaiming_normal_(w, nonlinearity="relu", generator=gen)
    elif init == "xavier":
        torch.nn.init.xavier_normal_(w, generator=gen)
    else:  # an orthogonal 30 x 100 matrix has orthonormal rows: sum of squares 2 * 30 out of 3000 entries
        torch.nn.init.orthogonal_(w, gain=math.sqrt(2), generator=gen)
    assert float(w.var()) == pytest.approx(expected, rel=0.1)
    with pytest.raises(ValueError, match="init"):
        M.expected_weight_variance("lecun", 1, 1)


def test_init_check_against_the_built_layers():
    cfg = tiny(depth=4, width=64)
    c = M.init_check(cfg, n_images=64)
    assert c["layer"] == "hidden2" and set(c["inits"]) == {"he", "xavier", "orthogonal"}
    for init, r in c["inits"].items():
        w = MLP(4, 64, init, torch_generator(cfg.seed, "init")).layers[1].weight.detach().double().numpy()
        assert r["var"] == pytest.approx(float(w.var()), rel=1e-6)  # orthogonal: QR bits may depend on threads
        np.testing.assert_allclose(M.init_singular_values(cfg, init), np.linalg.svd(w, compute_uv=False), rtol=1e-5,
                                   atol=1e-6)
        assert r["predicted_gain"] == pytest.approx({"he": 1.0, "xavier": 0.5, "orthogonal": 1.0}[init])
        s = r["second_moment"]
        assert len(s) == 4 and r["forward_gain"] == pytest.approx((s[-1] / s[0]) ** (1 / 3))
    assert c["orthogonal_sv_dev"] < 1e-6 and c["max_var_dev"] < 0.2
    assert c["inits"]["xavier"]["forward_gain"] < c["inits"]["he"]["forward_gain"]


def test_first_step_matches_plain_torch_optimizers():
    cfg = tiny()
    c = M.first_step_check(cfg)
    assert c["max_rel_diff"] < 1e-4
    x, y = M.training_images(cfg, cfg.batch_size)
    make = {"sgd": lambda p: torch.optim.SGD(p, lr=0.05),
            "momentum": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
            "adam": lambda p: torch.optim.Adam(p, lr=1e-3)}
    for name, opt_of in make.items():  # independent: unfused torch optimizers, one step
        net = M.initial_model(cfg)
        before = [layer.weight.detach().clone() for layer in net.layers]
        opt = opt_of(net.parameters())
        F.cross_entropy(net(x), y).backward()
        opt.step()
        steps = [float((layer.weight.detach() - w).norm()) for layer, w in zip(net.layers, before, strict=True)]
        np.testing.assert_allclose(c["optimizers"][name]["update"], steps, rtol=1e-4, err_msg=name)
    adam = c["optimizers"]["adam"]
    sizes = [layer.weight.numel() for layer in M.initial_model(cfg).layers]
    np.testing.assert_allclose(adam["update"], [1e-3 * math.sqrt(n) for n in sizes], rtol=0.05)  # ~ lr per weight


@pytest.fixture(scope="module")
def noisy_run():
    return train(tiny(noise=0.4, epochs=3))


def test_fit_decomposition_matches_the_library(noisy_run):
    c = M.fit_decomposition_check(noisy_run)
    fit = noisy_run.final_fit()
    assert c["p"] == pytest.approx(round(0.4 * 256) / 256)
    assert c["acc_clean"] == pytest.approx(fit["train_acc_clean"], abs=1e-6)
    assert c["acc_corrupted"] == pytest.approx(fit["train_acc_corrupted_noisy"], abs=1e-6)
    assert c["corrupted_true"] == pytest.approx(fit["train_acc_corrupted_true"], abs=1e-6)
    assert c["combined"] == pytest.approx(fit["train_acc"], abs=1e-6) and c["diff"] < 1e-6
    assert c["true_label_ceiling"] == pytest.approx(1 - c["p"])


def test_cka_kernel_form_equals_the_feature_form():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((30, 5)), rng.standard_normal((30, 8))
    assert M.cka_hsic(x, y) == pytest.approx(A.linear_cka(x, y), rel=1e-10)
    q = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    assert M.cka_hsic(x, 2.5 * x @ q + 7.0) == pytest.approx(1.0)  # rotation, scaling, shift
    assert M.cka_hsic(x, x * np.array([1, 1, 1, 1, 20.0])) < 0.9  # stretching one direction is a change
    assert M.cka_hsic(np.zeros((4, 2)), x[:4]) == 0.0


def test_similarity_check_matches_analysis(noisy_run):
    c = M.similarity_check(noisy_run, 2)
    r = np.asarray(noisy_run.reps["hidden2"], np.float64)
    assert c["epoch"] == 3 and c["layer"] == "hidden2"
    assert c["cosine"] == pytest.approx(float(A.cosine_similarity_rows(r[-1], r[0]).mean()), abs=1e-12)
    assert c["cka"] == pytest.approx(A.linear_cka(r[0], r[-1]), abs=1e-10) and c["max_diff"] < 1e-10
    assert c["rotated_cka"] == pytest.approx(1.0) and c["rotated_cosine"] < 0.9


def test_gradient_noise_matches_np_var_and_train():
    cfg = tiny(noise=0.4)
    c = M.gradient_noise_check(cfg, n_batches=4)
    assert c["batches"] == 4 and c["batch_size"] == cfg.batch_size
    assert c["running_vs_direct"] < 1e-9 and c["library_vs_direct"] < 1e-4
    # independent: replay train()'s first epoch at fixed weights; trace of the covariance as np.var per coordinate
    small = M.small_config(cfg, 4 * cfg.batch_size, optimizer="sgd", lr=1e-9)
    res = train(small)
    np.testing.assert_allclose(res.weight_norm[0], res.weight_norm[1], rtol=1e-7)  # the weights did not move
    x, y = M.training_images(cfg, small.n_train)
    net = M.initial_model(cfg)
    order = torch.randperm(small.n_train, generator=torch_generator(cfg.seed, "batches"))
    rows = []
    for i in order.split(cfg.batch_size):
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x[i]), y[i]).backward()
        rows.append([layer.weight.grad.double().flatten().numpy() for layer in net.layers])
    for j in range(cfg.depth + 1):
        G = np.stack([r[j] for r in rows])
        # float32 gradients: the test's thread count may differ from the check's single thread
        assert c["direct"][j] == pytest.approx(float(np.var(G, axis=0).sum()), rel=1e-6)
        if G.shape[1] <= 200:  # the classifier: the full covariance matrix is small enough
            assert float(np.var(G, axis=0).sum()) == pytest.approx(float(np.trace(np.cov(G.T, bias=True))), rel=1e-12)
        assert c["signal"][j] == pytest.approx(float((G.mean(0) ** 2).sum()), rel=1e-6)
    np.testing.assert_allclose(c["library"], res.noise_w[0], rtol=1e-5)
    n, b = small.n_train, small.batch_size
    assert c["noise_scale"] == pytest.approx(b * sum(c["direct"]) * (n - 1) / (n - b) / sum(c["signal"]))


@pytest.mark.parametrize("depth, width", [(1, 7), (2, 16), (8, 64)])
def test_parameter_count(depth, width):
    assert M.parameter_count(depth, width) == sum(p.numel() for p in MLP(depth, width).parameters())


def test_parameter_count_check():
    c = M.parameter_count_check(tiny(), [8, 16])
    assert c["agree"] and [r["width"] for r in c["rows"]] == [8, 16]
    assert c["rows"][1]["per_label"] == pytest.approx(M.parameter_count(2, 16) / 256)


def test_rotation_matrix_is_the_library_rotation():
    x = D.load_mnist().x_test[:3].astype(np.float64)  # [3, 784]
    for deg in (0.0, 12.5, -30.0):
        R = M.rotation_matrix(deg)
        lib = D.rotate_images(x, np.full(3, deg)).astype(np.float64)
        np.testing.assert_allclose(x @ R.T, lib, atol=1e-3)  # pixel intensities 0..255
    np.testing.assert_allclose(M.rotation_matrix(0.0), np.eye(784), atol=1e-5)


def test_rotation_check():
    c = M.rotation_check(tiny(), index=1, angles=(0.0, 15.0))
    assert c["label"] == int(D.load_mnist().y_test[1]) and c["max_diff"] < 1e-5 and c["matrix_degrees"] == 15.0
    assert c["rows"][0]["cosine"] == pytest.approx(1.0) and c["rows"][0]["shared_ink"] == pytest.approx(1.0)
    assert c["rows"][1]["cosine"] < 1.0
    a, b = M.rotated_pair(tiny(), index=1)
    assert a.shape == b.shape == (28, 28)


def test_class_basis_matches_masc_and_principal_angles():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((12, 3)))[0]  # [12, 3] a known subspace
    acts = rng.standard_normal((50, 3)) @ basis.T  # points exactly in it
    got = M.class_basis(acts, 0.99)
    assert got.shape == (12, 3)
    np.testing.assert_allclose(M.principal_angles(got, basis), 0.0, atol=1e-5)
    other = np.linalg.qr(np.concatenate([basis, rng.standard_normal((12, 2))], 1))[0][:, 3:]  # orthogonal to it
    np.testing.assert_allclose(M.principal_angles(basis, other), 90.0, atol=1e-6)
    noisy = acts + 0.05 * rng.standard_normal(acts.shape)
    masc = PR.MASC(0.9).fit(noisy, np.zeros(50, int), 1)
    np.testing.assert_allclose(np.abs(M.class_basis(noisy, 0.9).T @ masc.bases_[0]), np.eye(3), atol=1e-6)
    assert M.class_basis(np.zeros((3, 4))).shape == (4, 0)


def test_subspace_angle_check_matches_masc():
    res = train(tiny(noise=0.6, noise_kind="uniform", epochs=2, n_train=300, batch_size=50))
    c = M.subspace_angle_check(res, "hidden1", index=2)
    assert c["max_diff_degrees"] < 1e-6 and c["label"] == int(D.load_mnist().y_test[2])
    assert c["predicted"] == int(np.argmin(c["library"])) and len(c["dims"]) == 10
    assert all(0 <= a <= 90 for a in c["principal_angles"])


def test_toy_subspaces_and_the_diagrams():
    toy = M.toy_subspaces()
    assert toy["dims"] == [2, 1] and toy["angles"][0] < toy["angles"][1]
    assert np.degrees(np.arcsin(toy["x"][2] / np.linalg.norm(toy["x"]))) == pytest.approx(toy["angles"][0], abs=2.0)
    fig, (ax,) = P.figure(subplot_kw={"projection": "3d"})
    assert P.subspace_angle_3d(toy, ax) is fig
    fig, axes = P.figure(ncols=3)
    assert P.rotated_digit(*M.rotated_pair(tiny()), axes, 30.0) is fig
    fig, (ax,) = P.figure()
    assert P.singular_value_hist({k: M.init_singular_values(tiny(), k) for k in ("he", "orthogonal")}, ax) is fig
    fig, (ax,) = P.figure()
    check = {"batch_sizes": [4, 16], "measured": [2.0, 0.5], "pool": 64, "trace_per_example": 8.0, "draws": 3}
    assert P.noise_vs_batch_size(check, ax) is fig

"""The MLP: structure, hidden representations, initialisation schemes and optimizers."""
from __future__ import annotations

import math

import pytest
import torch

from memlib.config import INITS, OPTIMIZERS
from memlib.models import MLP, initialize, layer_names, make_optimizer
from memlib.rng import torch_generator


def gen(seed=0):
    """A fresh init generator for a seed."""
    return torch_generator(seed, "init")


def test_layer_names():
    """hidden1..hidden{depth} then classifier."""
    assert layer_names(1) == ["hidden1", "classifier"]
    assert layer_names(3) == ["hidden1", "hidden2", "hidden3", "classifier"]


@pytest.mark.parametrize("depth,width", [(1, 1), (1, 16), (3, 32), (4, 256)])
def test_structure(depth, width):
    """depth hidden Linear layers of width units plus a classifier: 784 -> width x depth -> 10."""
    m = MLP(depth, width, generator=gen())
    shapes = [tuple(layer.weight.shape) for layer in m.layers]
    assert shapes == [(width, 784)] + [(width, width)] * (depth - 1) + [(10, width)]
    expected = 784 * width + width + (depth - 1) * (width * width + width) + width * 10 + 10
    assert m.n_params() == expected
    assert m(torch.zeros(5, 784)).shape == (5, 10)


@pytest.mark.parametrize("depth,width", [(0, 16), (2, 0), (-1, 3)])
def test_bad_shape(depth, width):
    """depth or width below 1 raises ValueError naming both."""
    with pytest.raises(ValueError, match=f"depth={depth}, width={width}"):
        MLP(depth, width)


@pytest.mark.parametrize("init", INITS)
def test_init_is_fixed_by_the_generator(init):
    """The same generator seed gives identical weights; another seed different ones; biases are zero (except torch's
    own default, which draws them like the weights)."""
    a, b, c = (MLP(2, 32, init, gen(s)) for s in (0, 0, 1))
    for la, lb, lc in zip(a.layers, b.layers, c.layers, strict=True):
        assert torch.equal(la.weight, lb.weight) and torch.equal(la.bias, lb.bias)
        assert not torch.equal(la.weight, lc.weight)
        assert (torch.count_nonzero(la.bias) == 0) == (init != "torch")


def test_he_init_std():
    """He (Kaiming normal, fan-in, ReLU gain): std ~ sqrt(2 / fan_in), mean ~ 0."""
    m = MLP(2, 1024, "he", gen())
    for layer in m.layers:
        w = layer.weight
        target = math.sqrt(2.0 / w.shape[1])
        assert abs(w.std().item() / target - 1) < 0.03, (w.shape, w.std().item(), target)
        assert abs(w.mean().item()) < 0.05 * target


def test_xavier_init_std():
    """Xavier (Glorot normal): std ~ sqrt(2 / (fan_in + fan_out))."""
    m = MLP(2, 1024, "xavier", gen())
    for layer in m.layers:
        w = layer.weight
        target = math.sqrt(2.0 / (w.shape[0] + w.shape[1]))
        assert abs(w.std().item() / target - 1) < 0.03, (w.shape, w.std().item(), target)


def test_orthogonal_init():
    """Orthogonal with gain sqrt 2: W W^T = 2 I for wide-input layers, W^T W = 2 I for tall ones."""
    m = MLP(2, 256, "orthogonal", gen())
    for layer in m.layers:
        w = layer.weight.double()
        rows, cols = w.shape
        g = w @ w.T if rows <= cols else w.T @ w
        assert torch.allclose(g, 2.0 * torch.eye(min(rows, cols), dtype=torch.float64), atol=1e-4), layer


def test_inits_differ():
    """The three schemes give different weights from the same generator seed."""
    ws = [MLP(1, 64, init, gen()).layers[0].weight for init in INITS]
    assert not torch.equal(ws[0], ws[1]) and not torch.equal(ws[0], ws[2]) and not torch.equal(ws[1], ws[2])


def test_initialize_rejects_unknown_scheme():
    """An unknown init scheme raises ValueError naming it."""
    m = MLP(1, 4, generator=gen())
    with pytest.raises(ValueError, match="init='kaiming'"):
        initialize(m, "kaiming")


def test_building_a_model_leaves_the_global_rng_alone():
    """MLP(..., generator=g) draws only from g, never from torch's global RNG."""
    state = torch.get_rng_state()
    MLP(2, 16, "he", gen())
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("name,cls,momentum", [("sgd", torch.optim.SGD, 0), ("momentum", torch.optim.SGD, 0.9),
                                               ("adam", torch.optim.Adam, None)])
def test_make_optimizer(name, cls, momentum):
    """Each name builds the right optimizer with the given lr over every parameter."""
    m = MLP(2, 8, generator=gen())
    opt = make_optimizer(m, name, 0.123)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.123
    assert len(group["params"]) == len(list(m.parameters())) == 6
    if momentum is not None:
        assert group["momentum"] == momentum


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_steps_reduce_the_loss(name):
    """A few full-batch steps of every optimizer lower the loss on a small fixed problem."""
    m = MLP(1, 16, generator=gen())
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 784, generator=g), torch.randint(0, 10, (64,), generator=g)
    opt = make_optimizer(m, name, {"sgd": 0.05, "momentum": 0.01, "adam": 1e-3}[name])
    first = torch.nn.functional.cross_entropy(m(x), y).item()
    for _ in range(10):
        loss = torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.nn.functional.cross_entropy(m(x), y).item() < first


def test_make_optimizer_rejects_unknown_name():
    """An unknown optimizer raises ValueError naming it."""
    with pytest.raises(ValueError, match="optimizer='adamw'"):
        make_optimizer(MLP(1, 4, generator=gen()), "adamw", 0.1)


def test_per_layer_widths_and_torch_init():
    """widths builds 784-128-512-10; init='torch' draws what nn.Linear's own reset_parameters draws."""
    import math

    m = MLP(2, None, "torch", gen(), widths=(128, 512))
    assert [tuple(layer.weight.shape) for layer in m.layers] == [(128, 784), (512, 128), (10, 512)]
    ref = torch.nn.Linear(784, 128)
    g = gen()
    torch.nn.init.kaiming_uniform_(ref.weight, a=math.sqrt(5), generator=g)
    torch.nn.init.uniform_(ref.bias, -1 / math.sqrt(784), 1 / math.sqrt(784), generator=g)
    assert torch.equal(m.layers[0].weight, ref.weight) and torch.equal(m.layers[0].bias, ref.bias)
    for layer in m.layers:  # nn.Linear's default: every entry within 1/sqrt(fan_in)
        bound = 1 / math.sqrt(layer.weight.shape[1])
        assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound and layer.bias.abs().max() > 0
    with pytest.raises(ValueError, match="widths"):
        MLP(3, None, widths=(128, 512))

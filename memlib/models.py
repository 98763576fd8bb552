"""The MLP: `depth` hidden Linear+ReLU layers of `width` units, then a Linear classifier."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import skip_init

from .config import INITS

N_INPUT, N_CLASSES = 784, 10


def layer_names(depth: int) -> list[str]:
    """Names of the Linear layers in network order: hidden1..hidden{depth}, classifier."""
    return [f"hidden{i}" for i in range(1, depth + 1)] + ["classifier"]


class MLP(nn.Module):
    """A ReLU MLP on flattened 28x28 images.

    depth is the number of hidden layers. Example: MLP(depth=4, width=256) is
    784 -> 256 -> 256 -> 256 -> 256 -> 10: four hidden Linear+ReLU layers and one
    Linear classifier, so 5 Linear layers and 4 hidden representations.
    """

    def __init__(self, depth: int, width: int | None, init: str = "he", generator: torch.Generator | None = None,
                 widths: tuple[int, ...] | None = None):
        super().__init__()
        shape = f"depth={depth}, width={width}" if widths is None else f"depth={depth}, widths={tuple(widths)}"
        widths = tuple(widths) if widths is not None else (width,) * max(depth, 0)
        if depth < 1 or len(widths) != depth or min(widths) < 1:
            raise ValueError(f"{shape}: both must be >= 1 (one width per hidden layer)")
        sizes = [N_INPUT, *widths, N_CLASSES]
        # skip_init: nn.Linear's own initialization would draw from torch's global RNG
        self.layers = nn.ModuleList(skip_init(nn.Linear, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.depth, self.widths = depth, widths
        self.width = max(widths)  # the widest hidden layer (evaluation buffers are this wide)
        if generator is None:  # never the global RNG: a fixed stream instead
            generator = torch.Generator().manual_seed(0)
        initialize(self, init, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 784] -> logits [B, 10]."""
        *hidden, last = self.layers
        for layer in hidden:
            x = torch.relu(layer(x))
        return last(x)

    def n_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())


def mlp_for(cfg, generator: torch.Generator | None = None) -> MLP:
    """The MLP a RunConfig describes (its depth, hidden widths and initialization)."""
    return MLP(cfg.depth, None, cfg.init, generator, widths=cfg.hidden_widths)


@torch.no_grad()
def initialize(model: MLP, init: str, generator: torch.Generator | None = None) -> None:
    """Set weights by scheme (he: Kaiming normal, fan-in; xavier: Glorot normal; orthogonal: gain sqrt 2; biases 0) or
    torch: nn.Linear's own default, weights and biases uniform in +-1/sqrt(fan_in) (kaiming_uniform_ with
    a = sqrt 5)."""
    if init not in INITS:
        raise ValueError(f"init={init!r} is not allowed: one of {', '.join(INITS)}")
    for layer in model.layers:
        w = layer.weight
        if init == "torch":
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(w.shape[1])
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
            continue
        if init == "he":
            nn.init.kaiming_normal_(w, nonlinearity="relu", generator=generator)
        elif init == "xavier":
            nn.init.xavier_normal_(w, generator=generator)
        else:
            nn.init.orthogonal_(w, gain=math.sqrt(2.0), generator=generator)
        nn.init.zeros_(layer.bias)


def make_optimizer(model: nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    """'sgd', 'momentum' (SGD with momentum 0.9) or 'adam', fused where the device supports it."""
    params = list(model.parameters())
    fused = {"fused": True}
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, **fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, **fused)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, **fused)
    raise ValueError(f"optimizer={name!r} is not allowed: 'sgd', 'momentum' or 'adam'")

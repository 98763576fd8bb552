"""Train several configs of one shape together: K MLPs in lockstep through batched matrix products.

    from memlib.batched import train_many
    runs = train_many([cfg.replace(seed=s) for s in range(8)])   # runs[i] is train(cfgs[i]), bit for bit

Configs trained together must agree on SHAPE_FIELDS (n_train, depth, width, batch_size) and on the
device they resolve to; everything else may differ: seed, noise, noise_kind, init, optimizer, lr,
epochs, stop_at, eval_size, probe_size, shift_degrees and the recording settings. Each network keeps
exactly what train() gives it: its own subset, labels, initialization, batch order, probe set,
optimizer state and Recorder (the evaluation and result assembly of memlib.train).

Bit-identical to train(), by construction and by check. The training step is written out by hand
(forward, cross-entropy, backward) in the operations autograd uses for one network, each applied to
all K networks at once: baddbmm for nn.Linear's addmm, bmm for its gradients, one reduction for the
bias gradients, one log-softmax over all rows. Whether such a batched operation gives, for every
network, exactly the bits the single-network operation gives depends on the BLAS library, the CPU and
the thread count (MKL with 2 threads splits a 128x128x784 product differently than its batched
routine does; with 1 thread they agree). So every operation is checked once per process, shape and
thread count, on random data, against what train() computes: when the batched form differs, that
operation runs network by network (the single-network operation on each slice) instead, and when
even that differs the whole group falls back to train() one config after another. The optimizer
step (torch.optim's fused kernels over every network's parameters at once), the per-batch gradient
norms (one torch._foreach_norm) and the loss (nll_loss per network) are the very kernels train()
runs, on tensors of the same shapes. A network that finishes (its epochs, or stop_at) leaves the
batch; the others go on as a smaller batch.

Results therefore do not depend on which configs share a batch: train_many([a, b])[0] equals
train_many([a])[0] equals train(a). Note that train() itself depends on the thread count
(torch.get_num_threads()): the same config trained with 1 and with 2 threads differs in the last bits.
"""
from __future__ import annotations

import functools
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data as D
from .config import RunConfig
from .models import MLP, N_CLASSES, N_INPUT, make_optimizer
from .rng import torch_generator
from .train import EVAL_CHUNK, Prepared, Recorder, RunResult, _progress, draw, pick_device, to_device, train

# Fields that must agree for configs to train together (besides the device they resolve to).
SHAPE_FIELDS = ("n_train", "depth", "width", "batch_size")
MAX_GROUP = 8  # group_by_shape puts at most this many configs in one batch (memory grows with K)


def shape_key(cfg: RunConfig) -> tuple:
    """What configs trained together must share: SHAPE_FIELDS and the resolved device."""
    return tuple(getattr(cfg, f) for f in SHAPE_FIELDS) + (str(pick_device(cfg.device)),)


def check_same_shape(cfgs) -> None:
    """Raise ValueError naming the first field in which the configs cannot be trained together."""
    first = cfgs[0]
    for c in cfgs[1:]:
        for f in SHAPE_FIELDS:
            if getattr(c, f) != getattr(first, f):
                raise ValueError(f"train_many: configs differ in {f} ({getattr(first, f)!r} and {getattr(c, f)!r}); "
                                 f"configs trained together must agree on {', '.join(SHAPE_FIELDS)} and device "
                                 "(memlib.batched.group_by_shape sorts a list into such groups)")
        if pick_device(c.device) != pick_device(first.device):
            raise ValueError(f"train_many: configs differ in device ({first.device!r} and {c.device!r})")


def group_by_shape(cfgs, max_group: int = MAX_GROUP) -> list[list[int]]:
    """Indices of cfgs in groups that train_many can train together: one shape each, in first-seen order, at most
    max_group configs, a shape's configs split into groups of nearly equal size (9 configs: 5 and 4, not 8 and 1)."""
    shapes: OrderedDict = OrderedDict()
    for i, c in enumerate(cfgs):
        shapes.setdefault(shape_key(c), []).append(i)
    return [part.tolist() for idx in shapes.values() for part in np.array_split(idx, -(-len(idx) // max_group))]


def train_many(cfgs, source: str | None = None) -> list[RunResult]:
    """train(cfg, source) for every config, trained together in lockstep; results in order, each bit-identical to train()'s.

    The configs must agree on SHAPE_FIELDS and device (ValueError otherwise). Not cached: memlib.cache.run_many is the
    cached door.
    """
    cfgs = list(cfgs)
    for c in cfgs:
        if not isinstance(c, RunConfig):
            raise TypeError(f"train_many: expected RunConfig objects, got {type(c).__name__}")
    if len(cfgs) <= 1:
        return [train(c, source) for c in cfgs]
    check_same_shape(cfgs)
    return _Lockstep(cfgs, source).run()


# ---------------------------------------------------------------- the operations, batched and per network

def _linear(h, w, b, out=None):
    return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2), out=out)


def _grad_weight(g, h, out=None):
    return torch.bmm(g.transpose(1, 2), h, out=out)


def _grad_input(g, w, out=None):
    return torch.bmm(g, w, out=out)


def _grad_bias(g, out=None):
    return torch.sum(g, 1, out=out)


def _log_softmax(z, out=None):
    return torch.log_softmax(z, -1)


def _log_softmax_backward(g, y, out=None):
    return torch._log_softmax_backward_data(g, y, -1, y.dtype)


# name: (the batched form over [K, ...] tensors, what train() computes for one network on [...] tensors).
# The single forms are autograd's for F.cross_entropy(MLP(x), y): nn.Linear is addmm(b, h, w.t()); its weight
# gradient g.t() @ h, its input gradient g @ w, its bias gradient g.sum(0); log_softmax and its backward on dim 1.
_OPS = {
    "linear": (_linear, F.linear),
    "grad_weight": (_grad_weight, lambda g, h: g.t().mm(h)),
    "grad_input": (_grad_input, torch.mm),
    "grad_bias": (_grad_bias, lambda g: g.sum(0)),
    "log_softmax": (_log_softmax, lambda z: torch.log_softmax(z, 1)),
    "log_softmax_backward": (_log_softmax_backward, lambda g, y: torch._log_softmax_backward_data(g, y, 1, y.dtype)),
}

_PLANS: dict = {}  # (op, argument shapes, device type, threads) -> "batched" | "looped" | None


def _looped(name, *args, out=None):
    """The single-network operation on each network's slice, stacked."""
    single = _OPS[name][1]
    return torch.stack([single(*(a[k] for a in args)) for k in range(len(args[0]))], out=out)


def _random(shape, gen, device):
    """Normal values over a wide range of magnitudes: any change in the order of a sum shows in the bits."""
    x = torch.randn(shape, generator=gen, device=device)
    return x * torch.exp2(torch.randint(-6, 7, shape, generator=gen, device=device).float())


def plan(name: str, shapes: tuple, device: torch.device) -> str | None:
    """How to run op `name` on arguments of these [K, ...] shapes so that every network gets train()'s bits.

    "batched" when the batched form reproduces, for each network, the single-network operation on a standalone
    copy of its slice (checked once per process, shape, device and thread count on random data), else "looped"
    when the single-network operation on the slices does, else None.
    """
    key = (name, shapes, device.type, torch.get_num_threads())
    if key not in _PLANS:
        batched, single = _OPS[name]
        gen = torch.Generator(device=device).manual_seed(0)
        args = [_random(s, gen, device) for s in shapes]
        with torch.no_grad():
            ref = torch.stack([single(*(a[k].clone() for a in args)) for k in range(shapes[0][0])])
            got = batched(*args, out=torch.empty_like(ref)) if name in ("grad_weight", "grad_bias") else batched(*args)
            if torch.equal(got, ref):
                _PLANS[key] = "batched"
            elif torch.equal(_looped(name, *args), ref):
                _PLANS[key] = "looped"
            else:
                _PLANS[key] = None
    return _PLANS[key]


# ---------------------------------------------------------------- K networks in lockstep


class _Net:
    """One config of the batch: its data, model, recorder and batch-order generator."""

    def __init__(self, slot: int, cfg: RunConfig, p: Prepared, device: torch.device):
        self.slot, self.cfg, self.p = slot, cfg, p
        self.model = MLP(cfg.depth, cfg.width, cfg.init, torch_generator(cfg.seed, "init")).to(device)
        self.params = [q for layer in self.model.layers for q in (layer.weight, layer.bias)]  # w1, b1, w2, b2, ...
        self.rec = Recorder(cfg, p, self.model, device)
        self.gen = torch_generator(cfg.seed, "batches")


class _Lockstep:
    def __init__(self, cfgs: list[RunConfig], source: str | None):
        self.t0 = time.perf_counter()
        self.cfgs, self.source = cfgs, source
        self.device = pick_device(cfgs[0].device)
        c = cfgs[0]
        self.n, self.bs, self.depth = c.n_train, c.batch_size, c.depth
        self.sizes = [N_INPUT] + [c.width] * c.depth + [N_CLASSES]
        self.steps_per_epoch = -(-self.n // self.bs)
        self.epochs = max(c.epochs for c in cfgs)
        self.batches = sorted({self.bs, self.n - (self.steps_per_epoch - 1) * self.bs})  # batch sizes met
        self.modes: dict = {}  # (op, argument shapes) -> whether the batched form is exact (plan(), memoized)

    def _usable(self, k: int) -> bool:
        """True when every operation of a K-network step has a plan that reproduces train()."""
        plans = []
        for B in self.batches:
            for j, (i, o) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
                plans += [plan("linear", ((k, B, i), (k, o, i), (k, o)), self.device),
                          plan("grad_weight", ((k, B, o), (k, B, i)), self.device),
                          plan("grad_bias", ((k, B, o),), self.device)]
                if j > 0:  # the input images need no gradient
                    plans.append(plan("grad_input", ((k, B, o), (k, o, i)), self.device))
            plans += [plan("log_softmax", ((k, B, N_CLASSES),), self.device),
                      plan("log_softmax_backward", ((k, B, N_CLASSES), (k, B, N_CLASSES)), self.device)]
        return all(p is not None for p in plans)

    def run(self) -> list[RunResult]:
        if not self._usable(len(self.cfgs)):
            return [train(c, self.source) for c in self.cfgs]
        with torch.no_grad():
            return self._train()

    def _op(self, name, *args, out=None):
        key = (name, *(a.shape for a in args))
        batched = self.modes.get(key)
        if batched is None:
            batched = self.modes[key] = plan(name, tuple(tuple(a.shape) for a in args), self.device) == "batched"
        return _OPS[name][0](*args, out=out) if batched else _looped(name, *args, out=out)

    def _stack(self, nets: list[_Net]) -> None:
        """Gather the networks' parameters into [K, ...] tensors that their own parameters then view."""
        L = self.depth + 1
        self.w = [torch.stack([net.params[2 * j].detach() for net in nets]) for j in range(L)]
        self.b = [torch.stack([net.params[2 * j + 1].detach() for net in nets]) for j in range(L)]
        self.gw = [torch.empty_like(t) for t in self.w]
        self.gb = [torch.empty_like(t) for t in self.b]
        self.grads = []
        for k, net in enumerate(nets):
            for j in range(L):
                for q, data, grad in ((net.params[2 * j], self.w[j][k], self.gw[j][k]),
                                      (net.params[2 * j + 1], self.b[j][k], self.gb[j][k])):
                    q.data = data
                    q.grad = grad
                    self.grads.append(grad)

    def _prepare(self) -> list[tuple[Prepared, tuple]]:
        """What prepare() gives each config, without K copies of the evaluation set: (Prepared, evaluation parts).

        The training images of all networks live in one [K * n, 784] tensor (network k's at rows k * n ...), the
        validation and test images once per eval_size; each network's evaluation set is never concatenated:
        _chunks hands _evaluate the same blocks of rows that p.x_eval.split(EVAL_CHUNK) would.
        """
        dev, n, K = self.device, self.n, len(self.cfgs)
        draws = [draw(c, self.source) for c in self.cfgs]
        mn = draws[0].mnist
        self.x_all = torch.empty(K * n, N_INPUT, device=dev)
        for k, d in enumerate(draws):
            self.x_all[k * n:(k + 1) * n] = to_device(D.standardize(mn.x_train[d.train_idx]), dev)
        self.y_all = to_device(np.concatenate([d.labels for d in draws]), dev)
        shared = {}  # eval_size -> (validation images, test images, their labels three times)
        for e in sorted({c.eval_size for c in self.cfgs}):
            shared[e] = (to_device(D.standardize(mn.x_val[:e]), dev), to_device(D.standardize(mn.x_test[:e]), dev),
                         to_device(np.concatenate([mn.y_val[:e], mn.y_test[:e], mn.y_test[:e]]), dev))
        self.scratch = torch.empty(min(EVAL_CHUNK, n + 3 * max(shared)), N_INPUT, device=dev)
        out = []
        for k, (c, d) in enumerate(zip(self.cfgs, draws)):
            val, test, y_eval = shared[c.eval_size]
            x, y = self.x_all[k * n:(k + 1) * n], self.y_all[k * n:(k + 1) * n]
            p = Prepared(x, y, None, y_eval, to_device(D.standardize(mn.x_test[d.probe_idx]), dev),
                         d.train_idx, d.labels, d.true_labels, d.corrupted, d.probe_idx)
            out.append((p, (x, val, test, to_device(D.standardize(d.shifted[:c.eval_size]), dev))))
        return out

    def _chunks(self, parts):
        """The blocks of EVAL_CHUNK rows of the concatenated parts (views, or copies in self.scratch across a seam)."""
        starts = np.cumsum([0] + [len(t) for t in parts])
        for lo in range(0, int(starts[-1]), EVAL_CHUNK):
            hi = min(lo + EVAL_CHUNK, int(starts[-1]))
            pieces = [t[max(lo, a) - a:min(hi, b) - a] for t, a, b in zip(parts, starts[:-1], starts[1:]) if a < hi and b > lo]
            yield pieces[0] if len(pieces) == 1 else torch.cat(pieces, out=self.scratch[:hi - lo])

    def _train(self) -> list[RunResult]:
        dev, n, bs = self.device, self.n, self.bs
        K = len(self.cfgs)
        nets = []
        for k, (c, (p, parts)) in enumerate(zip(self.cfgs, self._prepare())):
            nets.append(_Net(k, c, p, dev))
            nets[-1].rec.eval_chunks = functools.partial(self._chunks, parts)  # train, val, test, shifted
        offsets = torch.arange(K, device=dev) * n
        optimizers = {}
        for net in nets:
            optimizers.setdefault((net.cfg.optimizer, net.cfg.learning_rate), []).append(net.model)
        self._stack(nets)
        opts = [make_optimizer(nn.ModuleList(models), name, lr) for (name, lr), models in optimizers.items()]

        n_params = 2 * (self.depth + 1)
        gnorm = torch.empty(self.steps_per_epoch * self.epochs, K, n_params, device=dev)
        bloss = torch.empty(self.steps_per_epoch * self.epochs, K, device=dev)
        show = any(c.progress for c in self.cfgs) or (all(c.progress is None for c in self.cfgs) and sys.stderr.isatty()
                                                      and K * n * self.epochs >= 500_000)
        bar = _progress(self.epochs, show)
        results: list[RunResult | None] = [None] * K
        for net in nets:
            net.rec.checkpoint(0)
        active = nets
        slots = offsets.new_tensor([net.slot for net in active])
        step = 0
        for epoch in range(1, self.epochs + 1):
            perms = torch.stack([torch.randperm(n, generator=net.gen) for net in active]).to(dev) + offsets[slots, None]
            for b in range(self.steps_per_epoch):
                idx = perms[:, b * bs:(b + 1) * bs].reshape(-1)
                norms, losses = self._step(idx, len(active))
                if len(active) == K:
                    torch.stack(norms, out=gnorm[step].view(-1))
                    torch.stack(losses, out=bloss[step])
                else:
                    gnorm[step, slots] = torch.stack(norms).view(len(active), n_params)
                    bloss[step, slots] = torch.stack(losses)
                for opt in opts:
                    opt.step()
                step += 1
            finished = []
            for net in active:
                net.rec.checkpoint(epoch)
                if epoch == net.cfg.epochs or net.rec.stops_early(epoch):
                    finished.append(net)
            bar.update(1)
            if not finished:
                continue
            seconds = (time.perf_counter() - self.t0) / K  # the batch's wall time, shared
            for net in finished:
                results[net.slot] = net.rec.result(gnorm[:, net.slot], bloss[:, net.slot], self.steps_per_epoch,
                                                   seconds, {"batch_runs": K})
                for q in net.params:
                    q.grad = None  # the optimizers skip it from now on
            active = [net for net in active if net not in finished]
            if not active:
                break
            if not self._usable(len(active)):  # no exact plan for the smaller batch: train the rest alone, afresh
                for net in active:
                    results[net.slot] = train(net.cfg, self.source)
                break
            self._stack(active)
            slots = offsets.new_tensor([net.slot for net in active])
        bar.close()
        return results

    def _step(self, idx: torch.Tensor, k: int) -> tuple[list, list]:
        """Forward and backward for the k active networks on their mini-batches (rows idx of the stacked data).

        Leaves the gradients in the networks' .grad and returns their norms (network by network, w1, b1, w2, ...)
        and each network's mini-batch loss.
        """
        B = idx.numel() // k
        h = self.x_all.index_select(0, idx).view(k, B, N_INPUT)
        y = self.y_all.index_select(0, idx)
        hs = [h]
        L = self.depth + 1
        for j in range(L):
            h = self._op("linear", h, self.w[j], self.b[j])
            if j < L - 1:
                h = h.relu_()
                hs.append(h)
        logp = self._op("log_softmax", h)
        losses = [F.nll_loss(logp[m], y[m * B:(m + 1) * B]) for m in range(k)]
        # nll_loss's gradient (mean over the batch): -1/B at each row's label, computed in float32 as autograd does
        seed = float(-(torch.ones((), dtype=logp.dtype) / B))
        g = torch.zeros(k * B, N_CLASSES, dtype=logp.dtype, device=logp.device).scatter_(1, y.unsqueeze(1), seed)
        g = self._op("log_softmax_backward", g.view(k, B, N_CLASSES), logp)
        for j in reversed(range(L)):
            self._op("grad_weight", g, hs[j], out=self.gw[j])
            self._op("grad_bias", g, out=self.gb[j])
            if j > 0:
                g = torch.ops.aten.threshold_backward(self._op("grad_input", g, self.w[j]), hs[j], 0)
        return torch._foreach_norm(self.grads), losses

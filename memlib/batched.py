"""Train several configs of one shape together: K MLPs in lockstep through batched matrix products.

    from memlib.batched import train_many
    runs = train_many([cfg.replace(seed=s) for s in range(8)])   # runs[i] is train(cfgs[i]), bit for bit

Configs trained together must agree on SHAPE_FIELDS (n_train, depth, width, batch_size) and on the
device they resolve to; everything else may differ: seed, noise, noise_kind, init, optimizer, lr,
epochs, stop_at, eval_size, probe_size, shift_degrees and the recording settings. Each network keeps
exactly what train() gives it: its own subset, labels, initialization, batch order, probe set,
optimizer state and Recorder (the evaluation and result assembly of memlib.train).

Bit-identical to train(), by construction and by check. The training step is written out by hand
in the operations autograd runs for one network, each applied to all K networks at once: baddbmm
for nn.Linear's addmm, bmm for its weight and input gradients, one reduction for the bias
gradients, one log-softmax and its backward for the cross-entropy's gradient. Whether such a
batched operation gives every network exactly the bits train() gets depends on the BLAS library,
the CPU and the thread count (with 2 threads MKL splits a 128x784 @ 784x128 product differently
than its batched routine does; with 1 thread they agree). So before a batch trains, plan() checks
every operation once per process, shape and thread count on random data against train()'s own
calls (F.linear, and autograd through F.linear and F.cross_entropy) on standalone copies: when the
batched form differs, that operation runs network by network in train()'s own call instead, and
when even that differs the configs are trained one by one with train(). The rest are train()'s
kernels on tensors of the same shapes: the loss (F.cross_entropy per network), the per-batch
gradient norms (one torch._foreach_norm over every network's gradients), the optimizer step
(torch.optim's fused kernels; one optimizer per optimizer and learning rate over the networks'
parameters, which are views of the stacked [K, ...] weights) and the evaluation and result assembly
(memlib.train.Recorder). A network that finishes (its epochs, or stop_at) leaves the batch; the
others go on as a smaller batch (checked again). The check is on values spread over many orders of
magnitude, where any change in the order of a sum shows in the bits; what it cannot see is a BLAS
that picks its algorithm by something other than shapes and thread count (such as the alignment of
the data: none of MKL's products here do), and the tests compare whole runs with train() as well.

Results therefore do not depend on which configs share a batch: train_many([a, b])[0] equals
train_many([a])[0] equals train(a). Note that train() itself depends on the thread count
(torch.get_num_threads()): the same config trained with 1 and with 2 threads differs in the last
bits, so "identical" always means "at the same thread count".

Memory: the training images of all K networks sit in one tensor, the validation and test images
once; each network's evaluation blocks are views, or copies into one scratch block where a block
spans two parts (train()'s concatenated evaluation set is never built K times).
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
# Wider networks gain nothing from batching on a CPU (bench/sweeps.py, 8 seeds at width 512, 1 thread: 0.9x, the
# products are large enough already): group_by_shape gives them groups of one, i.e. train() one by one.
MAX_WIDTH = 256


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


def group_by_shape(cfgs, max_group: int = MAX_GROUP, max_width: int = MAX_WIDTH) -> list[list[int]]:
    """Indices of cfgs in groups that train_many can train together: one shape each, in first-seen order, at most
    max_group configs, a shape's configs split into groups of nearly equal size (9 configs: 5 and 4, not 8 and 1);
    configs wider than max_width alone."""
    cfgs = list(cfgs)
    shapes: OrderedDict = OrderedDict()
    for i, c in enumerate(cfgs):
        shapes.setdefault(shape_key(c), []).append(i)
    return [part.tolist() for idx in shapes.values()
            for part in np.array_split(idx, len(idx) if cfgs[idx[0]].width > max_width else -(-len(idx) // max_group))]


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
#
# Each operation of the training step has a batched form over [K, ...] tensors and a single form: what train()
# computes for one network, on [...] tensors. The single forms are the very calls train() makes: F.linear for
# nn.Linear, and autograd itself (through F.linear and F.cross_entropy) for the gradients, so that plan() compares
# the batched forms with train()'s bits, not with a guess at how autograd computes them.


def _linear(h, w, b, out=None):
    return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2), out=out)


def _grad_input(g, h, w, out=None):
    return torch.bmm(g, w, out=out)


def _grad_weight(g, h, w, out=None):
    return torch.bmm(g.transpose(1, 2), h, out=out)


def _grad_bias(g, h, w, out=None):
    return torch.sum(g, 1, out=out)


def _ce_grad(z, y, out=None):
    """The gradient of each network's mean cross-entropy with respect to its logits z [K, B, C] (labels y [K, B])."""
    k, B, C = z.shape
    logp = torch.log_softmax(z, -1)
    # nll_loss's gradient (reduction mean): -1/B at each row's label, computed in float32 as its kernel does
    seed = float(-(torch.ones((), dtype=z.dtype) / B))
    g = torch.zeros(k * B, C, dtype=z.dtype, device=z.device).scatter_(1, y.reshape(-1, 1), seed)
    return torch._log_softmax_backward_data(g.view(k, B, C), logp, -1, z.dtype)


def _autograd_linear(g, h, w):
    """(dh, dw, db): what autograd gives train() for F.linear(h, w, b) when the gradient g comes back."""
    h, w = h.detach().requires_grad_(), w.detach().requires_grad_()
    b = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device, requires_grad=True)
    with torch.enable_grad():
        F.linear(h, w, b).backward(g)
    return h.grad, w.grad, b.grad


def _autograd_ce(z, y):
    """What autograd gives train() for the logits' gradient of F.cross_entropy(z, y)."""
    z = z.detach().requires_grad_()
    with torch.enable_grad():
        F.cross_entropy(z, y).backward()
    return z.grad


# name: (batched form, single form, which of the single form's outputs (None: its only one), which arguments are labels)
_OPS = {
    "linear": (_linear, F.linear, None, ()),
    "grad_input": (_grad_input, _autograd_linear, 0, ()),
    "grad_weight": (_grad_weight, _autograd_linear, 1, ()),
    "grad_bias": (_grad_bias, _autograd_linear, 2, ()),
    "ce_grad": (_ce_grad, _autograd_ce, None, (1,)),
}
_INTO_BUFFERS = ("grad_weight", "grad_bias")  # written with out= into the gradient buffers the parameters view
_PLANS: dict = {}  # (op, argument shapes, device type, threads) -> "batched" | "looped" | None


def _single(name, *args):
    _, single, part, _ = _OPS[name]
    out = single(*args)
    return out if part is None else out[part]


def _looped(name, *args, out=None):
    """The single form on each network's slice, stacked."""
    return torch.stack([_single(name, *(a[k] for a in args)) for k in range(len(args[0]))], out=out)


def _random(shape, gen, device, labels=False):
    """Normal values over a wide range of magnitudes (any change in the order of a sum shows in the bits), or labels."""
    if labels:
        return torch.randint(0, N_CLASSES, shape, generator=gen, device=device)
    x = torch.randn(shape, generator=gen, device=device)
    return x * torch.exp2(torch.randint(-6, 7, shape, generator=gen, device=device).float())


@functools.lru_cache(maxsize=1)
def _calibration(name_group: str, shapes: tuple, device: torch.device, threads: int):
    """Random arguments for these shapes and, for each network, the single form's outputs on standalone copies.

    Cached for the last shapes: grad_input, grad_weight and grad_bias share one autograd call per network.
    """
    _, single, _, labels = _OPS[name_group]
    gen = torch.Generator(device=device).manual_seed(0)
    args = [_random(s, gen, device, i in labels) for i, s in enumerate(shapes)]
    with torch.no_grad():
        refs = [single(*(a[k].clone() for a in args)) for k in range(shapes[0][0])]
    return args, refs


def plan(name: str, shapes: tuple, device: torch.device) -> str | None:
    """How to run op `name` on arguments of these [K, ...] shapes so that every network gets train()'s bits.

    "batched" when the batched form reproduces, for each network, the single form (train()'s own call) on a
    standalone copy of its slice (checked once per process, shape, device and thread count on random data), else
    "looped" when the single form on the slices does, else None.
    """
    key = (name, shapes, device.type, torch.get_num_threads())
    if key not in _PLANS:
        batched, _, part, _ = _OPS[name]
        args, refs = _calibration("grad_weight" if part is not None else name, shapes, device, key[-1])
        with torch.no_grad():
            ref = torch.stack(refs if part is None else [r[part] for r in refs])
            got = batched(*args, out=torch.empty_like(ref)) if name in _INTO_BUFFERS else batched(*args)
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

    def __init__(self, slot: int, cfg: RunConfig, p: Prepared, device: torch.device, source: str | None,
                 pass_pred: torch.Tensor):
        self.slot, self.cfg, self.p = slot, cfg, p
        self.model = MLP(cfg.depth, cfg.width, cfg.init, torch_generator(cfg.seed, "init")).to(device)
        self.params = [q for layer in self.model.layers for q in (layer.weight, layer.bias)]  # w1, b1, w2, b2, ...
        self.rec = Recorder(cfg, p, self.model, device, source, pass_pred)
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
                shapes = ((k, B, o), (k, B, i), (k, o, i))
                plans += [plan("linear", ((k, B, i), (k, o, i), (k, o)), self.device),
                          plan("grad_weight", shapes, self.device), plan("grad_bias", shapes, self.device)]
                if j > 0:  # the input images need no gradient
                    plans.append(plan("grad_input", shapes, self.device))
            plans.append(plan("ce_grad", ((k, B, N_CLASSES), (k, B)), self.device))
        _calibration.cache_clear()
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
        _chunks hands the Recorder the same blocks of rows that p.x_eval.split(EVAL_CHUNK) would.
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
        self.scratch = torch.empty(min(EVAL_CHUNK, 3 * max(shared)), N_INPUT, device=dev)
        out = []
        for k, (c, d) in enumerate(zip(self.cfgs, draws)):
            val, test, y_eval = shared[c.eval_size]
            x, y = self.x_all[k * n:(k + 1) * n], self.y_all[k * n:(k + 1) * n]
            p = Prepared(x, y, None, y_eval, to_device(D.standardize(mn.x_test[d.probe_idx]), dev),
                         d.train_idx, d.labels, d.true_labels, d.corrupted, d.probe_idx)
            out.append((p, (val, test, to_device(D.standardize(d.shifted[:c.eval_size]), dev))))
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
        pred = torch.empty(K, n, dtype=torch.long, device=dev)  # [K, n] each network's predictions of the pass
        nets = []
        for k, (c, (p, parts)) in enumerate(zip(self.cfgs, self._prepare())):
            nets.append(_Net(k, c, p, dev, self.source, pred[k]))
            nets[-1].rec.eval_chunks = functools.partial(self._chunks, parts)  # val, test, shifted
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
                norms, losses, logits = self._step(idx, len(active))
                if len(active) == K:
                    torch.stack(norms, out=gnorm[step].view(-1))
                    torch.stack(losses, out=bloss[step])
                    pred[:, b * bs:(b + 1) * bs] = logits.argmax(-1)
                else:
                    gnorm[step, slots] = torch.stack(norms).view(len(active), n_params)
                    bloss[step, slots] = torch.stack(losses)
                    pred[slots, b * bs:(b + 1) * bs] = logits.argmax(-1)
                for opt in opts:
                    opt.step()
                step += 1
            finished = []
            for m, net in enumerate(active):
                net.rec.checkpoint(epoch, perms[m] - offsets[net.slot], bloss[step - self.steps_per_epoch:step, net.slot])
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

        Leaves the gradients in the networks' .grad and returns their norms (network by network, w1, b1, w2, ...),
        each network's mini-batch loss and the logits [k, B, 10].
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
        y = y.view(k, B)
        logits = h
        losses = [F.cross_entropy(h[m], y[m]) for m in range(k)]  # train()'s call, network by network
        g = self._op("ce_grad", h, y)
        for j in reversed(range(L)):
            self._op("grad_weight", g, hs[j], self.w[j], out=self.gw[j])
            self._op("grad_bias", g, hs[j], self.w[j], out=self.gb[j])
            if j > 0:
                g = torch.ops.aten.threshold_backward(self._op("grad_input", g, hs[j], self.w[j]), hs[j], 0)
        return torch._foreach_norm(self.grads), losses, logits

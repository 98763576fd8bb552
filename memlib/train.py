"""One training loop with recorders: `train(config) -> RunResult` of plain arrays, never plots."""
from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import data as D
from . import files
from .config import RunConfig
from .data import draw
from .evaluate import EVAL_CHUNK, EvalForward, evaluate_fit, fit_metrics
from .models import MLP, make_optimizer, mlp_for
from .results import ARRAY_FIELDS, METRICS, N_FIT, RunResult  # noqa: F401  (ARRAY_FIELDS: re-exported)
from .rng import torch_generator

# Every epoch trains on full mini-batches only (as drop_last does): the last n_train mod batch_size examples of the
# epoch's shuffled order sit that epoch out, so every per-batch statistic averages batches of one size.
#
# NOISE: a layer's gradient noise in an epoch is the trace of the covariance of its mini-batch gradients g_b over the
# epoch's S steps, mean_b ||g_b||^2 - ||mean_b g_b||^2, kept from running sums (no second backward pass). It measures
# how much the gradient *vector* changes direction and size from batch to batch, unlike the variance of its norm.


# A run given a checkpoint path (memlib.cache.run gives every cached run one) saves its state there after an epoch
# once this many seconds have passed since the last save, so that a killed run resumes where it stopped.
CHECKPOINT_SECONDS = 300.0


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' is not available on this machine: use 'auto' or 'cpu'")
    return torch.device(name)


@dataclass
class Prepared:
    """A run's data, ready on the device."""

    x: torch.Tensor  # [n_train, 784] float32 standardised
    y: torch.Tensor  # [n_train] int64 labels as given (noisy)
    x_eval: torch.Tensor  # [eval_size + U + eval_size, 784]: validation, U test images (evaluated or probed), shifted
    y_eval: torch.Tensor  # [3 * eval_size] int64 true labels of val, test, shifted test
    eval_rows: torch.Tensor  # [3 * eval_size] int64 rows of x_eval scored against y_eval
    x_held: torch.Tensor  # [3 * eval_size, 784] x_eval[eval_rows]: the pass when no representations are due
    probe_rows: np.ndarray  # [probe_size] sorted rows of x_eval holding the probe images
    train_idx: np.ndarray
    labels: np.ndarray
    true_labels: np.ndarray
    corrupted: np.ndarray
    probe_idx: np.ndarray


def to_device(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


def prepare(cfg: RunConfig, device: torch.device, source: str | None = None,
            labels: np.ndarray | None = None) -> Prepared:
    """draw(), then the scaled training and evaluation tensors on the device.

    The evaluation block holds each test image once: the larger of the evaluated and the probe sets (the smaller
    lies inside it), so one forward pass gives the test accuracy and the probe representations.
    """
    d = draw(cfg, source, labels)
    mn, k = d.mnist, cfg.eval_size
    scale = functools.partial(D.scale_inputs, kind=cfg.inputs)
    x_tr = scale(mn.x_train[d.train_idx])
    union = d.eval_idx if len(d.eval_idx) >= len(d.probe_idx) else d.probe_idx  # [U] sorted
    x_eval = np.concatenate([scale(mn.x_val[:k]), scale(mn.x_test[union]), scale(d.shifted[d.eval_idx])])
    y_eval = np.concatenate([mn.y_val[:k], mn.y_test[d.eval_idx], mn.y_test[d.eval_idx]])
    rows = np.concatenate([np.arange(k), k + np.searchsorted(union, d.eval_idx), k + len(union) + np.arange(k)])
    dev = functools.partial(to_device, device=device)
    x_eval = dev(x_eval)
    x_held = x_eval if len(union) == k else x_eval[dev(rows)]  # the same tensor when no probe image lies outside
    return Prepared(dev(x_tr), dev(d.labels), x_eval, dev(y_eval), dev(rows), x_held,
                    k + np.searchsorted(union, d.probe_idx), d.train_idx, d.labels, d.true_labels, d.corrupted,
                    d.probe_idx)


def _held_out_metrics(fwd: EvalForward, p: Prepared, on_hidden=None) -> torch.Tensor:
    """val_acc, test_acc, shift_acc as a [3] tensor from one forward pass (no host sync): over p.x_eval when on_hidden
    wants the probe rows, else over the scored rows alone."""
    if on_hidden is None:
        pred = fwd.logits(p.x_held.split(EVAL_CHUNK)).argmax(1)  # [3k]
    else:
        pred = fwd.logits(p.x_eval.split(EVAL_CHUNK), on_hidden).argmax(1)[p.eval_rows]  # [3k]
    return (pred == p.y_eval).float().view(3, -1).mean(1)


def _rep_checkpoints(cfg: RunConfig) -> list[int]:
    if cfg.rep_epochs == "none":
        return []
    if cfg.rep_epochs == "ends":
        return [0, cfg.epochs]
    return list(range(cfg.epochs + 1))


def init_rows(n_train: int, eval_size: int) -> np.ndarray:
    """Rows of the training set scored at checkpoint 0: min(n_train, eval_size) of them, evenly spread, in order."""
    m = min(n_train, eval_size)
    return (np.arange(m) * n_train) // m


def steps_per_epoch(cfg: RunConfig) -> int:
    """Mini-batches per epoch: full batches only (the last n_train mod batch_size examples sit each epoch out)."""
    return cfg.n_train // cfg.batch_size


class Recorder:
    """One run's records: the metrics at every checkpoint, the probe representations, and its RunResult."""

    def __init__(self, cfg: RunConfig, p: Prepared, model: MLP, device: torch.device, source: str | None = None):
        self.cfg, self.p, self.model, self.device, self.source = cfg, p, model, device, source
        self.fwd = EvalForward(model)  # evaluation forward passes, into reused buffers
        n_layers = cfg.depth + 1
        self.hist = torch.empty(cfg.epochs + 1, len(METRICS), device=device)
        self.noise = torch.empty(cfg.epochs, 2 * n_layers, dtype=torch.float64, device=device)  # w1, b1, w2, ...
        self.wnorm = torch.empty(cfg.epochs + 1, n_layers, dtype=torch.float64, device=device)
        self.y_true = torch.from_numpy(p.true_labels).to(device)
        self.changed = torch.from_numpy(p.corrupted).to(device)
        self.init_rows = torch.from_numpy(init_rows(cfg.n_train, cfg.eval_size)).to(device)
        self.rep_at = _rep_checkpoints(cfg)
        self.keep = cfg.recorded_layers
        self.reps = {f"hidden{j}": np.empty((len(self.rep_at), cfg.probe_size, cfg.hidden_widths[j - 1]), np.float16)
                     for j in self.keep}
        self.done = cfg.epochs  # epochs trained: fewer when stop_at ends the run early
        self.eval_seconds = 0.0  # wall time spent in checkpoint() (held-out evaluation, representations)
        self.seen = steps_per_epoch(cfg) * cfg.batch_size  # examples trained on per epoch
        # the training loop fills this: [seen] the epoch's predictions in the order the examples came
        # (row b * batch_size + i: batch b, row i)
        self.pass_pred = torch.empty(self.seen, dtype=torch.long, device=device)

    def keeper(self, slot: int) -> Callable[[int, torch.Tensor], None]:
        """An on_hidden callback for a forward pass over p.x_eval that stores the probe rows' activations in slot."""
        rows = self.p.probe_rows  # [probe_size] sorted rows of x_eval

        def keep(j: int, h: torch.Tensor) -> None:  # h [block rows, width], rows row0.. of x_eval
            if j in self.keep:
                r0 = self.fwd.row0
                lo, hi = np.searchsorted(rows, [r0, r0 + len(h)])
                if hi > lo:
                    pick = torch.from_numpy(rows[lo:hi] - r0).to(h.device)
                    self.reps[f"hidden{j}"][slot, lo:hi] = h.index_select(0, pick).to(torch.float16).cpu().numpy()

        return keep

    def record_reps(self, slot: int) -> None:
        """The probe representations alone, into slot (an early stop's last record)."""
        self.fwd.logits(self.p.x_eval.split(EVAL_CHUNK), self.keeper(slot))

    def record_noise(self, epoch: int, gnorm: torch.Tensor, gsum: list[torch.Tensor]) -> None:
        """Epoch `epoch`'s gradient noise from its per-step norms gnorm [S, 2L] and the sums of its gradients gsum."""
        steps = gnorm.shape[0]
        mean_sq = gnorm.double().square().mean(0)  # [2L] mean_b ||g_b||^2
        sum_norm = torch.stack(torch._foreach_norm(gsum)).double()  # [2L] ||sum_b g_b||
        self.noise[epoch - 1] = mean_sq - (sum_norm / steps).square()

    def checkpoint(self, epoch: int, perm: torch.Tensor | None = None, batch_loss: torch.Tensor | None = None) -> None:
        """Record every metric (and the representations when due) at checkpoint `epoch`.

        For epoch >= 1 the training-set metrics come from the epoch's pass: perm [n_train] is the order the examples
        came in (its first `seen` trained), self.pass_pred the predictions made for them, batch_loss [steps per epoch]
        the mini-batch losses.
        """
        p = self.p
        t0 = time.perf_counter()
        self.model.eval()
        if epoch == 0:  # the untrained network on init_rows of the training set
            r = self.init_rows
            self.hist[0, :N_FIT] = evaluate_fit(self.fwd, p.x[r], p.y[r], self.y_true[r], self.changed[r])
        else:
            loss = batch_loss.double().mean()  # batches of one size: the mean over the examples that trained
            i = perm[: self.seen]
            self.hist[epoch, :N_FIT] = fit_metrics(self.pass_pred, loss, p.y[i], self.y_true[i], self.changed[i])
        due = epoch in self.rep_at and self.keep  # the probe representations come from the same pass
        self.hist[epoch, N_FIT:] = _held_out_metrics(self.fwd, p,
                                                     self.keeper(self.rep_at.index(epoch)) if due else None)
        weights = [layer.weight.detach() for layer in self.model.layers]
        self.wnorm[epoch] = torch.stack(torch._foreach_norm(weights)).double()
        self.model.train()
        self.eval_seconds += time.perf_counter() - t0

    def stops_early(self, epoch: int) -> bool:
        """After checkpoint(epoch): True when stop_at ends training here, before the last epoch."""
        cfg = self.cfg
        # hist[epoch, 1]: train_acc, given labels
        if cfg.stop_at is not None and epoch < cfg.epochs and float(self.hist[epoch, 1]) >= cfg.stop_at:
            self.done = epoch
            if cfg.rep_epochs == "ends" and self.keep:  # the end came early: record it in the last slot
                self.record_reps(len(self.rep_at) - 1)
                self.rep_at[-1] = epoch
            return True
        return False

    def result(self, gnorm: torch.Tensor, bloss: torch.Tensor, seconds: float, meta: dict | None = None) -> RunResult:
        """The RunResult: gnorm [>= steps, 2 * (depth + 1)] and bloss [>= steps] per mini-batch (trimmed here)."""
        done, per_epoch = self.done, steps_per_epoch(self.cfg)
        n_steps = per_epoch * done
        g = gnorm[:n_steps].cpu().numpy().reshape(n_steps, self.cfg.depth + 1, 2)
        h = self.hist[: done + 1].double().cpu().numpy()
        noise = self.noise[:done].cpu().numpy().reshape(done, self.cfg.depth + 1, 2)
        rep_at = [e for e in self.rep_at if e <= done]
        return RunResult(
            config=self.cfg,
            history={m: h[:, j] for j, m in enumerate(METRICS)},
            grad_w=np.ascontiguousarray(g[:, :, 0]),
            grad_b=np.ascontiguousarray(g[:, :, 1]),
            noise_w=np.ascontiguousarray(noise[:, :, 0]),
            noise_b=np.ascontiguousarray(noise[:, :, 1]),
            weight_norm=self.wnorm[: done + 1].cpu().numpy().copy(),
            batch_loss=np.ascontiguousarray(bloss[:n_steps].cpu().numpy()),
            step_epoch=np.repeat(np.arange(1, done + 1, dtype=np.int32), per_epoch),
            reps={k: v[: len(rep_at)] for k, v in self.reps.items()},
            rep_epochs=np.asarray(rep_at, dtype=np.int32),
            probe_idx=self.p.probe_idx,
            train_idx=self.p.train_idx,
            labels=self.p.labels,
            true_labels=self.p.true_labels,
            corrupted=self.p.corrupted,
            weights={k: np.array(v.detach().cpu().numpy()) for k, v in self.model.state_dict().items()},  # copies
            seconds=seconds,
            meta={"device": str(self.device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "eval_seconds": round(self.eval_seconds, 4),
                  **({"source": self.source} if self.source else {}), **(meta or {})},
        )


def _state(cfg: RunConfig, p: Prepared, epoch: int, step: int, model: MLP, opt, gen, rec: Recorder,
           gnorm: torch.Tensor, bloss: torch.Tensor, seconds: float) -> dict:
    """Everything the loop needs to go on after `epoch` as if it had never stopped (tensors and numbers only)."""
    return {"key": cfg.key(), "labels": torch.from_numpy(p.labels.astype(np.int64)), "epoch": epoch, "step": step,
            "model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
            "hist": rec.hist[: epoch + 1], "noise": rec.noise[:epoch], "wnorm": rec.wnorm[: epoch + 1],
            "gnorm": gnorm[:step], "bloss": bloss[:step], "reps": {k: torch.from_numpy(v) for k, v in rec.reps.items()},
            "eval_seconds": rec.eval_seconds, "seconds": seconds}


def _saved_state(path, cfg: RunConfig, p: Prepared) -> dict | None:
    """The state saved at path for this config and these labels, or None (no file, another run's, or unreadable)."""
    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["key"] == cfg.key() and torch.equal(state["labels"], torch.from_numpy(p.labels.astype(np.int64))):
            return state
    except Exception:  # a damaged or foreign file: train from the start (it is replaced at the next save)
        pass
    return None


def _restore(state: dict, model: MLP, opt, gen, rec: Recorder, gnorm: torch.Tensor, bloss: torch.Tensor) -> int:
    """Put a saved state back into the loop's objects; the step count it reached."""
    e, step = state["epoch"], state["step"]
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    gen.set_state(state["gen"])
    for mine, saved in ((rec.hist[: e + 1], "hist"), (rec.noise[:e], "noise"), (rec.wnorm[: e + 1], "wnorm"),
                        (gnorm[:step], "gnorm"), (bloss[:step], "bloss")):
        mine.copy_(state[saved])
    for k, v in state["reps"].items():
        rec.reps[k][...] = v.numpy()
    rec.eval_seconds = state["eval_seconds"]
    return step


def train(cfg: RunConfig, source: str | None = None, labels: np.ndarray | None = None,
          on_epoch: Callable[[RunResult], None] | None = None, checkpoint=None,
          checkpoint_seconds: float | None = None) -> RunResult:
    """Train one MLP as cfg says and record everything the chapters need.

    labels, when given, replace the (noisy) training labels the config would draw; the mask of
    corrupted examples is then labels != true labels. on_epoch, when given, receives the run so far
    (a RunResult of the epochs done) after initialization and after every epoch but the last; it may
    raise Cancelled to stop training. It only reads: the finished run is the same with or without it.
    checkpoint, a path: resume from the state saved there for this run, if any, and save the state there
    (atomically) after an epoch once checkpoint_seconds (None: CHECKPOINT_SECONDS) have passed since the
    last save; the finished run is the same, bit for bit, however often it was stopped and resumed. The
    caller removes the file.
    """
    t0 = time.perf_counter()
    device = pick_device(cfg.device)
    p = prepare(cfg, device, source, labels)
    model = mlp_for(cfg, torch_generator(cfg.seed, "init")).to(device)
    opt = make_optimizer(model, cfg.optimizer, cfg.learning_rate)
    params = [q for layer in model.layers for q in (layer.weight, layer.bias)]  # w1, b1, w2, b2, ...

    n, bs, per_epoch = cfg.n_train, cfg.batch_size, steps_per_epoch(cfg)
    n_steps = per_epoch * cfg.epochs
    gnorm = torch.empty(n_steps, len(params), device=device)  # [steps, 2 * (depth + 1)]
    bloss = torch.empty(n_steps, device=device)
    gsum = [torch.zeros_like(q) for q in params]  # the epoch's running sum of each gradient
    rec = Recorder(cfg, p, model, device, source)

    gen = torch_generator(cfg.seed, "batches")
    show = cfg.progress if cfg.progress is not None else (sys.stderr.isatty() and n * cfg.epochs >= 500_000)
    bar = _progress(cfg.epochs, show)
    checkpoint = None if checkpoint is None else Path(checkpoint)
    every = CHECKPOINT_SECONDS if checkpoint_seconds is None else checkpoint_seconds
    state = _saved_state(checkpoint, cfg, p)
    start, step = 1, 0
    if state is None:
        rec.checkpoint(0)
    else:
        step, start = _restore(state, model, opt, gen, rec, gnorm, bloss), state["epoch"] + 1
        t0 -= state["seconds"]
        bar.update(start - 1)
    del state
    saved_at = time.perf_counter()

    def report(epoch: int) -> None:
        if on_epoch is not None:
            done, rec.done = rec.done, epoch
            try:
                on_epoch(rec.result(gnorm, bloss, time.perf_counter() - t0))
            finally:
                rec.done = done

    report(start - 1)
    pred_rows = rec.pass_pred.split(bs)  # views: where batch b's predictions go
    for epoch in range(start, cfg.epochs + 1):
        perm = torch.randperm(n, generator=gen).to(device)
        first, losses = step, []
        torch._foreach_zero_(gsum)
        for i, pred in zip(perm[: rec.seen].split(bs), pred_rows, strict=True):
            logits = model(p.x.index_select(0, i))  # [B, 10]
            loss = F.cross_entropy(logits, p.y.index_select(0, i))
            torch.argmax(logits.detach(), 1, out=pred)  # each example scored as it trains
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grads = [q.grad for q in params]
            torch.stack(torch._foreach_norm(grads), out=gnorm[step])  # all layers, one call
            torch._foreach_add_(gsum, grads)
            losses.append(loss.detach())
            opt.step()
            step += 1
        torch.stack(losses, out=bloss[first:step])
        rec.record_noise(epoch, gnorm[first:step], gsum)
        rec.checkpoint(epoch, perm, bloss[first:step])
        bar.update(1)
        if rec.stops_early(epoch):
            break
        if checkpoint is not None and epoch < cfg.epochs and time.perf_counter() - saved_at >= every:
            now = _state(cfg, p, epoch, step, model, opt, gen, rec, gnorm, bloss, time.perf_counter() - t0)
            files.atomic_write(checkpoint, lambda f, s=now: torch.save(s, f))
            saved_at = time.perf_counter()
        if epoch < cfg.epochs:
            report(epoch)
    bar.close()
    return rec.result(gnorm, bloss, time.perf_counter() - t0)


class Cancelled(Exception):
    """Raised by an on_epoch callback to stop a run that is no longer wanted (nothing is cached)."""


def _progress(total: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="epoch", leave=False, disable=not show)

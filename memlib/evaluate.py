"""The evaluation forward pass (no autograd, reused buffers) and the training-set metrics built on it."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .models import MLP

EVAL_CHUNK = 8192  # rows per forward pass when evaluating


def fit_metrics(pred: torch.Tensor, loss: torch.Tensor, y: torch.Tensor, y_true: torch.Tensor,
                 changed: torch.Tensor) -> torch.Tensor:
    """The five training-set metrics (results.METRICS[:N_FIT]) from predictions pred [n].

    On examples with given labels y, true labels y_true, mask changed.
    """
    hit_noisy = (pred == y).float()
    hit_true = (pred == y_true).float()
    clean = ~changed
    n_c, n_x = clean.sum().clamp(min=1), changed.sum().clamp(min=1)
    nan = torch.tensor(float("nan"), device=pred.device)
    return torch.stack([
        loss.float(),
        hit_noisy.mean(),
        torch.where(clean.any(), (hit_noisy * clean).sum() / n_c, nan),
        torch.where(changed.any(), (hit_noisy * changed).sum() / n_x, nan),
        torch.where(changed.any(), (hit_true * changed).sum() / n_x, nan),
    ])


class EvalForward:
    """The MLP's forward pass for evaluation, writing activations into two buffers reused from call to call.

    A fresh multi-megabyte activation per layer and checkpoint costs page faults (the allocator hands such blocks
    back to the system when they are freed); reusing the buffers avoids them. The kernels are MLP.forward's own
    (addmm as in F.linear, then ReLU), so the numbers are the same bits.
    """

    def __init__(self, model: MLP):
        self.model = model
        self._bufs: dict[int, torch.Tensor] = {}
        self.row0 = 0  # during logits(): the first row (within all the chunks) of the block being computed

    def _buffer(self, slot: int, rows: int, like: torch.Tensor) -> torch.Tensor:
        """A contiguous [rows, out_features of like] view of slot's reused storage (grown when too small)."""
        cols = like.shape[0]
        b = self._bufs.get(slot)
        if b is None or b.numel() < rows * cols:
            b = self._bufs[slot] = torch.empty(rows * self.model.width, dtype=like.dtype, device=like.device)
        return b[: rows * cols].view(rows, cols)

    @torch.no_grad()
    def logits(self, chunks, on_hidden: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Logits [sum of rows, 10] of the blocks of inputs chunks (each [rows, 784]); on_hidden(j, h) sees each hidden
        layer's post-ReLU activation h [rows, width] (j = 1..depth) while it is valid; self.row0 is then its block's
        first row."""
        *hidden, last = self.model.layers
        outs, self.row0 = [], 0
        for c in chunks:  # one block at a time
            h = c
            for j, layer in enumerate(hidden, start=1):
                dst = self._buffer(j % 2, len(c), layer.weight)
                torch.addmm(layer.bias, h, layer.weight.t(), out=dst).relu_()
                if on_hidden is not None:
                    on_hidden(j, dst)
                h = dst
            outs.append(torch.addmm(last.bias, h, last.weight.t()))  # [rows, 10]
            self.row0 += len(c)
        return outs[0] if len(outs) == 1 else torch.cat(outs)


def evaluate_fit(fwd: EvalForward, x: torch.Tensor, y: torch.Tensor, y_true: torch.Tensor,
                 changed: torch.Tensor) -> torch.Tensor:
    """The five training-set metrics of the model as it stands, on the whole training set x [n, 784]."""
    logits = fwd.logits(x.split(EVAL_CHUNK))  # [n, 10]
    return fit_metrics(logits.argmax(1), F.cross_entropy(logits, y), y, y_true, changed)

"""What a run leaves behind: the RunResult record of plain arrays, and its flat form for the cache."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from . import data as D
from .config import RunConfig
from .evaluate import EvalForward, evaluate_fit
from .models import MLP, layer_names, mlp_for

# Per-checkpoint metrics, in this order; checkpoint 0 is the initialization, k the end of epoch k.
# The five training-set metrics are taken at checkpoint 0 by evaluating the untrained model on min(n_train,
# eval_size) training examples spread evenly over the subset (train.init_rows; all of them when eval_size >= n_train)
# and, for epoch k >= 1, from epoch k's own training pass: each example is scored by the prediction the network
# made for it when its mini-batch came (before that batch's update), as Keras's logs and the forgetting-events
# literature do. That costs nothing extra; evaluating the whole training set again after every epoch would cost a
# third of the training itself. Validation, test and shifted-test accuracy are evaluated with the model at the end of
# each epoch: the first eval_size validation images, and eval_size test images (a seeded sample, nested with the probe
# images, see data.test_subsets) with their rotated copies.
METRICS = (
    "loss",  # cross-entropy against the labels as given (noisy): epoch k's mean mini-batch loss
    "train_acc",  # accuracy on the training labels as given
    "train_acc_clean",  # ... on the examples whose label was left unchanged
    "train_acc_corrupted_noisy",  # ... on the changed examples, against their noisy labels (memorization)
    "train_acc_corrupted_true",  # ... on the changed examples, against their true labels
    "val_acc",
    "test_acc",
    "shift_acc",  # test accuracy on the rotated test images
)
N_FIT = 5  # METRICS[:N_FIT] describe the training set; the rest are held-out evaluations


@dataclass
class RunResult:
    """What one run leaves behind: plain NumPy arrays plus the config that made them."""

    config: RunConfig
    history: dict[str, np.ndarray]  # METRICS name -> [epochs + 1] float64
    grad_w: np.ndarray  # [steps, depth + 1] float32, L2 norm of each Linear layer's weight gradient per mini-batch
    grad_b: np.ndarray  # [steps, depth + 1] float32, the same for the biases
    noise_w: np.ndarray  # [epochs, depth + 1] float64, gradient noise of each layer's weights per epoch (see NOISE)
    noise_b: np.ndarray  # [epochs, depth + 1] float64, the same for the biases
    weight_norm: np.ndarray  # [epochs + 1, depth + 1] float64, Frobenius norm of each layer's weight at each checkpoint
    batch_loss: np.ndarray  # [steps] float32, mini-batch loss before each step
    step_epoch: np.ndarray  # [steps] int32, epoch (1-based) of each step
    reps: dict[str, np.ndarray]  # 'hidden{k}' -> [len(rep_epochs), probe_size, width] float16, post-ReLU
    rep_epochs: np.ndarray  # [C] int32 checkpoints (0 = init) at which reps were taken
    probe_idx: np.ndarray  # [probe_size] indices into the test split
    train_idx: np.ndarray  # [n_train] indices into the 50k training split
    labels: np.ndarray  # [n_train] int64 labels trained on (noisy)
    true_labels: np.ndarray  # [n_train] int64 original labels
    corrupted: np.ndarray  # [n_train] bool, label changed by the noise
    weights: dict[str, np.ndarray]  # final state_dict of the MLP, float32
    seconds: float = 0.0  # wall time of the training that produced this run (kept when loaded from cache)
    cached: bool = False  # True when loaded from the cache
    meta: dict = field(default_factory=dict)  # code version, device, library versions
    _fit: dict | None = field(default=None, repr=False, compare=False)  # final_fit(), once computed

    @property
    def epochs_run(self) -> int:
        """Epochs actually trained (fewer than config.epochs when stop_at ended training early)."""
        return len(self.history["loss"]) - 1

    @property
    def layer_names(self) -> list[str]:
        """Linear layers in network order: hidden1..hidden{depth}, classifier."""
        return layer_names(self.config.depth)

    def final(self, metric: str) -> float:
        """The metric for the finished run.

        A training-set metric comes from the trained network (final_fit), any other from the last checkpoint.
        """
        fit = self.final_fit()
        return fit[metric] if metric in fit else float(self.history[metric][-1])

    def final_fit(self) -> dict[str, float]:
        """METRICS[:N_FIT] of the trained network on the whole training set, recomputed once from the stored weights.

        history's training-set entries for epochs >= 1 are taken during each epoch's pass, while the network still
        changes; these are the finished network's own, like for like with the last checkpoint's held-out accuracies.
        """
        if self._fit is None:
            mn = D.load_mnist(self.meta.get("source"))
            x = torch.from_numpy(D.scale_inputs(mn.x_train[self.train_idx], self.config.inputs))  # [n_train, 784]
            y, y_true, changed = (torch.from_numpy(np.asarray(a))
                                  for a in (self.labels, self.true_labels, self.corrupted))
            vals = evaluate_fit(EvalForward(self.model()), x, y, y_true, changed).double().numpy()
            self._fit = {m: float(v) for m, v in zip(METRICS[:N_FIT], vals, strict=True)}
        return self._fit

    def model(self) -> MLP:
        """The trained MLP rebuilt from the stored weights (on the CPU)."""
        net = mlp_for(self.config)
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in self.weights.items()})
        return net.eval()

    def summary(self) -> dict:
        """Final metrics (see final()) and bookkeeping as a flat, JSON-ready dict."""
        out = {m: (None if np.isnan(v) else round(v, 6)) for m, v in ((m, self.final(m)) for m in METRICS)}
        out.update(epochs=self.epochs_run, seconds=round(self.seconds, 3), cached=self.cached)
        return out


# The plain arrays a run keeps (the cache stores these, plus history, reps and weights by name).
ARRAY_FIELDS = tuple(f.name for f in dataclasses.fields(RunResult) if f.type == "np.ndarray")


def to_arrays(res: RunResult) -> dict[str, np.ndarray]:
    """Flatten a RunResult to named arrays (config and meta as JSON bytes)."""
    out = {
        "config_json": np.frombuffer(json.dumps(res.config.key_dict(), sort_keys=True).encode(), np.uint8),
        "meta_json": np.frombuffer(json.dumps({**res.meta, "seconds": res.seconds}).encode(), np.uint8),
    }
    for name in ARRAY_FIELDS:
        out[name] = getattr(res, name)
    out.update({f"history/{k}": v for k, v in res.history.items()})
    out.update({f"reps/{k}": v for k, v in res.reps.items()})
    out.update({f"weights/{k}": v for k, v in res.weights.items()})
    return out


def from_arrays(arrays: dict[str, np.ndarray], cfg: RunConfig) -> RunResult:
    """Rebuild a RunResult from to_arrays output."""
    stored = json.loads(arrays["config_json"].tobytes())
    if stored != cfg.key_dict():
        raise ValueError("stored config does not match the requested one")
    meta = json.loads(arrays["meta_json"].tobytes())

    def group(prefix):
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    return RunResult(
        config=cfg, history=group("history/"), reps=group("reps/"), weights=group("weights/"),
        **{k: arrays[k] for k in ARRAY_FIELDS},
        seconds=float(meta.pop("seconds", 0.0)), cached=True, meta=meta,
    )

"""One frozen, validated configuration per training run."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import operator
from dataclasses import dataclass

N_TRAIN_MAX = 50_000  # images in the MNIST training split
N_TEST = 10_000  # images in the validation and in the test split

INITS = ("he", "xavier", "orthogonal", "torch")  # torch: nn.Linear's own default (uniform, bound 1/sqrt(fan_in))
INPUTS = ("standard", "unit", "symmetric")  # pixels standardised, in [0, 1], or in [-1, 1]
DEFAULT_DEPTH, DEFAULT_WIDTH = 4, 256
OPTIMIZERS = ("sgd", "momentum", "adam")
NOISE_KINDS = ("symmetric", "uniform")
REP_EPOCHS = ("all", "ends", "none")
DEVICES = ("auto", "cpu", "cuda")

# Learning rate used when `lr` is left at None: one sensible value per optimizer.
DEFAULT_LR = {"sgd": 0.05, "momentum": 0.01, "adam": 1e-3}


def _fail(name, value, allowed):
    raise ValueError(f"RunConfig.{name}={value!r} is not allowed: {allowed}")


def _as_int(value):
    """NumPy and other integer types as int (bools are not integers here); anything else unchanged."""
    if isinstance(value, bool):
        return value
    try:
        return operator.index(value)
    except TypeError:
        return value


def _int_in(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(name, value, f"an integer{' >= ' + str(lo) if hi is None else f' in [{lo}, {hi}]'}")
    if value < lo or (hi is not None and value > hi):
        _fail(name, value, f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]")


def _choice(name, value, options):
    if value not in options:
        _fail(name, value, "one of " + ", ".join(repr(o) for o in options))


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run; the seed is part of it.

    depth counts hidden layers: depth=4, width=256 is 784-256-256-256-256-10,
    i.e. 4 hidden Linear+ReLU layers and 1 Linear classifier (5 Linear layers).
    widths gives each hidden layer its own width instead (widths=(128, 512, 2048, 2048) is 784-128-512-2048-2048-10);
    depth then defaults to len(widths) and, if given, must agree; width must be left out (None).
    """

    n_train: int = 10_000  # training images drawn (with the seed) from the 50k split
    noise: float = 0.0  # fraction p of training labels replaced at random
    noise_kind: str = "symmetric"  # 'symmetric' (always a wrong class) or 'uniform' (any class)
    depth: int | None = None  # hidden layers (see class docstring); None: 4, or len(widths)
    width: int | None = None  # units per hidden layer; None: 256 (uniform), or per-layer widths below
    widths: tuple[int, ...] | None = None  # per-layer hidden widths; None: depth x width
    inputs: str = "standard"  # pixel scaling: 'standard' (standardised), 'unit' ([0, 1]) or 'symmetric' ([-1, 1])
    init: str = "he"  # 'he', 'xavier', 'orthogonal' or 'torch'
    optimizer: str = "adam"  # 'sgd', 'momentum' (SGD, 0.9) or 'adam'
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    batch_size: int = 128
    epochs: int = 10  # epochs to train (the cap when stop_at is set)
    stop_at: float | None = None  # stop once an epoch's training accuracy (given labels) reaches this; None: never
    seed: int = 0
    probe_size: int = 2_000  # fixed test images whose representations are recorded
    rep_layers: tuple[int, ...] | None = None  # hidden layers (1-based) to record; None: all
    rep_epochs: str = "all"  # record representations: 'all' epochs, 'ends' (init, last), 'none'
    eval_size: int = 2_000  # validation, test and shifted-test images evaluated every epoch (10_000: whole splits)
    shift_degrees: float = 30.0  # test-time rotation drawn uniformly in [-d, d]
    device: str = "auto"  # 'auto' (CUDA when present), 'cpu' or 'cuda'; not part of the cache key
    progress: bool | None = None  # tqdm bar; None: only for long runs. Not part of the cache key

    def __post_init__(self):
        for f in ("n_train", "depth", "width", "batch_size", "epochs", "seed", "probe_size", "eval_size"):
            if getattr(self, f) is not None:
                object.__setattr__(self, f, _as_int(getattr(self, f)))
        for f in ("noise", "lr", "stop_at", "shift_degrees"):  # NumPy floats as float
            v = getattr(self, f)
            if isinstance(v, numbers.Real) and not isinstance(v, (bool, int, float)):
                object.__setattr__(self, f, float(v))
        if isinstance(self.rep_layers, (list, tuple)):
            object.__setattr__(self, "rep_layers", tuple(_as_int(k) for k in self.rep_layers))
        _int_in("n_train", self.n_train, 1, N_TRAIN_MAX)
        if isinstance(self.noise, bool) or not isinstance(self.noise, (int, float)) or not 0.0 <= self.noise <= 1.0:
            _fail("noise", self.noise, "a number in [0, 1]")
        object.__setattr__(self, "noise", float(self.noise))
        _choice("noise_kind", self.noise_kind, NOISE_KINDS)
        self._resolve_architecture()
        _choice("inputs", self.inputs, INPUTS)
        _choice("init", self.init, INITS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        lr = self.lr
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float))
                               or not (math.isfinite(lr) and 0 < lr <= 10)):
            _fail("lr", lr, "a positive number up to 10, or None for the optimizer's default")
        _int_in("batch_size", self.batch_size, 1)
        if self.batch_size > self.n_train:
            _fail("batch_size", self.batch_size, f"at most n_train={self.n_train}")
        _int_in("epochs", self.epochs, 1, 10_000)
        if self.stop_at is not None and (isinstance(self.stop_at, bool) or not isinstance(self.stop_at, (int, float))
                                         or not 0 < self.stop_at <= 1):
            _fail("stop_at", self.stop_at, "None or a training accuracy in (0, 1]")
        _int_in("seed", self.seed, 0, 2**31 - 1)
        _int_in("probe_size", self.probe_size, 1, N_TEST)
        if self.rep_layers is not None:
            layers = tuple(self.rep_layers) if isinstance(self.rep_layers, (list, tuple)) else None
            if not layers or any(isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.depth
                                 for k in layers):
                _fail("rep_layers", self.rep_layers, f"None or a non-empty tuple of hidden layers in 1..{self.depth}")
            object.__setattr__(self, "rep_layers", tuple(sorted(set(layers))))
        _choice("rep_epochs", self.rep_epochs, REP_EPOCHS)
        _int_in("eval_size", self.eval_size, 1, N_TEST)
        if (isinstance(self.shift_degrees, bool) or not isinstance(self.shift_degrees, (int, float))
                or not 0 <= self.shift_degrees <= 180):
            _fail("shift_degrees", self.shift_degrees, "a number of degrees in [0, 180]")
        object.__setattr__(self, "shift_degrees", float(self.shift_degrees))
        _choice("device", self.device, DEVICES)
        if self.progress not in (None, True, False):
            _fail("progress", self.progress, "None, True or False")

    def _resolve_architecture(self) -> None:
        """Fill depth and width from their defaults or from widths; refuse a depth or width at odds with widths."""
        if self.widths is None:
            for name, default in (("depth", DEFAULT_DEPTH), ("width", DEFAULT_WIDTH)):
                if getattr(self, name) is None:
                    object.__setattr__(self, name, default)
            _int_in("depth", self.depth, 1, 64)
            _int_in("width", self.width, 1, 8192)
            return
        ws = self.widths
        if isinstance(ws, (list, tuple)):
            ws = tuple(_as_int(w) for w in ws)
        if (not isinstance(ws, tuple) or not 1 <= len(ws) <= 64
                or any(isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 8192 for w in ws)):
            _fail("widths", self.widths, "None or a tuple of 1 to 64 hidden widths, each an integer in [1, 8192]")
        if self.depth is None:
            object.__setattr__(self, "depth", len(ws))
        elif self.depth != len(ws):
            _fail("depth", self.depth, f"the number of hidden layers in widths={ws} ({len(ws)}), or left out")
        if len(set(ws)) == 1:  # one width everywhere: the uniform form, so that one network has one key
            if self.width is not None and self.width != ws[0]:
                _fail("width", self.width, f"None or {ws[0]}, the width widths={ws} gives every layer")
            object.__setattr__(self, "width", ws[0])
            object.__setattr__(self, "widths", None)
            return
        if self.width is not None:
            _fail("width", self.width, f"None when widths={ws} gives each layer its own width")
        object.__setattr__(self, "widths", ws)

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        """The width of each hidden layer, first to last."""
        return self.widths if self.widths is not None else (self.width,) * self.depth

    @property
    def learning_rate(self) -> float:
        """The step size used: lr, or the optimizer's default when lr is None."""
        return float(DEFAULT_LR[self.optimizer] if self.lr is None else self.lr)

    @property
    def recorded_layers(self) -> tuple[int, ...]:
        """Hidden layers (1-based) whose probe representations are recorded."""
        if self.rep_epochs == "none":
            return ()
        return self.rep_layers if self.rep_layers is not None else tuple(range(1, self.depth + 1))

    def key_dict(self) -> dict:
        """The fields that determine a run's results (device and progress excluded)."""
        d = dataclasses.asdict(self)
        for k in ("device", "progress"):
            d.pop(k)
        d["lr"] = self.learning_rate
        d["rep_layers"] = list(self.recorded_layers)
        if self.widths is None:  # the uniform network keys as before these fields existed
            d.pop("widths")
        else:
            d["widths"] = list(self.widths)
        if self.inputs == "standard":
            d.pop("inputs")
        return d

    def key(self) -> str:
        """Stable hash of the result-determining fields."""
        blob = json.dumps(self.key_dict(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def replace(self, **changes) -> "RunConfig":
        """dataclasses.replace: a new, re-validated config. New per-layer widths bring their own depth and width
        unless those are given too (then they must agree)."""
        if changes.get("widths") is not None:
            changes = {"depth": None, "width": None, **changes}
        return dataclasses.replace(self, **changes)


FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(RunConfig)}


def parse_value(name: str, text: str):
    """Turn a command-line string into the value a RunConfig field expects."""
    if name not in FIELD_TYPES:
        raise ValueError(f"unknown RunConfig field {name!r}: allowed are {', '.join(FIELD_TYPES)}")
    typ = str(FIELD_TYPES[name])
    low = text.strip().lower()
    if low in ("none", "null") and "None" in typ:
        return None
    try:
        if typ.startswith("int"):
            return int(text)
        if typ.startswith("float"):
            return float(text)
        if typ.startswith("bool"):
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
            raise ValueError(text)
        if typ.startswith("tuple"):
            return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"RunConfig.{name}={text!r} is not allowed: expected {typ}") from None
    return text


def config_from_pairs(pairs, base: RunConfig | None = None) -> RunConfig:
    """Build a config from 'key=value' strings (the command-line form); a key given twice is refused."""
    changes, given = {}, {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"expected key=value, got {pair!r}; keys: {', '.join(FIELD_TYPES)}")
        k, v = (t.strip() for t in pair.split("=", 1))
        value = parse_value(k, v)
        if k in given:  # the last one would silently win otherwise
            raise ValueError(f"RunConfig.{k} is given twice ({k}={given[k]} and {k}={v}): give each key once")
        changes[k], given[k] = value, v
    return RunConfig(**changes) if base is None else base.replace(**changes)

"""What the study reported, as data: the setups and figures that chapters set beside this build's numbers."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reported:
    """An accuracy the study gives as "about lo to hi" (fractions; lo == hi for a single value)."""

    lo: float
    hi: float

    def __post_init__(self):
        if not 0.0 <= self.lo <= self.hi <= 1.0:
            raise ValueError(f"Reported({self.lo!r}, {self.hi!r}) is not allowed: 0 <= lo <= hi <= 1")

    def fmt(self) -> str:
        """'~99 %' or '~90-91 %', as the study writes it."""
        lo, hi = round(self.lo * 100), round(self.hi * 100)
        return f"~{lo} %" if lo == hi else f"~{lo}-{hi} %"

    def offset(self, x: float) -> float:
        """How far x lies outside [lo, hi]: 0 inside, negative below, positive above."""
        return min(0.0, x - self.lo) + max(0.0, x - self.hi)


@dataclass(frozen=True)
class Experiment:
    """One day of the study: its setup (as RunConfig fields) and its figures, {noise: {metric: Reported}}."""

    source: str
    setup: dict
    figures: dict = field(default_factory=dict)


# experiment-notes.md, Day 12: "MLP (depth 8, width 256)", MNIST, rotation of +-30 degrees at test time only, label
# noise 0 % and 40 %, Adam, 15 epochs; no seeds, noise kind or plain test accuracy are given. "MNIST" is taken as the
# whole training set, memlib's 50,000-image training split (the other 10,000 are its validation images).
DAY12 = Experiment(
    source="experiment-notes.md, Day 12",
    setup=dict(n_train=50_000, epochs=15, depth=8, width=256, optimizer="adam", shift_degrees=30.0),
    figures={
        0.0: {"train_acc": Reported(0.99, 0.99), "shift_acc": Reported(0.90, 0.91)},
        0.4: {"train_acc": Reported(0.60, 0.61), "shift_acc": Reported(0.84, 0.87)},
    },
)

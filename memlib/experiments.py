"""Each chapter's runs as data: for a chapter and mode, every RunConfig it trains (beside memlib.explorers' SPECS).

A chapter asks for its runs by name, e.g. `groups = E.sweep("06-memorization", mode, "noise")`; `plan(mode)` lists
the same runs for `python -m memlib prepare` without training anything.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .config import RunConfig
from .modes import base_config, explorer_config, masc_config, masc_explorer_config, scale


@dataclass(frozen=True)
class Sweep:
    """The base config with `field` set to each value, each at every seed of the mode (field None: the base only)."""

    field: str | None = None
    values: tuple = (None,)


@dataclass(frozen=True)
class Variants:
    """Named variants of a comparison's own base config (per mode), each at the first `n_seeds` seeds of the mode."""

    base: Callable[[str], RunConfig]
    named: Callable[[str], tuple[tuple[str, dict], ...]]  # mode -> ((variant name, fields set on the base), ...)
    n_seeds: int = 3


@dataclass(frozen=True)
class Scope:
    """A slice of a chapter's sweep on `field`: only these values, at these seeds (the full mode's CPU build)."""

    field: str
    values: tuple
    seeds: tuple[int, ...]


SCOPES = ("all", "cpu")  # all: every run the chapter declares; cpu: each chapter's Scope under "cpu", if it has one


@dataclass(frozen=True)
class Relabel:
    """Runs of the `field == value` configs trained again on MASC's predictions at their best layer (chapter 11)."""

    field: str
    value: object
    variance: float = 0.99


@dataclass(frozen=True)
class Chapter:
    """What one chapter trains: its base config (per mode), its named experiments, the view its live explorer opens
    on (trained as the page runs), and any runs on computed labels."""

    base: Callable[[str], RunConfig]
    experiments: dict
    relabel: Relabel | None = None
    explorer: Callable[[str, RunConfig], RunConfig] = explorer_config  # (mode, base) -> the explorer's first view
    scopes: dict | None = None  # {scope name: Scope}: slices of the sweeps a smaller build trains


@dataclass(frozen=True)
class Relabeled:
    """A run of `source`'s config trained on labels computed from the trained source run (named here, not stored)."""

    source: RunConfig
    variance: float = 0.99

    def labels(self) -> tuple[str, np.ndarray]:
        """(best layer by validation, MASC's predicted training labels there) of the source run (trained if needed)."""
        from . import probes

        res, table = probes.probe_run(self.source)
        layer = probes.best_layer(table)[0]
        return layer, probes.masc_relabel(res, layer, self.variance)


def _net(**fields) -> Callable[[str], RunConfig]:
    """A base config at a mode's scale with these fields."""
    return functools.partial(base_config, **fields)


_SHALLOW = _net(depth=4, width=256, rep_epochs="none")  # no representations needed
_DEEP = _net(depth=8, width=256, rep_epochs="none")
_NOISY = _net(depth=8, width=256)  # records representations: chapters 6, 7, 8 and 10 share these runs
NOISE_PAIR = Sweep("noise", (0.0, 0.4))

def _factor_base(mode: str) -> RunConfig:
    """Chapter 11's factor comparison starts from the chapter's standard run at p = 0.6 (quick: its quick run); the
    full mode runs the comparison at standard scale too (the paper's protocol at 50,000 images is its sweep)."""
    return masc_config("quick" if mode == "quick" else "standard", noise=0.6)


PAPER_WIDTHS = (128, 512, 2048, 2048)


def _factors(mode: str) -> tuple[tuple[str, dict], ...]:
    """The first edition's network on the chapter's images, then on a quarter of them (half in quick mode: a batch
    must fit), then one factor of the paper's protocol at a time on that smaller set: its widths, its optimizer."""
    big = _factor_base(mode).n_train
    small = big // (2 if mode == "quick" else 4)
    light = dict(n_train=small, eval_size=500)  # the per-epoch test curve is not used here: 500 images suffice
    return ((f"4 x 256, Adam, {big:,} images", {}),
            (f"4 x 256, Adam, {small:,} images", light),
            (f"paper's widths, Adam, {small:,} images", dict(light, widths=PAPER_WIDTHS, width=None)),
            (f"4 x 256, SGD + momentum (lr 0.001), {small:,} images", dict(light, optimizer="momentum", lr=1e-3)))


CHAPTERS = {
    "01-gradient-statistics": Chapter(_SHALLOW, {"seeds": Sweep(), "depth": Sweep("depth", (2, 4, 8))}),
    "02-gradient-dynamics": Chapter(_SHALLOW, {"seeds": Sweep(), "depth": Sweep("depth", (2, 4, 8))}),
    "03-depth": Chapter(_SHALLOW, {"depth": Sweep("depth", (2, 4, 8))}),
    "04-initialization": Chapter(_DEEP, {"init": Sweep("init", ("he", "xavier", "orthogonal"))}),
    "05-optimizers": Chapter(_DEEP, {"optimizer": Sweep("optimizer", ("sgd", "momentum", "adam"))}),
    "06-memorization": Chapter(_NOISY, {"noise": Sweep("noise", (0.0, 0.2, 0.4))}),
    "07-representation-drift": Chapter(_NOISY, {"noise": NOISE_PAIR}),
    "08-gradient-variance": Chapter(_NOISY, {"noise": NOISE_PAIR}),
    "09-width": Chapter(_net(depth=8, width=256, noise=0.4, rep_epochs="none"),
                        {"width": Sweep("width", (64, 128, 256, 512))}),
    "10-dataset-shift": Chapter(_NOISY, {"noise": NOISE_PAIR}),
    "11-masc": Chapter(masc_config, {"noise": Sweep("noise", (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)),
                                      "factors": Variants(_factor_base, _factors)},
                       relabel=Relabel("noise", 0.6), explorer=lambda mode, _: masc_explorer_config(mode),
                       scopes={"cpu": Scope("noise", (0.6,), (0,))}),
}


def chapter(name: str) -> Chapter:
    """The registry entry for a chapter (its notebook's stem)."""
    if name not in CHAPTERS:
        raise ValueError(f"chapter={name!r} is not allowed: one of {', '.join(CHAPTERS)}")
    return CHAPTERS[name]


def base(name: str, mode: str) -> RunConfig:
    """The chapter's base config at a mode's scale (seed 0)."""
    return chapter(name).base(mode)


def explorer(name: str, mode: str) -> RunConfig:
    """The config the chapter's live explorer opens on (its first view is trained when the page runs)."""
    ch = chapter(name)
    return ch.explorer(mode, ch.base(mode))


def _experiment(name: str, experiment: str) -> Sweep | Variants:
    exps = chapter(name).experiments
    if experiment not in exps:
        raise ValueError(f"experiment={experiment!r} is not allowed for {name}: one of {', '.join(exps)}")
    return exps[experiment]


def check_scope(scope: str) -> str:
    """The scope name, if allowed (SCOPES); a ValueError names a bad one."""
    if scope not in SCOPES:
        raise ValueError(f"scope={scope!r} is not allowed: one of {', '.join(SCOPES)}")
    return scope


def _scope(name: str, scope: str) -> Scope | None:
    """The chapter's slice for a scope (None: it trains everything in that scope)."""
    return (chapter(name).scopes or {}).get(check_scope(scope))


def values(name: str, experiment: str, scope: str = "all", mode: str = "standard") -> list:
    """The values an experiment sets its field to, or its variants' names (those of `mode`), within the scope."""
    exp = _experiment(name, experiment)
    if isinstance(exp, Variants):
        return [v for v, _ in exp.named(mode)]
    sc = _scope(name, scope)
    return [v for v in exp.values if sc is None or sc.field != exp.field or v in sc.values]


def scope_note(name: str, scope: str) -> str:
    """What a scope keeps of the chapter's sweep, for its page and verdict box ('' when it keeps everything)."""
    sc = _scope(name, scope)
    if sc is None:
        return ""
    kept = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in sc.values)
    return f"{scope} scope: {sc.field} = {kept} and seed {', '.join(map(str, sc.seeds))} only"


def seeds(name: str, mode: str, scope: str = "all") -> tuple[int, ...]:
    """The seeds the chapter's sweeps run at in this mode and scope."""
    sc = _scope(name, scope)
    return scale(mode).seeds if sc is None else tuple(s for s in scale(mode).seeds if s in sc.seeds)


def grid(name: str, mode: str, experiment: str, scope: str = "all") -> dict:
    """{value: [config for each seed of the mode]} of one experiment (value None for the base's seeds); a Variants
    experiment gives {variant name: [config for each of its seeds]}. A scope slices the chapter's sweeps."""
    exp = _experiment(name, experiment)
    if isinstance(exp, Variants):
        b, ss = exp.base(mode), scale(mode).seeds[:exp.n_seeds]
        return {v: [dataclasses.replace(b, **f, seed=s) for s in ss] for v, f in exp.named(mode)}
    b, ss = base(name, mode), seeds(name, mode, scope)
    fields = (lambda v: {}) if exp.field is None else (lambda v: {exp.field: v})
    return {v: [dataclasses.replace(b, **fields(v), seed=s) for s in ss] for v in values(name, experiment, scope)}


def sweep(name: str, mode: str, experiment: str, scope: str = "all", **kw) -> dict:
    """{value: [run for each seed]} of one experiment, trained or loaded through memlib.cache (one run_many)."""
    from .cache import run_many

    g = grid(name, mode, experiment, scope)
    runs = iter(run_many([c for cfgs in g.values() for c in cfgs], **kw))
    return {v: [next(runs) for _ in cfgs] for v, cfgs in g.items()}


def runs(name: str, mode: str, experiment: str, scope: str = "all", **kw) -> list:
    """The runs of an experiment, flat (e.g. the base config's seeds)."""
    return [r for rs in sweep(name, mode, experiment, scope, **kw).values() for r in rs]


def relabeled(name: str, mode: str, scope: str = "all") -> list[Relabeled]:
    """The chapter's runs on computed labels, one per source config (empty when it has none)."""
    rl = chapter(name).relabel
    if rl is None:
        return []
    b = base(name, mode)
    return [Relabeled(dataclasses.replace(b, **{rl.field: rl.value}, seed=s), rl.variance)
            for s in seeds(name, mode, scope)]


def configs(name: str, mode: str, scope: str = "all") -> list[RunConfig]:
    """Every config the chapter trains on its config's own labels (its explorer's first view last), each once."""
    seen: dict[str, RunConfig] = {}
    for experiment in chapter(name).experiments:
        for cfgs in grid(name, mode, experiment, scope).values():
            for c in cfgs:
                seen.setdefault(c.key(), c)
    seen.setdefault(explorer(name, mode).key(), explorer(name, mode))
    return list(seen.values())


def plan(mode: str, chapters=None, scope: str = "all") -> tuple[list[RunConfig], list[Relabeled]]:
    """(configs, relabeled runs) the chosen chapters (default: all) need in a scope, each once across chapters."""
    names = list(CHAPTERS) if chapters is None else list(chapters)
    seen: dict[str, RunConfig] = {}
    again: dict[str, Relabeled] = {}
    for n in names:
        for c in configs(n, mode, scope):
            seen.setdefault(c.key(), c)
        for r in relabeled(n, mode, scope):
            again.setdefault(r.source.key(), r)
            seen.setdefault(r.source.key(), r.source)
    return list(seen.values()), list(again.values())

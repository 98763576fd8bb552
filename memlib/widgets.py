"""Explorers: sliders -> configs -> cached runs -> the chapter's own plot function, shown as an image."""
from __future__ import annotations

import dataclasses
import html
import io
import json
import re
import threading
import time
from typing import Callable

import ipywidgets as W

from .cache import is_cached, run
from .config import RunConfig
from .plots import alt_text, figure
from .train import Cancelled

Draw = Callable  # draw(axes, runs: list[RunResult]) -> None, the same plot functions as the static cells
FRAME_INTERVAL = 0.3  # seconds between a streaming loader's frames (each costs a figure and a PNG; chapter 11's many)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _control(field: str, values: list, value):
    fmt = {"noise": lambda v: f"{v:.0%}"}.get(field, str)
    return W.SelectionSlider(options=[(fmt(v), v) for v in values], value=value,
                             description=field, continuous_update=False,
                             style={"description_width": "80px"}, layout=W.Layout(width="360px"))


class Explorer:
    """A chapter's question as sliders; each change trains (or loads) runs off the main thread and redraws."""

    def __init__(self, base: RunConfig, controls: dict[str, list], draw: Draw, seeds=None,
                 ncols: int = 1, width: float = 4.2, height: float = 3.2, views: dict[str, list] | None = None,
                 load: Callable | None = None, stream: bool = False):
        """controls: RunConfig field -> choices (a change retrains); views: name -> choices passed to draw as keywords
        (a change only redraws); load(cfg) -> what draw receives per seed (default: the cached run), or with stream,
        load(cfg, frame), which hands each partial result to frame (drawn at once); seeds: the seeds drawn (default:
        base's own)."""
        for field, values in controls.items():
            if getattr(base, field) not in values:
                raise ValueError(f"control {field!r}: the base value {getattr(base, field)!r} is not among {values}")
        self.base, self.draw, self.load, self.stream = base, draw, load or run, stream
        self.seeds = (base.seed,) if seeds is None else tuple(seeds)
        self.fig, self.axes = figure(ncols=ncols, width=width, height=height)
        self.sliders = {f: _control(f, v, getattr(base, f)) for f, v in controls.items()}
        self.views = {n: _control(n, v, v[0]) for n, v in (views or {}).items()}
        self.status = W.HTML()
        self.status.add_class("memlib-explorer-status")
        self.image = W.Image(format="png", layout=W.Layout(max_width=f"{int(100 * width * ncols)}px"))
        self.image.add_class("memlib-explorer-image")
        self._gen = 0
        self._lock, self._draw_lock = threading.Lock(), threading.Lock()
        self.timings: dict[str, float] = {}  # seconds from the last change to the first frame and to the whole figure
        for s in [*self.sliders.values(), *self.views.values()]:
            s.observe(self._changed, names="value")
        self.widget = W.VBox([W.HBox([*self.sliders.values(), *self.views.values()],
                                     layout=W.Layout(flex_flow="row wrap")),
                              self.status, self.image])
        self.widget.add_class("memlib-live-explorer")
        self.update(background=False)

    def configs(self) -> list[RunConfig]:
        """The runs behind the current slider values (one per seed)."""
        vals = {f: s.value for f, s in self.sliders.items()}
        return [dataclasses.replace(self.base, **vals, seed=seed) for seed in self.seeds]

    def set(self, **values) -> None:
        """Set controls as a reader would, and wait for the figure (for headless execution)."""
        for f, v in values.items():
            w = self.sliders.get(f) or self.views.get(f)
            if w is None:
                raise ValueError(f"no control {f!r}: controls are {', '.join([*self.sliders, *self.views])}")
            w.unobserve(self._changed, names="value")
            w.value = v
            w.observe(self._changed, names="value")
        self.update(background=False)

    def _changed(self, _change) -> None:
        self.update(background=True)

    def update(self, background: bool = True) -> None:
        """Redraw for the current values: cached runs at once; others train off-thread, drawn live each epoch."""
        with self._lock:
            self._gen += 1
            gen = self._gen
        self.timings = {"start": time.perf_counter()}
        cfgs = self.configs()
        if not background or (self.load is run and all(is_cached(c) for c in cfgs)):
            self._render(gen, cfgs)
            return
        self.status.value = "<i>training…</i>"
        threading.Thread(target=self._render, args=(gen, cfgs), daemon=True).start()

    def _due(self) -> bool:
        """Whether a live frame is due: the first one at once, then at most one every FRAME_INTERVAL seconds."""
        last = self.timings.get("last_frame")
        return last is None or time.perf_counter() - last >= FRAME_INTERVAL

    def _render(self, gen: int, cfgs: list[RunConfig]) -> None:
        def live(partial):  # called by train() after every epoch of a run that is being trained
            if gen != self._gen:
                raise Cancelled  # a newer slider value: stop this run, cache nothing
            if len(cfgs) == 1 and partial.epochs_run >= 1:  # from the first epoch on: gradients exist to draw
                try:
                    self._draw(gen, [partial])
                except Exception:  # noqa: BLE001 - a frame that cannot be drawn yet is skipped; the final draw reports
                    return
                self.status.value = f"<i>training… epoch {partial.epochs_run} of {partial.config.epochs}</i>"

        def frame(partial):  # a streaming loader's partial result: drawn as it comes
            if gen != self._gen:
                raise Cancelled
            if len(cfgs) == 1 and getattr(partial, "epochs_run", 1) >= 1 and self._due():
                self._draw(gen, [partial])

        try:
            if self.load is run:
                runs = [run(c, on_epoch=live) for c in cfgs]
            else:
                runs = [self.load(c, frame) if self.stream else self.load(c) for c in cfgs]
        except Cancelled:
            return
        except Exception as err:  # show the problem where the reader looks
            self.status.value = f"<b>error:</b> {type(err).__name__}: {err}"
            return
        if self._draw(gen, runs):
            self.status.value = ""
            self.timings["done"] = time.perf_counter() - self.timings["start"]

    def _draw(self, gen: int, runs) -> bool:
        """Draw into the one figure and swap the image (serialized; a stale generation draws nothing)."""
        with self._draw_lock:
            if gen != self._gen:
                return False
            for ax in self.axes:
                ax.clear()
            self.draw(self.axes, runs, **{n: w.value for n, w in self.views.items()})
            self.image.value = _png(self.fig)
            self.timings.setdefault("first_frame", time.perf_counter() - self.timings["start"])
            self.timings["last_frame"] = time.perf_counter()
            return True

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def static_explorer(grid: dict, controls: dict[str, list], draw: Draw, width: float = 4.2, height: float = 3.2,
                    ncols: int = 1, key: str | None = None):
    """Sliders over precomputed figures that work in the published page without a kernel.

    grid maps a tuple of control values (in the order of `controls`) to what draw receives (e.g. the runs of that
    setting); one PNG is drawn per grid point, held in nested Stack widgets whose selected_index is jslinked to the
    sliders, so the browser switches images by itself. At most two controls.

    key (the chapter's number, e.g. "06") names the explorer in the page's URL: the book's script
    (scripts/assets/memlib/explorer-links.js) reads `#06-noise=0.4&06-width=512` when the page opens, sets the
    sliders as a reader would, and writes the setting back as the reader moves them, so a link reproduces the view.
    A hidden HTML widget holds what that script needs (the key, each control's values and labels, and each image's
    alt text, from plots.alt_text plus the setting); image k of the grid (in itertools.product order) carries the
    CSS class memlib-grid-k.
    """
    names = list(controls)
    if not 1 <= len(names) <= 2:
        raise ValueError(f"controls: one or two are supported, got {names}")
    if key is not None and not re.fullmatch(r"[A-Za-z0-9_]+", str(key)):
        raise ValueError(f"key={key!r}: letters, digits and _ only (it is part of the page's URL)")
    missing = [k for k in _product(controls) if k not in grid]
    if missing:
        raise ValueError(f"grid has no entry for {missing[0]} (needed for every combination of {names})")
    fig, axes = figure(ncols=ncols, width=width, height=height)
    labels = {n: [_label(n, v) for v in controls[n]] for n in names}
    alts: list[str] = []

    def image(key_):
        for ax in axes:
            ax.clear()
        draw(axes, grid[key_])
        setting = ", ".join(f"{n} {_label(n, v)}" for n, v in zip(names, key_, strict=True))
        alts.append(f"{alt_text(fig)} Setting: {setting}.")
        img = W.Image(value=_png(fig), format="png", layout=W.Layout(max_width=f"{int(100 * width * ncols)}px"))
        img.add_class(f"memlib-grid-{len(alts) - 1}")
        return img

    sliders = [W.SelectionSlider(options=labels[n], description=n,
                                 style={"description_width": "80px"}, layout=W.Layout(width="360px")) for n in names]
    if len(names) == 1:
        stack = W.Stack([image((v,)) for v in controls[names[0]]], selected_index=0)
        W.jslink((sliders[0], "index"), (stack, "selected_index"))
    else:
        inner = []
        for a in controls[names[0]]:
            s = W.Stack([image((a, b)) for b in controls[names[1]]], selected_index=0)
            W.jslink((sliders[1], "index"), (s, "selected_index"))
            inner.append(s)
        stack = W.Stack(inner, selected_index=0)
        W.jslink((sliders[0], "index"), (stack, "selected_index"))
    meta = {"key": key, "controls": [{"name": n, "values": [_url_value(v) for v in controls[n]], "labels": labels[n]}
                                     for n in names], "alts": alts}
    info = W.HTML(value='<span class="memlib-explorer-meta" hidden '
                        f'data-meta="{html.escape(json.dumps(meta))}"></span>',
                  layout=W.Layout(display="none"))
    box = W.VBox([W.HBox(sliders, layout=W.Layout(flex_flow="row wrap")), stack, info])
    box.add_class("memlib-static-explorer")  # the browser test moves these sliders and expects a new image
    return box


def _label(name: str, value) -> str:
    return f"{value:.0%}" if name == "noise" else str(value)


def _url_value(value) -> str:
    """A control value as the URL writes it: 0.4, 512, adam (whole floats without .0: noise=0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _product(controls: dict[str, list]) -> list[tuple]:
    import itertools

    return list(itertools.product(*controls.values()))

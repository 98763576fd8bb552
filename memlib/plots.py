"""Figures: functions take results and an Axes, draw, and return the Figure. They never train or show."""
from __future__ import annotations

import functools

import matplotlib
import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from . import analysis as A
from .models import layer_names
from .results import RunResult

# Okabe-Ito, a colour-blind-safe palette. One colour per condition across the whole book.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
CONDITION_COLORS = {
    "noise": {0.0: "#0072B2", 0.2: "#E69F00", 0.4: "#D55E00", 0.6: "#CC79A7", 0.8: "#009E73", 1.0: "#000000"},
    "depth": {1: "#56B4E9", 2: "#009E73", 4: "#0072B2", 8: "#D55E00", 16: "#CC79A7"},
    "init": {"he": "#0072B2", "xavier": "#E69F00", "orthogonal": "#009E73"},
    "optimizer": {"sgd": "#CC79A7", "momentum": "#56B4E9", "adam": "#0072B2"},
    "width": {32: "#F0E442", 64: "#E69F00", 128: "#009E73", 256: "#0072B2", 512: "#D55E00", 1024: "#CC79A7"},
    "param": {"w": "#0072B2", "b": "#E69F00"},
}
LABELS = {
    "noise": lambda v: f"{v:.0%} noise",
    "depth": lambda v: f"depth {v}",
    "init": lambda v: {"he": "He", "xavier": "Xavier", "orthogonal": "orthogonal"}[v],
    "optimizer": lambda v: {"sgd": "SGD", "momentum": "SGD + momentum", "adam": "Adam"}[v],
    "width": lambda v: f"width {v}",
}
METRIC_LABELS = {
    "loss": "training loss (cross-entropy)",
    "train_acc": "training accuracy (given labels)",
    "train_acc_clean": "accuracy, clean training examples",
    "train_acc_corrupted_noisy": "accuracy, corrupted examples vs noisy label",
    "train_acc_corrupted_true": "accuracy, corrupted examples vs true label",
    "val_acc": "validation accuracy",
    "test_acc": "test accuracy",
    "shift_acc": "test accuracy, rotated images",
}
METRIC_COLORS = {"train_acc": "#0072B2", "test_acc": "#000000", "shift_acc": "#CC79A7", "val_acc": "#009E73",
                 "train_acc_clean": "#0072B2", "train_acc_corrupted_noisy": "#D55E00",
                 "train_acc_corrupted_true": "#D55E00"}
STYLE = {
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8, "legend.frameon": False,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "lines.linewidth": 1.8, "figure.dpi": 100,
    "savefig.dpi": 100, "font.size": 10,
}


def styled(fn):
    """Run a plot function under the book's style, so every figure looks the same."""
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kw)
    return wrapper


def color(kind: str, value, i: int = 0) -> str:
    """The book-wide colour of a condition (falls back to the palette by position)."""
    return CONDITION_COLORS.get(kind, {}).get(value, OKABE_ITO[i % len(OKABE_ITO)])


def label(kind: str, value) -> str:
    """Legend label of a condition."""
    return LABELS[kind](value) if kind in LABELS else f"{kind} {value}"


# ---------------------------------------------------------------- alt text


def _clean(text: str) -> str:
    return " ".join(str(text).replace("$", "").split())


def _axis_text(axis_label: str, scale: str) -> str:
    out = _clean(axis_label) or "unlabelled"
    return out + (" (log scale)" if scale == "log" else "")


def _panel_alt(ax) -> str:
    """One Axes in words: title, axes (with their scales), legend entries (the conditions drawn)."""
    parts = []
    title = " ".join(t for t in (_clean(ax.get_title(loc)) for loc in ("left", "center", "right")) if t)
    if title:
        parts.append(title)
    if ax.images and not ax.lines and not ax.collections:
        parts.append("an image")
    else:
        parts.append(f"x axis: {_axis_text(ax.get_xlabel(), ax.get_xscale())}")
        parts.append(f"y axis: {_axis_text(ax.get_ylabel(), ax.get_yscale())}")
        if hasattr(ax, "get_zlabel"):
            parts.append(f"z axis: {_axis_text(ax.get_zlabel(), 'linear')}")
    legend = ax.get_legend()
    entries = [_clean(t.get_text()) for t in legend.get_texts()] if legend is not None else []
    if not entries:
        entries = [_clean(lab) for lab in ax.get_legend_handles_labels()[1] if not lab.startswith("_")]
    entries = [e for e in entries if e]
    if entries:
        parts.append("shown: " + ", ".join(entries))
    return "; ".join(parts)


def alt_text(fig) -> str:
    """What a figure plots, in words, from the figure itself: per panel its title (which states the seeds), the x and
    y labels (and log scales), and the legend entries (the conditions); the figure's own title first."""
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison and (ax.has_data() or ax.get_title())]
    texts = [_panel_alt(ax) for ax in panels]
    head = _clean(fig._suptitle.get_text()) if getattr(fig, "_suptitle", None) is not None else ""
    if len(texts) == 1:
        body = f"Figure: {texts[0]}."
    elif texts:
        body = f"Figure with {len(texts)} panels. " + " ".join(f"Panel {i}: {t}." for i, t in enumerate(texts, 1))
    else:
        body = "Figure."
    return f"{head}. {body}" if head else body


class BookFigure(Figure):
    """A matplotlib Figure that, shown in a notebook, brings its alt text: the image/png output's metadata carries
    {"alt": alt_text(fig)}, which the book's Sphinx extension memlib.sphinx_alt writes into the page's <img>.
    Drawing is exactly Figure's; only the notebook display differs."""

    def _repr_mimebundle_(self, include=None, exclude=None):
        import base64
        import io

        data = {"text/plain": repr(self)}
        if not _inline_png(self):  # with `%matplotlib inline`, its own PNG formatter draws the image as before
            buf = io.BytesIO()
            self.savefig(buf, format="png", bbox_inches="tight")
            data["image/png"] = base64.b64encode(buf.getvalue()).decode("ascii")
        return data, {"image/png": {"alt": alt_text(self)}}


def _inline_png(fig) -> bool:
    try:
        from IPython import get_ipython

        ip = get_ipython()
        if ip is None:
            return False
        ip.display_formatter.formatters["image/png"].lookup(fig)
        return True
    except Exception:  # noqa: BLE001 - no IPython, or no PNG formatter registered for figures
        return False


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2, **kw):
    """A new styled Figure (not registered with pyplot) and its axes array.

    The Figure is a BookFigure: shown in a notebook it carries its alt text (alt_text) with its PNG."""
    with matplotlib.rc_context(STYLE):
        fig = BookFigure(figsize=(width * ncols, height * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes.ravel()


def band(ax, x, values, c, lab=None, ls="-", marker=None):
    """Mean over seeds as a line, min-max over seeds as a band; values [S, T]."""
    s = A.spread(values)
    ax.plot(x, s.mean, color=c, label=lab, ls=ls, marker=marker, ms=3)
    if s.n > 1:
        ax.fill_between(x, s.lo, s.hi, color=c, alpha=0.2, lw=0)
    return ax


def _finish(ax, xlabel, ylabel, title=None, legend=True, log=False):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if log:
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
    if xlabel == "epoch":
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend()
    return ax.figure


def _plain_log_ticks(axis):
    """Label a log axis with plain numbers (0.5, 1, 2) instead of powers of ten."""
    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_minor_locator(ticker.LogLocator(base=10, subs="auto"))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def seeds_note(runs: list[RunResult]) -> str:
    """'mean of 3 seeds, band = min-max' (or '1 seed')."""
    return f"line = mean of {len(runs)} seeds, band = min–max" if len(runs) > 1 else "1 seed"


# ---------------------------------------------------------------- gradients


@styled
def layer_grad_bars(runs: list[RunResult], ax, stat: str = "mean", per_entry: bool = False) -> Figure:
    """Bars per layer of the run-wide mean (or variance) of weight and bias gradient norms; whiskers = seed min-max."""
    names = layer_names(runs[0].config.depth)
    x = np.arange(len(names))
    for j, param in enumerate(("w", "b")):
        vals = [A.layer_grad_summary(r, param, per_entry)[0 if stat == "mean" else 1] for r in runs]
        s = A.spread(vals)
        err = np.vstack([s.mean - s.lo, s.hi - s.mean])
        ax.bar(x + (j - 0.5) * 0.38, s.mean, 0.38, yerr=err if s.n > 1 else None, capsize=2,
               color=color("param", param), label="weights" if param == "w" else "biases")
    ax.set_xticks(x, names, rotation=30, ha="right")
    what = "mean gradient norm (L2)" if stat == "mean" else "variance of gradient norm"
    if per_entry:
        what = "mean RMS gradient per entry" if stat == "mean" else "variance of RMS gradient per entry"
    return _finish(ax, "layer", what + ", log scale", log=True)


@styled
def batch_grad_scatter(res: RunResult, ax, layers=None, param: str = "w", every: int = 1) -> Figure:
    """Every mini-batch's gradient norm for chosen layers, against epoch (jittered within the epoch)."""
    g = A._grads(res, param)
    names = layer_names(res.config.depth)
    layers = layers if layers is not None else [0, len(names) - 1]
    steps = np.arange(len(g))
    per_epoch = np.bincount(res.step_epoch)[1:].max()
    x = res.step_epoch - 1 + (steps % per_epoch) / per_epoch  # epoch + fraction through it
    for i, li in enumerate(layers):
        ax.scatter(x[::every], g[::every, li], s=7, alpha=0.55, color=("#0072B2", "#D55E00", "#009E73")[i % 3],
                   label=names[li], lw=0)
    return _finish(ax, "epoch", f"{'weight' if param == 'w' else 'bias'} gradient norm (L2), log scale", log=True)


# y-axis label of each per-epoch gradient statistic (memlib.analysis.epoch_stat)
STAT_LABELS = {"mean": "mean gradient norm (L2)", "var": "within-epoch variance of gradient norm",
               "noise": "gradient noise (trace of covariance)", "nsr": "gradient noise / squared mean gradient",
               "rel": "relative gradient ||g|| / ||W||"}


@styled
def epoch_grad_curves(groups: dict, kind: str, ax, layer: int = 0, stat: str = "mean", param: str = "w") -> Figure:
    """Per-epoch gradient statistic of one layer (memlib.analysis.EPOCH_STATS), one band per condition."""
    for i, (value, runs) in enumerate(groups.items()):
        vals = [A.epoch_stat(r, stat, param)[:, layer] for r in runs]
        x = np.arange(1, len(vals[0]) + 1)
        band(ax, x, vals, color(kind, value, i), label(kind, value))
    return _finish(ax, "epoch", f"{STAT_LABELS[stat]}, log scale", log=True)


@styled
def layer_epoch_curves(runs: list[RunResult], ax, stat: str = "mean", param: str = "w") -> Figure:
    """Per-epoch gradient statistic for every layer of one condition (colour = position in the network)."""
    names = layer_names(runs[0].config.depth)
    cmap = matplotlib.colormaps["viridis"]
    for li, name in enumerate(names):
        vals = [A.epoch_stat(r, stat, param)[:, li] for r in runs]
        band(ax, np.arange(1, len(vals[0]) + 1), vals, cmap(li / max(1, len(names) - 1)), name)
    return _finish(ax, "epoch", f"{STAT_LABELS[stat]}, log scale", log=True)


# ---------------------------------------------------------------- accuracies and representations


@styled
def metric_curves(groups: dict, kind: str, ax, metric: str = "test_acc", ls: str = "-", log: bool = False) -> Figure:
    """One metric over epochs (0 = initialization), one band per condition; log=True for a log y axis."""
    for i, (value, runs) in enumerate(groups.items()):
        vals = [r.history[metric] for r in runs]
        band(ax, np.arange(len(vals[0])), vals, color(kind, value, i), label(kind, value), ls=ls)
    return _finish(ax, "epoch", METRIC_LABELS.get(metric, metric) + (", log scale" if log else ""), log=log)


@styled
def drift_curves(groups: dict, kind: str, ax, layer, measure: str = "cosine") -> Figure:
    """Similarity of the probe representation to its initial state over epochs, one band per condition."""
    fn = A.cosine_drift if measure == "cosine" else A.cka_drift
    for i, (value, runs) in enumerate(groups.items()):
        vals = [fn(r, layer) for r in runs]
        band(ax, runs[0].rep_epochs, vals, color(kind, value, i), label(kind, value))
    what = "mean cosine similarity to initialization" if measure == "cosine" else "linear CKA with initialization"
    return _finish(ax, "epoch", what)


@styled
def final_vs_condition(groups: dict, kind: str, ax, metrics=("train_acc", "test_acc")) -> Figure:
    """Final value of each metric against the condition value (mean and seed min-max)."""
    values = list(groups)
    x = np.arange(len(values))
    for j, m in enumerate(metrics):
        finals = [[r.final(m) for r in groups[v]] for v in values]  # [values][seeds]
        means, lo, hi = (np.array([f(v) for v in finals]) for f in (np.mean, np.min, np.max))
        ax.errorbar(x, means, yerr=np.vstack([means - lo, hi - means]), marker="o", capsize=3,
                    color=OKABE_ITO[j], label=METRIC_LABELS.get(m, m))
    ax.set_xticks(x, [str(v) for v in values])
    return _finish(ax, kind, "accuracy (final epoch)")


@styled
def layer_profile(groups: dict, kind: str, ax, epoch: int = 1, param: str = "w") -> Figure:
    """Mean gradient norm of each layer in one epoch (1-based), one line per condition: gradient flow through depth."""
    names = layer_names(next(iter(groups.values()))[0].config.depth)
    x = np.arange(len(names))
    for i, (value, runs) in enumerate(groups.items()):
        band(ax, x, [A.epoch_grad_stats(r, param)[0][epoch - 1] for r in runs], color(kind, value, i),
             label(kind, value), marker="o")
    ax.set_xticks(x, names, rotation=30, ha="right")
    return _finish(ax, "layer", f"epoch-{epoch} mean gradient norm, log scale", log=True)


@styled
def fit_decomposition(runs: list[RunResult], ax) -> Figure:
    """Fit of the training set over time: clean examples, corrupted ones (noisy and true labels), and the test set."""
    x = np.arange(runs[0].epochs_run + 1)
    parts = [("train_acc_clean", "#0072B2", "-"), ("train_acc_corrupted_noisy", "#D55E00", "-"),
             ("train_acc_corrupted_true", "#D55E00", ":"), ("test_acc", "#000000", "--")]
    for metric, c, ls in parts:
        band(ax, x, [r.history[metric] for r in runs], c, METRIC_LABELS[metric], ls=ls)
    ax.set_ylim(-0.02, 1.02)
    _finish(ax, "epoch", "accuracy", legend=False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the curves cross the whole panel
    return ax.figure


@styled
def layer_similarity(groups: dict, kind: str, ax, measure: str = "cosine", epoch: int = -1) -> Figure:
    """Similarity to initialization of each hidden layer at one checkpoint (default: last), one line per condition."""
    fn = A.cosine_drift if measure == "cosine" else A.cka_drift
    depth = next(iter(groups.values()))[0].config.depth
    x = np.arange(1, depth + 1)
    for i, (value, runs) in enumerate(groups.items()):
        vals = [[fn(r, k)[epoch] for k in x] for r in runs]
        band(ax, x, vals, color(kind, value, i), label(kind, value), marker="o")
    ax.set_xticks(x, [f"hidden{k}" for k in x], rotation=30, ha="right")
    what = "cosine similarity to init" if measure == "cosine" else "linear CKA with init"
    return _finish(ax, "layer", f"{what} (final epoch)")


@styled
def variance_vs_drift(runs: list[RunResult], ax, layer: int, c: str = "#D55E00") -> Figure:
    """Epoch-to-epoch change of first-layer gradient noise against the change of one hidden layer's drift, one point
    per epoch and seed (changes, not levels: two series that both trend with time correlate in level regardless)."""
    for j, r in enumerate(runs):
        v, d = A.noise_drift_changes(r, layer)
        rho = A.spearman(v, d)
        ax.scatter(v, d, s=18, color=c, alpha=0.35 + 0.65 * (j == 0), marker="os^Dv"[j % 5],
                   label=f"seed {r.config.seed}: ρ = {rho:.2f}")
    ax.axhline(0, color="0.7", lw=0.6)
    ax.axvline(0, color="0.7", lw=0.6)
    return _finish(ax, "change of first-layer gradient noise from the epoch before",
                   f"change of hidden{layer}'s drift from the epoch before")


@styled
def final_gap(groups: dict, kind: str, ax) -> Figure:
    """Final train-test gap against the condition value (mean and seed min-max)."""
    values = list(groups)
    gaps = [[r.final("train_acc") - r.final("test_acc") for r in groups[v]] for v in values]
    means, lo, hi = (np.array([f(g) for g in gaps]) for f in (np.mean, np.min, np.max))
    x = np.arange(len(values))
    ax.errorbar(x, means, yerr=np.vstack([means - lo, hi - means]), marker="o", capsize=3, color="#000000")
    ax.set_xticks(x, [str(v) for v in values])
    return _finish(ax, kind, "train − test accuracy (final)", legend=False)


@styled
def layer_drift_curves(runs: list[RunResult], ax, measure: str = "cosine") -> Figure:
    """Similarity to initialization over epochs for each recorded hidden layer of one condition (coloured by depth)."""
    fn = A.cosine_drift if measure == "cosine" else A.cka_drift
    names = sorted(runs[0].reps, key=lambda n: int(n[6:]))
    cmap = matplotlib.colormaps["viridis"]
    for i, name in enumerate(names):
        band(ax, runs[0].rep_epochs, [fn(r, name) for r in runs], cmap(i / max(1, len(names) - 1)), name)
    what = "mean cosine similarity to initialization" if measure == "cosine" else "linear CKA with initialization"
    return _finish(ax, "epoch", what)


@styled
def accuracy_curves(runs: list[RunResult], ax, metrics=("train_acc", "test_acc")) -> Figure:
    """Several accuracies of one condition over epochs, one band each (book-wide metric colours)."""
    x = np.arange(runs[0].epochs_run + 1)
    for m in metrics:
        band(ax, x, [r.history[m] for r in runs], METRIC_COLORS.get(m, "#000000"), METRIC_LABELS.get(m, m),
             ls="--" if m == "shift_acc" else "-")
    ax.set_ylim(-0.02, 1.02)
    return _finish(ax, "epoch", "accuracy")


PROBE_COLORS = {"masc_corrupted": "#D55E00", "masc_true": "#009E73", "ncm": "#56B4E9", "linear": "#CC79A7"}
PROBE_LABELS = {"masc_corrupted": "MASC, corrupted-label subspaces", "masc_true": "MASC, true-label subspaces",
                "ncm": "nearest class mean (cosine)", "linear": "linear probe (logistic)"}


@styled
def probe_bars(table: dict, ax, highlight: str | None = None) -> Figure:
    """Test accuracy (true labels) of each probe at each layer, with the model's own test accuracy as a line."""
    layers = list(table["layers"])
    x = np.arange(len(layers))
    w = 0.8 / len(PROBE_COLORS)
    for j, (probe, c) in enumerate(PROBE_COLORS.items()):
        vals = [table["layers"][k][probe] for k in layers]
        ax.bar(x + (j - 1.5) * w, vals, w, color=c, label=PROBE_LABELS[probe])
    ax.axhline(table["model_test_acc"], color="#000000", ls="--", lw=1.5, label="the network's own test accuracy")
    if highlight in layers:
        ax.axvspan(layers.index(highlight) - 0.45, layers.index(highlight) + 0.45, color="#999999", alpha=0.15, lw=0)
    ax.set_xticks(x, layers)
    ax.set_ylim(0, 1.0)
    return _finish(ax, "layer", "test accuracy on true labels")


@styled
def probes_vs_noise(tables: dict, ax) -> Figure:
    """Best-hidden-layer probe accuracies, MASC on the raw input and the network's test accuracy versus corruption p."""
    ps = sorted(tables)
    model = [[t["model_test_acc"] for t in tables[p]] for p in ps]  # [p][seed]
    band(ax, ps, np.array(model).T, "#000000", "the network's own test accuracy", ls="--", marker="o")
    from .probes import best_layer

    for probe, c in PROBE_COLORS.items():
        best = [[best_layer(t, probe)[1] for t in tables[p]] for p in ps]  # the layer chosen on validation
        band(ax, ps, np.array(best).T, c, PROBE_LABELS[probe] + " (best hidden layer)", marker="o")
    raw = [[t["layers"]["input"]["masc_corrupted"] for t in tables[p]] for p in ps]
    band(ax, ps, np.array(raw).T, "#999999", "MASC on the raw input (baseline)", ls=":")
    ax.set_ylim(0, 1.0)
    return _finish(ax, "label corruption p", "test accuracy on true labels")


@styled
def masc_variance(per_seed: list[dict], ax, variances=None) -> Figure:
    """MASC test accuracy against the share of variance each class subspace keeps, one band per layer (seeds)."""
    from .probes import VARIANCES

    variances = VARIANCES if variances is None else variances
    layers = list(per_seed[0])
    cmap = matplotlib.colormaps["viridis"]
    x = np.arange(len(variances))
    for i, name in enumerate(layers):
        c = "#999999" if name == "input" else cmap((i - 1) / max(1, len(layers) - 2))
        band(ax, x, [d[name] for d in per_seed], c, name, ls=":" if name == "input" else "-", marker="o")
    ax.set_xticks(x, [f"{v:.1%}".replace(".0%", "%") for v in variances])
    return _finish(ax, "share of variance kept per class subspace", "MASC test accuracy on true labels")


@styled
def masc_factors(tables: dict, ax) -> Figure:
    """One row per variant ({name: [probe table per seed]}): the network's test accuracy, MASC on the raw input and at
    the best hidden layer (chosen on validation), each seed a small dot and the mean a large marker."""
    from .probes import best_layer

    names = list(tables)
    y = np.arange(len(names))[::-1]  # the first variant on top
    series = (("the network's own test accuracy", "#000000", "x", lambda t: t["model_test_acc"]),
              ("MASC on the raw input", "#999999", "o", lambda t: t["layers"]["input"]["masc_corrupted"]),
              ("MASC, best hidden layer", PROBE_COLORS["masc_corrupted"], "D", lambda t: best_layer(t)[1]))
    for j, (lab, c, m, get) in enumerate(series):
        off = (j - 1) * 0.22
        vals = [[get(t) for t in tables[n]] for n in names]  # [variant][seed]
        for yi, v in zip(y, vals, strict=True):
            ax.plot(v, [yi + off] * len(v), ls="", marker=".", color=c, alpha=0.5, ms=4)
        ax.plot([np.mean(v) for v in vals], y + off, ls="", marker=m, color=c, ms=7, label=lab)
    ax.set_yticks(y, names)
    ax.grid(axis="y", visible=False)
    return _finish(ax, "test accuracy on true labels", "")


# ---------------------------------------------------------------- Background diagrams (data from memlib.mechanics)


@styled
def noise_vs_batch_size(check: dict, ax) -> Figure:
    """Mean squared distance of a mini-batch gradient from the full gradient against batch size (log-log): measured
    points beside tr(Sigma) / B and its without-replacement correction (check: mechanics.batch_noise_scaling)."""
    b = np.asarray(check["batch_sizes"], float)
    grid = np.geomspace(b.min(), b.max(), 50)
    n, tr = check["pool"], check["trace_per_example"]
    ax.plot(grid, tr / grid, color="#999999", ls=":", label="tr(Σ) / B")
    ax.plot(grid, tr / grid * (n - grid) / (n - 1), color="#0072B2", label="tr(Σ) / B · (N − B) / (N − 1)")
    ax.plot(b, check["measured"], "o", color="#D55E00", ms=5, label=f"measured ({check['draws']} mini-batches each)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.FixedLocator(b))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    return _finish(ax, "batch size B (log scale)", "mean ‖g_B − g‖², log scale", log=True)


@styled
def singular_value_hist(values: dict, ax) -> Figure:
    """Histograms of a weight matrix's singular values, one per initialization scheme ({init: values}).

    A scheme whose values all coincide (orthogonal) is drawn as one labelled vertical line, so the spread of the
    others stays visible.
    """
    top = max(float(np.max(v)) for v in values.values())
    bins = np.linspace(0, top * 1.05, 41)
    for i, (init, v) in enumerate(values.items()):
        v = np.asarray(v, float)
        c = color("init", init, i)
        if np.ptp(v) <= 1e-4 * max(float(np.max(v)), 1e-30):  # equal up to float32 rounding
            ax.axvline(float(v[0]), color=c, lw=2.5, label=f"{label('init', init)}: all {len(v)} at {v[0]:.3g}")
        else:
            ax.hist(v, bins=bins, histtype="stepfilled", color=c, alpha=0.35, edgecolor=c, lw=1.5,
                    label=label("init", init))
    return _finish(ax, "singular value", "count")


@styled
def rotated_digit(original, rotated, axes, degrees: float) -> Figure:
    """A digit, its rotation and their difference as images on three axes: what the first layer of an MLP compares."""
    diff = np.asarray(rotated, float) - np.asarray(original, float)
    lim = float(np.abs(diff).max()) or 1.0
    for ax, img, title, kw in ((axes[0], original, "test image", dict(cmap="gray_r", vmin=0, vmax=255)),
                               (axes[1], rotated, f"rotated by {degrees:g}°", dict(cmap="gray_r", vmin=0, vmax=255)),
                               (axes[2], diff, "rotated − original", dict(cmap="RdBu_r", vmin=-lim, vmax=lim))):
        ax.imshow(img, **kw)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for side in ax.spines.values():
            side.set_visible(False)
    return axes[0].figure


@styled
def subspace_angle_3d(toy: dict, ax) -> Figure:
    """MASC in three dimensions (toy: mechanics.toy_subspaces): two class subspaces through the origin, a test point
    and its angle to each; ax must be a 3-D Axes."""
    (a, b), plane, line, x, proj = toy["points"], toy["basis"][0], toy["line"], toy["x"], toy["projection"]
    u, v = np.meshgrid(np.linspace(-2.2, 2.2, 2), np.linspace(-2.2, 2.2, 2))
    surf = plane[:, 0, None, None] * u + plane[:, 1, None, None] * v  # [3, 2, 2]
    ax.plot_surface(*surf, color="#0072B2", alpha=0.12, lw=0)
    ax.scatter(*a.T, s=7, color="#0072B2", label="class A: its subspace is a plane")
    t = np.array([-2.4, 2.4])
    ax.plot(*(line[:, None] * t), color="#E69F00", lw=1.5)
    ax.scatter(*b.T, s=7, color="#E69F00", label="class B: its subspace is a line")
    ax.plot(*np.stack([np.zeros(3), x], 1), color="#000000", lw=2.5, label="test point x")
    ax.plot(*np.stack([np.zeros(3), proj], 1), color="#D55E00", lw=2.5, label="x projected onto A's plane")
    ax.plot(*np.stack([x, proj], 1), color="#999999", ls="--", lw=1)
    ang_a, ang_b = toy["angles"]
    ax.set_title(f"angle to A {ang_a:.0f}°, to B {ang_b:.0f}°: MASC says A")
    ax.set(xlim=(-2.4, 2.4), ylim=(-2.4, 2.4), zlim=(-2.4, 2.4))
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=18, azim=-55)
    for setter in (ax.set_xticklabels, ax.set_yticklabels, ax.set_zticklabels):
        setter([])
    ax.legend(loc="upper left", fontsize=7)
    return ax.figure

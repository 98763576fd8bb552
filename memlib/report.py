"""What a chapter displays besides figures: the setup table and the computed verdict box."""
from __future__ import annotations

import html
import json

from .config import RunConfig
from .modes import scale
from .verdicts import Check, Verdict

VERDICT_MIME = "application/vnd.memlib.verdict+json"  # read by the evidence map at build time
_COLORS = {"supported": "#009E73", "partly supported": "#E69F00", "not supported at this scale": "#7f7f7f"}


class VerdictBox:
    """Displays a Verdict as a coloured box (HTML), plain text, and machine-readable JSON."""

    def __init__(self, v: Verdict, chapter: str, mode: str, scope: str = ""):
        self.v, self.chapter, self.mode, self.scope = v, chapter, mode, scope  # scope: what part of the mode ran

    def _repr_mimebundle_(self, include=None, exclude=None):
        v = self.v
        data = {**v.to_dict(), "chapter": self.chapter, "mode": self.mode}
        if self.scope:
            data["scope"] = self.scope
        scope = f"; {self.scope}" if self.scope else ""
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(val)}</code></td></tr>"
                       for k, val in v.numbers)
        note = f"<p><em>Where the rule differs from the source.</em> {html.escape(v.note)}</p>" if v.note else ""
        fail = f"<p><strong>What would have failed it.</strong> {html.escape(v.could_fail)}</p>" if v.could_fail else ""
        c = _COLORS[v.outcome]
        box = (
            f'<div class="memlib-verdict" style="border-left:6px solid {c};padding:0.6em 1em;'
            'margin:1em 0;background:#f7f7f7">'
            f'<p style="margin:0 0 0.4em 0"><strong>Verdict ({html.escape(self.mode)} mode{html.escape(scope)}): '
            f'<span style="color:{c}">{v.outcome}</span></strong></p>'
            f"<p><strong>Claim.</strong> {html.escape(v.claim)}</p>"
            f"<p><strong>Rule.</strong> {html.escape(v.rule)} Held in {sum(v.holds)} of {len(v.holds)} checks.</p>"
            f'<table class="memlib-numbers">{rows}</table>{fail}{note}</div>'
        )
        text = [f"Verdict ({self.mode}{scope}): {v.outcome}",
                f"Rule: {v.rule} Held in {sum(v.holds)} of {len(v.holds)} checks."]
        text += [f"  {k}: {val}" for k, val in v.numbers]
        text += [f"What would have failed it: {v.could_fail}"] if v.could_fail else []
        return {"text/html": box, "text/plain": "\n".join(text), VERDICT_MIME: json.loads(json.dumps(data))}


class Table:
    """A small table of strings shown as HTML (and aligned text)."""

    def __init__(self, rows: list[tuple[str, ...]], head=("setting", "value")):
        self.rows, self.head = [tuple(map(str, r)) for r in rows], tuple(head)

    def _repr_html_(self):
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in self.rows)
        h = "".join(f"<th>{html.escape(x)}</th>" for x in self.head)
        return f'<table class="memlib-table"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'

    def __repr__(self):
        cols = list(zip(self.head, *self.rows, strict=True))
        w = [max(len(c) for c in col) for col in cols]
        return "\n".join("  ".join(c.ljust(n) for c, n in zip(r, w, strict=True)).rstrip()
                         for r in [self.head, *self.rows])


def architecture(cfg: RunConfig) -> str:
    """'MLP, depth 4 (hidden layers) x width 256, ...' or, for per-layer widths, 'MLP 784-128-512-...-10, ...'."""
    shape = (f"MLP 784-{'-'.join(map(str, cfg.hidden_widths))}-10" if cfg.widths else
             f"MLP, depth {cfg.depth} (hidden layers) x width {cfg.width}")
    return f"{shape}, ReLU, {cfg.init} init"


def setup_table(cfg: RunConfig, mode: str, varied: str = "", seeds=None, **extra) -> Table:
    """The chapter's setup: data size, architecture, optimizer, epochs, noise, seeds (default: the mode's), mode."""
    seeds = scale(mode).seeds if seeds is None else seeds
    rows = [
        ("mode", f"{mode}"),
        ("training images", f"{cfg.n_train:,} of 50,000 (drawn with the seed)"),
        ("architecture", architecture(cfg)),
        ("optimizer", f"{cfg.optimizer}, learning rate {cfg.learning_rate:g}, batch {cfg.batch_size}"),
        ("epochs", f"{cfg.epochs}"),
        ("label noise", f"{cfg.noise:.0%} ({cfg.noise_kind})"),
        ("evaluation", f"{cfg.eval_size:,} validation and {cfg.eval_size:,} test images; "
                       f"rotation shift +/-{cfg.shift_degrees:g} deg"),
        ("seeds", ", ".join(map(str, seeds))),
    ]
    if varied:
        rows.insert(2, ("varied", varied))
    rows += [(k.replace("_", " "), str(v)) for k, v in extra.items()]
    return Table(rows)


def agreement_table(rows: list[dict], lo: str = "0 %", hi: str = "40 %") -> Table:
    """analysis.measure_agreement rows as a table."""
    head = ("layer", f"cosine {lo}", f"cosine {hi}", f"CKA {lo}", f"CKA {hi}", "measures agree")
    return Table([(r["layer"], f"{r['cos_lo']:.3f}", f"{r['cos_hi']:.3f}", f"{r['cka_lo']:.3f}", f"{r['cka_hi']:.3f}",
                   "yes" if r["agree"] else "no") for r in rows], head)


# Chapter 10's rows: (metric, what the accuracy is measured on).
DAY12_ROWS = (("train_acc", "training images, labels as given"), ("test_acc", "test images"),
              ("shift_acc", "rotated test images"))


def _pct(values) -> str:
    """'99.1 ± 0.2 %' (mean and sd over seeds) or '99.1 %' for one seed."""
    from .analysis import mean_sd

    m, sd = mean_sd(values)
    return _pc(m) if len(values) == 1 else f"{m * 100:.1f} ± {sd * 100:.1f} %"


def _pc(x: float, digits: int = 1) -> str:
    """A fraction as a percentage with the book's space: '40 %'."""
    return f"{x * 100:.{digits}f} %"


def _points(x: float) -> str:
    """A signed difference of accuracies in percentage points."""
    return f"{x * 100:+.1f} points"


def day12_table(nums: dict, mode: str) -> Table:
    """analysis.shift_numbers beside the study's Day 12 figures: mean ± sd over seeds, and the build minus the
    study's range (0 inside it)."""
    from .analysis import mean_sd
    from .study import DAY12

    rows = []
    for p, acc in nums["acc"].items():
        for metric, where in DAY12_ROWS:
            fig = DAY12.figures.get(p, {}).get(metric)
            off = None if fig is None else round(fig.offset(mean_sd(acc[metric])[0]), 3)  # as the table shows it
            diff = "not reported" if off is None else "within" if off == 0 else _points(off)
            rows.append((f"{_pc(p, 0)} noise", where, "not reported" if fig is None else fig.fmt(),
                         _pct(acc[metric]), diff))
    seeds = f"{nums['seeds']} seed{'s' if nums['seeds'] > 1 else ''}"
    return Table(rows, ("training labels", "accuracy on", f"study ({DAY12.source.split(', ')[-1]})",
                        f"this build ({mode}, epoch {nums['epoch']}, {seeds})", "this build minus the study's range"))


_SETUP_NAMES = {"n_train": "training images", "shift_degrees": "rotation (degrees)"}


def day12_scale(cfg: RunConfig, epoch: int) -> str:
    """Whether the chapter's runs, at the table's epoch, have the study's Day 12 setup, and what differs if not."""
    from .study import DAY12

    ours = {**{k: getattr(cfg, k) for k in DAY12.setup}, "epochs": epoch}
    diffs = [f"{_SETUP_NAMES.get(k, k)} {ours[k]:,} (study: {v:,})" if isinstance(v, int) else
             f"{_SETUP_NAMES.get(k, k)} {ours[k]} (study: {v})" for k, v in DAY12.setup.items() if ours[k] != v]
    at = f"epoch {epoch} of the runs' {cfg.epochs}" if epoch != cfg.epochs else f"epoch {epoch}, the runs' last"
    if not diffs:
        return f"Scale: the study's ({cfg.n_train:,} training images, {at}), so this is the study's comparison."
    return (f"Scale differs from the study's: {'; '.join(diffs)}. The table is at {at}; its numbers are not "
            "expected to match the study's.")


def day12_notes(nums: dict, noise_kind: str) -> list[str]:
    """The differences between this build and the study's Day 12, as sentences computed from the numbers."""
    return _fit_notes(nums, noise_kind) + _shift_notes(nums)


def _fit_notes(nums: dict, noise_kind: str) -> list[str]:
    """What training accuracy measures, here and in the study, and what the noisy networks' figure means."""
    from .analysis import mean_sd, wrong_share
    from .study import DAY12

    hi = max(nums["acc"])
    b, fig = nums["acc"][hi], DAY12.figures[hi]
    how = ("the finished network's, scored on all its training images" if nums["last"] else
           f"epoch {nums['epoch']}'s own pass (each image scored when its mini-batch came), since a run keeps only "
           "the finished network's weights")
    out = [f"Training accuracy counts agreement with the labels as given, wrong ones included; here it is {how}."]
    train, shift = fig["train_acc"].fmt(), fig["shift_acc"].fmt()
    if fig["train_acc"].hi < fig["shift_acc"].lo:
        out.append(f"The study's must be measured the same way: a network scoring {shift} on rotated test images "
                   f"would agree with the true labels of far more than {train} of its training images.")
    w, t = nums["wrong"][hi], mean_sd(b["train_acc"])[0]
    out.append(f"At {_pc(hi, 0)} {noise_kind} noise {_pc(w)} of this build's training labels are wrong, so a "
               f"network that predicted every true label would score {_pc(1 - w)}. The noisy networks score "
               f"{_pct(b['train_acc'])}: they fit {_pct(b['train_acc_clean'])} of the unchanged labels and "
               f"{_pct(b['train_acc_corrupted_noisy'])} of the changed ones (only memorizing gets those right), so "
               f"they are {abs(t - (1 - w)) * 100:.1f} points {'above' if t > 1 - w else 'below'} that mark.")
    marks = []
    for kind in ("symmetric", "uniform"):
        wrong = wrong_share(hi, kind)
        off = fig["train_acc"].offset(1 - wrong)
        where = "at" if off == 0 else "below" if off > 0 else "above"
        marks.append(f"with {kind} noise ({_pc(wrong, 0)} of the labels wrong) a network that knew only the true "
                     f"labels scores {_pc(1 - wrong, 0)}, and the study's {train} is {where} that mark")
    out.append(f"The study does not say how its noise was drawn: {'; '.join(marks)}. At the mark, the plain reading "
               "is a network that learned the true labels and memorized next to none of the wrong ones; below it, a "
               "network must have missed some of the correctly labelled images.")
    return out


def _shift_notes(nums: dict) -> list[str]:
    """The clean-minus-noisy gap on rotated images against the study's, and each condition's rotation penalty."""
    from .analysis import paired_gap
    from .study import DAY12

    lo, hi = min(nums["acc"]), max(nums["acc"])
    a, b = nums["acc"][lo], nums["acc"][hi]
    clean, noisy = DAY12.figures[lo]["shift_acc"], DAY12.figures[hi]["shift_acc"]
    g, gsd = paired_gap(a["shift_acc"], b["shift_acc"])
    s_lo, s_hi = clean.lo - noisy.hi, clean.hi - noisy.lo
    rel = "within" if s_lo <= g <= s_hi else "larger than" if g > s_hi else "smaller than"
    gs = f"{g * 100:.1f} points" if nums["seeds"] == 1 else f"{g * 100:.1f} ± {gsd * 100:.1f} points (mean ± sd)"
    pen = {p: paired_gap(nums["acc"][p]["test_acc"], nums["acc"][p]["shift_acc"])[0] for p in (lo, hi)}
    return [f"On rotated test images the noisy networks score {gs} below the clean ones; the study's figures put that "
            f"gap at {s_lo * 100:.0f} to {s_hi * 100:.0f} points, so this build's gap is {rel} the study's.",
            f"Rotation costs the clean networks {pen[lo] * 100:.1f} points of plain test accuracy and the noisy ones "
            f"{pen[hi] * 100:.1f}: the larger penalty is the {'noisy' if pen[hi] > pen[lo] else 'clean'} networks', "
            f"by {abs(pen[hi] - pen[lo]) * 100:.1f} points. The study gives no plain test accuracy, so its penalty "
            "is unknown.",
            _swing_note(nums)]


def _swing_note(nums: dict) -> str:
    """How much rotated-test accuracy moves from epoch to epoch here, against the study's "instability"."""
    from .analysis import mean_sd

    lo, hi = min(nums["swing"]), max(nums["swing"])
    sw = {p: mean_sd(nums["swing"][p])[0] for p in (lo, hi)}
    return (f"The study saw the noisy network's rotated-test accuracy unstable across epochs. Here, from epoch "
            f"{nums['swing_from']} "
            f"to {nums['epoch']}, it moves within {sw[hi] * 100:.1f} points for the noisy networks and "
            f"{sw[lo] * 100:.1f} for the clean ones (max minus min, mean over seeds): the noisy networks' is the "
            f"{'larger' if sw[hi] > sw[lo] else 'smaller'}.")


def masc_table(tables: dict) -> Table:
    """Per corruption p: the network's test accuracy, each probe's best-layer accuracy (mean [min, max] over seeds)."""
    from .analysis import spread
    from .probes import PROBES, best_layer

    rows = []
    for p in sorted(tables):
        ts = tables[p]
        cells = [spread([t["model_test_acc"] for t in ts]).fmt(3)]
        for probe in PROBES:
            cells.append(spread([best_layer(t, probe)[1] for t in ts]).fmt(3))
        cells.append(spread([t["layers"]["input"]["masc_corrupted"] for t in ts]).fmt(3))
        layers = sorted({best_layer(t)[0] for t in ts})
        rows.append((f"{p:.1f}", *cells, ", ".join(layers)))
    return Table(rows, ("p", "network", "MASC corrupted", "MASC true", "nearest mean", "linear",
                        "MASC corrupted on raw input", "best MASC hidden layer(s)"))


def relabel_table(rows: list[tuple]) -> Table:
    """Relabeling results: (seed, layer, wrong after relabel, wrong before, test acc before, test acc after)."""
    return Table([(str(s), layer, f"{after:.1%}", f"{before:.1%}", f"{a0:.3f}", f"{a1:.3f}")
                  for s, layer, after, before, a0, a1 in rows],
                 ("seed", "MASC layer", "labels wrong after relabeling", "labels wrong before", "test acc before",
                  "test acc after"))


def masc_protocol_note(cfg: RunConfig) -> str:
    """Chapter 11's setup row: whether this mode runs the MASC paper's protocol, and what differs if not."""
    from .modes import PAPER_PROTOCOL

    paper = cfg.replace(**PAPER_PROTOCOL)
    if cfg.key_dict() | {"n_train": 0, "epochs": 0} == paper.key_dict() | {"n_train": 0, "epochs": 0}:
        return "the paper's: 784-128-512-2048-2048-10, torch init, SGD + momentum 0.9 at lr 0.001, pixels in [-1, 1]"
    return ("not the paper's: a uniform network with Adam, as in the first edition, because the paper's network, "
            "optimizer and 99.9 % stopping rule take minutes per run on this CPU (see memlib.modes); "
            "the full mode runs the paper's")


def masc_layer_table(tables: dict) -> Table:
    """Per corruption p: the network, MASC on the input and on each hidden layer, and the best hidden layer (chosen on
    validation) minus the input, each as mean [min, max] over seeds."""
    from .analysis import spread
    from .probes import gain_over_input

    rows, layers = [], None
    for p in sorted(tables):
        ts = tables[p]
        layers = [k for k in ts[0]["layers"]]
        cells = [spread([t["model_test_acc"] for t in ts]).fmt(3)]
        cells += [spread([t["layers"][k]["masc_corrupted"] for t in ts]).fmt(3) for k in layers]
        cells.append(spread([gain_over_input(t) for t in ts]).fmt(3))
        rows.append((f"{p:.1f}", *cells))
    return Table(rows, ("p", "network", *(f"MASC {k}" for k in layers or []), "best hidden minus input"))


def factor_effects(tables: dict, reference: str) -> dict[str, Check]:
    """{variant: Check of its gain over the input minus the reference variant's, paired by seed} (memlib.verdicts'
    rule decides whether a difference exceeds the seed-to-seed spread); the reference itself is left out."""
    from .probes import gain_over_input

    ref = [gain_over_input(t) for t in tables[reference]]
    return {v: Check(v, tuple(gain_over_input(t) - r for t, r in zip(ts, ref, strict=True)))
            for v, ts in tables.items() if v != reference}


def _msd(values, digits: int = 3) -> str:
    """'mean ± sd' over seeds ('mean' alone for one seed)."""
    from .analysis import mean_sd

    m, sd = mean_sd(values)
    return f"{m:.{digits}f}" + (f" ± {sd:.{digits}f}" if len(values) > 1 else "")


def factor_table(tables: dict, runs: dict, reference: str) -> Table:
    """Per variant (mean ± sd over seeds): epochs trained, the network's test accuracy, MASC on the input and at the
    best hidden layer, the gain over the input, and that gain minus the reference variant's (paired by seed)."""
    from .probes import best_layer, gain_over_input

    effects = factor_effects(tables, reference)
    rows = []
    for v, ts in tables.items():
        diff = "(reference)" if v == reference else _msd(effects[v].effects)
        rows.append((v, _msd([r.epochs_run for r in runs[v]], 0), _msd([t["model_test_acc"] for t in ts]),
                     _msd([t["layers"]["input"]["masc_corrupted"] for t in ts]), _msd([best_layer(t)[1] for t in ts]),
                     _msd([gain_over_input(t) for t in ts]), diff))
    return Table(rows, ("variant (p = 0.6)", "epochs", "network", "MASC input", "MASC best hidden", "gain over input",
                        "gain minus reference"))


def factor_findings(tables: dict, reference: str, runs: dict | None = None) -> str:
    """Sentences, from the numbers, on which change moves the gain over the input beyond the seed spread (and, given
    the runs, which variants stopped at their epoch cap before fitting the corrupted labels)."""
    from .analysis import spread
    from .probes import gain_over_input

    effects = factor_effects(tables, reference)
    ref = spread([gain_over_input(t) for t in tables[reference]]).fmt(3)
    out = [f"Against the reference ({reference}; best hidden layer minus input {ref}):"]
    moved = []
    for v, c in effects.items():
        word = "a larger gain" if c.holds else "a smaller gain" if c.below else "no change beyond the spread"
        moved += [v] if c.holds or c.below else []
        out.append(f"- {v} gives {word}, {c.fmt(3)}.")
    out.append(("Changes beyond the seed-to-seed spread: " + "; ".join(moved) + ".") if moved else
               "No single change moves the gain over the input beyond the seed-to-seed spread.")
    for v, rs in (runs or {}).items():
        short = [r for r in rs if r.config.stop_at and r.final("train_acc") < r.config.stop_at]
        if short:
            acc = spread([r.final("train_acc") for r in rs]).fmt(3)
            out.append(f"{v}: {len(short)} of {len(rs)} runs stopped at the {rs[0].config.epochs}-epoch cap before "
                       f"fitting the corrupted labels (training accuracy {acc}).")
    return "\n".join(out)

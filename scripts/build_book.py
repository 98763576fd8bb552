#!/usr/bin/env python3
"""The steps of the book build that no tool does. The Makefile drives them (`make book`, -jN -k -n -B); papermill
executes the chapters into _build/executed/<mode>/chapters/ (logs/, failed/ beside them).

    build_book.py check NB            a chapter has one `parameters` cell that sets `mode` (before papermill)
    build_book.py failed NB PARTIAL   papermill failed: keep its notebook in failed/, name the chapter and cell
    build_book.py environment         what the executed chapters ran with (environment.json)
    build_book.py html [--toc FILE]   timings.json from metadata.papermill.duration, then the staged sources
                                      (_build/src/<mode>/, parameter cells hidden), jupyter-book build -W, widget
                                      fonts, and the HTML swapped in: _build/html/ (standard), _build/<mode>/html/

The HTML is built into a temporary folder that replaces the old book only on success, and only when the staged
sources changed. Bad input: a one-line error, exit status 2; a failed step: exit status 1.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import vendor_assets  # noqa: E402

MODES = ("quick", "standard", "full")
# Page directories get the widget icon fonts the embed manager requests relative to each page: the
# URL depends on which AMD module's CSS asks (@jupyter-widgets/controls -> "@jupyter-widgets/",
# @jupyter-widgets/html-manager/dist/libembed-amd -> "@jupyter-widgets/html-manager/dist/").
WIDGET_FONT_DIRS = ("@jupyter-widgets", "@jupyter-widgets/html-manager/dist")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class BuildError(Exception):
    """A problem that stops the build; its message is what the user sees."""


def layout(build_dir: Path, mode: str) -> dict[str, Path]:
    """Every path the build uses for one mode (see the module docstring)."""
    exe = build_dir / "executed" / mode
    html = build_dir / "html" if mode == "standard" else build_dir / mode / "html"
    return {"exec": exe, "exec_chapters": exe / "chapters", "logs": exe / "logs", "failed": exe / "failed",
            "timings": exe / "timings.json", "staging": build_dir / "src" / mode, "html": html}


def rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def find_chapters(folder: Path) -> list[Path]:
    """The chapter notebooks in folder, sorted by file name (hidden files and checkpoints left out)."""
    if not folder.is_dir():
        raise BuildError(f"chapter folder {rel(folder)} does not exist")
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith((".", "_")))


def check_chapter(nb_path: Path) -> None:
    """A chapter must be a valid notebook with one `parameters` cell that sets `mode`."""
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception as e:  # noqa: BLE001 - any parse problem is the user's to fix
        raise BuildError(f"{rel(nb_path)} is not a readable notebook: {e}") from None
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise BuildError(f"{rel(nb_path)}: expected exactly one cell tagged `parameters` (found {len(tagged)}); "
                         'it must contain the line  mode = "standard"')
    if not re.search(r"^\s*mode\s*=", tagged[0].source, re.M):
        raise BuildError(f"{rel(nb_path)}: the cell tagged `parameters` must assign `mode` "
                         '(mode = "standard"); papermill overrides it with the build mode')


def report_failure(src: Path, partial: Path, paths: dict) -> str:
    """Move papermill's notebook of a failed run to failed/; name the chapter, the failing cell, papermill's error."""
    import nbformat

    log, lines = paths["logs"] / f"{src.stem}.log", [f"[book] FAILED {src.stem}"]
    if partial.is_file():
        kept = paths["failed"] / src.name
        os.replace(partial, kept)
        cell = next((c for c in nbformat.read(kept, as_version=4).cells
                     if any(o.output_type == "error" for o in c.get("outputs", []))), None)
        ids = [c.get("id") for c in nbformat.read(src, as_version=4).cells]
        if cell is not None and cell.get("id") in ids:
            lines.append(f"  cell {ids.index(cell.id) + 1} of {len(ids)} of the chapter notebook "
                         f"(In [{cell.execution_count}] of the failed run) raised:")
        lines.append(f"  the failed run, with its outputs: {rel(kept)}")
    text = ANSI.sub("", log.read_text(errors="replace")) if log.is_file() else ""
    tail = text.split("PapermillExecutionError:")[-1].strip().splitlines()[-20:]  # papermill's own message
    return "\n".join(lines + [f"    {t}" for t in tail] + [f"  papermill's log: {rel(log)}"])


def write_timings(paths: dict, names: list[str], mode: str) -> dict:
    """timings.json: each executed chapter's metadata.papermill.duration, and their total."""
    times = {}
    for name in names:
        try:
            meta = json.loads((paths["exec_chapters"] / f"{name}.ipynb").read_text())["metadata"]["papermill"]
            times[name] = round(float(meta["duration"]), 2)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    data = {"mode": mode, "chapters": times, "total": round(sum(times.values()), 2)}
    tmp = paths["timings"].with_name(".timings.json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, paths["timings"])
    return data


def tidy(paths: dict, names: list[str]) -> None:
    """Remove executed copies of chapters that are gone, and the notebooks of runs that were killed."""
    for p in sorted(paths["exec_chapters"].glob("*.ipynb")):
        if p.stem not in names:
            print(f"[book] removing the executed copy of a chapter that is gone: {p.stem}", flush=True)
            p.unlink()
    for p in paths["exec_chapters"].glob(".*.ipynb"):
        p.unlink()


# --------------------------------------------------------------------------- table of contents

def _toc_files(entries) -> list[str]:
    out = []
    for e in entries or []:
        if isinstance(e, dict):
            out += [str(e["file"])] if "file" in e else []
            for k in ("sections", "chapters", "parts"):
                out += _toc_files(e.get(k))
    return out


def toc_listed(toc: dict) -> list[str]:
    """Every file the toc names, root included (without suffixes)."""
    return [str(toc.get("root"))] + _toc_files(toc.get("chapters")) + _toc_files(toc.get("parts"))


def _strip_suffix(name: str) -> str:
    for suf in (".ipynb", ".md"):
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


# --------------------------------------------------------------------------- staging and HTML

def stage(paths: dict, chapters: list[Path], mode: str, toc_path: Path = ROOT / "_toc.yml") -> None:
    """Assemble the book's sources in the staging folder: book/, the executed chapters, the toc, the assets."""
    import book_pages
    import yaml

    staging = paths["staging"]
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "chapters").mkdir(parents=True)
    shutil.copy2(ROOT / "_config.yml", staging / "_config.yml")
    ignore = shutil.ignore_patterns(".*", "__pycache__")
    shutil.copytree(ROOT / "book", staging / "book", ignore=ignore)
    for nb in chapters:
        hide_parameter_cells(paths["exec_chapters"] / nb.name, staging / "chapters" / nb.name)
    shutil.copytree(vendor_assets.STATIC, staging / "_vendor", ignore=shutil.ignore_patterns("manifest.json"))
    shutil.copytree(ROOT / "scripts" / "assets", staging / "_vendor", dirs_exist_ok=True, ignore=ignore)
    # Pages computed from this build (evidence map, disagreements, course plan, reproducibility), written
    # into the staged book/_generated/ (the committed pages {include} them) before the toc is checked.
    book_pages.generate(staging, paths["exec_chapters"], paths["exec"].parent.parent, mode,
                        [nb.stem for nb in chapters])
    # Jupyter Book reports a toc entry without its file; a chapter the toc leaves out it would skip silently.
    listed = {_strip_suffix(f) for f in toc_listed(yaml.safe_load(toc_path.read_text()))}
    unlisted = [nb.stem for nb in chapters if f"chapters/{nb.stem}" not in listed]
    if unlisted:
        raise BuildError(f"{rel(toc_path)} does not list chapters/{unlisted[0]}: add `- file: chapters/{unlisted[0]}`")
    shutil.copy2(toc_path, staging / "_toc.yml")


def hide_parameter_cells(src: Path, dest: Path) -> None:
    """Copy src to dest with the parameters cell and papermill's injected one tagged 'remove-cell'."""
    nb = json.loads(src.read_text())
    for cell in nb.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
    dest.write_text(json.dumps(nb, indent=1))


def copy_widget_fonts(html: Path) -> int:
    """The embed manager asks for its icon fonts at <page dir>/<one of WIDGET_FONT_DIRS>/."""
    fonts = sorted((html / "_static" / "widgets" / "fonts").glob("*"))
    page_dirs = {p.parent for p in html.rglob("*.html")
                 if not any(part.startswith(("_", "@")) for part in p.relative_to(html).parts[:-1])}
    for d in page_dirs:
        for sub in WIDGET_FONT_DIRS:
            (d / sub).mkdir(parents=True, exist_ok=True)
            for f in fonts:
                shutil.copy2(f, d / sub / f.name)
    return len(page_dirs)


def tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def build_html(paths: dict) -> bool:
    """Build the staged book into a temporary folder; swap it in on success. False on failure."""
    import jupyter_book

    staging, html = paths["staging"], paths["html"]
    source = hashlib.sha256(f"{tree_hash(staging)} {jupyter_book.__version__}".encode()
                            + Path(__file__).read_bytes()).hexdigest()
    marker = html / ".book-source.sha256"
    if marker.is_file() and marker.read_text().strip() == source:
        print(f"[book] HTML up to date: {rel(html)}/index.html", flush=True)
        return True
    work, old = html.parent / ".html-build", html.parent / ".html-old"  # a killed build's are removed here
    for d in (work, old):
        shutil.rmtree(d, ignore_errors=True)
    work.mkdir(parents=True)
    log = paths["exec"] / "jupyter-book.log"
    print(f"[book] >> HTML: jupyter-book build (warnings are errors) -> {rel(html)}/", flush=True)
    try:
        cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
               "build", str(staging), "--path-output", str(work), "--builder", "html", "--warningiserror", "--all"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(staging),
                              env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
        log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        built = work / "_build" / "html"
        if proc.returncode != 0 or not (built / "index.html").is_file():
            text = ANSI.sub("", proc.stdout + "\n" + proc.stderr).splitlines()
            problems = [ln for ln in text if re.search(r"WARNING|ERROR|CRITICAL|SEVERE|\w+Error: ", ln)]
            print(f"[book] FAILED HTML build (exit {proc.returncode}); the previous book, if any, is left as it was\n"
                  "    (a warning's notebook line NNNNN is cell NNNNN // 10000 of the executed notebook, from 1)\n    "
                  + "\n    ".join((problems or text)[-25:]) + f"\n  full log: {rel(log)}", file=sys.stderr)
            return False
        n_dirs = copy_widget_fonts(built)
        (built / marker.name).write_text(source + "\n")
        if html.exists():
            os.replace(html, old)
        os.replace(built, html)
        print(f"[book] ok HTML: built, widget fonts copied to {n_dirs} page folders; open {rel(html)}/index.html",
              flush=True)
        return True
    finally:
        for d in (work, old):
            shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------- for scripts/pdf.py

def hold_lock(path: Path):
    """The lock `make book` takes (flock(1)) on a mode's executed folder, taken with filelock (the same flock(2));
    waits for a running build to finish."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    lock.acquire()
    return lock


def stale_chapters(build_dir: Path, mode: str) -> list[str]:
    """The chapters `make book MODE=mode` would execute again (its dry run)."""
    out = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), "chapters", f"MODE={mode}",
                          f"BUILD={build_dir}"], capture_output=True, text=True).stdout
    return re.findall(r"\[book\] >> ([^:]+): executing", out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=MODES, default="standard", help="the build's mode (default: standard)")
    ap.add_argument("--chapters", type=Path, default=ROOT / "chapters", help="the chapter notebooks' folder")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "_build", help="output root (default: _build/)")
    step = ap.add_subparsers(dest="step", required=True)
    step.add_parser("check").add_argument("notebook", type=Path)
    failed = step.add_parser("failed")
    failed.add_argument("notebook", type=Path)
    failed.add_argument("partial", type=Path)
    step.add_parser("environment")
    step.add_parser("html").add_argument("--toc", type=Path, default=ROOT / "_toc.yml")
    args = ap.parse_args(argv)
    paths = layout(args.build_dir.resolve(), args.mode)
    try:
        if args.step == "check":
            check_chapter(args.notebook)
        elif args.step == "failed":
            print(report_failure(args.notebook, args.partial, paths), file=sys.stderr)
            return 1
        elif args.step == "environment":
            import book_pages

            book_pages.record_environment(paths["exec"])
        else:
            problem = vendor_assets.check()
            if problem:
                raise BuildError(f"the vendored browser assets are not ready ({problem}): run `make vendor`")
            chapters = find_chapters(args.chapters.resolve())
            tidy(paths, [nb.stem for nb in chapters])
            timings = write_timings(paths, [nb.stem for nb in chapters], args.mode)
            print(f"[book] mode={args.mode}: {len(chapters)} chapter(s) executed, {timings['total']:.1f} s of kernel "
                  f"time in all (recorded in {rel(paths['timings'])})", flush=True)
            stage(paths, chapters, args.mode, args.toc.resolve())
            return 0 if build_html(paths) else 1
        return 0
    except BuildError as e:
        print(f"[book] error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

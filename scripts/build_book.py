#!/usr/bin/env python3
"""Execute the chapter notebooks with papermill, then build the HTML book with Jupyter Book 1.x.

    .venv/bin/python scripts/build_book.py --mode standard      # what `make book` runs
    .venv/bin/python scripts/build_book.py --mode quick         # what `make test` runs first

Every chapter notebook chapters/NN-slug.ipynb (sorted by file name) is executed headlessly with
papermill, with one parameter, `mode` ('quick' | 'standard' | 'full'), injected after the chapter's
cell tagged `parameters`. Then the book's sources are assembled in a staging folder and Jupyter
Book builds the HTML with warnings as errors. While staging, scripts/book_pages.py writes the pages
computed from this build (evidence map, disagreements, course-plan timings, reproducibility) into
the staged book/_generated/, which the committed book/*.md pages {include}.

Layout (under --build-dir, default _build/):

    mode       executed chapters                  staged sources     HTML book
    quick      _build/executed/quick/chapters/    _build/src/quick/     _build/quick/html/
    standard   _build/executed/standard/chapters/ _build/src/standard/  _build/html/
    full       _build/executed/full/chapters/     _build/src/full/      _build/full/html/

    _build/executed/<mode>/chapters/NN-slug.ipynb         the executed copy (outputs, widget state)
    _build/executed/<mode>/chapters/NN-slug.stamp.json    what it was executed from, and how long it took
    _build/executed/<mode>/timings.json                   {"mode", "chapters": {NN-slug: seconds}, "total"}
    _build/executed/<mode>/environment.json               packages, hardware, commit (when chapters last executed)
    _build/executed/<mode>/logs/NN-slug.log                the kernel run's log
    _build/executed/<mode>/failed/NN-slug.ipynb            a failed run, with the error, for inspection

Incremental: a chapter is executed again only when its notebook, the mode or the memlib code
(every memlib/*.py) changed since its executed copy was made (--force: all of them). The HTML is
rebuilt only when the staged sources changed (--force: always).

Atomic: a chapter executes into a temporary file that is renamed into place only on success; the
HTML is built into a temporary folder that replaces the old book only on success. A failing
chapter stops the build (exit status 1) with the chapter's name, the failing cell and the error;
chapters already running finish (and are kept), no new ones start (--keep-going: all run).

Parallel: --jobs chapters at a time (default 2). Each chapter's kernel gets --threads CPU threads
(OMP/MKL/OpenBLAS; default: the cores available divided by --jobs), so parallel chapters do not
oversubscribe the CPU. Run nbval with the same OMP_NUM_THREADS to reproduce the same numbers.
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
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import book_pages  # noqa: E402
import vendor_assets  # noqa: E402

MODES = ("quick", "standard", "full")
EXEC_FORMAT = 1  # bump to re-execute every chapter after a change in how chapters are executed
KERNEL = "python3"
RUN_LOG_ENV = "MEMLIB_RUN_LOG"  # = memlib.cache.RUN_LOG_ENV: where a chapter's kernel logs what it trained (bench/book.py)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS")
# Page directories get the widget icon fonts the embed manager requests relative to each page: the
# URL depends on which AMD module's CSS asks (@jupyter-widgets/controls -> "@jupyter-widgets/",
# @jupyter-widgets/html-manager/dist/libembed-amd -> "@jupyter-widgets/html-manager/dist/").
WIDGET_FONT_DIRS = ("@jupyter-widgets", "@jupyter-widgets/html-manager/dist")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CDN_TAG = re.compile(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*[\"']((?:https?:)?//[^\"']+)", re.I)

_print_lock = threading.Lock()


def say(msg: str = "", err: bool = False) -> None:
    with _print_lock:
        print(msg, file=sys.stderr if err else sys.stdout, flush=True)


class BuildError(Exception):
    """A problem that stops the build; its message is what the user sees."""


# --------------------------------------------------------------------------- paths and hashing

def layout(build_dir: Path, mode: str) -> dict[str, Path]:
    """Every path the build uses for one mode (see the module docstring)."""
    exe = build_dir / "executed" / mode
    html = build_dir / "html" if mode == "standard" else build_dir / mode / "html"
    return {
        "exec": exe,
        "exec_chapters": exe / "chapters",
        "logs": exe / "logs",
        "failed": exe / "failed",
        "timings": exe / "timings.json",
        "staging": build_dir / "src" / mode,
        "html": html,
    }


def sha256_bytes(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()


def memlib_hash(root: Path = ROOT) -> str:
    """One hash over every memlib/*.py (names and contents), the library code chapters run."""
    files = sorted((root / "memlib").glob("*.py"))
    return sha256_bytes(*[f.name.encode() + b"\0" + f.read_bytes() for f in files])


def chapter_key(notebook: Path, mode: str, memlib: str) -> str:
    """What an executed copy depends on: the notebook's bytes, the mode and the memlib code."""
    return sha256_bytes(notebook.read_bytes(), mode.encode(), memlib.encode(), f"exec{EXEC_FORMAT}".encode())


def tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------- chapters

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


def sync_assets(src: Path, dest: Path) -> None:
    """Mirror the chapter folder's non-notebook files (figures, data) into the executed folder."""
    dest.mkdir(parents=True, exist_ok=True)
    skip = lambda name: name.startswith(".") or name in ("__pycache__",)  # noqa: E731
    wanted = {p.name for p in src.iterdir() if not skip(p.name) and p.suffix != ".ipynb"}
    for p in dest.iterdir():
        if p.suffix == ".ipynb" or p.name.endswith(".stamp.json") or p.name.startswith("."):
            continue
        if p.name not in wanted:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for name in sorted(wanted):
        s, d = src / name, dest / name
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        else:
            shutil.copy2(s, d)


def read_stamp(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def execute_one(src: Path, out: Path, mode: str, cwd: Path, result_path: Path, cell_timeout: float | None) -> int:
    """Child process: papermill-execute src into out; write what happened to result_path (JSON)."""
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    t0 = time.perf_counter()
    result: dict = {"ok": False}
    try:
        pm.execute_notebook(
            str(src), str(out), parameters={"mode": mode}, kernel_name=KERNEL, cwd=str(cwd),
            progress_bar=False, log_output=True, execution_timeout=cell_timeout,
            request_save_on_cell_execute=True,
        )
        result["ok"] = True
    except PapermillExecutionError as e:
        result.update(kind="cell", ename=e.ename, evalue=ANSI.sub("", str(e.evalue)),
                      out_index=e.cell_index, exec_count=e.exec_count,
                      traceback=[ANSI.sub("", t) for t in (e.traceback or [])])
        try:  # map the failing cell back to the source notebook (papermill inserted a cell)
            executed = nbformat.read(out, as_version=4)
            # papermill adds "an exception was encountered" markdown cells to the saved notebook;
            # e.cell_index counts the cells without them.
            cells = [c for c in executed.cells
                     if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
            cell = cells[e.cell_index]
            source = nbformat.read(src, as_version=4)
            idx = next((i for i, c in enumerate(source.cells) if c.get("id") and c.get("id") == cell.get("id")), None)
            result.update(source_index=idx, n_cells=len(source.cells), cell_source=cell.source)
        except Exception:  # noqa: BLE001 - best effort
            pass
    except Exception as e:  # noqa: BLE001 - kernel died, timeout, bad notebook, ...
        import traceback

        result.update(kind="other", ename=type(e).__name__, evalue=ANSI.sub("", str(e)),
                      traceback=traceback.format_exc().splitlines())
    result["seconds"] = time.perf_counter() - t0
    result_path.write_text(json.dumps(result))
    return 0 if result["ok"] else 1


def describe_failure(name: str, res: dict, failed_copy: Path | None, log: Path) -> str:
    lines = [f"[book] FAILED {name} after {res.get('seconds', 0):.1f} s"]
    if res.get("kind") == "cell":
        idx = res.get("source_index")
        where = (f"cell {idx + 1} of {res.get('n_cells')} of the chapter notebook" if idx is not None
                 else f"cell {res.get('out_index', 0) + 1} of the executed notebook")
        count = res.get("exec_count")
        lines.append(f"  {where}{f' (In [{count}])' if count else ''} raised {res.get('ename')}: {res.get('evalue')}")
        src = (res.get("cell_source") or "").splitlines()
        if src:
            lines.append("  cell source:")
            lines += [f"    | {s}" for s in src[:12]] + (["    | ..."] if len(src) > 12 else [])
    else:
        lines.append(f"  {res.get('ename', 'error')}: {res.get('evalue', '(no message)')}")
    tb = [line for t in res.get("traceback", []) for line in t.splitlines()]
    if tb:
        lines.append("  traceback (last lines):")
        lines += [f"    {t}" for t in tb[-15:]]
    if failed_copy is not None:
        lines.append(f"  the failed run, with its outputs: {rel(failed_copy)}")
    lines.append(f"  log: {rel(log)}")
    return "\n".join(lines)


def execute_chapters(todo: list[Path], paths: dict, mode: str, memlib: str, jobs: int, threads: int,
                     cell_timeout: float | None, keep_going: bool) -> list[str]:
    """Execute the chapters in todo (at most `jobs` at a time); return the names of the failed ones."""
    for k in ("exec_chapters", "logs", "failed"):
        paths[k].mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **{v: str(threads) for v in THREAD_VARS}, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    env.pop("MPLBACKEND", None)  # the kernel's inline backend draws the figures
    failed: list[str] = []
    stop = threading.Event()
    running: dict[str, subprocess.Popen] = {}

    def one(nb: Path) -> None:
        name = nb.stem
        if stop.is_set():
            say(f"[book] -- {name}: not started (an earlier chapter failed)")
            return
        key = chapter_key(nb, mode, memlib)
        final = paths["exec_chapters"] / nb.name
        stamp = paths["exec_chapters"] / f"{name}.stamp.json"
        log = paths["logs"] / f"{name}.log"
        runlog = paths["logs"] / f"{name}.runs.jsonl"  # memlib appends one line per run trained or probed
        runlog.unlink(missing_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=paths["exec"]))
        tmp_nb = tmpdir / nb.name  # same folder tree as the final copy: os.replace is atomic
        result_path = tmpdir / "result.json"
        say(f"[book] >> {name}: executing (mode={mode}, {threads} thread{'s' if threads > 1 else ''})")
        t0 = time.perf_counter()
        try:
            with open(log, "w") as logf:
                proc = subprocess.Popen(
                    [sys.executable, str(Path(__file__).resolve()), "--_execute-one", str(nb), str(tmp_nb),
                     "--mode", mode, "--_cwd", str(paths["exec_chapters"]), "--_result", str(result_path),
                     *(["--cell-timeout", str(cell_timeout)] if cell_timeout else [])],
                    stdout=logf, stderr=subprocess.STDOUT, env={**env, RUN_LOG_ENV: str(runlog)},
                    cwd=str(paths["exec_chapters"]))
                running[name] = proc
                proc.wait()
                running.pop(name, None)
            seconds = time.perf_counter() - t0
            res = read_stamp(result_path) or {"ok": False, "kind": "other", "ename": "ChildProcessError",
                                                "evalue": f"the executor exited with status {proc.returncode}"}
            if res.get("ok") and proc.returncode == 0 and tmp_nb.is_file():
                os.replace(tmp_nb, final)
                atomic_write_text(stamp, json.dumps({
                    "key": key, "mode": mode, "source": rel(nb), "memlib": memlib, "seconds": round(seconds, 2),
                    "threads": threads, "executed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }, indent=1) + "\n")
                say(f"[book] ok {name}: done in {seconds:.1f} s")
                return
            # Failure: keep the failed run aside for inspection; drop the outdated executed copy.
            failed.append(name)
            if not keep_going:
                stop.set()
            failed_copy = None
            if tmp_nb.is_file():
                failed_copy = paths["failed"] / nb.name
                os.replace(tmp_nb, failed_copy)
            for p in (final, stamp):
                p.unlink(missing_ok=True)
            res.setdefault("seconds", seconds)
            say(describe_failure(name, res, failed_copy, log), err=True)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    # Longest first (by the last build's times): the slowest chapter does not start last and run alone.
    def last_seconds(nb: Path) -> float:
        return read_stamp(paths["exec_chapters"] / f"{nb.stem}.stamp.json").get("seconds", 0.0)

    todo = sorted(todo, key=last_seconds, reverse=True)
    pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(todo))))
    try:
        futures = [pool.submit(one, nb) for nb in todo]
        for f in futures:
            f.result()
    except KeyboardInterrupt:
        stop.set()
        for proc in list(running.values()):
            proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return failed


def write_timings(chapters: list[Path], paths: dict, mode: str) -> dict:
    times = {}
    for nb in chapters:
        st = read_stamp(paths["exec_chapters"] / f"{nb.stem}.stamp.json")
        if "seconds" in st:
            times[nb.stem] = st["seconds"]
    data = {"mode": mode, "chapters": times, "total": round(sum(times.values()), 2)}
    atomic_write_text(paths["timings"], json.dumps(data, indent=1) + "\n")
    return data


# --------------------------------------------------------------------------- table of contents

def _toc_files(entries) -> list[str]:
    out = []
    for e in entries or []:
        if isinstance(e, dict):
            if "file" in e:
                out.append(str(e["file"]))
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


def staged_toc(toc: dict, present: list[str]) -> tuple[dict, list[str]]:
    """The committed toc, with chapter entries whose notebook is absent left out and chapter
    notebooks it does not list appended after its last chapter entry. Returns (toc, notes)."""
    import copy

    toc = copy.deepcopy(toc)
    notes, dropped = [], []
    present_set = set(present)

    def prune(entries):
        kept = []
        for e in entries or []:
            f = _strip_suffix(str(e.get("file", ""))) if isinstance(e, dict) else ""
            if f.startswith("chapters/") and f not in present_set:
                dropped.append(f)
                continue
            if isinstance(e, dict):
                for k in ("sections", "chapters"):
                    if k in e:
                        e[k] = prune(e[k])
                        if not e[k]:
                            del e[k]
            kept.append(e)
        return kept

    # Find the list the chapters live in: the top-level `chapters`, else the last part's.
    if "parts" in toc:
        for part in toc["parts"]:
            part["chapters"] = prune(part.get("chapters"))
        toc["parts"] = [p for p in toc["parts"] if p.get("chapters")]
        target = toc["parts"][-1]["chapters"] if toc["parts"] else None
        if target is None:
            toc.pop("parts")
            toc["chapters"] = target = []
    else:
        toc["chapters"] = target = prune(toc.get("chapters"))

    if dropped:
        notes.append("listed in _toc.yml but not present, left out of this build: " + ", ".join(dropped))
    listed = {_strip_suffix(f) for f in toc_listed(toc)}
    missing = [c for c in present if c not in listed]
    if missing:
        notes.append("not listed in _toc.yml, appended after the last chapter: " + ", ".join(missing))
        last = max((i for i, e in enumerate(target)
                    if isinstance(e, dict) and str(e.get("file", "")).startswith("chapters/")), default=-1)
        target[last + 1:last + 1] = [{"file": c} for c in missing]
    if "chapters" in toc and not toc["chapters"]:
        del toc["chapters"]
    return toc, notes


# --------------------------------------------------------------------------- staging and HTML

def stage(paths: dict, chapters: list[Path], mode: str) -> list[str]:
    """Assemble the book's sources in the staging folder; returns notes about the toc."""
    import yaml

    staging = paths["staging"]
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    shutil.copy2(ROOT / "_config.yml", staging / "_config.yml")
    ignore = shutil.ignore_patterns(".*", "__pycache__", "*.stamp.json")
    shutil.copytree(ROOT / "book", staging / "book", ignore=ignore)
    shutil.copytree(paths["exec_chapters"], staging / "chapters", ignore=ignore)
    for nb in (staging / "chapters").glob("*.ipynb"):
        hide_parameter_cells(nb)
    shutil.copytree(vendor_assets.STATIC, staging / "_vendor", ignore=shutil.ignore_patterns("manifest.json"))
    shutil.copytree(ROOT / "scripts" / "assets", staging / "_vendor", dirs_exist_ok=True, ignore=ignore)
    # Pages computed from this build (evidence map, disagreements, course plan, reproducibility), written
    # into the staged book/_generated/ (the committed pages {include} them) before the toc is checked.
    book_pages.generate(staging, paths["exec_chapters"], paths["exec"].parent.parent, mode,
                        [nb.stem for nb in chapters])

    toc_path = ROOT / "_toc.yml"
    try:
        toc = yaml.safe_load(toc_path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise BuildError(f"{rel(toc_path)} is not readable YAML: {e}") from None
    if not isinstance(toc, dict) or toc.get("format") != "jb-book" or not toc.get("root"):
        raise BuildError(f"{rel(toc_path)} must be a Jupyter Book toc with `format: jb-book` and a `root`")
    toc, notes = staged_toc(toc, [f"chapters/{nb.stem}" for nb in chapters])
    for f in toc_listed(toc):
        f = _strip_suffix(f)
        if not f.startswith("chapters/") and not any((staging / f"{f}{s}").is_file() for s in (".md", ".ipynb")):
            raise BuildError(f"_toc.yml lists {f}, but neither {f}.md nor {f}.ipynb exists")
    (staging / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    return notes


def hide_parameter_cells(path: Path) -> None:
    """Tag the parameters cell and papermill's injected one 'remove-cell' in a staged copy: the page starts with the title."""
    nb = json.loads(path.read_text())
    for cell in nb.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
    path.write_text(json.dumps(nb, indent=1))


def copy_widget_fonts(html: Path) -> int:
    """The embed manager asks for its icon fonts at <page dir>/<one of WIDGET_FONT_DIRS>/."""
    fonts = sorted((html / "_static" / "widgets" / "fonts").glob("*"))
    page_dirs = {p.parent for p in html.rglob("*.html")
                 if not any(part.startswith("_") or part.startswith("@") for part in p.relative_to(html).parts[:-1])}
    for d in page_dirs:
        for sub in WIDGET_FONT_DIRS:
            dest = d / sub
            dest.mkdir(parents=True, exist_ok=True)
            for f in fonts:
                shutil.copy2(f, dest / f.name)
    return len(page_dirs)


def remote_refs(html: Path) -> list[str]:
    """script/link/img/iframe tags in the built pages that point at another host."""
    found = []
    for page in sorted(html.rglob("*.html")):
        if any(part.startswith("_") for part in page.relative_to(html).parts[:-1]):
            continue
        for m in CDN_TAG.finditer(page.read_text(errors="replace")):
            if re.search(r"\brel=[\"']?(canonical|alternate)\b", m.group(0), re.I):
                continue  # not loaded by the browser
            found.append(f"{page.relative_to(html)}: <{m.group(1)} {m.group(2)}=\"{m.group(3)}\">")
    return found


def build_html(paths: dict, force: bool) -> bool:
    """Build the staged book into a temporary folder; swap it in on success. False on failure."""
    staging, html = paths["staging"], paths["html"]
    import jupyter_book

    source_hash = sha256_bytes(tree_hash(staging).encode(), jupyter_book.__version__.encode(),
                               Path(__file__).read_bytes())
    marker = html / ".book-source.sha256"
    if not force and html.is_dir() and marker.is_file() and marker.read_text().strip() == source_hash:
        say(f"[book] HTML up to date: {rel(html)}/index.html")
        return True
    html.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".html-build-", dir=html.parent))
    log = paths["exec"] / "jupyter-book.log"
    say(f"[book] >> HTML: jupyter-book build (warnings are errors) -> {rel(html)}/")
    t0 = time.perf_counter()
    try:
        cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())", "build", str(staging), "--path-output", str(work),
               "--builder", "html", "--warningiserror", "--all"]
        env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(staging))
        paths["exec"].mkdir(parents=True, exist_ok=True)
        log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        built = work / "_build" / "html"
        if proc.returncode != 0 or not (built / "index.html").is_file():
            text = ANSI.sub("", proc.stdout + "\n" + proc.stderr)
            problems = [m.group(0).strip() for m in re.finditer(
                r"^.*(?:SphinxWarning: |: (?:WARNING|ERROR|CRITICAL|SEVERE): |^\w+Error: (?!\s*$)).*$", text, re.M)]
            say(f"[book] FAILED HTML build (exit {proc.returncode}); the previous book, if any, is left as it was",
                err=True)
            for ln in (problems or text.splitlines())[-25:]:
                say(f"    {ln}", err=True)
                m = re.search(r"\.ipynb:(\d{5,})\b", ln)
                if m:  # myst-nb reports a notebook location as (cell index + 1) * 10000 + line
                    say(f"      (that is cell {int(m.group(1)) // 10000} of the executed notebook, counting from 1; "
                        "it has papermill's injected-parameters cell after the parameters cell)", err=True)
            say(f"  full log: {rel(log)}", err=True)
            return False
        n_dirs = copy_widget_fonts(built)
        remote = remote_refs(built)
        if remote:
            say("[book] FAILED: the built pages load files from the network (must work offline):", err=True)
            for r in remote[:20]:
                say(f"    {r}", err=True)
            return False
        marker_new = built / ".book-source.sha256"
        marker_new.write_text(source_hash + "\n")
        old = html.parent / f".html-old-{os.getpid()}"
        if html.exists():
            os.replace(html, old)
        os.replace(built, html)
        shutil.rmtree(old, ignore_errors=True)
        n_pages = sum(1 for p in html.rglob("*.html")
                      if not any(part.startswith(("_", "@")) for part in p.relative_to(html).parts[:-1]))
        say(f"[book] ok HTML: {n_pages} pages built in {time.perf_counter() - t0:.1f} s "
            f"(widget fonts copied to {n_dirs} page folders)")
        return True
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- main

def hold_lock(path: Path):
    """One build per mode at a time: wait for another one (e.g. `make test` run twice) to finish."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"[book] another build is using {rel(path.parent)}/: waiting for it to finish")
        fcntl.flock(f, fcntl.LOCK_EX)
    return f


def default_threads(jobs: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, jobs))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=MODES, default="standard",
                    help="scale of every chapter's experiments (default: standard)")
    ap.add_argument("--jobs", type=int, default=2, help="chapters executed at the same time (default: 2)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads per chapter kernel (default: available cores // jobs, at least 1)")
    ap.add_argument("--chapters", type=Path, default=ROOT / "chapters",
                    help="folder with the chapter notebooks (default: chapters/)")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "_build", help="output root (default: _build/)")
    ap.add_argument("--force", action="store_true", help="execute every chapter and rebuild the HTML")
    ap.add_argument("--keep-going", action="store_true",
                    help="after a chapter fails, still execute the others (the build fails all the same)")
    ap.add_argument("--cell-timeout", type=float, default=None, help="seconds a cell may run (default: no limit)")
    ap.add_argument("--no-html", action="store_true", help="only execute the chapters")
    ap.add_argument("--dry-run", action="store_true", help="say which chapters would be executed, then stop")
    # internal: one chapter in a child process
    ap.add_argument("--_execute-one", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--_cwd", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._execute_one:
        src, out = map(Path, args._execute_one)
        return execute_one(src, out, args.mode, args._cwd, args._result, args.cell_timeout)

    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    threads = args.threads or default_threads(args.jobs)
    t_start = time.perf_counter()
    try:
        problem = vendor_assets.check()
        if problem:
            raise BuildError(f"the vendored browser assets are not ready ({problem}): run `make vendor` "
                             "(or .venv/bin/python scripts/vendor_assets.py)")
        paths = layout(args.build_dir.resolve(), args.mode)
        lock = hold_lock(paths["exec"] / ".lock")  # noqa: F841 - released when the process ends
        chapters = find_chapters(args.chapters.resolve())
        for nb in chapters:
            check_chapter(nb)
        names = [nb.stem for nb in chapters]

        memlib = memlib_hash()
        paths["exec_chapters"].mkdir(parents=True, exist_ok=True)
        # Executed copies of chapters that no longer exist would end up in the book: remove them.
        for p in sorted(paths["exec_chapters"].glob("*.ipynb")):
            if p.stem not in names:
                say(f"[book] removing the executed copy of a chapter that is gone: {p.stem}")
                p.unlink()
                (paths["exec_chapters"] / f"{p.stem}.stamp.json").unlink(missing_ok=True)
        sync_assets(args.chapters.resolve(), paths["exec_chapters"])

        todo, fresh = [], []
        for nb in chapters:
            st = read_stamp(paths["exec_chapters"] / f"{nb.stem}.stamp.json")
            up_to_date = (not args.force and (paths["exec_chapters"] / nb.name).is_file()
                          and st.get("key") == chapter_key(nb, args.mode, memlib))
            (fresh if up_to_date else todo).append(nb)
        say(f"[book] mode={args.mode}: {len(chapters)} chapter(s) in {rel(args.chapters)}/; "
            f"{len(todo)} to execute, {len(fresh)} up to date; jobs={args.jobs}, threads per kernel={threads}")
        for nb in fresh:
            say(f"[book] -- {nb.stem}: up to date")
        if args.dry_run:
            for nb in todo:
                say(f"[book] would execute {nb.stem}")
            return 0

        failed = execute_chapters(todo, paths, args.mode, memlib, args.jobs, threads, args.cell_timeout,
                                  args.keep_going) if todo else []
        timings = write_timings(chapters, paths, args.mode)
        if todo or not (paths["exec"] / book_pages.ENV_FILE).is_file():
            # what the chapters ran with (packages, hardware, commit), for the reproducibility page
            book_pages.record_environment(paths["exec"])
        if failed:
            not_run = [nb.stem for nb in todo if nb.stem not in failed
                       and not (paths["exec_chapters"] / nb.name).is_file()]
            say(f"[book] FAILED: {len(failed)} chapter(s) failed: {', '.join(failed)}"
                + (f"; not executed: {', '.join(not_run)}" if not_run else "")
                + ". No HTML was built; the previous book, if any, is unchanged.", err=True)
            return 1
        if not args.no_html:
            for note in stage(paths, chapters, args.mode):
                say(f"[book] note: {note}")
            if not build_html(paths, args.force):
                return 1
        say(f"[book] done in {time.perf_counter() - t_start:.1f} s (chapters: {timings['total']:.1f} s of "
            f"kernel time, recorded in {rel(paths['timings'])})"
            + ("" if args.no_html else f"; open {rel(paths['html'])}/index.html"))
        return 0
    except BuildError as e:
        say(f"[book] error: {e}", err=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())

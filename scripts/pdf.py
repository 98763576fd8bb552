#!/usr/bin/env python3
"""One PDF of the whole book, offline: `make pdf` (standard mode) or `make pdf MODE=quick`.

    python scripts/pdf.py [--mode quick|standard|full] [--out FILE]

It prints the chapters as they were executed by the last `make book` of that mode (`make pdf` runs
`make book` first, which does nothing when the book is up to date):

1. stages the book's sources like scripts/build_book.py does (its own `stage()`, into
   _build/pdf/<mode>/src/), from the executed copies in _build/executed/<mode>/chapters/;
2. builds them with Jupyter Book's `singlehtml` builder (warnings are errors): one page, every
   chapter in the toc's order;
3. finishes that page for printing: Sphinx's singlehtml puts it at book/intro.html (the root page's
   path) with links relative to the site root, so it is written to the root as print.html, and the
   chapters' widget state (which myst-nb adds only to each chapter's own page) is merged into it with
   the vendored widget scripts, so that the static explorers print their figures;
4. prints it with headless Chromium (`--print-to-pdf`, inside `unshare -n` when that works: no network),
   to a temporary file that is renamed into place.

Output: _build/book.pdf (standard), _build/quick/book.pdf, _build/full/book.pdf. The solutions, in
collapsed boxes on the web pages, are printed open.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import build_book as bbk  # noqa: E402

from memlib.files import atomic_path  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-dev-shm-usage", "--run-all-compositor-stages-before-draw",
                 "--no-pdf-header-footer"]
STATE_MIME = "application/vnd.jupyter.widget-state+json"
# Printed pages: no navigation, no buttons, no scrolling code boxes that cut lines off.
PRINT_CSS = """<style media="print">
  .bd-header-article, .bd-sidebar-primary, .bd-sidebar-secondary, .header-article-items, .prev-next-area,
  .bd-footer-article, .toggle-secondary-sidebar, .headerlink, .copybtn, .search-button-field, .bd-header,
  .skip-link, .theme-switch-button { display: none !important; }
  div.cell_input pre, div.highlight pre { white-space: pre-wrap !important; word-break: break-word; }
  figure, img, .cell_output { break-inside: avoid; }
  h1, h2, h3 { break-after: avoid; }
  .bd-container, .bd-container__inner, .bd-page-width, .bd-main, .bd-content, .bd-article-container,
  .bd-article { display: block !important; }  /* page breaks are ignored inside the theme's flex boxes */
  html body .bd-main .bd-footer-content { display: block !important; }  /* the license line (theme hides it) */
  span[id^="document-"] + section { break-before: page; }  /* each chapter and page starts a new sheet */
</style>
"""


class PdfError(RuntimeError):
    """A problem that stops the PDF; its message is what the user sees."""


def default_out(build_dir: Path, mode: str) -> Path:
    """Beside the mode's HTML: _build/book.pdf, _build/quick/book.pdf, _build/full/book.pdf."""
    return bbk.layout(build_dir, mode)["html"].parent / "book.pdf"


def executed_chapters(paths: dict, mode: str) -> list[Path]:
    try:
        chapters = bbk.find_chapters(paths["exec_chapters"])
    except bbk.BuildError:
        chapters = []
    if not chapters:
        raise PdfError(f"no executed chapters in {bbk.rel(paths['exec_chapters'])}/: build the book first "
                       f"(make book MODE={mode})")
    executed = {nb.stem for nb in chapters}
    stale = [c for c in bbk.stale_chapters(paths["exec"].parent.parent, mode) if c in executed]
    if stale:
        print(f"[pdf] warning: executed before the latest change to their notebook or memlib: {', '.join(stale)} "
              f"(make book MODE={mode} executes them again)", file=sys.stderr)
    return chapters


def merged_widget_state(chapters_dir: Path) -> dict | None:
    """One widget state holding every model of every staged chapter (model ids are unique), or None."""
    models, meta = {}, None
    for nb_path in sorted(chapters_dir.glob("*.ipynb")):
        state = json.loads(nb_path.read_text()).get("metadata", {}).get("widgets", {}).get(STATE_MIME)
        if isinstance(state, dict) and state.get("state"):
            models.update(state["state"])
            meta = meta or {k: v for k, v in state.items() if k != "state"}
    if not models:
        return None
    return {**(meta or {"version_major": 2, "version_minor": 0}), "state": models}


def widget_scripts(config: dict) -> str:
    """The <script> tags of _config.yml's nb_ipywidgets_js, in order, relative to the site root."""
    tags = []
    for name, attrs in (config["sphinx"]["config"].get("nb_ipywidgets_js") or {}).items():
        extra = "".join(f' {k}="{v}"' for k, v in (attrs or {}).items())
        tags.append(f'<script src="_static/{name}"{extra}></script>')
    return "\n".join(tags)


def print_page(singlehtml: Path, staging: Path, config: dict) -> Path:
    """singlehtml's page rewritten at the site root as print.html, with widget state, widget scripts and print CSS."""
    root_doc = singlehtml / "book" / "intro.html"
    if not root_doc.is_file():
        candidates = [p for p in singlehtml.rglob("*.html") if "http-equiv" not in p.read_text(errors="replace")[:300]]
        if not candidates:
            raise PdfError(f"the singlehtml build wrote no page under {bbk.rel(singlehtml)}")
        root_doc = max(candidates, key=lambda p: p.stat().st_size)
    html = root_doc.read_text()
    if re.search(r'(?:src|href)="\.\./', html):
        raise PdfError(f"{bbk.rel(root_doc)} links with ../: it cannot be moved to the site root")
    extra = [PRINT_CSS]
    state = merged_widget_state(staging / "chapters")
    if state is not None and 'type="application/vnd.jupyter.widget-view+json"' in html:
        payload = json.dumps(state).replace("</", "<\\/")
        extra.append(f'<script type="{STATE_MIME}">{payload}</script>')
        extra.append(widget_scripts(config))
    html = html.replace("</body>", "\n".join(extra) + "\n</body>", 1)
    out = singlehtml / "print.html"
    out.write_text(html)
    bbk.copy_widget_fonts(singlehtml)
    return out


def unshare_prefix() -> list[str]:
    if shutil.which("unshare") is None:
        return []
    try:
        ok = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return ["unshare", "-n", "--"] if ok else []


def print_pdf(page: Path, out: Path, chromium: Path, budget_ms: int, timeout: float) -> None:
    if not chromium.exists():
        raise PdfError(f"{chromium} is missing: install the system package `chromium` (apt-get install -y chromium)")
    profile = tempfile.mkdtemp(prefix="pdf-chromium-")
    try:
        with atomic_path(out) as tmp:  # the PDF appears whole or not at all
            cmd = [*unshare_prefix(), str(chromium), *CHROMIUM_ARGS, f"--user-data-dir={profile}",
                   f"--virtual-time-budget={budget_ms}", f"--print-to-pdf={tmp}", page.resolve().as_uri()]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            data = tmp.read_bytes()[:5] if tmp.is_file() else b""
            if proc.returncode != 0 or data != b"%PDF-":
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise PdfError(f"chromium did not print {page.name} (exit {proc.returncode}):\n{tail}")
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def build_pdf(mode: str, build_dir: Path, out: Path, chromium: Path = CHROMIUM, budget_ms: int = 30000,
              timeout: float = 600) -> Path:
    import yaml

    problem = bbk.vendor_assets.check()
    if problem:
        raise PdfError(f"the vendored browser assets are not ready ({problem}): run `make vendor`")
    paths = bbk.layout(build_dir.resolve(), mode)
    work_root = build_dir.resolve() / "pdf" / mode
    lock = bbk.hold_lock(paths["exec"] / ".lock")  # no build of this mode changes the executed copies meanwhile
    try:
        chapters = executed_chapters(paths, mode)
        staging = work_root / "src"
        staging.parent.mkdir(parents=True, exist_ok=True)
        bbk.stage({**paths, "staging": staging}, chapters, mode)
    finally:
        lock.release()
    work = Path(tempfile.mkdtemp(prefix=".singlehtml-", dir=work_root))
    try:
        cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
               "build", str(staging), "--path-output", str(work), "--builder", "singlehtml", "--warningiserror",
               "--all"]
        print(f"[pdf] singlehtml build of {len(chapters)} chapters ({mode} mode)", flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(staging),
                              env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
        (work_root / "jupyter-book.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        singlehtml = work / "_build" / "singlehtml"
        if proc.returncode != 0 or not singlehtml.is_dir():
            text = bbk.ANSI.sub("", proc.stdout + "\n" + proc.stderr)
            problems = [ln for ln in text.splitlines() if re.search(r"WARNING|ERROR|Error:", ln)]
            raise PdfError("the singlehtml build failed:\n" + "\n".join((problems or text.splitlines())[-20:])
                           + f"\n  full log: {bbk.rel(work_root / 'jupyter-book.log')}")
        config = yaml.safe_load((staging / "_config.yml").read_text())
        page = print_page(singlehtml, staging, config)
        print(f"[pdf] printing with {chromium}", flush=True)
        print_pdf(page, out, chromium, budget_ms, timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=bbk.MODES, default="standard", help="which executed book (default: standard)")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "_build", help="output root (default: _build/)")
    ap.add_argument("--out", type=Path, default=None, help="the PDF (default: beside the mode's HTML, book.pdf)")
    ap.add_argument("--chromium", type=Path, default=CHROMIUM, help=f"the browser (default: {CHROMIUM})")
    ap.add_argument("--budget-ms", type=int, default=30000,
                    help="virtual time the page gets to run its scripts (MathJax, widgets) before printing")
    args = ap.parse_args(argv)
    out = (args.out or default_out(args.build_dir, args.mode)).resolve()
    try:
        build_pdf(args.mode, args.build_dir, out, args.chromium, args.budget_ms)
    except (PdfError, bbk.BuildError, OSError, subprocess.SubprocessError) as e:
        print(f"[pdf] error: {e}", file=sys.stderr)
        return 1
    print(f"[pdf] wrote {bbk.rel(out)} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Fetch the book's browser assets once (npm registry) and lay them out as a static folder.

    python scripts/vendor_assets.py            # fetch + lay out, or do nothing when already there
    python scripts/vendor_assets.py --force    # fetch and lay out again
    python scripts/vendor_assets.py --check    # exit 1 (with the reason) unless everything is in place

The built book must work opened from disk with no network at all, so nothing may come from a CDN:

* ``@jupyter-widgets/html-manager@1.0.6`` - ``embed-amd.js`` renders the saved widget state of a
  page; its icon fonts are requested relative to each page (the book build copies them there);
* ``requirejs@2.3.4`` - ``require.js``, which ``embed-amd.js`` needs;
* ``mathjax@3.2.2`` - ``tex-chtml.js`` plus the fonts and components it loads on demand.

``npm pack`` downloads the three tarballs into ``build/vendor/npm/`` (git-ignored via ``/build/``).
They are unpacked into ``build/vendor/static/``, which ``_config.yml`` names in
``sphinx.config.html_static_path`` (copied into the staged book as ``_vendor/``; Sphinx then copies
its content into ``_static/``)::

    build/vendor/static/widgets/require.js
    build/vendor/static/widgets/embed-amd.js
    build/vendor/static/widgets/fonts/*.woff2|woff|ttf   (copied next to every page after the build)
    build/vendor/static/mathjax/tex-chtml.js, output/chtml/fonts/woff-v2/*, input/, a11y/, ui/, ...

A manifest (``build/vendor/static/manifest.json``) records what was laid out; a run that finds the
manifest and every file it lists does nothing (idempotent, no network).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "build" / "vendor"
NPM_DIR = VENDOR / "npm"
STATIC = VENDOR / "static"
MANIFEST = STATIC / "manifest.json"
LAYOUT_VERSION = 1  # bump when the layout below changes

PACKAGES = {
    # npm spec: tarball name that `npm pack` writes
    "@jupyter-widgets/html-manager@1.0.6": "jupyter-widgets-html-manager-1.0.6.tgz",
    "requirejs@2.3.4": "requirejs-2.3.4.tgz",
    "mathjax@3.2.2": "mathjax-3.2.2.tgz",
}
WIDGET_FONT_SUFFIXES = (".woff2", ".woff", ".ttf")
# MathJax: keep the one combined component we load and everything it may load on demand;
# drop the alternative combined bundles (several MB each) that the book never requests.
MATHJAX_DROP = (
    "tex-svg.js", "tex-svg-full.js", "tex-mml-svg.js", "tex-mml-chtml.js", "tex-chtml-full.js",
    "tex-chtml-full-speech.js", "mml-chtml.js", "mml-svg.js", "node-main.js",
)
# Files that must exist for the layout to count as complete (besides the manifest's own list).
REQUIRED = (
    "widgets/require.js",
    "widgets/embed-amd.js",
    "mathjax/tex-chtml.js",
    "mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
)


def log(msg: str) -> None:
    print(f"[vendor] {msg}", flush=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check() -> str | None:
    """None when the static layout is complete, else the reason it is not."""
    if not MANIFEST.is_file():
        return f"{MANIFEST.relative_to(ROOT)} is missing"
    try:
        manifest = json.loads(MANIFEST.read_text())
    except ValueError as e:
        return f"{MANIFEST.relative_to(ROOT)} is unreadable: {e}"
    if manifest.get("layout") != LAYOUT_VERSION or sorted(manifest.get("packages", {})) != sorted(PACKAGES):
        return "the manifest names other packages or another layout version"
    for rel, size in manifest.get("files", {}).items():
        p = STATIC / rel
        if not p.is_file() or p.stat().st_size != size:
            return f"{p.relative_to(ROOT)} is missing or has changed"
    for rel in REQUIRED:
        if rel not in manifest.get("files", {}):
            return f"{rel} is not in the manifest"
    return None


def fetch(force: bool) -> dict[str, Path]:
    """`npm pack` every package whose tarball is not already in build/vendor/npm/."""
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    tarballs = {spec: NPM_DIR / name for spec, name in PACKAGES.items()}
    missing = [spec for spec, p in tarballs.items() if force or not p.is_file() or p.stat().st_size == 0]
    if not missing:
        log(f"tarballs already in {NPM_DIR.relative_to(ROOT)}/")
        return tarballs
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("[vendor] error: `npm` is not installed; it is needed once to fetch "
                 + ", ".join(missing) + " (e.g. `apt-get install -y npm`)")
    with tempfile.TemporaryDirectory(dir=NPM_DIR) as tmp:
        log("npm pack " + " ".join(missing))
        t0 = time.perf_counter()
        proc = subprocess.run([npm, "pack", "--silent", "--json", *missing], cwd=tmp,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"[vendor] error: `npm pack {' '.join(missing)}` failed (exit {proc.returncode}):\n"
                     + proc.stderr.strip()[-3000:])
        for spec in missing:
            src = Path(tmp) / PACKAGES[spec]
            if not src.is_file():
                sys.exit(f"[vendor] error: npm pack did not write {PACKAGES[spec]} for {spec}")
            os.replace(src, tarballs[spec])  # the tarball appears complete or not at all
        log(f"fetched {len(missing)} package(s) in {time.perf_counter() - t0:.1f} s")
    return tarballs


def _extract(tgz: Path, dest: Path) -> Path:
    with tarfile.open(tgz) as tf:
        tf.extractall(dest, filter="data")
    return dest / "package"


def layout(tarballs: dict[str, Path]) -> None:
    """Unpack the tarballs into a fresh folder and swap it in as build/vendor/static."""
    VENDOR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".layout-", dir=VENDOR))
    try:
        out = work / "static"
        widgets = out / "widgets"
        (widgets / "fonts").mkdir(parents=True)

        hm = _extract(tarballs["@jupyter-widgets/html-manager@1.0.6"], work / "hm")
        shutil.copy2(hm / "dist" / "embed-amd.js", widgets / "embed-amd.js")
        shutil.copy2(hm / "LICENSE", widgets / "LICENSE.html-manager")
        for f in sorted((hm / "dist").iterdir()):
            if f.suffix in WIDGET_FONT_SUFFIXES:
                shutil.copy2(f, widgets / "fonts" / f.name)

        rq = _extract(tarballs["requirejs@2.3.4"], work / "rq")
        shutil.copy2(rq / "require.js", widgets / "require.js")

        mj = _extract(tarballs["mathjax@3.2.2"], work / "mj")
        shutil.copytree(mj / "es5", out / "mathjax",
                        ignore=lambda d, names: [n for n in names if Path(d) == mj / "es5" and n in MATHJAX_DROP])
        shutil.copy2(mj / "LICENSE", out / "mathjax" / "LICENSE")

        files = {p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
        manifest = {
            "layout": LAYOUT_VERSION,
            "packages": {spec: {"tarball": tarballs[spec].name, "sha256": _sha256(tarballs[spec])}
                         for spec in PACKAGES},
            "files": files,
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        old = VENDOR / ".static-old"
        if old.exists():
            shutil.rmtree(old)
        if STATIC.exists():
            os.replace(STATIC, old)
        os.replace(out, STATIC)
        shutil.rmtree(old, ignore_errors=True)
        size = sum(files.values()) / 2**20
        log(f"laid out {len(files)} files ({size:.1f} MiB) in {STATIC.relative_to(ROOT)}/")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="fetch the tarballs and lay them out again")
    ap.add_argument("--check", action="store_true", help="only check that the static folder is complete")
    args = ap.parse_args(argv)
    problem = check()
    if args.check:
        if problem:
            print(f"[vendor] not ready: {problem}; run `make vendor`", file=sys.stderr)
            return 1
        log(f"ready: {STATIC.relative_to(ROOT)}/")
        return 0
    if problem is None and not args.force:
        log(f"up to date: {STATIC.relative_to(ROOT)}/ (use --force to fetch again)")
        return 0
    t0 = time.perf_counter()
    layout(fetch(args.force))
    problem = check()
    if problem:
        print(f"[vendor] error after laying out: {problem}", file=sys.stderr)
        return 1
    log(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The student edition: every chapter notebook with its exercise solutions removed and its outputs cleared.

    python scripts/student.py                      # (make student) -> _build/student/ and _build/student.zip
    python scripts/student.py --out DIR --zip FILE

A chapter's solutions are the ```` ````{admonition} Solutions ```` block (`:class: dropdown`) at the end of
its exercises cell; the block is cut out of that cell and everything else stays: the exercises, the
explorers, the `parameters` cell (so papermill's `-p mode quick` still works) and every code cell,
with its outputs and execution counts cleared and the widget state and papermill metadata dropped.
A cell that held nothing but solutions is left out. A markdown cell that still names a Solutions
block after the cut (an unclosed fence, a form this script does not know) stops the script: a
student edition that gives the answers away is worse than none.

Nothing is half-written: the folder is assembled in a temporary sibling and renamed into place,
the zip is written to a temporary file and renamed. The zip is reproducible (sorted entries, fixed
timestamps), so the same chapters give a byte-identical file. scripts/book_pages.py packs the same
zip into the staged book, where the instructors' page offers it for download.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat

from memlib.files import atomic_path

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
OUT = ROOT / "_build" / "student"
ZIP = ROOT / "_build" / "student.zip"
ZIP_NAME = "memlib-book-student.zip"  # the name the instructors' page offers
TOP = "memlib-book-student"  # the folder inside the zip
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: the same bytes on every build

# A fenced Solutions admonition (or dropdown), from its opening fence to the closing fence of the
# same length: ```` ````{admonition} Solutions ```` ... ```` ```` ````, or ::: fences (colon_fence).
SOLUTION = re.compile(
    r"^(?P<fence>`{3,}|:{3,})[ \t]*\{(?:admonition|dropdown)\}[ \t]+Solutions?\b[^\n]*\n"
    r"(?P<body>.*?)"
    r"^(?P=fence)[ \t]*(?:\n|\Z)",
    re.M | re.S | re.I)
LEFTOVER = re.compile(r"\{(?:admonition|dropdown)\}[ \t]+Solutions?\b", re.I)

README = """# Memorization, optimization and representation failure: student edition

One notebook per chapter, with the outputs cleared and the exercise solutions removed. Run the cells
from the top. They need the `memlib` library: open them in the book's repository (copy them into its
`chapters/` folder, or anywhere after `make env`), or install it with
`pip install git+<the repository's URL>`.

Each notebook has one parameter, `mode`, in its first code cell: `quick` runs in seconds per chapter
on a laptop CPU, `standard` is the book's default scale. With papermill:

    papermill 03-depth.ipynb 03-depth-run.ipynb -p mode quick

Text and figures are CC BY 4.0; code is MIT (see the book's LICENSE).
"""


class StudentError(RuntimeError):
    """A chapter whose solutions could not be removed cleanly."""


def solution_blocks(text: str) -> list[str]:
    """The bodies of the Solutions blocks in a markdown cell's source."""
    return [m.group("body") for m in SOLUTION.finditer(text)]


def strip_solutions(text: str) -> str:
    """A markdown cell's source with its Solutions blocks (and the blank lines before them) cut out."""
    return re.sub(r"\n{3,}", "\n\n", SOLUTION.sub("", text)).rstrip()


def student_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """A copy of nb with solutions removed and outputs cleared (nb itself is not changed)."""
    nb = nbformat.from_dict(nb)  # a deep copy
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if solution_blocks(cell.source):
                cell.source = strip_solutions(cell.source)
                if not cell.source.strip():
                    continue
            if LEFTOVER.search(cell.source):
                raise StudentError(f"{name}: a markdown cell still names a Solutions block after removal "
                                   "(is its closing fence missing or of another length?)")
        elif cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "papermill", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        cells.append(cell)
    nb.cells = cells
    for key in ("widgets", "papermill"):
        nb.metadata.pop(key, None)
    nbformat.validate(nb)
    return nb


def chapter_paths(src: Path = CHAPTERS) -> list[Path]:
    paths = sorted(p for p in src.glob("*.ipynb") if not p.name.startswith("."))
    if not paths:
        raise StudentError(f"no chapter notebooks in {src}")
    return paths


def build_folder(src: Path, dest: Path) -> list[Path]:
    """Write the student notebooks (and a README) into dest, a folder that must not exist yet."""
    dest.mkdir(parents=True)
    written = []
    for path in chapter_paths(src):
        nb = student_notebook(nbformat.read(path, as_version=4), path.name)
        out = dest / path.name
        nbformat.write(nb, out)
        written.append(out)
    (dest / "README.md").write_text(README)
    return written


def write_zip(folder: Path, zip_path: Path) -> Path:
    """Pack folder's files as TOP/<name> into zip_path, atomically and reproducibly."""
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".zip"):
            info = zipfile.ZipInfo(f"{TOP}/{f.relative_to(folder).as_posix()}", ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, f.read_bytes())
    return zip_path


def build(src: Path = CHAPTERS, out: Path = OUT, zip_path: Path | None = ZIP) -> list[Path]:
    """The student folder at out (replacing any older one) and, unless zip_path is None, its zip."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        new = tmp / "new"
        written = build_folder(src, new)
        if zip_path is not None:
            write_zip(new, zip_path)  # before the folder moves: a failure here leaves the old folder intact
        if out.exists():
            os.replace(out, tmp / "old")  # a folder cannot be replaced in one step: move the old one aside
        os.replace(new, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / p.name for p in written]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=CHAPTERS, help="chapter notebooks (default: chapters/)")
    ap.add_argument("--out", type=Path, default=OUT, help="student folder (default: _build/student/)")
    ap.add_argument("--zip", type=Path, default=ZIP, help="zip of the folder (default: _build/student.zip)")
    ap.add_argument("--no-zip", action="store_true", help="write the folder only")
    args = ap.parse_args(argv)
    try:
        written = build(args.src, args.out, None if args.no_zip else args.zip)
    except (StudentError, OSError, nbformat.ValidationError) as e:
        print(f"student edition: {e}", file=sys.stderr)
        return 1
    print(f"student edition: {len(written)} chapters in {args.out}"
          + ("" if args.no_zip else f", packed as {args.zip}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

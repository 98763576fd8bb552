"""`make pdf` (scripts/pdf.py): the whole quick book as one PDF, printed offline by headless Chromium.

Needs the executed quick chapters (`make test` or `make book MODE=quick` builds them), /usr/bin/chromium and
poppler-utils (pdfinfo, pdftotext, pdftoppm, pdfimages: `apt-get install -y poppler-utils`). About 40 s.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

import build_book as bbk  # noqa: E402
import pdf  # noqa: E402

EXEC = ROOT / "_build" / "executed" / "quick" / "chapters"
POPPLER = ("pdfinfo", "pdftotext", "pdftoppm", "pdfimages")
BOOK_PAGES = ("What the chapters say together", "Evidence map", "For instructors", "Glossary", "References",
              "Reproducibility")


def chapter_titles() -> list[str]:
    titles = []
    for nb in bbk.find_chapters(EXEC):
        cells = json.loads(nb.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        titles.append(re.search(r"^#\s+(.+?)\s*$", text, re.M).group(1))
    return titles


def png_outputs() -> int:
    """Static figures in the executed chapters (image/png outputs; the explorers' figures are widget state)."""
    return sum(1 for nb in bbk.find_chapters(EXEC) for c in json.loads(nb.read_text())["cells"]
               for o in c.get("outputs", []) if "image/png" in (o.get("data") or {}))


def norm(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").split())


@pytest.fixture(scope="module")
def book_pdf(tmp_path_factory) -> Path:
    if not (EXEC.is_dir() and bbk.find_chapters(EXEC)):
        pytest.fail("no executed quick chapters: build the quick book first (make book MODE=quick)", pytrace=False)
    missing = [t for t in POPPLER if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install -y poppler-utils", pytrace=False)
    if not pdf.CHROMIUM.exists():
        pytest.fail(f"{pdf.CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    out = tmp_path_factory.mktemp("pdf") / "book.pdf"
    assert pdf.main(["--mode", "quick", "--out", str(out)]) == 0
    return out


def run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


@pytest.mark.browser
@pytest.mark.slow
def test_pdf_holds_the_whole_book(book_pdf):
    assert book_pdf.read_bytes()[:5] == b"%PDF-"
    pages = int(re.search(r"^Pages:\s+(\d+)", run("pdfinfo", str(book_pdf)), re.M).group(1))
    titles = chapter_titles()
    # every chapter and every book page starts a new sheet: at least one page each, plus the introduction
    assert pages >= 1 + len(titles) + len(BOOK_PAGES), pages
    assert pages <= 60 * len(titles), f"{pages} pages: something repeats"
    text = norm(run("pdftotext", str(book_pdf), "-"))
    for title in [*titles, *BOOK_PAGES, "Memorization, optimization and representation failure"]:
        assert norm(title) in text, f"missing from the PDF: {title}"
    assert "Skip to main content" not in text, "the page's navigation is not printed"
    assert "CC BY 4.0" in text, "the license footer"
    # the static explorers print their figures: more images than the chapters' static figures
    images = len(run("pdfimages", "-list", str(book_pdf)).splitlines()) - 2
    assert images > png_outputs(), f"{images} images in the PDF, {png_outputs()} static figures in the chapters"


@pytest.mark.browser
@pytest.mark.slow
def test_pdf_pages_are_not_blank(book_pdf, tmp_path):
    from PIL import Image

    pages = int(re.search(r"^Pages:\s+(\d+)", run("pdfinfo", str(book_pdf)), re.M).group(1))
    for n in sorted({1, 2, pages // 3, pages // 2, pages - 1}):
        prefix = tmp_path / f"p{n}"
        run("pdftoppm", "-r", "40", "-png", "-f", str(n), "-l", str(n), str(book_pdf), str(prefix))
        png = next(tmp_path.glob(f"p{n}-*.png"))
        grey = Image.open(png).convert("L")
        dark = sum(grey.histogram()[:200]) / (grey.width * grey.height)
        assert dark > 0.01, f"page {n} is (nearly) blank: {dark:.2%} dark pixels"


def test_default_output_sits_beside_the_html():
    build = ROOT / "_build"
    assert pdf.default_out(build, "standard") == build / "book.pdf"
    assert pdf.default_out(build, "quick") == build / "quick" / "book.pdf"


def test_missing_executed_chapters_are_reported(tmp_path, capsys):
    assert pdf.main(["--mode", "full", "--build-dir", str(tmp_path), "--out", str(tmp_path / "x.pdf")]) == 1
    err = capsys.readouterr().err
    assert "make book MODE=full" in err or "make vendor" in err
    assert not (tmp_path / "x.pdf").exists()


def test_make_pdf_target():
    make = (ROOT / "Makefile").read_text()
    m = re.search(r"^pdf: (.+)\n\t(.+)$", make, re.M)
    assert m and "book" in m.group(1).split() and "scripts/pdf.py --mode $(MODE)" in m.group(2)

"""Every page of the built quick-mode book, opened from disk in headless Chromium with no network.

`make test` builds the book first (scripts/build_book.py --mode quick -> _build/quick/html/).
Set BOOK_HTML=<folder> to check another built book (e.g. BOOK_HTML=_build/html for the standard one).

Per page (one test each): no request leaves file:// (each one is blocked and counted), no request
fails, no console error (except sphinx-book-theme's known "Got invalid theme mode"), no uncaught
JavaScript error, every <img> loaded, every saved widget rendered with a non-zero size, all math
typeset by the local MathJax. A full-page screenshot of each page goes to <html>/../screenshots/.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import book_browser as bb

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "quick" / "html")).resolve()
SCREENSHOTS = HTML.parent / "screenshots"
EXECUTED = ROOT / "_build" / "executed" / "quick" / "chapters"
MISSING = ("the built book is missing: no "
           f"{HTML / 'book' / 'intro.html'}. Build it first with `make test` (which builds the quick book "
           "before running the tests) or `.venv/bin/python scripts/build_book.py --mode quick`.")


def _pages() -> list[str]:
    if not (HTML / "book" / "intro.html").is_file():
        return ["<book not built>"]
    return bb.book_pages(HTML)


@pytest.fixture(scope="module")
def browser():
    try:
        b = bb.Browser()
    except bb.BrowserUnavailable as e:
        pytest.fail(f"headless Chromium is needed for the browser tests: {e}", pytrace=False)
    yield b
    b.close()


@pytest.mark.parametrize("page", _pages())
def test_page_works_offline(page, browser):
    if page == "<book not built>":
        pytest.fail(MISSING, pytrace=False)
    rep = browser.check(HTML, page, SCREENSHOTS)
    problems = rep.problems()
    assert not problems, (f"{page} (screenshot: {rep.screenshot}; Chromium in a network namespace: "
                          f"{browser.offline_namespace}):\n" + "\n".join(problems))


def test_book_is_built():
    assert (HTML / "book" / "intro.html").is_file(), MISSING


def test_no_page_loads_from_the_network():
    """Static check of the HTML: no script, stylesheet, image or frame from another host."""
    if not HTML.is_dir():
        pytest.fail(MISSING, pytrace=False)
    tag = re.compile(r"<(script|link|img|iframe|source|video|audio)\b[^>]*\b(src|href)\s*=\s*[\"']((?:https?:)?//[^\"']+)",
                     re.I)
    found = []
    for page in sorted(HTML.rglob("*.html")):
        if any(part.startswith("_") for part in page.relative_to(HTML).parts[:-1]):
            continue
        for m in tag.finditer(page.read_text(errors="replace")):
            if m.group(1).lower() == "link" and re.search(r"rel=[\"']?(canonical|alternate)", m.group(0), re.I):
                continue
            found.append(f"{page.relative_to(HTML)}: {m.group(0)[:160]}")
    assert not found, "pages that load from the network:\n" + "\n".join(found[:30])


def test_every_executed_chapter_has_a_page():
    if "BOOK_HTML" in os.environ or not EXECUTED.is_dir():
        pytest.skip("checks the default quick book against its executed chapters only")
    if not HTML.is_dir():
        pytest.fail(MISSING, pytrace=False)
    missing = [nb.stem for nb in sorted(EXECUTED.glob("*.ipynb")) if not (HTML / "chapters" / f"{nb.stem}.html").is_file()]
    assert not missing, f"executed chapters without a page in {HTML}: {missing}"


def test_index_redirects_to_the_introduction():
    if not HTML.is_dir():
        pytest.fail(MISSING, pytrace=False)
    index = (HTML / "index.html").read_text()
    m = re.search(r"url=([^\"'>]+)", index)
    assert m and (HTML / m.group(1)).is_file(), f"index.html does not redirect to an existing page: {index[:300]}"


def test_missing_chromium_fails_clearly(monkeypatch):
    """Without /usr/bin/chromium and without the rights to install it, the reason is spelled out."""
    monkeypatch.setattr(bb, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(bb.BrowserUnavailable, match=r"apt-get install -y chromium"):
        bb.ensure_chromium()

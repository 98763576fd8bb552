"""Every page of the built quick-mode book, opened from disk in headless Chromium with no network.

`make test` builds the book first (make book MODE=quick -> _build/quick/html/).
Set BOOK_HTML=<folder> to check another built book (e.g. BOOK_HTML=_build/html for the standard one).

Per page (one test each): no request leaves file:// (each one is blocked and counted), no request
fails, no console error (except sphinx-book-theme's known "Got invalid theme mode"), no uncaught
JavaScript error, every <img> loaded, every saved widget rendered with a non-zero size, all math
typeset by the local MathJax, every <img> with an alt that says what it shows (not its file name), no code
or output area that needs a horizontal scroll at 1280 px (a table wider than the text may scroll inside its own
output box), no table cell that splits a word across lines, and every static explorer opened from a link that
carries its setting (#NN-control=value) showing the image that moving its sliders there by hand shows. A
full-page screenshot of each page goes to <html>/../screenshots/ (a dark-mode one to screenshots/dark/).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import book_browser as bb
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "quick" / "html")).resolve()
SCREENSHOTS = HTML.parent / "screenshots"
EXECUTED = ROOT / "_build" / "executed" / "quick" / "chapters"
MISSING = ("the built book is missing: no "
           f"{HTML / 'book' / 'intro.html'}. Build it first with `make test` (which builds the quick book "
           "before running the tests) or `make book MODE=quick`.")


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
    tag = re.compile(r"<(script|link|img|iframe|source|video|audio)\b[^>]*\b(src|href)\s*=\s*"
                     r"[\"']((?:https?:)?//[^\"']+)",
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
    missing = [nb.stem for nb in sorted(EXECUTED.glob("*.ipynb"))
               if not (HTML / "chapters" / f"{nb.stem}.html").is_file()]
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


DARK_PAGE = "chapters/06-memorization.html"


def test_figures_stay_legible_in_dark_mode(browser):
    """The theme's dark mode (localStorage 'theme' = 'dark'): every figure image sits on a white card, not dimmed
    by the theme's image filter (scripts/assets/memlib/book.css). A full-page screenshot goes to <screenshots>/dark/."""
    if not (HTML / DARK_PAGE).is_file():
        pytest.fail(MISSING, pytrace=False)
    context = browser.browser.new_context(viewport=bb.VIEWPORT, service_workers="block")
    context.add_init_script("try { localStorage.setItem('theme', 'dark'); localStorage.setItem('mode', 'dark'); } "
                            "catch (e) {}")
    tab = context.new_page()
    try:
        tab.route("**/*", lambda r: r.continue_() if r.request.url.startswith(bb.LOCAL_SCHEMES)
                  else r.abort("internetdisconnected"))
        tab.goto((HTML / DARK_PAGE).as_uri(), wait_until="load")
        tab.wait_for_function(bb.WIDGETS_DONE_JS, timeout=30_000)
        tab.wait_for_function(bb.EXPLORERS_READY_JS, timeout=10_000)
        tab.wait_for_timeout(300)
        theme = tab.evaluate("() => document.documentElement.dataset.theme")
        backgrounds = tab.evaluate("""() => [...document.querySelectorAll('.cell_output img, img.widget-image')]
            .filter(i => i.offsetParent !== null).map(i => getComputedStyle(i).backgroundColor)""")
        filters = tab.evaluate("""() => [...document.querySelectorAll('.cell_output img, img.widget-image')]
            .filter(i => i.offsetParent !== null).map(i => getComputedStyle(i).filter)""")
        shot = SCREENSHOTS / "dark" / bb.screenshot_name(DARK_PAGE)
        shot.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()
    assert theme == "dark", f"the page did not switch to dark mode (data-theme={theme!r}); screenshot {shot}"
    assert backgrounds and all(b == "rgb(255, 255, 255)" for b in backgrounds), \
        f"figure images without a white card in dark mode: {backgrounds}; screenshot {shot}"
    assert all(f == "none" for f in filters), f"figure images dimmed in dark mode (the card shows grey): {filters}"


BOOK_CSS = ROOT / "scripts" / "assets" / "memlib" / "book.css"
# Shaped like myst-nb's output HTML, in a column as wide as the book's text at 1280 px.
OVERFLOW_PAGE = """<!doctype html><html><head><meta charset="utf-8">{css}<style>{extra}</style></head>
<body><div style="width: 688px">
<div class="cell_output"><div class="output stream highlight-myst-ansi">\
<div class="highlight"><pre>{line}</pre></div></div></div>
<div class="cell_output"><div class="output text_html"><table class="memlib-table"><thead><tr>{wide_head}</tr></thead>
<tbody><tr>{wide_row}</tr></tbody></table></div></div>
<div class="cell_output"><div class="output text_html"><table class="memlib-table"><thead><tr>{head}</tr></thead>
<tbody><tr>{row}</tr></tbody></table></div></div>
</div></body></html>"""


def overflow_problems(browser, tmp_path: Path, name: str, with_book_css: bool, extra: str = "") -> tuple[list, list]:
    """The cut-off and broken-word checks of book_browser on a small page, with or without the book's CSS."""
    head = ["p", "network", "MASC corrupted", "MASC true", "nearest mean", "linear", "MASC corrupted on raw input",
            "best MASC hidden layer(s)"]
    page = OVERFLOW_PAGE.format(
        css=f'<link rel="stylesheet" href="{BOOK_CSS.as_uri()}">' if with_book_css else "", extra=extra,
        line="p=0.4: " + ", ".join(f"epoch {e} train 0.{e:03d} test 0.{e:03d}" for e in range(12)),
        wide_head="".join(f"<th>column{i}heading</th>" for i in range(12)),
        wide_row="".join(f"<td>0.{i:04d}</td>" for i in range(12)),
        head="".join(f"<th>{h}</th>" for h in head), row="".join(f"<td>0.{i:03d}</td>" for i in range(len(head))))
    (tmp_path / name).write_text(page)
    context = browser.browser.new_context(viewport=bb.VIEWPORT, service_workers="block")
    try:
        rep = bb.check_page(context, tmp_path, name, None)
    finally:
        context.close()
    return rep.cut_off, rep.broken_words


def test_printed_lines_wrap_and_tables_stay_whole(browser, tmp_path):
    """book.css wraps a long printed line, lets a too-wide table scroll in its own box and never splits a word in
    a table cell; the checks catch each of these when the CSS does not do it."""
    cut, broken = overflow_problems(browser, tmp_path, "book.html", with_book_css=True)
    assert cut == [] and broken == [], f"with book.css: cut off {cut}; broken words {broken}"

    cut, _ = overflow_problems(browser, tmp_path, "bare.html", with_book_css=False)
    assert any(c.startswith("pre") for c in cut), f"a long printed line without book.css is not reported: {cut}"
    assert any(c.startswith("table") for c in cut), f"a too-wide table outside a scroll box is not reported: {cut}"

    _, broken = overflow_problems(browser, tmp_path, "squeezed.html", with_book_css=True,
                                  extra=".cell_output th, .cell_output td { overflow-wrap: anywhere; }")
    assert any('th "network"' in b for b in broken), f"a header split mid-word is not reported: {broken}"

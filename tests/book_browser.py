"""Open built book pages in headless Chromium (Playwright) with the network cut off, and check them.

Used by tests/test_browser.py; also runnable by hand on any built book:

    .venv/bin/python tests/book_browser.py _build/quick/html            # every page
    .venv/bin/python tests/book_browser.py _build/html chapters/01-x.html

The browser is the Debian package's /usr/bin/chromium (Playwright never downloads one). Every
request that is not file:// (or data:/blob:) is blocked and counted; when `unshare -n` works (as
root) the browser also runs in a network namespace with no network at all.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-dev-shm-usage",
]
# sphinx-book-theme logs this on every page; it is harmless.
KNOWN_CONSOLE_ERRORS = ("Got invalid theme mode",)
SKIP_PAGES = {"genindex.html", "search.html"}
VIEWPORT = {"width": 1280, "height": 1000}
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


class BrowserUnavailable(RuntimeError):
    """Chromium is missing and could not be installed."""


def ensure_chromium() -> Path:
    """/usr/bin/chromium, installed with apt-get when missing and possible (root); else raise."""
    if CHROMIUM.exists():
        return CHROMIUM
    how = "install it with `apt-get install -y chromium` (Debian/Ubuntu package `chromium`)"
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BrowserUnavailable(f"{CHROMIUM} is missing and this process cannot install it (needs root and "
                                 f"apt-get): {how}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    log = []
    for cmd in (install, ["apt-get", "update"], install):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        log.append(f"$ {' '.join(cmd)} -> exit {proc.returncode}\n{proc.stderr[-1500:]}")
        if cmd is install and proc.returncode == 0 and CHROMIUM.exists():
            return CHROMIUM
    raise BrowserUnavailable(f"{CHROMIUM} is missing and `apt-get install -y chromium` failed; {how}.\n"
                             + "\n".join(log))


def unshare_works() -> bool:
    if os.environ.get("BOOK_BROWSER_UNSHARE", "1") == "0" or shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def launcher(workdir: Path) -> tuple[str, bool]:
    """The executable Playwright should start: Chromium, wrapped in `unshare -n` when possible."""
    chromium = ensure_chromium()
    if not unshare_works():
        return str(chromium), False
    wrapper = workdir / "chromium-offline"
    wrapper.write_text(f'#!/bin/sh\nexec unshare -n -- {chromium} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper), True


def book_pages(html: Path) -> list[str]:
    """Pages of a built book (relative paths), without genindex/search, assets and redirect stubs."""
    pages = []
    for p in sorted(html.rglob("*.html")):
        relp = p.relative_to(html)
        if relp.name in SKIP_PAGES and len(relp.parts) == 1:
            continue
        if any(part.startswith(("_", "@", ".")) for part in relp.parts[:-1]):
            continue
        if is_redirect(p):
            continue
        pages.append(relp.as_posix())
    return pages


def is_redirect(page: Path) -> bool:
    head = page.read_text(errors="replace")[:2000].lower()
    return 'http-equiv="refresh"' in head and "<body" not in head


def screenshot_name(page: str) -> str:
    return page[: -len(".html")].replace("/", "__") + ".png"


@dataclass
class PageReport:
    page: str
    failed_requests: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    widgets: int = 0
    widget_problems: list[str] = field(default_factory=list)
    math: int = 0
    math_problems: list[str] = field(default_factory=list)
    images: int = 0
    explorers: int = 0  # static explorers whose every slider was moved
    explorer_problems: list[str] = field(default_factory=list)
    images_without_alt: list[str] = field(default_factory=list)
    cut_off: list[str] = field(default_factory=list)  # code/output areas that need a horizontal scroll
    broken_words: list[str] = field(default_factory=list)  # table cells that split a word across lines
    links: int = 0  # static explorers opened from a link carrying a setting
    link_problems: list[str] = field(default_factory=list)
    screenshot: str | None = None

    def problems(self) -> list[str]:
        out = []
        for label, items in [("blocked (non-file://) requests", self.blocked_requests),
                             ("failed requests", self.failed_requests),
                             ("console errors", self.console_errors),
                             ("uncaught page errors", self.page_errors),
                             ("images that did not load", self.broken_images),
                             ("widget areas not rendered", self.widget_problems),
                             ("math not typeset", self.math_problems),
                             ("static explorers that did not change their figure", self.explorer_problems),
                             ("images without alt text saying what they show", self.images_without_alt),
                             (f"code or output areas cut off at {VIEWPORT['width']} px (horizontal scroll)",
                              self.cut_off),
                             (f"table cells that split a word at {VIEWPORT['width']} px", self.broken_words),
                             ("links that carry an explorer's setting but did not reproduce it", self.link_problems)]:
            if items:
                out.append(f"{label} ({len(items)}):\n" + "\n".join(f"    {i}" for i in items[:15]))
        return out


WIDGETS_DONE_JS = """() => {
  const tags = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  return tags.every(t => {
    const v = t.previousElementSibling;
    return v && v.classList.contains('widget-subarea') && v.childElementCount > 0;
  });
}"""

WIDGETS_CHECK_JS = """() => {
  const tags = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  const problems = [];
  tags.forEach((t, i) => {
    let model = '?';
    try { model = JSON.parse(t.textContent).model_id; } catch (e) {}
    const v = t.previousElementSibling;
    if (!v || !v.classList.contains('widget-subarea')) {
      problems.push(`widget ${i + 1} (model ${model}): no view rendered`);
      return;
    }
    const r = v.getBoundingClientRect();
    if (!(r.width > 0 && r.height > 0))
      problems.push(`widget ${i + 1} (model ${model}): rendered with size ${r.width}x${r.height}`);
    const text = v.textContent || '';
    if (/Error displaying widget|Failed to create view|Could not create a view/.test(text))
      problems.push(`widget ${i + 1} (model ${model}): ${text.trim().slice(0, 200)}`);
  });
  return {count: tags.length, problems};
}"""

IMAGES_DONE_JS = """() => [...document.images].every(img => img.complete)"""

IMAGES_CHECK_JS = """() => {
  const imgs = [...document.images];
  return {count: imgs.length,
          broken: imgs.filter(img => !(img.complete && img.naturalWidth > 0))
                      .map(img => (img.currentSrc || img.src || '(no src)').slice(0, 200))};
}"""

EXPLORERS_READY_JS = ("""() => document.querySelectorAll('.memlib-static-explorer:not([data-memlib-ready="1"])')"""
                      """.length === 0""")

# An alt that is missing, empty, or just the file's name (Sphinx's default when none is given) says nothing.
ALT_CHECK_JS = """() => [...document.images].filter(img => {
    const alt = (img.getAttribute('alt') || '').trim();
    const file = (img.getAttribute('src') || '').split('/').pop();
    return !alt || alt === img.getAttribute('src') || alt.split('/').pop() === file ||
           /\\.(png|jpe?g|svg|gif)$/i.test(alt);
  }).map(img => {
    const where = img.closest('.cell_output') ? 'chapter figure' : img.closest('.jupyter-widgets') ? 'widget image'
                : img.closest('.navbar-brand, .logo') ? 'logo' : 'image';
    return `${where}: ${(img.getAttribute('src') || '(no src)').slice(0, 90)} ` +
           `alt=${JSON.stringify(img.getAttribute('alt'))}`;
  })"""

# Code and output areas must fit the text width: nothing that needs a horizontal scroll bar. The one exception is
# a table wider than the text, which may scroll inside its own output box (book.css) as long as that box fits.
CUT_OFF_JS = """() => {
  const sel = 'div.highlight pre, .cell_output pre, .cell_output table, .cell_output .output';
  const scrolls = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  const out = [];
  document.querySelectorAll(sel).forEach(el => {
    if (!el.clientWidth) return;  // hidden (a closed dropdown)
    if (el.tagName !== 'TABLE' && scrolls(el) && el.querySelector('table')) return;  // its tables are checked below
    let over;
    if (el.tagName === 'TABLE') {
      const cell = el.closest('.cell_output') || el.parentElement;
      let box = el.parentElement;
      while (box && box !== cell && !scrolls(box)) box = box.parentElement;
      over = box && scrolls(box) ? box.getBoundingClientRect().width - cell.clientWidth  // its scroll box must fit
                                 : el.getBoundingClientRect().width - el.parentElement.clientWidth;
    } else {
      over = el.scrollWidth - el.clientWidth;
    }
    if (over > 1) {
      const line = (el.innerText || '').split('\\n').reduce((a, b) => b.length > a.length ? b : a, '');
      out.push(`${el.tagName.toLowerCase()}.` +
               `${[...el.classList].join('.') || el.parentElement.className.split(' ')[0]}: ` +
               `${Math.round(over)} px too wide; longest line ${line.length} chars: ${line.slice(0, 70)}`);
    }
  });
  return out;
}"""

# Table cells wrap only at spaces: a word (a header, a number) split across two lines is a broken table.
BROKEN_WORDS_JS = """() => {
  const out = [];
  document.querySelectorAll('.cell_output table th, .cell_output table td').forEach(c => {
    if (!c.clientWidth) return;
    const walk = document.createTreeWalker(c, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      for (const m of n.data.matchAll(/\\S+/g)) {
        const r = document.createRange();
        r.setStart(n, m.index);
        r.setEnd(n, m.index + m[0].length);
        const tops = new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top)));
        if (tops.size > 1)
          out.push(`${c.tagName.toLowerCase()} ${JSON.stringify(m[0])} split over ${tops.size} lines ` +
                   `(table: ${(c.closest('table').rows[0].innerText || '').replace(/\\s+/g, ' ').slice(0, 60)})`);
      }
    }
  });
  return out;
}"""

MATH_COUNT_JS = """() => document.querySelectorAll('.math, div.math, span.math').length"""

MATH_CHECK_JS = """async () => {
  if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return {loaded: false};
  await MathJax.startup.promise;
  const els = [...document.querySelectorAll('span.math, div.math')];
  const untypeset = els.filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.trim().slice(0, 80));
  const errors = [...document.querySelectorAll('mjx-merror')]
    .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 120));
  return {loaded: true, version: MathJax.version, count: els.length, untypeset, errors,
          containers: document.querySelectorAll('mjx-container').length};
}"""


def check_page(context, html: Path, page: str, screenshot_dir: Path | None, timeout_ms: int = 30_000) -> PageReport:
    """Load one page from disk in a fresh tab, with every non-file:// request blocked, and check it."""
    rep = PageReport(page)
    tab = context.new_page()
    tab.set_default_timeout(timeout_ms)

    def route(r):
        url = r.request.url
        if url.startswith(LOCAL_SCHEMES):
            r.continue_()
        else:
            rep.blocked_requests.append(url)
            r.abort("internetdisconnected")

    def on_failed(req):
        if req.url in rep.blocked_requests:
            return
        rep.failed_requests.append(f"{req.url} ({req.failure})")

    def on_console(msg):
        if msg.type == "error" and not any(k in msg.text for k in KNOWN_CONSOLE_ERRORS):
            loc = msg.location or {}
            rep.console_errors.append(f"{msg.text[:300]} [{loc.get('url', '')}:{loc.get('lineNumber', '')}]")

    tab.route("**/*", route)
    tab.on("requestfailed", on_failed)
    tab.on("console", on_console)
    tab.on("pageerror", lambda exc: rep.page_errors.append(str(exc)[:300]))
    try:
        tab.goto((html / page).resolve().as_uri(), wait_until="load")
        # Lazy images load only near the viewport: load them all now.
        tab.evaluate("() => document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
        try:
            tab.wait_for_function(WIDGETS_DONE_JS, timeout=timeout_ms)
        except Exception:  # noqa: BLE001 - reported below as unrendered widgets
            pass
        rep.math = tab.evaluate(MATH_COUNT_JS)
        if rep.math:
            try:
                m = tab.evaluate(MATH_CHECK_JS)
            except Exception as e:  # noqa: BLE001
                m = {"loaded": False, "error": str(e)}
            if not m.get("loaded"):
                rep.math_problems.append(f"MathJax did not load ({m.get('error', 'window.MathJax missing')})")
            else:
                rep.math_problems += [f"not typeset: {t}" for t in m["untypeset"]]
                rep.math_problems += [f"MathJax error: {t}" for t in m["errors"]]
        try:
            tab.wait_for_function(IMAGES_DONE_JS, timeout=timeout_ms)
        except Exception:  # noqa: BLE001 - reported below as broken images
            pass
        tab.evaluate("() => document.fonts.ready.then(() => true)")
        try:  # scripts/assets/memlib/explorer-links.js sets up every static explorer (alt text, URL)
            tab.wait_for_function(EXPLORERS_READY_JS, timeout=10_000)
        except Exception:  # noqa: BLE001 - reported through the alt and link checks
            pass
        tab.wait_for_timeout(300)  # late requests (fonts, widget assets) get reported
        rep.images_without_alt = tab.evaluate(ALT_CHECK_JS)
        rep.cut_off = tab.evaluate(CUT_OFF_JS)
        rep.broken_words = tab.evaluate(BROKEN_WORDS_JS)
        w = tab.evaluate(WIDGETS_CHECK_JS)
        rep.widgets, rep.widget_problems = w["count"], w["problems"]
        im = tab.evaluate(IMAGES_CHECK_JS)
        rep.images, rep.broken_images = im["count"], im["broken"]
        if screenshot_dir is not None:
            screenshot_dir.mkdir(parents=True, exist_ok=True)
            shot = screenshot_dir / screenshot_name(page)
            tab.screenshot(path=str(shot), full_page=True)
            rep.screenshot = str(shot)
        rep.explorers, rep.explorer_problems = move_static_explorers(tab)  # after the screenshot: it shows the defaults
        if rep.explorers:
            rep.links, rep.link_problems = open_explorer_links(context, html, page, tab, timeout_ms)
    finally:
        tab.close()
    return rep


VISIBLE_IMAGE_JS = """(box) => {
  const img = [...box.querySelectorAll('img')].find(i => i.offsetParent !== null && i.complete && i.naturalWidth > 0);
  return img ? img.src : null;
}"""


def move_static_explorers(tab) -> tuple[int, list[str]]:
    """Move every slider of every static explorer one step (focus + ArrowRight) and check the shown image changes."""
    problems, moved = [], 0
    boxes = tab.query_selector_all(".memlib-static-explorer")
    for i, box in enumerate(boxes, start=1):
        handles = box.query_selector_all(".noUi-handle")
        if not handles:
            problems.append(f"static explorer {i}: no slider rendered")
            continue
        for j, handle in enumerate(handles, start=1):
            before = box.evaluate(VISIBLE_IMAGE_JS)
            handle.focus()
            handle.press("ArrowRight")
            try:
                tab.wait_for_function(f"([box, before]) => ({VISIBLE_IMAGE_JS})(box) !== before"
                                      f" && ({VISIBLE_IMAGE_JS})(box) !== null",
                                      arg=[box, before], timeout=5_000)
            except Exception:  # noqa: BLE001 - reported
                problems.append(f"static explorer {i}, slider {j}: the image did not change after ArrowRight")
        moved += 1
    return moved, problems


EXPLORER_STATE_JS = """(box) => {
  const meta = JSON.parse(box.querySelector('.memlib-explorer-meta').getAttribute('data-meta'));
  const img = [...box.querySelectorAll('img')].find(i => i.offsetParent !== null);
  const m = img ? /memlib-grid-(\\d+)/.exec(img.className) : null;
  return {key: box.getAttribute('data-memlib-key'), meta, shown: m ? +m[1] : null,
          alt: img ? img.getAttribute('alt') : null,
          index: [...box.querySelectorAll('.noUi-handle')].map(h => Math.round(+h.getAttribute('aria-valuenow'))),
          hash: location.hash, button: !!box.querySelector('.memlib-copy-link button')};
}"""


def _flat(meta: dict, index: list[int]) -> int:
    k = 0
    # not strict: a box whose sliders did not all render has fewer handles; the wrong image it shows is reported
    for c, i in zip(meta["controls"], index, strict=False):
        k = k * len(c["values"]) + i
    return k


def open_explorer_links(context, html: Path, page: str, tab, timeout_ms: int) -> tuple[int, list[str]]:
    """Per static explorer: move its sliders by hand (End) in the open tab, check the URL now carries that setting,
    then open that URL in a fresh tab and check the explorer shows the same image (its grid class), its sliders
    stand at those values and the image's alt names them."""
    problems, opened = [], 0
    for i, box in enumerate(tab.query_selector_all(".memlib-static-explorer"), start=1):
        for handle in box.query_selector_all(".noUi-handle"):
            handle.focus()
            handle.press("End")
        tab.wait_for_timeout(200)
        by_hand = box.evaluate(EXPLORER_STATE_JS)
        meta, key = by_hand["meta"], by_hand["key"]
        # not strict (here and below): fewer handles than controls is reported (the URL misses a setting), not raised
        want = {f"{key}-{c['name']}": c["values"][j] for c, j in zip(meta["controls"], by_hand["index"], strict=False)}
        hash_ = by_hand["hash"].lstrip("#")
        missing = [f"{k}={v}" for k, v in want.items() if f"{k}={v}" not in hash_.split("&")]
        if missing:
            problems.append(f"explorer {i} ({key}): after moving the sliders by hand the URL is #{hash_}, "
                            f"without {', '.join(missing)}")
        if not by_hand["button"]:
            problems.append(f"explorer {i} ({key}): no 'Copy link to this view' button")
        if by_hand["shown"] != _flat(meta, by_hand["index"]):
            problems.append(f"explorer {i} ({key}): sliders at {by_hand['index']} show image {by_hand['shown']}")
        link = (html / page).resolve().as_uri() + "#" + "&".join(f"{k}={v}" for k, v in want.items())
        fresh = context.new_page()
        fresh.set_default_timeout(timeout_ms)
        fresh.route("**/*", lambda r: r.continue_() if r.request.url.startswith(LOCAL_SCHEMES)
                    else r.abort("internetdisconnected"))
        try:
            fresh.goto(link, wait_until="load")
            fresh.wait_for_function(EXPLORERS_READY_JS, timeout=timeout_ms)
            fresh.wait_for_timeout(200)
            other = fresh.query_selector_all(".memlib-static-explorer")[i - 1].evaluate(EXPLORER_STATE_JS)
        except Exception as e:  # noqa: BLE001 - reported
            problems.append(f"explorer {i} ({key}): {link} did not set up: {str(e)[:200]}")
            continue
        finally:
            fresh.close()
        opened += 1
        if other["shown"] != by_hand["shown"] or other["index"] != by_hand["index"]:
            problems.append(f"explorer {i} ({key}): {link} shows image {other['shown']} (sliders {other['index']}); "
                            f"moving the sliders there by hand shows image {by_hand['shown']} "
                            f"(sliders {by_hand['index']})")
        labels = [c["labels"][j] for c, j in zip(meta["controls"], by_hand["index"], strict=False)]
        if not other["alt"] or not all(lab in other["alt"] for lab in labels):
            problems.append(f"explorer {i} ({key}): the image's alt {other['alt']!r} "
                            f"does not name the setting {labels}")
    return opened, problems


class Browser:
    """One headless Chromium for many pages (a fresh context, i.e. fresh storage, per page)."""

    def __init__(self):
        from playwright.sync_api import sync_playwright

        self._tmp = tempfile.TemporaryDirectory(prefix="book-browser-")
        exe, self.offline_namespace = launcher(Path(self._tmp.name))
        self._pw = sync_playwright().start()
        try:
            # Playwright starts the browser with a fresh temporary --user-data-dir of its own.
            self.browser = self._pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS,
                                                    env={**os.environ, "HOME": self._tmp.name})
        except Exception:
            self._pw.stop()
            self._tmp.cleanup()
            raise

    def check(self, html: Path, page: str, screenshot_dir: Path | None) -> PageReport:
        context = self.browser.new_context(viewport=VIEWPORT, service_workers="block")
        try:
            return check_page(context, html, page, screenshot_dir)
        finally:
            context.close()

    def close(self):
        try:
            self.browser.close()
        finally:
            self._pw.stop()
            self._tmp.cleanup()


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("html", type=Path, help="a built book's html folder, e.g. _build/quick/html")
    ap.add_argument("pages", nargs="*", help="pages relative to it (default: every page)")
    ap.add_argument("--screenshots", type=Path, default=None,
                    help="where to save full-page screenshots (default: <html>/../screenshots)")
    args = ap.parse_args(argv)
    shots = args.screenshots or args.html.parent / "screenshots"
    pages = args.pages or book_pages(args.html)
    b = Browser()
    bad = 0
    try:
        print(f"chromium in a network namespace: {b.offline_namespace}")
        for page in pages:
            rep = b.check(args.html, page, shots)
            probs = rep.problems()
            bad += bool(probs)
            print(f"{'FAIL' if probs else 'ok  '} {page}: {rep.widgets} widgets "
                  f"({rep.explorers} static explorers moved, "
                  f"{rep.links} opened from a link), {rep.math} math, "
                  f"{rep.images} images -> {rep.screenshot}")
            for p in probs:
                print("  " + p)
    finally:
        b.close()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

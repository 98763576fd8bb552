"""Live exploration in a real browser: JupyterLab on loopback, a chapter run from the UI, a slider moved.

The test starts `jupyter lab` (tests/live_lab.py: 127.0.0.1, a free port, a random token, throwaway Jupyter
folders, $MEMLIB_CACHE in a temp folder seeded with the converted MNIST), copies chapter 6 into the server's root
with `mode = "quick"`, and opens it in headless Chromium (the system's /usr/bin/chromium via Playwright; no host
name resolves, and every request must go to this server). Then, as a reader would:

1. Run > Run All Cells; the live explorer (`.memlib-live-explorer`) appears with its figure.
2. The `width` slider is moved one step (focus + ArrowRight: 256 -> 512, a setting the chapter did not train),
   so the explorer trains in a background thread and shows "training…".
3. While it trains, a cell `print(6 * 7)` (added below the explorer beforehand) is run: its output must appear
   within seconds, while the explorer still says "training…" (the kernel stays responsive).
4. The figure must change (a new PNG, compared by SHA-256) once the run is trained, with no error shown.

A screenshot goes to _build/quick/screenshots/live-explorer.png (or live-explorer-failed.png on failure). The
server, its kernel and the temp folders are removed at the end. Without Chromium (and no way to install it) or
when JupyterLab does not start, the test fails with the reason; it never skips.

A second test opens the same chapter (no cell run) and checks what jupyterlab-myst makes of its Markdown, as a
student sees it: every Markdown cell is rendered by MyST; the Solutions dropdown is closed and none of its text is
visible; no raw directive or role text (`:class:`, `{term}`, `{cite}`, `{dropdown}`, ```` ```{ ````) shows anywhere
in the notebook; a click on the dropdown opens it and shows the solutions. Screenshot: live-markdown.png.
A third opens the chapter's student edition (scripts/student.py): rendered the same, with no Solutions dropdown
and none of the solutions' text in the page. Screenshot: live-student.png.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import book_browser as bb
import live_lab as ll
import pytest
from helpers import seed_cache

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "chapters" / "06-memorization.ipynb"
SLIDER = "width"  # base 256 -> 512: chapter 6 trains width 256 only, so this setting is trained live
SHOTS = ROOT / "_build" / "quick" / "screenshots"
RUN_ALL_TIMEOUT = 240  # s: kernel start, imports and the quick chapter's three runs on a cold cache
TRAIN_TIMEOUT = 120  # s: the explorer's background run for the new slider value
# Instead of a network namespace: no host name resolves (IP literals bypass this; the request listener reports them).
NO_DNS = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
RESPONSIVE_WITHIN = 10  # s: a trivial cell must answer this fast while the explorer trains

STATE_JS = """() => {
  const box = document.querySelector('.memlib-live-explorer');
  const img = box && box.querySelector('img');
  const status = box && box.querySelector(':scope > .widget-html');
  const errors = [...document.querySelectorAll('.jp-OutputArea-output')]
    .map(o => o.textContent || '')
    .filter(t => /Traceback \\(most recent call last\\)/.test(t))
    .map(t => t.trim().slice(-600));
  const running = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
    .filter(p => /\\[\\*\\]/.test(p.textContent)).length;
  const started = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
    .filter(p => /\\[(\\d+|\\*)\\]/.test(p.textContent)).length;
  return {explorer: !!box, src: img ? img.src : null, loaded: !!(img && img.complete && img.naturalWidth > 0),
          width: img ? img.naturalWidth : 0, status: status ? status.textContent.trim() : null,
          errors, running, started, cells: document.querySelectorAll('.jp-Notebook .jp-Cell').length};
}"""

DIGEST_JS = """async () => {
  const img = document.querySelector('.memlib-live-explorer img');
  if (!img || !img.src || !(img.complete && img.naturalWidth > 0)) return null;
  try {
    const buf = await (await fetch(img.src)).arrayBuffer();
    const h = await crypto.subtle.digest('SHA-256', buf);
    return [...new Uint8Array(h)].map(b => b.toString(16).padStart(2, '0')).join('') + ':' + buf.byteLength;
  } catch (e) { return null; }  // the blob URL was just replaced: ask again
}"""

SLIDERS_JS = """() => [...document.querySelectorAll('.memlib-live-explorer .widget-slider')].map(s => ({
  label: (s.querySelector('.widget-label') || {}).textContent || '',
  readout: (s.querySelector('.widget-readout') || {}).textContent || ''}))"""

PROBE = "print(6 * 7)"
# The probe cell's output text and, in the same instant, the explorer's status.
PROBE_CELL_JS = """(code) => {
  const cell = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')]
    .find(c => (c.querySelector('.jp-InputArea-editor') || {}).textContent === code);
  const out = cell ? [...cell.querySelectorAll('.jp-OutputArea-output')].map(o => o.textContent).join('') : '';
  const status = document.querySelector('.memlib-live-explorer > .widget-html');
  return {out: out.trim(), status: status ? status.textContent.trim() : null, t: performance.now()};
}"""


# The status bar names the kernel and its state ("Python 3 (ipykernel) | Idle") once the page is connected to it.
KERNEL_IDLE_JS = """() => [...document.querySelectorAll('.jp-StatusBar-Widget, .jp-StatusBar-TextItem')]
  .some(e => /ipykernel.*\\|\\s*Idle/.test(e.textContent))"""


# What the student sees of the notebook: its visible text (innerText skips closed dropdowns and hidden editors),
# the Markdown cells' rendered text, and each dropdown's state.
MARKDOWN_JS = """() => {
  const nb = document.querySelector('.jp-Notebook');
  const md = [...document.querySelectorAll('.jp-Notebook .jp-MarkdownCell')];
  const editorShown = c => { const e = c.querySelector('.jp-InputArea-editor'); return !!e && e.checkVisibility(); };
  return {
    visible: nb ? nb.innerText : '',
    markdown: md.map(c => c.innerText),
    cells: md.length,
    unrendered: md.filter(editorShown).length,
    not_myst: md.filter(c => !c.querySelector('.jp-MarkdownOutput .myst, .myst')).length,
    dropdowns: [...document.querySelectorAll('.jp-Notebook .jp-MarkdownCell details')].map(d => {
      const s = d.querySelector('summary');
      const body = [...d.children].find(e => e.tagName !== 'SUMMARY');
      return {summary: s ? s.innerText.trim() : '', open: d.open, body_visible: !!body && body.checkVisibility()};
    }),
  };
}"""
# Raw MyST markup a reader must never see, anywhere in the notebook (code cells included) ... (jupyterlab-myst 2.7.0
# has no bibliography: it shows a {cite} role as its key with a "Citation Not Found" mark, jupyter-book/jupyterlab-myst
# issue 127; that is the key, not raw markup, and passes.)
RAW_MARKUP = (":class:", "{term}", "{cite", "{dropdown}", "{admonition}", "```{", ":::{")
# ... and, in the Markdown cells' rendered text, any role or directive name in braces before its text.
RAW_ROLE = re.compile(r"\{[a-z][\w:-]*\}\s*[`\w<]")
SOLUTIONS_FENCE = re.compile(r"^(`{3,}|:{3,})\{(?:admonition|dropdown)\}\s*Solutions\s*\n(.*?)^\1\s*$",
                             re.MULTILINE | re.DOTALL)


def solution_phrases(chapter: Path) -> list[str]:
    """From each Solutions dropdown in the chapter's Markdown: the first words of its first answer, as rendered."""
    nb = json.loads(chapter.read_text())
    phrases = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for m in SOLUTIONS_FENCE.finditer("".join(cell["source"])):
            body = [ln for ln in m.group(2).splitlines() if ln.strip() and not ln.lstrip().startswith(":")]
            first = re.sub(r"^\s*(\d+\.|[-*])\s+", "", body[0]) if body else ""
            words = re.match(r"[^*`$\[\]{}_\\<]*", first).group(0).split()  # up to the first inline markup
            if len(words) < 4:
                raise ValueError(f"{chapter.name}: a Solutions dropdown starts with too little plain text to find "
                                 f"it in the page: {first!r}")
            phrases.append(" ".join(words[:8]))
    return phrases


def raw_markup(state: dict) -> list[str]:
    """Raw directive or role text visible in the notebook, with a little context."""
    found = []
    for text, patterns in ((state["visible"], [re.compile(re.escape(p)) for p in RAW_MARKUP]),
                           ("\n".join(state["markdown"]), [RAW_ROLE])):
        for pat in patterns:
            for m in pat.finditer(text):
                found.append(f"{m.group(0)!r} in …{text[max(0, m.start() - 50):m.end() + 50]!r}…")
    return sorted(set(found))


def markdown_problems(page, phrases: list[str]) -> list[str]:
    """Everything wrong with the notebook's rendered Markdown before and after a click on each Solutions dropdown."""
    s = page.evaluate(MARKDOWN_JS)
    problems = []
    if s["cells"] == 0:
        return ["the notebook shows no Markdown cell"]
    if s["unrendered"]:
        problems.append(f"{s['unrendered']} of {s['cells']} Markdown cells show their source, not rendered")
    if s["not_myst"]:
        problems.append(f"{s['not_myst']} of {s['cells']} Markdown cells are not rendered by MyST (jupyterlab-myst)")
    problems += [f"raw markup visible: {r}" for r in raw_markup(s)]
    solutions = [d for d in s["dropdowns"] if d["summary"] == "Solutions"]
    if len(solutions) != len(phrases):
        problems.append(f"expected {len(phrases)} Solutions dropdown(s) (from the notebook's source); "
                        f"the page shows {len(solutions)} "
                        f"(dropdowns: {[d['summary'] for d in s['dropdowns']]})")
    problems += [f"dropdown {d['summary']!r} is open before the student opens it" for d in s["dropdowns"]
                 if d["open"] or d["body_visible"]]
    problems += [f"solution text visible before the dropdown is opened: {p!r}" for p in phrases if p in s["visible"]]
    if problems or not solutions:
        return problems
    # --- open each Solutions dropdown as a reader would: a click on its title
    for summary in page.locator(".jp-Notebook .jp-MarkdownCell details > summary",
                                has_text=re.compile(r"^\s*Solutions\s*$")).all():
        summary.scroll_into_view_if_needed()
        summary.click()
    page.wait_for_timeout(300)
    after = page.evaluate(MARKDOWN_JS)
    problems += [f"dropdown {d['summary']!r} did not open on a click" for d in after["dropdowns"]
                 if d["summary"] == "Solutions" and not (d["open"] and d["body_visible"])]
    problems += [f"after a click on Solutions, its text is not visible: {p!r}" for p in phrases
                 if p not in after["visible"]]
    problems += [f"raw markup visible in the opened solutions: {r}" for r in raw_markup(after)
                 if r not in raw_markup(s)]
    return problems


def kernels(lab) -> list:
    try:
        return lab.api("kernels")
    except Exception as e:  # noqa: BLE001
        return [f"error: {e}"]


def kernel_ready(lab) -> bool:
    """The server has one kernel, idle, with the page's websocket connected to it."""
    ks = kernels(lab)
    return len(ks) == 1 and isinstance(ks[0], dict) and ks[0].get("execution_state") == "idle" \
        and ks[0].get("connections", 0) >= 1


def poll(page, fn, timeout: float, interval: float = 0.25):
    """Call fn() until it returns something truthy (returned) or timeout seconds pass (None).

    Waits with page.wait_for_timeout, not time.sleep: Playwright's sync API handles the page's events only
    while one of its calls runs."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() >= deadline:
            return None
        page.wait_for_timeout(interval * 1000)


@pytest.fixture
def browser():
    """Headless system Chromium (never a Playwright download); fails, not skips, when it cannot be had."""
    problem = None
    try:
        chromium = bb.ensure_chromium()
    except bb.BrowserUnavailable as e:
        problem = f"headless Chromium is needed for the live-explorer test: {e}"
    if problem:  # failed outside the except block: the message is not buried under a chained traceback
        pytest.fail(problem, pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.fail(f"the Playwright Python package is needed for the live-explorer test ({e}); "
                    "install requirements.txt into .venv", pytrace=False)

    home = tempfile.TemporaryDirectory(prefix="live-chromium-")
    pw = sync_playwright().start()
    try:
        # No `unshare -n` here (unlike book_browser.launcher): the page must reach the server on loopback.
        b = pw.chromium.launch(executable_path=str(chromium), headless=True, args=[*bb.CHROMIUM_ARGS, NO_DNS],
                               env={**os.environ, "HOME": home.name})
    except Exception as e:  # noqa: BLE001
        pw.stop()
        home.cleanup()
        pytest.fail(f"could not launch {chromium} with Playwright: {e}", pytrace=False)
    try:
        yield b
    finally:
        try:
            b.close()
        finally:
            pw.stop()
            home.cleanup()


@pytest.fixture
def lab(memlib_cache):
    """JupyterLab serving a temp root that holds the quick-mode chapter; a temp run cache seeded with MNIST."""
    with tempfile.TemporaryDirectory(prefix="live-root-") as root, \
            tempfile.TemporaryDirectory(prefix="live-cache-") as cache:
        seed_cache(Path(cache), Path(memlib_cache))  # the session's MNIST copy; the real cache is never written
        nb = ll.prepare_chapter(CHAPTER, Path(root), mode="quick")
        server = ll.LabServer(Path(root), Path(cache))
        problem = None
        try:
            server.start()
        except ll.LabUnavailable as e:
            server.stop()
            problem = f"JupyterLab did not start: {e}"
        if problem:
            pytest.fail(problem, pytrace=False)
        server.notebook = nb.name
        try:
            yield server
        finally:
            server.stop()


def test_live_explorer_retrains_in_the_background(browser, lab):
    context = browser.new_context(viewport=bb.VIEWPORT, service_workers="block")
    page = context.new_page()
    page.set_default_timeout(30_000)
    outside, console = [], []
    origin = lab.base.rstrip("/")

    # Every request must go to this server. (Not page.route: routing each of JupyterLab's requests through Python
    # is slow, and the sync API would hold them between calls.) Chromium resolves no host name but 127.0.0.1.
    page.on("request", lambda r: None if r.url.startswith((origin, "data:", "blob:", "about:"))
            else outside.append(r.url))
    page.on("console", lambda m: console.append(f"{m.type}: {m.text[:300]}") if m.type == "error" else None)
    page.on("pageerror", lambda exc: console.append(f"pageerror: {str(exc)[:300]}"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    timings: dict[str, float] = {}

    def report(msg: str) -> str:
        try:
            page.screenshot(path=str(SHOTS / "live-explorer-failed.png"))
        except Exception:  # noqa: BLE001
            pass
        try:
            state = page.evaluate(STATE_JS)
        except Exception as e:  # noqa: BLE001 - the page may be gone
            state = f"(unreadable: {e})"
        return (f"{msg}\nexplorer state: {state}\ntimings: {timings}\nscreenshot: {SHOTS / 'live-explorer-failed.png'}"
                f"\nbrowser console errors: {console[-10:]}\noutside requests: {outside[:10]}"
                f"\nserver log (tail):\n{lab.log_tail(2500)}")

    try:
        # --- open the chapter and run every cell from the Run menu
        page.goto(lab.url(f"lab/tree/{lab.notebook}"), wait_until="domcontentloaded")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=60_000)
        # the kernel is up once the toolbar's kernel status says Idle
        if not poll(page, lambda: kernel_ready(lab) and page.evaluate(KERNEL_IDLE_JS), 90, 0.5):
            pytest.fail(report(f"the notebook's kernel did not start and connect (kernels: {kernels(lab)})"),
                        pytrace=False)
        timings["lab_ready"] = time.monotonic() - t_start
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        t_run = time.monotonic()

        def explorer_drawn():
            s = page.evaluate(STATE_JS)
            if s["errors"]:
                pytest.fail(report("a chapter cell failed:\n" + "\n---\n".join(s["errors"][:3])), pytrace=False)
            if s["started"] == 0 and time.monotonic() - t_run > 30:
                pytest.fail(report("Run > Run All Cells started no cell within 30 s"), pytrace=False)
            return s if (s["loaded"] and s["running"] == 0) else None

        first = poll(page, explorer_drawn, RUN_ALL_TIMEOUT, 0.5)
        if not first:
            pytest.fail(report(f"after Run All Cells the live explorer's figure did not appear within "
                               f"{RUN_ALL_TIMEOUT} s"), pytrace=False)
        timings["run_all"] = time.monotonic() - t_run
        assert first["status"] == "", report(f"the explorer shows a status after its first draw: {first['status']!r}")
        before = poll(page, lambda: page.evaluate(DIGEST_JS), 10)
        assert before, report("could not read the explorer's PNG")

        # --- a new cell below the explorer, typed now and run while the explorer trains
        explorer_cell = page.locator(".jp-Notebook .jp-CodeCell", has=page.locator(".memlib-live-explorer"))
        explorer_cell.locator(".jp-InputPrompt").click()
        n_cells = page.evaluate(STATE_JS)["cells"]
        page.keyboard.press("Escape")
        page.keyboard.press("b")  # command mode: insert a cell below
        if not poll(page, lambda: page.evaluate(STATE_JS)["cells"] == n_cells + 1, 5):
            pytest.fail(report("could not add a cell below the explorer (key 'b' in command mode)"), pytrace=False)
        page.keyboard.press("Enter")  # edit mode
        page.keyboard.type(PROBE)
        page.keyboard.press("Escape")  # back to command mode, not run yet

        # --- move the slider one step
        sliders = page.evaluate(SLIDERS_JS)
        labels = [s["label"] for s in sliders]
        assert SLIDER in labels, report(f"the live explorer has no {SLIDER!r} slider; its sliders: {sliders}")
        i = labels.index(SLIDER)
        old_readout = sliders[i]["readout"]
        handle = page.locator(".memlib-live-explorer .widget-slider").nth(i).locator(".noUi-handle")
        handle.scroll_into_view_if_needed()
        handle.focus()
        handle.press("ArrowRight")
        t_move = time.monotonic()
        if not poll(page, lambda: page.evaluate(SLIDERS_JS)[i]["readout"] != old_readout, 5):
            pytest.fail(report(f"ArrowRight on the {SLIDER!r} slider did not move it (readout {old_readout!r})"),
                        pytrace=False)
        new_readout = page.evaluate(SLIDERS_JS)[i]["readout"]
        training = poll(page, lambda: "training" in (page.evaluate(STATE_JS)["status"] or ""), 10, 0.1)
        assert training, report(f"{SLIDER} {old_readout} -> {new_readout}: the explorer never said 'training…' "
                                "(was the setting already cached?)")
        timings["training_shown"] = time.monotonic() - t_move

        # --- while it trains, run the probe cell: the kernel must answer at once
        probe = page.locator(".jp-Notebook .jp-CodeCell", has=page.locator(".jp-InputArea-editor", has_text=PROBE))
        probe.locator(".jp-InputPrompt").click()  # select it (command mode)
        t_exec = time.monotonic()
        page.keyboard.press("Control+Enter")  # run it (and add no further cell)
        answered = poll(page, lambda: (lambda c: c if c["out"] else None)(page.evaluate(PROBE_CELL_JS, PROBE)),
                        RESPONSIVE_WITHIN, 0.1)
        timings["cell_round_trip"] = time.monotonic() - t_exec
        assert answered, report(f"while the explorer trains, `{PROBE}` got no output within {RESPONSIVE_WITHIN} s: "
                                "the kernel is blocked")
        assert answered["out"] == "42", report(f"`{PROBE}` printed {answered['out']!r}")
        assert "training" in (answered["status"] or ""), report(
            f"the cell answered in {timings['cell_round_trip']:.1f} s, but the explorer had already finished training "
            f"(status {answered['status']!r}), so this does not show the kernel answering during training")

        # --- the figure changes once the new setting is trained
        def changed():
            s = page.evaluate(STATE_JS)
            if s["status"] and "error" in s["status"]:
                pytest.fail(report(f"the explorer reported: {s['status']}"), pytrace=False)
            if "training" in (s["status"] or "") or not s["loaded"]:
                return None
            d = page.evaluate(DIGEST_JS)
            return d if d and d != before else None

        after = poll(page, changed, TRAIN_TIMEOUT, 0.5)
        timings["retrained"] = time.monotonic() - t_move
        assert after, report(f"{SLIDER} {old_readout} -> {new_readout}: the explorer's figure did not change within "
                             f"{TRAIN_TIMEOUT} s")
        final = page.evaluate(STATE_JS)
        assert final["loaded"] and final["status"] == "", report("the new figure is not shown cleanly")

        explorer_cell.evaluate("c => c.scrollIntoView({block: 'start'})")  # the explorer and the probe cell below it
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / "live-explorer.png"))
        timings["total"] = time.monotonic() - t_start
        print(f"\nlive explorer: {SLIDER} {old_readout} -> {new_readout}; png {before[:12]}… -> {after[:12]}…; "
              + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
              + f"; screenshot {SHOTS / 'live-explorer.png'}")
        assert not outside, f"the page sent requests outside the loopback server: {outside[:10]}"
    finally:
        context.close()


def open_rendered(page, lab, name: str) -> None:
    """Open a notebook in the lab; wait until MyST has rendered every Markdown cell (asynchronously, cell by cell)."""
    page.goto(lab.url(f"lab/tree/{name}"), wait_until="domcontentloaded")
    page.locator(".jp-Notebook .jp-MarkdownCell").first.wait_for(state="visible", timeout=60_000)

    def rendered():
        s = page.evaluate(MARKDOWN_JS)
        return s["cells"] and not s["unrendered"] and all(t.strip() for t in s["markdown"])

    poll(page, rendered, 30, 0.5)
    page.wait_for_timeout(1000)  # the last cells' math and roles


def shoot(page, name: str) -> Path:
    details = page.locator(".jp-Notebook .jp-MarkdownCell details")
    if details.count():
        details.last.scroll_into_view_if_needed()
    shot = SHOTS / name
    page.screenshot(path=str(shot))
    return shot


def test_lab_renders_the_chapter_markdown(browser, lab):
    phrases = solution_phrases(CHAPTER)
    assert phrases, f"{CHAPTER.name} has no Solutions dropdown to check"
    context = browser.new_context(viewport=bb.VIEWPORT, service_workers="block")
    page = context.new_page()
    page.set_default_timeout(30_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        open_rendered(page, lab, lab.notebook)
        problems = markdown_problems(page, phrases)
        shot = shoot(page, "live-markdown-failed.png" if problems else "live-markdown.png")
        assert not problems, (f"{CHAPTER.name} in JupyterLab (jupyterlab-myst):\n- " + "\n- ".join(problems)
                              + f"\nscreenshot: {shot}")
        print(f"\nlab markdown: {len(phrases)} Solutions dropdown(s) closed, then opened; no raw markup; "
              f"screenshot {shot}")
    finally:
        context.close()


def test_lab_shows_the_student_edition_without_solutions(browser, memlib_cache):
    """The same chapter from the student edition (scripts/student.py): rendered, no raw markup, no Solutions
    dropdown, and none of the solutions' text anywhere in the page (not even hidden)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import nbformat
    import student

    phrases = solution_phrases(CHAPTER)
    context = browser.new_context(viewport=bb.VIEWPORT, service_workers="block")
    page = context.new_page()
    page.set_default_timeout(30_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="live-root-") as root, \
            tempfile.TemporaryDirectory(prefix="live-cache-") as cache:
        nbformat.write(student.student_notebook(nbformat.read(CHAPTER, as_version=4), CHAPTER.name),
                       Path(root) / CHAPTER.name)
        try:
            with ll.LabServer(Path(root), Path(cache)) as lab:
                open_rendered(page, lab, CHAPTER.name)
                problems = markdown_problems(page, [])
                everywhere = page.evaluate("() => document.querySelector('.jp-Notebook').textContent")
                problems += [f"solution text in the student page: {p!r}" for p in phrases if p in everywhere]
                shot = shoot(page, "live-student-failed.png" if problems else "live-student.png")
        except ll.LabUnavailable as e:
            pytest.fail(f"JupyterLab did not start: {e}", pytrace=False)
        finally:
            context.close()
    assert not problems, f"student {CHAPTER.name} in JupyterLab:\n- " + "\n- ".join(problems) + f"\nscreenshot: {shot}"

"""The book pipeline: _config.yml, _toc.yml, references, the Makefile's book rules, scripts/build_book.py, nbval.

The fast tests check the committed configuration and the build script's logic. The tests marked
`slow` run the whole pipeline (`make html`) on tests/fixtures/demo-chapter.ipynb in a temporary build
folder: execute + build, incremental rebuild and dry runs, a failing chapter, a killed build, and nbval
catching a changed accuracy.
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
import build_book as bbk  # noqa: E402
import vendor_assets  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "demo-chapter.ipynb"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
CHAPTERS = sorted(p for p in (ROOT / "chapters").glob("*.ipynb") if not p.name.startswith((".", "_")))


def load_yaml(name):
    return yaml.safe_load((ROOT / name).read_text())


# --------------------------------------------------------------------------- committed configuration

def test_toc_is_a_valid_jupyter_book_toc():
    from sphinx_external_toc.parsing import parse_toc_yaml

    site = parse_toc_yaml(ROOT / "_toc.yml")
    assert site.root.docname == "book/intro" and site.file_format == "jb-book"
    toc = load_yaml("_toc.yml")
    assert toc["format"] == "jb-book"
    for f in bbk.toc_listed(toc):
        f = bbk._strip_suffix(f)
        if not f.startswith("chapters/"):
            exists = any((ROOT / f"{f}{s}").is_file() for s in (".md", ".ipynb"))
            assert exists, f"_toc.yml lists {f}, which does not exist"


def test_toc_and_chapters_agree():
    listed = [bbk._strip_suffix(f) for f in bbk.toc_listed(load_yaml("_toc.yml"))]
    present = [f"chapters/{p.stem}" for p in CHAPTERS]
    not_listed = [c for c in present if c not in listed]
    assert not not_listed, f"add these chapters to _toc.yml (as `- file: chapters/NN-slug`): {not_listed}"
    absent = [f for f in listed if f.startswith("chapters/") and f not in present]
    assert not absent, f"_toc.yml lists chapters that do not exist (yet): {absent}"


def test_config():
    from jupyter_book.config import validate_yaml

    cfg = load_yaml("_config.yml")
    validate_yaml(cfg, raise_on_errors=True)
    assert cfg["title"] == "Memorization, optimization and representation failure"
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert cfg["only_build_toc_files"] is True
    assert cfg["bibtex_bibfiles"] == ["book/references.bib"]
    assert {"dollarmath", "amsmath", "colon_fence", "deflist"} <= set(cfg["parse"]["myst_enable_extensions"])
    assert not cfg.get("repository", {}).get("url"), "no repository URL: an unknown host breaks the build"
    sph = cfg["sphinx"]["config"]
    assert sph["html_static_path"] == ["_vendor"], "vendored assets must not live in the book's own _static/"
    assert not re.match(r"(https?:)?//", sph["mathjax_path"])
    assert all(not re.match(r"(https?:)?//", k) for k in sph["nb_ipywidgets_js"])
    assert sph["html_theme_options"]["use_download_button"] is True
    assert "sphinx_thebe" not in sph["extensions"] and "sphinxcontrib.bibtex" in sph["extensions"]
    for launch in (cfg["launch_buttons"], sph["html_theme_options"]["launch_buttons"]):
        assert not any(v for k, v in launch.items() if k != "notebook_interface")


def test_vendored_assets_are_ready():
    problem = vendor_assets.check()
    assert problem is None, f"{problem}: run `make vendor`"
    for name in sorted(load_yaml("_config.yml")["sphinx"]["config"]["nb_ipywidgets_js"]):
        assert (vendor_assets.STATIC / name).is_file() or (ROOT / "scripts" / "assets" / name).is_file(), name


def test_every_citation_is_in_the_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", bib, re.M))
    assert {"zhang2017understanding", "arpit2017closer", "kornblith2019similarity", "ketha2025decoding",
            "he2015delving", "glorot2010understanding", "saxe2014exact", "kingma2015adam",
            "lecun1998gradient"} <= keys
    cite = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
    unknown = []
    for src in sorted((ROOT / "book").glob("*.md")) + CHAPTERS:
        text = src.read_text()
        if src.suffix == ".ipynb":
            text = "\n".join(c.source for c in nbformat.read(src, as_version=4).cells if c.cell_type == "markdown")
        for group in cite.findall(text):
            unknown += [f"{src.relative_to(ROOT)}: {k.strip()}" for k in group.split(",") if k.strip() not in keys]
    assert not unknown, "citation keys missing from book/references.bib:\n" + "\n".join(unknown)


@pytest.mark.parametrize("nb", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_has_a_mode_parameter(nb):
    bbk.check_chapter(nb)  # raises BuildError with the problem


# --------------------------------------------------------------------------- build script logic

def test_check_chapter_wants_a_parameters_cell_with_mode(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    p = tmp_path / "01-x.ipynb"
    nbformat.write(nb, p)
    with pytest.raises(bbk.BuildError, match="parameters"):
        bbk.check_chapter(p)
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, p)
    with pytest.raises(bbk.BuildError, match="mode"):
        bbk.check_chapter(p)
    nb.cells[0].source = 'mode = "standard"'
    nbformat.write(nb, p)
    bbk.check_chapter(p)
    bbk.check_chapter(FIXTURE)


def test_layout_per_mode():
    b = Path("/b")
    assert bbk.layout(b, "standard")["html"] == b / "html"
    assert bbk.layout(b, "quick")["html"] == b / "quick" / "html"
    assert bbk.layout(b, "full")["html"] == b / "full" / "html"
    assert bbk.layout(b, "quick")["exec_chapters"] == b / "executed" / "quick" / "chapters"


def sanitize(text: str) -> str:
    """What nbval does with tests/nbval_sanitize.cfg."""
    cp = configparser.ConfigParser()
    cp.read(SANITIZE)
    for section in cp.sections():
        text = re.sub(cp.get(section, "regex"), cp.get(section, "replace"), text)
    return text


def test_sanitizer_masks_timings_but_not_results():
    assert sanitize("trained in 12.31 s") == sanitize("trained in 0.9 s")
    assert sanitize("epoch 3: 35.2it/s") == sanitize("epoch 3: 9.1it/s")
    assert sanitize("took 153 ms") == sanitize("took 9 ms")
    assert sanitize("<Foo object at 0x7f3a2c1d9e50>") == sanitize("<Foo object at 0x7f00000000aa>")
    assert sanitize("100%|##| 4/4 [00:03<00:00, 1.2s/it]") == sanitize("100%|##| 4/4 [00:09<00:00, 2.2s/it]")
    for kept in ("test accuracy 0.9123", "0.17", "n_train=1000, 4 hidden layers, 203,530 parameters",
                 "3 seeds, 20 epochs", "p = 0.6 of the labels", "loss 2.3026"):
        assert sanitize(kept) == kept, kept
    assert sanitize("test accuracy 0.9123") != sanitize("test accuracy 0.9124")


# --------------------------------------------------------------------------- the whole pipeline (slow)

def make(book: dict, *args: str, **kw) -> subprocess.CompletedProcess:
    """`make html` (the book's rules, without the .venv check) on a fixture book."""
    cmd = ["make", "--no-print-directory", "-C", str(ROOT), "html", "MODE=quick", "THREADS=1", f"PY={sys.executable}",
           f"CHAPTERS={book['chapters']}", f"BUILD={book['build']}", f"TOC={book['toc']}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def fixture_toc(path: Path) -> Path:
    """The committed toc with the fixture chapter in place of the book's chapters."""
    toc = load_yaml("_toc.yml")
    toc["chapters"] = [{"file": "chapters/demo-chapter"}] + [e for e in toc["chapters"]
                                                            if not e["file"].startswith("chapters/")]
    path.write_text(yaml.safe_dump(toc, sort_keys=False))
    return path


def new_book(base: Path, notebook: Path = FIXTURE) -> dict:
    (base / "chapters").mkdir(parents=True)
    shutil.copy2(notebook, base / "chapters" / "demo-chapter.ipynb")
    return {"base": base, "chapters": base / "chapters", "build": base / "_build",
            "toc": fixture_toc(base / "_toc.yml"), "paths": bbk.layout(base / "_build", "quick")}


@pytest.fixture(scope="module")
def fixture_book(tmp_path_factory):
    """The fixture chapter built in quick mode into a temporary build folder."""
    book = new_book(tmp_path_factory.mktemp("book"))
    proc = make(book, "-j1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {**book, "out": proc.stdout}


def leftovers(book: dict) -> list[Path]:
    """Hidden files and folders in a build (temporary ones), outside the built HTML (Sphinx's .buildinfo)."""
    html = book["paths"]["html"]
    return [p for p in book["build"].rglob(".*") if p.name != ".lock" and html not in p.parents]


@pytest.mark.slow
def test_pipeline_builds_the_fixture(fixture_book):
    paths = fixture_book["paths"]
    out = fixture_book["out"]
    assert ">> demo-chapter: executing (mode=quick" in out and re.search(r"ok demo-chapter: done in [\d.]+ s", out)
    executed = nbformat.read(paths["exec_chapters"] / "demo-chapter.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'mode = "quick"' in injected[0].source
    assert "application/vnd.jupyter.widget-state+json" in executed.metadata.get("widgets", {})
    meta = executed.metadata["papermill"]
    assert meta["parameters"]["mode"] == "quick" and meta["input_path"].endswith("demo-chapter.ipynb")
    assert set(meta["parameters"]) == {"mode", "threads"} and meta["parameters"]["threads"] >= 1  # what it ran with
    timings = json.loads(paths["timings"].read_text())
    assert timings["chapters"] == {"demo-chapter": round(meta["duration"], 2)} and timings["total"] > 0
    html = paths["html"]
    page = (html / "chapters" / "demo-chapter.html").read_text()
    assert "application/vnd.jupyter.widget-view+json" in page and "_static/widgets/embed-amd.js" in page
    assert "_static/mathjax/tex-chtml.js" in page
    assert (html / "_sources" / "chapters" / "demo-chapter.ipynb").is_file(), "download button source"
    for sub in bbk.WIDGET_FONT_DIRS:
        assert list((html / "chapters" / sub).glob("*.woff2")), sub
    assert not list(paths["exec"].glob(".demo-chapter.*")), "temporary execution folder left behind"
    assert not leftovers(fixture_book)


@pytest.mark.slow
def test_pipeline_is_incremental(fixture_book, tmp_path):
    proc = make(fixture_book)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ">> demo-chapter" not in proc.stdout and "HTML up to date" in proc.stdout

    def would_execute(*args: str) -> bool:
        proc = make(fixture_book, "-n", *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return ">> demo-chapter: executing" in proc.stdout

    assert not would_execute()
    assert would_execute("-W", str(fixture_book["chapters"] / "demo-chapter.ipynb")), "the notebook changed"
    assert would_execute("MODE=standard"), "another mode has its own executed copies"
    assert would_execute("-B"), "make -B executes every chapter"
    # memlib counts by content: names and bytes of every memlib/*.py (a copy, so that the real one stays as it is)
    memlib = tmp_path / "memlib"
    shutil.copytree(ROOT / "memlib", memlib, ignore=shutil.ignore_patterns("__pycache__"))
    sum_file = fixture_book["build"] / "executed" / "memlib.sha256"
    recorded = sum_file.read_text()
    try:
        os.utime(memlib / "rng.py")
        assert not would_execute(f"MEMLIB={memlib}"), "a touched but unchanged memlib executes nothing"
        for change in (lambda: (memlib / "rng.py").write_text((memlib / "rng.py").read_text() + "\n# changed\n"),
                       lambda: (memlib / "new_module.py").write_text(""),
                       lambda: (memlib / "rng.py").rename(memlib / "rng2.py")):
            change()
            sum_file.write_text(recorded)
            os.utime(sum_file, (0, 0))
            assert would_execute(f"MEMLIB={memlib}"), "memlib changed"
    finally:
        sum_file.write_text(recorded)
        os.utime(sum_file, (0, 0))


@pytest.mark.slow
def test_pipeline_failing_chapter(fixture_book, tmp_path):
    nb = nbformat.read(FIXTURE, as_version=4)
    idx = next(i for i, c in enumerate(nb.cells) if "plt.subplots" in c.source)
    nb.cells[idx].source = "raise RuntimeError('broken on purpose')\n" + nb.cells[idx].source
    book = new_book(tmp_path)
    nbformat.write(nb, book["chapters"] / "demo-chapter.ipynb")
    shutil.rmtree(book["build"], ignore_errors=True)  # a copy: the other tests keep the fixture book as it was
    shutil.copytree(fixture_book["build"], book["build"], symlinks=True)
    paths = book["paths"]
    page = paths["html"] / "chapters" / "demo-chapter.html"
    before = page.read_bytes()
    proc = make(book, "-j1")
    err = proc.stderr
    assert proc.returncode == 2, proc.stdout + err
    assert "FAILED demo-chapter" in err
    assert f"cell {idx + 1} of {len(nb.cells)} of the chapter notebook" in err
    assert "RuntimeError: broken on purpose" in err
    assert not (paths["exec_chapters"] / "demo-chapter.ipynb").exists(), "an outdated executed copy was kept"
    assert (paths["failed"] / "demo-chapter.ipynb").is_file()
    assert page.read_bytes() == before, "the built page changed although the build failed"
    assert not list(paths["exec"].glob(".demo-chapter.*")) and not list(paths["html"].parent.glob(".html-*"))
    assert not leftovers(book)


@pytest.mark.slow
def test_killed_build_leaves_nothing_behind(tmp_path):
    book = new_book(tmp_path)
    partial = book["paths"]["exec_chapters"] / ".demo-chapter.ipynb"
    proc = subprocess.Popen(["make", "--no-print-directory", "-C", str(ROOT), "html", "MODE=quick", "THREADS=1",
                             f"PY={sys.executable}", f"CHAPTERS={book['chapters']}", f"BUILD={book['build']}",
                             f"TOC={book['toc']}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not partial.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert partial.is_file(), "papermill never started the chapter"
        time.sleep(2)  # mid-chapter
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (book["paths"]["exec_chapters"] / "demo-chapter.ipynb").exists()
    again = make(book, "-j1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert ">> demo-chapter: executing" in again.stdout
    assert (book["paths"]["html"] / "chapters" / "demo-chapter.html").is_file()
    executed = nbformat.read(book["paths"]["exec_chapters"] / "demo-chapter.ipynb", as_version=4)
    assert executed.metadata.papermill.duration > 0 and not executed.metadata.papermill.exception
    assert not leftovers(book), leftovers(book)


def _nbval(notebook: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **{v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval",
                           "--nbval-current-env", "--nbval-sanitize-with", str(SANITIZE), str(notebook)],
                          capture_output=True, text=True, env=env, cwd=str(ROOT))


@pytest.mark.slow
def test_nbval_catches_a_changed_accuracy_but_not_a_changed_timing(fixture_book, tmp_path):
    executed = fixture_book["paths"]["exec_chapters"] / "demo-chapter.ipynb"
    nb = json.loads(executed.read_text())
    cell = next(c for c in nb["cells"] if "res.final('test_acc')" in "".join(c["source"]))
    text = "".join(cell["outputs"][0]["text"])
    acc = re.match(r"(0\.\d+|1\.0)\n", text).group(1)
    assert re.search(r"trained in [\d.]+ s", text)

    def variant(name, new_text):
        cell["outputs"][0]["text"] = new_text
        path = tmp_path / name
        path.write_text(json.dumps(nb))
        return path

    timing = variant("timing.ipynb", re.sub(r"trained in [\d.]+ s", "trained in 987.65 s", text))
    changed = variant("accuracy.ipynb", text.replace(acc, f"{float(acc) + 0.01:.4f}".rstrip("0"), 1))
    r = _nbval(timing)
    assert r.returncode == 0, r.stdout[-3000:]
    r = _nbval(changed)
    assert r.returncode == 1 and "Cell outputs differ" in r.stdout, r.stdout[-3000:]

"""The book pipeline: _config.yml, _toc.yml, references, scripts/build_book.py, the nbval sanitizers.

The fast tests check the committed configuration and the build script's logic. The tests marked
`slow` run the whole pipeline on tests/fixtures/demo-chapter.ipynb in a temporary build folder:
execute + build, incremental rebuild, a failing chapter, and nbval catching a changed accuracy.
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
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
            assert any((ROOT / f"{f}{s}").is_file() for s in (".md", ".ipynb")), f"_toc.yml lists {f}, which does not exist"


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

def test_staged_toc_drops_missing_and_appends_unlisted_chapters():
    toc = {"format": "jb-book", "root": "book/intro",
           "chapters": [{"file": "chapters/01-a"}, {"file": "chapters/02-b"}, {"file": "book/references"}]}
    staged, notes = bbk.staged_toc(toc, ["chapters/01-a", "chapters/03-c"])
    assert staged["chapters"] == [{"file": "chapters/01-a"}, {"file": "chapters/03-c"}, {"file": "book/references"}]
    assert any("02-b" in n for n in notes) and any("03-c" in n for n in notes)
    assert toc["chapters"][1] == {"file": "chapters/02-b"}, "the committed toc must not change"
    staged, _ = bbk.staged_toc(toc, [])
    assert staged["chapters"] == [{"file": "book/references"}]
    only_root = {"format": "jb-book", "root": "book/intro"}
    assert bbk.staged_toc(only_root, [])[0] == only_root
    assert bbk.staged_toc(only_root, ["chapters/01-a"])[0]["chapters"] == [{"file": "chapters/01-a"}]
    parts = {"format": "jb-book", "root": "book/intro",
             "parts": [{"caption": "One", "chapters": [{"file": "chapters/01-a"}]},
                       {"caption": "Two", "chapters": [{"file": "chapters/02-b"}]}]}
    staged, _ = bbk.staged_toc(parts, ["chapters/01-a", "chapters/09-z"])
    assert staged["parts"] == [{"caption": "One", "chapters": [{"file": "chapters/01-a"}, {"file": "chapters/09-z"}]}]


def test_chapter_key_tracks_notebook_mode_and_memlib(tmp_path):
    nb = tmp_path / "x.ipynb"
    nb.write_text("{}")
    k = bbk.chapter_key(nb, "quick", "m1")
    assert k == bbk.chapter_key(nb, "quick", "m1")
    assert k != bbk.chapter_key(nb, "standard", "m1")
    assert k != bbk.chapter_key(nb, "quick", "m2")
    nb.write_text("{ }")
    assert k != bbk.chapter_key(nb, "quick", "m1")


def test_memlib_hash_covers_every_module(tmp_path):
    (tmp_path / "memlib").mkdir()
    (tmp_path / "memlib" / "a.py").write_text("x = 1\n")
    h1 = bbk.memlib_hash(tmp_path)
    (tmp_path / "memlib" / "b.py").write_text("")
    h2 = bbk.memlib_hash(tmp_path)
    (tmp_path / "memlib" / "a.py").write_text("x = 2\n")
    h3 = bbk.memlib_hash(tmp_path)
    assert len({h1, h2, h3}) == 3
    assert bbk.memlib_hash() == bbk.memlib_hash(ROOT)


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

@pytest.fixture(scope="module")
def fixture_book(tmp_path_factory):
    """The fixture chapter built in quick mode into a temporary build folder."""
    base = tmp_path_factory.mktemp("book")
    chapters = base / "chapters"
    chapters.mkdir()
    shutil.copy2(FIXTURE, chapters / FIXTURE.name)
    build = base / "_build"
    args = ["--mode", "quick", "--jobs", "1", "--threads", "1", "--chapters", str(chapters), "--build-dir", str(build)]
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_book.py"), *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"base": base, "chapters": chapters, "build": build, "args": args, "out": proc.stdout,
            "paths": bbk.layout(build, "quick")}


@pytest.mark.slow
def test_pipeline_builds_the_fixture(fixture_book):
    paths = fixture_book["paths"]
    out = fixture_book["out"]
    assert ">> demo-chapter: executing (mode=quick" in out and re.search(r"ok demo-chapter: done in [\d.]+ s", out)
    executed = nbformat.read(paths["exec_chapters"] / "demo-chapter.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'mode = "quick"' in injected[0].source
    assert "application/vnd.jupyter.widget-state+json" in executed.metadata.get("widgets", {})
    stamp = json.loads((paths["exec_chapters"] / "demo-chapter.stamp.json").read_text())
    assert stamp["mode"] == "quick" and len(stamp["memlib"]) == 64 and stamp["source"].endswith("demo-chapter.ipynb")
    timings = json.loads(paths["timings"].read_text())
    assert set(timings["chapters"]) == {"demo-chapter"} and timings["total"] > 0
    html = paths["html"]
    page = (html / "chapters" / "demo-chapter.html").read_text()
    assert "application/vnd.jupyter.widget-view+json" in page and "_static/widgets/embed-amd.js" in page
    assert "_static/mathjax/tex-chtml.js" in page
    assert (html / "_sources" / "chapters" / "demo-chapter.ipynb").is_file(), "download button source"
    for sub in bbk.WIDGET_FONT_DIRS:
        assert list((html / "chapters" / sub).glob("*.woff2")), sub
    assert not bbk.remote_refs(html)
    assert not list(paths["exec"].glob(".demo-chapter.*")), "temporary execution folder left behind"


@pytest.mark.slow
def test_pipeline_is_incremental(fixture_book, monkeypatch, capsys):
    args = fixture_book["args"]
    stamp = json.loads((fixture_book["paths"]["exec_chapters"] / "demo-chapter.stamp.json").read_text())
    # The memlib code the fixture was executed with (pinned: memlib may be edited while tests run).
    monkeypatch.setattr(bbk, "memlib_hash", lambda root=ROOT: stamp["memlib"])
    assert bbk.main(args) == 0
    out = capsys.readouterr().out
    assert "0 to execute, 1 up to date" in out and "HTML up to date" in out
    monkeypatch.setattr(bbk, "memlib_hash", lambda root=ROOT: "memlib changed")
    assert bbk.main(args + ["--dry-run"]) == 0
    assert "1 to execute" in capsys.readouterr().out


@pytest.mark.slow
def test_pipeline_failing_chapter(fixture_book, tmp_path, capsys):
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    nb = nbformat.read(FIXTURE, as_version=4)
    idx = next(i for i, c in enumerate(nb.cells) if "plt.subplots" in c.source)
    nb.cells[idx].source = "raise RuntimeError('broken on purpose')\n" + nb.cells[idx].source
    nbformat.write(nb, chapters / "demo-chapter.ipynb")
    build = tmp_path / "_build"  # a copy: the other tests keep the fixture book as it was
    shutil.copytree(fixture_book["build"], build, symlinks=True)
    paths = bbk.layout(build, "quick")
    page = paths["html"] / "chapters" / "demo-chapter.html"
    before = page.read_bytes()
    rc = bbk.main(["--mode", "quick", "--jobs", "1", "--threads", "1", "--chapters", str(chapters), "--build-dir", str(build)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "FAILED demo-chapter" in err
    assert f"cell {idx + 1} of {len(nb.cells)} of the chapter notebook" in err
    assert "RuntimeError: broken on purpose" in err
    assert not (paths["exec_chapters"] / "demo-chapter.ipynb").exists(), "an outdated executed copy was kept"
    assert not (paths["exec_chapters"] / "demo-chapter.stamp.json").exists()
    assert (paths["failed"] / "demo-chapter.ipynb").is_file()
    assert page.read_bytes() == before, "the built page changed although the build failed"
    assert not list(paths["exec"].glob(".demo-chapter.*")) and not list(paths["html"].parent.glob(".html-*"))


def _nbval(notebook: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **{v: "1" for v in bbk.THREAD_VARS}}
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

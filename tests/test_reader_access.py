"""What readers outside the author's browser need (issue 13): figures that say what they show (alt text),
explorers whose setting travels in a link, code that fits the page, and the install cell for Colab.

The built pages themselves are checked in tests/test_browser.py (every <img> has an alt, nothing needs a
horizontal scroll, a link with #NN-control=value shows that image); these are the fast checks on the sources.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]-*.ipynb"))
# What the theme's code block shows at 1280 px: 652 px of text width at 8.43 px per character (measured in
# Chromium on the built book: div.highlight pre is 684 px wide with 16 px padding, 14 px monospace).
CODE_LINE_LIMIT = 77


def _cells(nb_path: Path) -> list[dict]:
    return json.loads(nb_path.read_text(encoding="utf-8"))["cells"]


# --------------------------------------------------------------------------- alt text


def test_alt_text_names_title_axes_legend_and_scale():
    from memlib import plots as P

    fig, (ax, ax2) = P.figure(ncols=2)
    ax.plot([0, 1, 2], [0.1, 0.5, 0.9], label="0% noise")
    ax.plot([0, 1, 2], [0.1, 0.4, 0.6], label="40% noise")
    ax.legend()
    ax.set(title="Training labels as given (1 seed)", xlabel="epoch", ylabel="training accuracy")
    ax2.plot([1, 2], [1, 100])
    ax2.set(xlabel="layer", ylabel="gradient norm (L2)", yscale="log")
    alt = P.alt_text(fig)
    for part in ("2 panels", "Training labels as given (1 seed)", "x axis: epoch", "y axis: training accuracy",
                 "0% noise", "40% noise", "x axis: layer", "gradient norm (L2) (log scale)"):
        assert part in alt, (part, alt)


def test_book_figure_brings_its_alt_in_the_output_metadata():
    from memlib import plots as P

    fig, (ax,) = P.figure()
    ax.plot([0, 1], [0, 1], label="depth 4")
    ax.set(title="A title", xlabel="epoch", ylabel="loss")
    data, meta = fig._repr_mimebundle_()
    assert data["image/png"] and meta["image/png"]["alt"] == P.alt_text(fig)
    assert "depth 4" in meta["image/png"]["alt"]


def test_sphinx_alt_maps_each_png_to_its_alt():
    import base64
    import hashlib

    from memlib.sphinx_alt import notebook_alts

    png = b"\x89PNG fake bytes"
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {"image/png": base64.b64encode(png).decode()},
         "metadata": {"image/png": {"alt": "Figure: a plot."}}},
        {"output_type": "stream", "text": "x"}]}]}
    assert notebook_alts(nb) == {hashlib.sha256(png).hexdigest(): "Figure: a plot."}


def test_the_book_loads_the_extension_and_the_static_files():
    import yaml

    sph = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert "memlib.sphinx_alt" in sph["extensions"]
    for name in [*sph["html_js_files"], *sph["html_css_files"]]:
        assert (ROOT / "scripts" / "assets" / name).is_file(), name  # staged into _vendor/, not the book's _static/


# --------------------------------------------------------------------------- static explorer metadata


def test_static_explorer_carries_key_values_and_alts():
    pytest.importorskip("ipywidgets")
    import html

    import ipywidgets as W

    from memlib.widgets import static_explorer

    def draw(axes, v):
        axes[0].plot([0, 1], [0, v], label=f"slope {v}")
        axes[0].set(title="lines", xlabel="x", ylabel="y")
        axes[0].legend()

    grid = {(n, d): n + d for n in (0.0, 0.4) for d in (2, 4, 8)}
    box = static_explorer(grid, {"noise": [0.0, 0.4], "depth": [2, 4, 8]}, draw, key="06")
    info = [w for w in box.children if isinstance(w, W.HTML)][0]
    meta = json.loads(html.unescape(re.search(r'data-meta="([^"]*)"', info.value).group(1)))
    assert meta["key"] == "06"
    assert meta["controls"] == [{"name": "noise", "values": ["0", "0.4"], "labels": ["0%", "40%"]},
                                {"name": "depth", "values": ["2", "4", "8"], "labels": ["2", "4", "8"]}]
    assert len(meta["alts"]) == 6 and "Setting: noise 40%, depth 8." in meta["alts"][5]
    assert "slope 8.4" in meta["alts"][5] and "x axis: x" in meta["alts"][0]
    stack = box.children[1]
    classes = [img._dom_classes for inner in stack.children for img in inner.children]
    assert classes == [(f"memlib-grid-{k}",) for k in range(6)]
    with pytest.raises(ValueError, match="key"):
        static_explorer({(1,): 1}, {"depth": [1]}, draw, key="06&x=1")


def test_every_chapter_explorer_has_its_chapter_key():
    for nb in CHAPTERS:
        for c in _cells(nb):
            src = "".join(c["source"])
            if (c["cell_type"] == "code" and "static_explorer(" in src
                    and "import" not in src.split("static_explorer(")[-1]):
                assert f'key="{nb.name[:2]}"' in src, f"{nb.name}: static_explorer(..., key=\"{nb.name[:2]}\")"


# --------------------------------------------------------------------------- code that fits the page


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_code_lines_fit_the_page(nb):
    long = [(i, len(line), line) for i, c in enumerate(_cells(nb)) if c["cell_type"] == "code"
            and "remove-input" not in c["metadata"].get("tags", [])
            and "remove-cell" not in c["metadata"].get("tags", [])
            for line in "".join(c["source"]).splitlines() if len(line) > CODE_LINE_LIMIT]
    assert not long, (f"{nb.name}: code lines longer than {CODE_LINE_LIMIT} characters (the page's code width at "
                      "1280 px) scroll sideways:\n" + "\n".join(f"  cell {i}: {n} chars: {t}" for i, n, t in long))


# --------------------------------------------------------------------------- the install cell


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_install_cell_follows_the_parameters_cell(nb):
    from memlib.colab import INSTALL_TAGS, configured_repo_url, install_cell

    cells = _cells(nb)
    p = next(i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    cell = cells[p + 1]
    assert cell["cell_type"] == "code" and cell["metadata"].get("tags") == INSTALL_TAGS, \
        f"{nb.name}: run `python -m memlib.colab chapters/*.ipynb`"
    assert "".join(cell["source"]) == install_cell(configured_repo_url()), \
        f"{nb.name}: the install cell is out of date: run `python -m memlib.colab chapters/*.ipynb`"
    assert not cell["outputs"]
    first_import = next(i for i, c in enumerate(cells) if c["cell_type"] == "code" and "memlib" in "".join(c["source"])
                        and "import" in "".join(c["source"]) and i != p + 1)
    assert first_import > p + 1, f"{nb.name}: memlib is imported before the install cell"


def test_install_cell_of_a_chapter_prints_nothing_inside_the_repository(monkeypatch):
    """nbval compares the cell's output with the stored (empty) one: inside the repository it must stay empty."""
    import subprocess

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    cells = _cells(CHAPTERS[0])
    src = next("".join(c["source"]) for c in cells if "memlib-install" in c["metadata"].get("tags", []))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        exec(compile(src, "<install cell>", "exec"), {})  # noqa: S102 - the chapter's own cell
    assert out.getvalue() == "" and calls == []


def test_placeholder_url_stops_with_a_message_where_it_would_install(monkeypatch, tmp_path):
    import importlib.util
    import subprocess

    from memlib import colab

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip must not run with the placeholder"))
    with pytest.raises(SystemExit, match="placeholder"):
        exec(compile(colab.install_cell(colab.PLACEHOLDER_URL), "<install cell>", "exec"), {})  # noqa: S102


def test_add_install_cell_is_idempotent_and_updates():
    from memlib.colab import add_install_cell, install_cell

    nb = {"nbformat": 4, "nbformat_minor": 5, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# T"]},
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ["mode = 'standard'"], "outputs": []},
        {"cell_type": "code", "metadata": {}, "source": ["import memlib"], "outputs": []}]}
    assert add_install_cell(nb, "https://github.com/a/b") is True
    assert add_install_cell(nb, "https://github.com/a/b") is False
    assert add_install_cell(nb, "https://github.com/c/d") is True
    assert len(nb["cells"]) == 4 and "".join(nb["cells"][2]["source"]) == install_cell("https://github.com/c/d")

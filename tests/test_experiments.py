"""memlib.experiments: the registry knows exactly the runs each chapter trained before it existed, in every mode, and
the chapters ask it for their runs instead of building configs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from memlib import experiments as E
from memlib.modes import MODES

ROOT = Path(__file__).resolve().parent.parent
RECORDED = json.loads((ROOT / "tests" / "fixtures" / "experiment-runs.json").read_text())
CASES = [(m, c) for m in MODES for c in sorted(RECORDED.get(m, {}))]


def test_every_chapter_and_mode_was_recorded():
    assert all(set(RECORDED[m]) == set(E.CHAPTERS) for m in MODES)


@pytest.mark.parametrize("mode, name", CASES)
def test_registry_lists_exactly_what_the_chapter_trained(mode, name):
    got = RECORDED[mode][name]
    assert sorted(c.key() for c in E.configs(name, mode)) == got["runs"]
    assert sorted(r.source.key() for r in E.relabeled(name, mode)) == got["relabeled"]


def test_plan_holds_each_run_once_and_every_chapters_runs():
    for mode in MODES:
        cfgs, again = E.plan(mode)
        keys = [c.key() for c in cfgs]
        assert len(keys) == len(set(keys))
        assert {c.key() for n in E.CHAPTERS for c in E.configs(n, mode)} | {r.source.key() for r in again} == set(keys)


def test_grid_is_the_experiment_at_every_seed():
    g = E.grid("09-width", "standard", "width")
    assert list(g) == [64, 128, 256, 512]
    assert all([c.seed for c in cfgs] == [0, 1, 2, 3, 4] and {c.width for c in cfgs} == {w} for w, cfgs in g.items())


@pytest.mark.parametrize("call", [lambda: E.base("12-nope", "quick"), lambda: E.grid("03-depth", "quick", "width"),
                                  lambda: E.base("03-depth", "huge")])
def test_unknown_names_are_refused(call):
    with pytest.raises(ValueError, match="is not allowed"):
        call()


# What a chapter cell may no longer do: build a config or train one outside the registry.
FORBIDDEN = re.compile(r"\b(base_config|masc_config|explorer_config|masc_explorer_config|seeds_of|run_many)\b|"
                       r"\bsweep\(|dataclasses\.replace|\brun\(\s*base")


@pytest.mark.parametrize("nb", sorted((ROOT / "chapters").glob("*.ipynb")), ids=lambda p: p.stem)
def test_chapters_ask_the_registry_by_their_own_name(nb):
    cells = ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    code = "\n".join(cells)
    assert not FORBIDDEN.search(code.replace("E.sweep(", "")), FORBIDDEN.search(code.replace("E.sweep(", ""))
    names = set(re.findall(r"E\.\w+\(\s*\"([^\"]+)\"", code))
    assert names == {nb.stem}

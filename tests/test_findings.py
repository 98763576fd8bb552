"""book/findings.yml and its loader memlib.findings: the file agrees with the book, a malformed one is refused."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from memlib import findings
from memlib.verdicts import OUTCOMES

ROOT = Path(__file__).resolve().parent.parent
RAW = yaml.safe_load(findings.PATH.read_text())


def toc_chapters() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [e["file"] for e in toc["chapters"]]
    return [f.removeprefix("chapters/") for f in files if f.startswith("chapters/")]


def test_the_file_loads_with_every_section():
    f = findings.load()
    assert [c.key for c in f.key_findings] == [f"Finding {i}" for i in range(1, 6)]
    assert len(f.day_claims) == len(RAW["day_claims"]) and len(f.sessions) == len(RAW["sessions"])
    assert all(outcome in OUTCOMES for outcome, _ in f.first_edition.values())
    assert f.tests("02-gradient-dynamics") == ["Day 4", "Day 5"], "a chapter lists every claim it tests, in order"


def test_every_chapter_in_the_toc_has_an_entry_and_every_entry_a_chapter():
    f = findings.load()
    toc = toc_chapters()
    assert toc, "no chapters in _toc.yml"
    assert set(toc) - set(f.chapters()) == set(), "a chapter in _toc.yml that book/findings.yml does not name"
    assert set(f.chapters()) - set(toc) == set(), "an entry in book/findings.yml for a chapter not in _toc.yml"
    taught = [c for s in f.sessions for c in s.chapters]
    assert sorted(taught) == sorted(toc), "every chapter in exactly one session"
    assert set(f.first_edition) <= set(toc)
    assert {p.stem for p in (ROOT / "chapters").glob("*.ipynb")} == set(toc)


def _broken(edit) -> dict:
    data = copy.deepcopy(RAW)
    edit(data)
    return data


def _set(path, value):
    def edit(data):
        *head, last = path
        target = data
        for k in head:
            target = target[k]
        target[last] = value
    return edit


def _claim_of(slug, chapters):
    """Set the chapters of the day claim that names slug (wherever a later chapter's claim puts it)."""
    def edit(data):
        next(c for c in data["day_claims"] if slug in c["chapters"])["chapters"] = chapters
    return edit


@pytest.mark.parametrize("edit, message", [
    (_set(("day_claims", 3, "chapters"), ["4-init"]),
     "day_claims[3] ('Day 6') chapters: '4-init' is not a chapter slug (NN-name"),
    (_set(("key_findings", 1, "label"), ""), "key_findings[1] ('Finding 2') label: '' is not allowed"),
    (lambda d: d["key_findings"][0].pop("chapters"), "key_findings[0] ('Finding 1'): has ['key', 'label']; an entry "
                                                     "has exactly the fields key, label, chapters"),
    (_set(("sessions", 1, "chapters"), ["03-depth", "04-initialization", "05-optimizers", "06-memorization"]),
     "sessions[1] ('Session 2: keeping gradients alive, then breaking the labels') chapters: '03-depth' is already "
     "in sessions[0]"),
    (_set(("sessions", 3, "chapters"), ["10-dataset-shift"]), "chapter '11-masc' has no session"),
    (_claim_of("11-masc", ["10-dataset-shift"]), "chapter '11-masc' has no claim (name it"),
    (_set(("first_edition", "03-depth", "outcome"), "proved"),
     "first_edition['03-depth'] outcome: 'proved' is not allowed; one of " + ", ".join(OUTCOMES)),
    (_set(("first_edition", "03-depth", "held"), "half"), "first_edition['03-depth'] held: 'half' is not allowed"),
    (_set(("first_edition", "99-unnamed"), {"outcome": "supported", "held": "1/1"}),
     "first_edition['99-unnamed']: no claim or session names this chapter"),
    (_set(("day_claims", 1, "key"), "Day 3"), "claim key 'Day 3' appears twice"),
    (_set(("chapters",), {}), "has sections ['chapters', 'day_claims',"),
    (lambda d: d.pop("sessions"), "exactly key_findings, day_claims, sessions, first_edition are allowed"),
    (_set(("day_claims",), []), "day_claims: [] is not allowed; a non-empty list of claims is"),
])
def test_a_malformed_file_is_refused_naming_the_entry(edit, message, tmp_path):
    path = tmp_path / "findings.yml"
    path.write_text(yaml.safe_dump(_broken(edit), sort_keys=False))
    with pytest.raises(findings.FindingsError) as e:
        findings.load(path)
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{path}: "), text
    assert message in text, text


def test_the_unchanged_file_is_accepted_from_anywhere(tmp_path):
    path = tmp_path / "findings.yml"
    path.write_text(yaml.safe_dump(RAW, sort_keys=False))
    assert findings.load(path) == findings.load()


def test_bad_yaml_and_a_missing_file_are_refused_in_one_line(tmp_path):
    path = tmp_path / "findings.yml"
    path.write_text("key_findings:\n  - {key: Finding 1, label: [unclosed\n")
    with pytest.raises(findings.FindingsError, match=r"findings\.yml: not valid YAML at line \d+ \(") as e:
        findings.load(path)
    assert "\n" not in str(e.value)
    with pytest.raises(findings.FindingsError, match="nowhere.yml: cannot be read"):
        findings.load(tmp_path / "nowhere.yml")

"""The chapters' MyST roles resolve: every {term} names a glossary entry, every bibliography key is defined once.

tests/test_book.py checks the {cite} keys of the chapters and pages, and tests/test_book_pages.py the {term} roles of
the hand-written pages; this file covers the {term} roles inside the chapter notebooks' markdown cells.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p for p in (ROOT / "chapters").glob("*.ipynb") if not p.name.startswith((".", "_")))
TERM = re.compile(r"\{term\}`([^`]+)`")


def glossary_terms() -> set[str]:
    """The terms book/glossary.md defines (each entry's unindented lines), lower-cased."""
    text = (ROOT / "book" / "glossary.md").read_text()
    body = text.split("```{glossary}")[1].split("\n```")[0]
    return {line.strip().lower() for line in body.splitlines() if line and not line.startswith(" ")}


def term_target(ref: str) -> str:
    """The glossary term a {term} role points at: the part in <...> when given, else the text itself."""
    m = re.search(r"<([^>]+)>\s*$", ref)
    return " ".join((m.group(1) if m else ref).split()).lower()  # a role may wrap over a line break


def markdown_of(nb_path: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(nb_path, as_version=4).cells if c.cell_type == "markdown")


def test_term_targets_are_parsed():
    assert term_target("Depth <depth>") == "depth"
    assert term_target("Minimum Angle\nSubspace Classifier (MASC) <MASC>") == "masc"
    assert term_target("linear  CKA") == "linear cka"


def test_every_term_role_in_the_chapters_is_in_the_glossary():
    terms = glossary_terms()
    assert CHAPTERS
    unknown = [f"{nb.name}: {ref!r}" for nb in CHAPTERS for ref in TERM.findall(markdown_of(nb))
               if term_target(ref) not in terms]
    assert not unknown, "{term} roles without a glossary entry in book/glossary.md:\n" + "\n".join(unknown)


def test_glossary_entries_are_defined_once():
    text = (ROOT / "book" / "glossary.md").read_text()
    body = text.split("```{glossary}")[1].split("\n```")[0]
    names = [line.strip().lower() for line in body.splitlines() if line and not line.startswith(" ")]
    assert not [n for n, k in Counter(names).items() if k > 1]


def test_every_bibliography_key_is_defined_once():
    keys = re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "book" / "references.bib").read_text(), re.M)
    assert not [k for k, n in Counter(keys).items() if n > 1]

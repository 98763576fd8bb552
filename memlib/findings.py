"""The study's claims, the chapters whose verdicts test them, and the course sessions, read from book/findings.yml."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .verdicts import OUTCOMES

PATH = Path(__file__).resolve().parent.parent / "book" / "findings.yml"
SECTIONS = ("key_findings", "day_claims", "sessions", "first_edition")
_SLUG = re.compile(r"\d{2}-[a-z0-9]+(?:-[a-z0-9]+)*")
_HELD = re.compile(r"\d+/\d+")


class FindingsError(ValueError):
    """A malformed findings file; the message names the file, the entry and what is allowed."""


@dataclass(frozen=True)
class Claim:
    """One claim of the study (key: its source, label: the claim in a few words) and the chapters that test it."""

    key: str
    label: str
    chapters: tuple[str, ...]


@dataclass(frozen=True)
class Session:
    """One session of the course: its title, its chapters in teaching order, and its focus."""

    title: str
    chapters: tuple[str, ...]
    focus: str


@dataclass(frozen=True)
class Findings:
    """The whole file: the key findings, each day's claim, the sessions, and the first edition's outcomes."""

    key_findings: tuple[Claim, ...]
    day_claims: tuple[Claim, ...]
    sessions: tuple[Session, ...]
    first_edition: dict[str, tuple[str, str]]  # slug -> (outcome, checks held, e.g. "3/9")

    @property
    def claims(self) -> tuple[Claim, ...]:
        """The key findings, then the day claims."""
        return self.key_findings + self.day_claims

    def chapters(self) -> list[str]:
        """Every chapter that a claim or a session names, sorted."""
        return sorted({s for c in self.claims for s in c.chapters} | {s for x in self.sessions for s in x.chapters})

    def tests(self, slug: str) -> list[str]:
        """The keys of the claims that the chapter's verdict tests, in the file's order."""
        return [c.key for c in self.claims if slug in c.chapters]


def _fields(where: str, entry, names: tuple[str, ...]) -> dict:
    if not isinstance(entry, dict) or set(entry) != set(names):
        got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise FindingsError(f"{where}: has {got}; an entry has exactly the fields {', '.join(names)}")
    return entry


def _text(where: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FindingsError(f"{where}: {value!r} is not allowed; a non-empty string is")
    return value


def _slugs(where: str, value) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise FindingsError(f"{where}: {value!r} is not allowed; a non-empty list of chapter slugs is")
    for s in value:
        if not isinstance(s, str) or not _SLUG.fullmatch(s):
            raise FindingsError(f"{where}: {s!r} is not a chapter slug (NN-name, as in chapters/NN-name.ipynb)")
    return tuple(value)


def _claims(name: str, entries) -> tuple[Claim, ...]:
    if not isinstance(entries, list) or not entries:
        raise FindingsError(f"{name}: {entries!r} is not allowed; a non-empty list of claims is")
    out = []
    for i, e in enumerate(entries):
        where = f"{name}[{i}]" + (f" ({e['key']!r})" if isinstance(e, dict) and "key" in e else "")
        e = _fields(where, e, ("key", "label", "chapters"))
        out.append(Claim(_text(f"{where} key", e["key"]), _text(f"{where} label", e["label"]),
                         _slugs(f"{where} chapters", e["chapters"])))
    return tuple(out)


def _sessions(entries) -> tuple[Session, ...]:
    if not isinstance(entries, list) or not entries:
        raise FindingsError(f"sessions: {entries!r} is not allowed; a non-empty list of sessions is")
    out, seen = [], {}
    for i, e in enumerate(entries):
        where = f"sessions[{i}]" + (f" ({e['title']!r})" if isinstance(e, dict) and "title" in e else "")
        e = _fields(where, e, ("title", "chapters", "focus"))
        s = Session(_text(f"{where} title", e["title"]), _slugs(f"{where} chapters", e["chapters"]),
                    _text(f"{where} focus", e["focus"]))
        for slug in s.chapters:
            if slug in seen:
                raise FindingsError(f"{where} chapters: {slug!r} is already in {seen[slug]}; a chapter has one session")
            seen[slug] = where
        out.append(s)
    return tuple(out)


def _first_edition(entries) -> dict[str, tuple[str, str]]:
    if not isinstance(entries, dict):
        raise FindingsError(f"first_edition: {entries!r} is not allowed; a mapping of chapter slugs is")
    out = {}
    for slug, e in entries.items():
        where = f"first_edition[{slug!r}]"
        _slugs(where, [slug])
        e = _fields(where, e, ("outcome", "held"))
        if e["outcome"] not in OUTCOMES:
            raise FindingsError(f"{where} outcome: {e['outcome']!r} is not allowed; one of {', '.join(OUTCOMES)}")
        if not isinstance(e["held"], str) or not _HELD.fullmatch(e["held"]):
            raise FindingsError(f"{where} held: {e['held']!r} is not allowed; checks held as 'k/n', e.g. '3/9'")
        out[slug] = (e["outcome"], e["held"])
    return out


def parse(data, source: str = "findings") -> Findings:
    """Findings from the parsed YAML document; FindingsError (prefixed by source) names the first bad entry."""
    try:
        if not isinstance(data, dict) or set(data) != set(SECTIONS):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise FindingsError(f"has sections {got}; exactly {', '.join(SECTIONS)} are allowed")
        f = Findings(_claims("key_findings", data["key_findings"]), _claims("day_claims", data["day_claims"]),
                     _sessions(data["sessions"]), _first_edition(data["first_edition"]))
        keys = [c.key for c in f.claims]
        dup = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
        if dup is not None:
            raise FindingsError(f"claim key {dup!r} appears twice; each claim has its own key")
        tested, taught = {s for c in f.claims for s in c.chapters}, {s for x in f.sessions for s in x.chapters}
        for slug in sorted(tested ^ taught):
            side = "no session (add it to one of sessions)" if slug in tested else "no claim (name it in a claim)"
            raise FindingsError(f"chapter {slug!r} has {side}")
        for slug in f.first_edition:
            if slug not in tested:
                raise FindingsError(f"first_edition[{slug!r}]: no claim or session names this chapter")
    except FindingsError as e:
        raise FindingsError(f"{source}: {e}") from None
    return f


@cache
def load(path: Path = PATH) -> Findings:
    """The findings file, checked (cached per path); FindingsError names the file and the bad entry."""
    import yaml  # lazily: only the book's page generators and tests read the file

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise FindingsError(f"{path}: cannot be read ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise FindingsError(f"{path}: not valid YAML{at} ({getattr(e, 'problem', None) or e})") from None
    return parse(data, str(path))

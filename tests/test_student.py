"""The student edition (scripts/student.py, `make student`): solutions removed, outputs cleared, the rest intact.

The execution test runs two student notebooks, not eleven: 03-depth and 10-dataset-shift are among the
quickest chapters in quick mode (seconds each on a laptop CPU), and they cover both halves of the book
(gradient statistics, label noise with the rotated test set), a live explorer each and the parameters
cell. The other chapters are executed, from the same source cells, by the quick book build and
nbval in `make test`; what the student edition changes (markdown and outputs only) is checked for
every chapter by the fast tests above it.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent

import book_pages as bp  # noqa: E402
import student  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
QUICK = ["03-depth", "10-dataset-shift"]


def norm(text: str) -> str:
    return " ".join(text.split())


def pieces(body: str) -> list[str]:
    """The paragraphs and list items of a solutions block, markup trimmed, each long enough to be telling."""
    parts = re.split(r"\n\s*\n|\n(?=\s*(?:\d+\.|[-*])\s)", body)
    out = []
    for p in parts:
        p = re.sub(r"^\s*(?:\d+\.|[-*])\s+", "", p.strip())
        p = p.replace(":class: dropdown", "").strip()
        if len(norm(p)) >= 20:
            out.append(norm(p))
    return out


def all_text(nb) -> str:
    return norm("\n".join(c.source for c in nb.cells))


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    base = tmp_path_factory.mktemp("student")
    out, zp = base / "student", base / "student.zip"
    written = student.build(ROOT / "chapters", out, zp)
    return {"out": out, "zip": zp, "written": written, "base": base}


def test_every_chapter_has_a_solutions_block_the_script_recognizes():
    assert CHAPTERS
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        blocks = [b for c in nb.cells if c.cell_type == "markdown" for b in student.solution_blocks(c.source)]
        assert blocks, f"{path.name}: no Solutions block found"
        assert all(pieces(b) for b in blocks), path.name


def test_no_solution_text_survives(edition):
    assert sorted(p.name for p in edition["written"]) == [p.name for p in CHAPTERS]
    for path in CHAPTERS:
        src = nbformat.read(path, as_version=4)
        stu = nbformat.read(edition["out"] / path.name, as_version=4)
        text = all_text(stu)
        for cell in src.cells:
            if cell.cell_type != "markdown":
                continue
            for body in student.solution_blocks(cell.source):
                for piece in pieces(body):
                    assert piece not in text, f"{path.name}: solution text survives: {piece[:80]}"
        assert not student.LEFTOVER.search(text) and "Solutions" not in text, path.name


def test_outputs_cleared_and_everything_else_kept(edition):
    for path in CHAPTERS:
        src = nbformat.read(path, as_version=4)
        stu = nbformat.read(edition["out"] / path.name, as_version=4)
        nbformat.validate(stu)
        code = [c for c in stu.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), path.name
        assert "widgets" not in stu.metadata and "papermill" not in stu.metadata
        # every code cell is kept, in order and unchanged: the parameters cell and the explorers included
        assert [c.source for c in code] == [c.source for c in src.cells if c.cell_type == "code"], path.name
        params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and re.search(r"^\s*mode\s*=", params[0].source, re.M), path.name
        assert any("explorer" in c.source for c in code), f"{path.name}: the explorers stay"
        text = all_text(stu)
        assert "Exercises" in text and "Open question" in text, f"{path.name}: the exercises stay"
        # markdown outside the solutions is unchanged
        src_md = [norm(student.strip_solutions(c.source)) for c in src.cells if c.cell_type == "markdown"]
        assert [norm(c.source) for c in stu.cells if c.cell_type == "markdown"] == [s for s in src_md if s]


def test_zip_holds_the_folder_and_is_reproducible(edition, tmp_path):
    with zipfile.ZipFile(edition["zip"]) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert {f"{student.TOP}/{p.name}" for p in CHAPTERS} | {f"{student.TOP}/README.md"} == set(names)
        for p in CHAPTERS:
            assert zf.read(f"{student.TOP}/{p.name}") == (edition["out"] / p.name).read_bytes()
    again = student.write_zip(edition["out"], tmp_path / "again.zip")
    assert again.read_bytes() == edition["zip"].read_bytes(), "same chapters, same bytes (the book is not rebuilt)"


def test_a_failed_build_leaves_the_old_edition_and_no_temporary_files(edition, tmp_path, monkeypatch):
    out, zp = tmp_path / "student", tmp_path / "student.zip"
    student.build(ROOT / "chapters", out, zp)
    before = {p.name: p.read_bytes() for p in out.iterdir()}, zp.read_bytes()
    real_write, calls = nbformat.write, []

    def failing_write(nb, fp, *a, **k):
        calls.append(fp)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return real_write(nb, fp, *a, **k)

    monkeypatch.setattr(student.nbformat, "write", failing_write)
    with pytest.raises(OSError, match="simulated"):
        student.build(ROOT / "chapters", out, zp)
    assert ({p.name: p.read_bytes() for p in out.iterdir()}, zp.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student", "student.zip"], "no temporary leftovers"


def test_unclosed_solutions_block_is_refused():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "## Exercises\n\n1. Why?\n\n````{admonition} Solutions\n:class: dropdown\n\n1. Because.\n```")])
    with pytest.raises(student.StudentError):
        student.student_notebook(nb, "broken.ipynb")
    only = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        ":::{dropdown} Solution\nThe answer.\n:::\n"), nbformat.v4.new_code_cell("x = 1")])
    assert [c.cell_type for c in student.student_notebook(only).cells] == ["code"], "a solutions-only cell goes"


def test_make_student_target():
    make = (ROOT / "Makefile").read_text()
    m = re.search(r"^student: (.+)\n\t(.+)$", make, re.M)
    assert m and "$(STAMP)" in m.group(1) and "scripts/student.py" in m.group(2)


def test_instructors_page_offers_the_zip_the_build_stages(tmp_path):
    page = (ROOT / "book" / "instructors.md").read_text()
    target = bp.STUDENT_ZIP.removeprefix("book/")
    assert f"<{target}>`" in page and "{download}" in page
    path = bp.student_zip(tmp_path)
    assert path == tmp_path / bp.STUDENT_ZIP
    with zipfile.ZipFile(path) as zf:
        assert f"{student.TOP}/03-depth.ipynb" in zf.namelist()


@pytest.mark.slow
@pytest.mark.parametrize("slug", QUICK)
def test_student_notebook_executes_in_quick_mode(edition, slug, tmp_path):
    import papermill as pm

    out = tmp_path / f"{slug}.ipynb"
    pm.execute_notebook(str(edition["out"] / f"{slug}.ipynb"), str(out), parameters={"mode": "quick"},
                        kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert not errors
    assert any(c.outputs for c in nb.cells if c.cell_type == "code"), "it ran and drew something"

"""Does the verdict survive scale? The evidence map's standard-vs-full table, the synthesis fragment of the claims
whose outcome changes, and the reproducibility page's count of how each mode's runs were trained, on fake builds."""
from __future__ import annotations

import json
import re

import book_pages as bp
import pytest
from test_book_pages import verdict, write_chapter

CHANGED, SAME, ONLY_STANDARD, MASC = "06-memorization", "09-width", "07-representation-drift", "11-masc"


def checked(slug, outcome, effects, mode, **extra):
    """A verdict with its 'checks' (label, effects, mean, sd, holds) as memlib.verdicts.Check.to_dict gives them."""
    checks = []
    for i, e in enumerate(effects, start=1):
        mean = sum(e) / len(e)
        sd = (sum((x - mean) ** 2 for x in e) / (len(e) - 1)) ** 0.5 if len(e) > 1 else 0.0
        checks.append({"label": f"effect {i} of {slug}", "effects": e, "kind": "greater", "mean": mean, "sd": sd,
                       "holds": all(x > 0 for x in e) and (len(e) == 1 or mean > sd)})
    v = verdict(slug, outcome, [c["holds"] for c in checks], {c["label"]: f"{c['mean']:+.3f}" for c in checks},
                mode=mode)
    return {**v, "checks": checks, **extra}


@pytest.fixture
def builds(tmp_path):
    """A standard build (chapters 6, 7, 9, 11) and a full one (6, 9, 11): chapter 6 changes, 9 and 11 do not."""
    build_dir = tmp_path / "_build"
    std, full = (build_dir / "executed" / m / "chapters" for m in ("standard", "full"))
    std.mkdir(parents=True)
    full.mkdir(parents=True)
    write_chapter(std, CHANGED, checked(CHANGED, "supported", [[0.2, 0.3, 0.25], [0.5, 0.6, 0.55]], "standard"))
    write_chapter(full, CHANGED, checked(CHANGED, "partly supported", [[0.2, 0.3, 0.25], [-0.1, 0.05, -0.02]],
                                         "full"))
    write_chapter(std, SAME, checked(SAME, "supported", [[0.1, 0.2, 0.15]], "standard"))
    write_chapter(full, SAME, checked(SAME, "supported", [[0.3, 0.4, 0.35]], "full"))
    write_chapter(std, ONLY_STANDARD, checked(ONLY_STANDARD, "not supported at this scale", [[-0.1, -0.2, -0.1]],
                                              "standard"))
    write_chapter(std, MASC, checked(MASC, "partly supported", [[0.1, 0.2, 0.1], [-0.1, -0.2, -0.1]], "standard"))
    write_chapter(full, MASC, checked(MASC, "partly supported", [[0.3], [-0.1]], "full", scope="p = 0.6, seed 0 only"))
    return build_dir


def pages(build_dir, mode):
    """(evidence map, synthesis fragment) generated for a build of mode under build_dir."""
    exe = build_dir / "executed" / mode / "chapters"
    found = bp.read_chapters(exe, None)
    scale = bp.scale_builds(build_dir, mode, found)
    return bp.evidence_map(found, mode, scale), bp.scale_changes(found, scale)


def scale_rows(text: str) -> dict[str, str]:
    """The evidence map's scale table: {claim key + chapter number: row}."""
    table = text.split("## Does the verdict survive scale?")[1].split("\n## ")[0]
    rows = {}
    for line in table.splitlines():
        m = re.match(r"\| ([^|]+) \| [^|]*Chapter\u00a0(\d+)", line)
        if m:
            rows[f"{m.group(1)} / {m.group(2)}"] = line
    return rows


@pytest.mark.parametrize("mode", ["standard", "full", "quick"])
def test_the_map_sets_both_outcomes_side_by_side_whichever_mode_is_built(builds, mode):
    text, _ = pages(builds, mode)
    rows = scale_rows(text)
    n_rows = sum(len(f.chapters) for f in bp.KEY_FINDINGS + bp.DAY_CLAIMS)
    assert len(rows) == n_rows, "one row per claim and chapter that tests it"
    changed = sorted(k for k, line in rows.items() if "| weaker: " in line)
    assert changed == ["Day 8 / 6", "Finding 1 / 6"], "exactly the claims of the chapter whose outcome changed"
    assert rows["Finding 1 / 6"].endswith(
        "| {bdg-success}`supported` (2 of 2) | {bdg-warning}`partly supported` (1 of 2) "
        "| weaker: supported → partly supported |")
    assert rows["Finding 4 / 9"].endswith("(1 of 1) | {bdg-success}`supported` (1 of 1) | same |")
    assert "not built in full mode" in rows["Finding 3 / 7"] and "not compared" in rows["Finding 3 / 7"]
    assert "not built in standard mode" in rows["Day 3 / 1"] and "not built in full mode" in rows["Day 3 / 1"]
    assert "(1 of 2; p = 0.6, seed 0 only) | same |" in rows["MASC paper / 11"], "the verdict's scope, as it is"
    assert "(1 of 2) | {bdg-warning}" in rows["MASC paper / 11"], "no scope in the standard verdict: none shown"
    if mode == "full":  # this build's own verdict box for chapter 11 says what ran
        assert "(held in 1 of 2 checks, full mode; p = 0.6, seed 0 only)" in text


def test_the_synthesis_names_exactly_the_claims_that_changed_with_the_checks_that_moved(builds):
    _, text = pages(builds, "standard")
    changed_part, held_part = text.split("held their outcome at both scales")
    assert "1 of the 3 chapters compared change their outcome" in changed_part
    items = [line for line in changed_part.splitlines() if line.startswith("- ")]
    assert len(items) == 1 and f"chapters/{CHANGED}" in items[0]
    assert "Finding 1 (Optimization success is not generalization)" in items[0] and "Day 8 (" in items[0]
    assert "{bdg-success}`supported` (2 of 2) in standard mode" in items[0]
    assert "{bdg-warning}`partly supported` (1 of 2) in full mode" in items[0]
    checks = [line.strip() for line in changed_part.splitlines() if line.startswith("  - ")]
    assert checks == [f"- Check effect 2 of {CHANGED}: in standard mode +0.550 ± 0.050 over 3 seeds, held; "
                      "in full mode -0.023 ± 0.075 over 3 seeds, did not hold."], "only the check that moved"
    assert "2 held their outcome" in text
    held = [line for line in held_part.splitlines() if line.startswith("- ")]
    assert [re.search(r"chapters/(\S+)>", line).group(1) for line in held] == [SAME, MASC]
    assert "+0.3" not in held_part, "no effects for the claims that held"
    assert "Not compared:" in held_part and ONLY_STANDARD in held_part.split("Not compared:")[1]


def test_a_change_in_the_other_direction_is_stronger(builds):
    write_chapter(builds / "executed" / "full" / "chapters", ONLY_STANDARD,
                  checked(ONLY_STANDARD, "supported", [[0.1, 0.2, 0.1]], "full"))
    rows = scale_rows(pages(builds, "full")[0])
    assert rows["Finding 3 / 7"].endswith(
        "| stronger: not supported at this scale → supported |")
    _, text = pages(builds, "full")
    assert "2 of the 4 chapters compared change their outcome" in text
    assert (f"- Check effect 1 of {ONLY_STANDARD}: in standard mode -0.133 ± 0.058 over 3 seeds, did not hold; "
            "in full mode +0.133 ± 0.058 over 3 seeds, held.") in text


@pytest.mark.parametrize("present, missing", [("standard", "full"), ("full", "standard")])
def test_one_build_only_says_so_in_one_line(builds, present, missing):
    import shutil

    shutil.rmtree(builds / "executed" / missing)
    text, synthesis = pages(builds, present)
    section = text.split("## Does the verdict survive scale?")[1].split("\n## ")[0].strip()
    assert section.count("\n") == 0 and f"`make book MODE={missing}`" in section and "| standard | full |" not in text
    assert synthesis.strip().count("\n") == 0 and f"`make book MODE={missing}`" in synthesis
    assert "changed:" not in text + synthesis


def test_a_mode_folder_without_executed_chapters_is_no_build(builds):
    for nb in (builds / "executed" / "full" / "chapters").glob("*.ipynb"):
        nb.unlink()
    _, synthesis = pages(builds, "standard")
    assert "`make book MODE=full`" in synthesis and "standard`" not in synthesis


def test_generate_writes_the_scale_fragment(builds, tmp_path):
    exe = builds / "executed" / "full" / "chapters"
    written = bp.generate(tmp_path / "src", exe, builds, "full", None, gpu=False)
    page = next(p for p in written if p.name == "scale-changes.md").read_text()
    assert f"chapters/{CHANGED}" in page and "weaker at full scale" in page


# --------------------------------------------------------------------------- how each mode's runs were trained

def record(how, device="cpu", workers=None, threads=1, seconds=2.0):
    return {"how": how, "workers": workers, "threads": threads, "device": device, "host": "h", "seconds": seconds,
            "when": "2026-12-01T10:00:00+0000"}


def test_the_reproducibility_page_counts_each_modes_runs_by_how_they_were_trained(builds):
    logs = builds / "executed" / "full" / "logs"
    logs.mkdir()
    ray = record("prepare-ray", workers=2, seconds=3.0)
    gpu = record("kernel", device="cuda (NVIDIA H200)", seconds=1.5)
    events = [{"kind": "load", "seconds": 0.01, "key": "a.npz", "trained": ray},
              {"kind": "load", "seconds": 0.01, "key": "b.npz", "trained": ray},
              {"kind": "train", "seconds": 1.5, "key": "c.npz", "trained": gpu},
              {"kind": "load", "seconds": 0.01, "key": "d.npz", "trained": None},
              {"kind": "probe", "seconds": 4.0, "key": "p"}]
    (logs / "06-memorization.runs.jsonl").write_text("\n".join(map(json.dumps, events)) + '\n{"kind": "lo')
    again = [{"kind": "load", "seconds": 0.01, "key": "a.npz", "trained": ray},  # a run two chapters use: counted once
             {"kind": "load", "seconds": 0.01, "key": "b.npz", "trained": None},  # a record seen once is kept
             {"kind": "train", "seconds": 1.0, "key": "e.npz"}]  # a log line from before provenance was recorded
    (logs / "09-width.runs.jsonl").write_text("\n".join(map(json.dumps, again)) + "\n")
    training = bp.training_by_mode(builds)
    assert list(training) == ["full"], "the standard build has no run log"
    assert training["full"] == [  # most runs first
        ("by `python -m memlib prepare` through Ray (2 workers, 1 CPU thread each), on the CPU", 2, 6.0),
        (bp.NO_PROVENANCE, 2, None),
        ("in the chapter's kernel (or the process that asked for the run), on the GPU cuda (NVIDIA H200), "
         "1 CPU thread", 1, 1.5)]
    text = bp.reproducibility("full", builds / "executed" / "full" / "chapters", builds / "nope.json",
                              {"packages": []}, training, ["standard", "full"])
    assert ("| **full** | by `python -m memlib prepare` through Ray (2 workers, 1 CPU thread each), on the CPU "
            "| 2 | 6 s |") in text
    assert "|  | trained before provenance was recorded | 2 | – |" in text
    assert "No run log for **standard**" in text
    local = bp.how_trained(record("prepare-local", workers=4, threads=2))
    assert local == "by `python -m memlib prepare` in local processes (4 workers, 2 CPU threads each), on the CPU"
    empty = bp.reproducibility("quick", builds / "none", builds / "nope.json", {"packages": []})
    assert "No run logs yet" in empty

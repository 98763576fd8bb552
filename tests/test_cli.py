"""`python -m memlib run key=value ... [--json]`: in-process through cli.main and once as a real subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memlib import cli

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ["n_train=256", "epochs=1", "width=16", "depth=1", "probe_size=20", "eval_size=100", "batch_size=64"]
KEYS_ORDER = ["loss", "train_acc", "train_acc_clean", "train_acc_corrupted_noisy", "train_acc_corrupted_true",
              "val_acc", "test_acc", "shift_acc", "epochs", "seconds", "cached"]
KEYS = set(KEYS_ORDER)


def _check_summary(out: dict, cached: bool) -> None:
    assert set(out) == KEYS
    assert out["epochs"] == 1 and out["cached"] is cached and out["seconds"] >= 0
    for k in ("train_acc", "train_acc_clean", "val_acc", "test_acc", "shift_acc"):
        assert 0 <= out[k] <= 1, k
    assert out["train_acc_corrupted_noisy"] is None and out["train_acc_corrupted_true"] is None  # noise 0


def test_main_json_then_cached(fresh_cache, capsys):
    """main(['run', ..., '--json']) prints one JSON object; the second call comes from the cache."""
    assert cli.main(["run", *PAIRS, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    _check_summary(first, cached=False)
    assert cli.main(["run", *PAIRS, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    _check_summary(second, cached=True)
    assert {k: v for k, v in first.items() if k != "cached"} == {k: v for k, v in second.items() if k != "cached"}
    assert len(list((fresh_cache / "runs").glob("*.npz"))) == 1


def test_main_no_cache(fresh_cache, capsys):
    """--no-cache trains and stores nothing."""
    assert cli.main(["run", *PAIRS, "noise=0.5", "--json", "--no-cache"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cached"] is False and out["train_acc_corrupted_noisy"] is not None
    assert not list(fresh_cache.glob("runs/*.npz"))


def test_main_table(fresh_cache, capsys):
    """Without --json it prints one aligned 'key  value' line per summary field."""
    assert cli.main(["run", *PAIRS]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == KEYS_ORDER
    assert lines[1].split()[1] == f"{float(lines[1].split()[1]):.4f}"



@pytest.mark.parametrize("pair,needles", [
    ("noise=1.5", ["noise", "1.5", "[0, 1]"]),
    ("optimizer=adamw", ["optimizer", "adamw", "'adam'"]),
    ("foo=1", ["foo", "n_train"]),
    ("depth=abc", ["depth", "abc"]),
    ("depth=0", ["depth", "0", "[1, 64]"]),
    ("lr=-1", ["lr", "-1", "positive"]),
    ("batch_size=512", ["batch_size", "512", "n_train"]),
    ("noise", ["key=value", "noise"]),
])
def test_main_bad_input(fresh_cache, capsys, monkeypatch, pair, needles):
    """Bad keys or values exit with status 2 and a message naming the field and value on stderr; nothing trains."""
    import memlib.cache

    monkeypatch.setattr(memlib.cache, "run", lambda *a, **k: pytest.fail("a bad config reached training"))
    assert cli.main(["run", *PAIRS, pair]) == 2  # the pair comes last and overrides PAIRS
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    for needle in needles:
        assert needle in captured.err, (needle, captured.err)
    assert not (fresh_cache / "runs").exists()


def test_main_usage_errors(capsys):
    """No subcommand, or an unknown option, is an argparse usage error (exit status 2)."""
    for argv in ([], ["train"], ["run", "--bogus"]):
        with pytest.raises(SystemExit) as err:
            cli.main(argv)
        assert err.value.code == 2
    assert "usage" in capsys.readouterr().err


def _subprocess(args, cache):
    env = {**os.environ, "MEMLIB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "memlib", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
def test_subprocess_json_then_cached(fresh_cache):
    """`python -m memlib run ... --json` prints a single JSON object; run again it reports cached: true."""
    first = _subprocess(["run", *PAIRS, "--json"], fresh_cache)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.strip().splitlines()
    assert len(lines) == 1
    _check_summary(json.loads(lines[0]), cached=False)
    second = _subprocess(["run", *PAIRS, "--json"], fresh_cache)
    assert second.returncode == 0, second.stderr
    _check_summary(json.loads(second.stdout), cached=True)


def test_subprocess_bad_value(fresh_cache):
    """A bad value makes the command exit with status 2 and a message naming the field and value on stderr."""
    proc = _subprocess(["run", *PAIRS, "noise=1.5", "--json"], fresh_cache)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert "RunConfig.noise=1.5" in proc.stderr and "[0, 1]" in proc.stderr

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
    key = pair.split("=")[0]
    assert cli.main(["run", *[p for p in PAIRS if not p.startswith(key + "=")], pair]) == 2  # in place of PAIRS' own
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


def _subprocess(args, cache, **environ):
    env = {**os.environ, "MEMLIB_CACHE": str(cache), "PYTHONPATH": str(ROOT), **environ}
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


# ---------------------------------------------------------------- clean errors at every door


def _one_error_line(err: str, *needles: str) -> None:
    """stderr is exactly one `error: ...` line containing every needle, and no traceback."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)


def _nothing_written(cache: Path) -> None:
    """No run and no half-written temporary file anywhere in the cache (lock files are fine)."""
    assert not list(cache.glob("runs/*.npz"))
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("command", ["run", "masc"])
def test_main_key_given_twice(fresh_cache, capsys, monkeypatch, command):
    """A key given twice is refused (exit status 2, one line naming the key and both values), not last-one-wins."""
    import memlib.cache

    monkeypatch.setattr(memlib.cache, "run", lambda *a, **k: pytest.fail("a refused config reached training"))
    assert cli.main([command, *PAIRS, "noise=0.1", "noise=0.2"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _one_error_line(captured.err, "RunConfig.noise", "given twice", "noise=0.1", "noise=0.2")


def _idx_folder(root: Path, damage: str) -> Path:
    """A folder whose train-images file (the first one read) is damaged as named; the other files are absent."""
    import gzip
    import struct

    root.mkdir(parents=True, exist_ok=True)
    good = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">III", 20, 28, 28) + bytes(20 * 28 * 28)
    name, raw = {
        "garbage gzip": ("train-images-idx3-ubyte.gz", b"this is not gzip data"),
        "truncated gzip": ("train-images-idx3-ubyte.gz", gzip.compress(good)[:-40]),
        "wrong magic": ("train-images-idx3-ubyte", b"\x12\x34\x08\x03" + good[4:]),
        "wrong sizes": ("train-images-idx3-ubyte", good[:-100]),
        "missing file": ("train-labels-idx1-ubyte", b""),
    }[damage]
    (root / name).write_bytes(raw)
    return root / name


@pytest.mark.parametrize("damage,needle", [
    ("garbage gzip", "not a gzip file"), ("truncated gzip", "damaged gzip file"), ("wrong magic", "magic number"),
    ("wrong sizes", "truncated"), ("missing file", "no train-images-idx3-ubyte"),
])
@pytest.mark.parametrize("command", ["run", "masc"])
def test_main_damaged_mnist_dir(fresh_cache, tmp_path, capsys, monkeypatch, command, damage, needle):
    """A damaged or missing idx file under $MEMLIB_MNIST_DIR, met only once training starts, is one error line
    naming the file (or folder) and the problem, exit status 2, and nothing is left in the cache."""
    import memlib.data as D

    path = _idx_folder(tmp_path / "mnist", damage)
    monkeypatch.setenv(D.MNIST_DIR_ENV, str(path.parent))
    assert cli.main([command, *PAIRS, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _one_error_line(captured.err, "$MEMLIB_MNIST_DIR", str(path.parent if damage == "missing file" else path), needle)
    _nothing_written(fresh_cache)


@pytest.mark.parametrize("damage", [None, "truncated gzip"], ids=["missing folder", "truncated gzip"])
def test_subprocess_bad_mnist_dir(fresh_cache, tmp_path, damage):
    """`MEMLIB_MNIST_DIR=<missing folder or damaged file> python -m memlib run ...`: exit 2, one line, no traceback."""
    path = tmp_path / "no-such-folder" if damage is None else _idx_folder(tmp_path / "mnist", damage)
    proc = _subprocess(["run", *PAIRS, "--json"], fresh_cache,
                       MEMLIB_MNIST_DIR=str(path if damage is None else path.parent))
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    _one_error_line(proc.stderr, str(path), "no such folder" if damage is None else "damaged gzip file")
    _nothing_written(fresh_cache)


def _damage_cached_run(cache: Path, pairs) -> Path:
    """Write garbage where the run of pairs is cached, as a crash or a full disk might leave it."""
    from memlib.cache import run_path
    from memlib.config import config_from_pairs

    path = run_path(config_from_pairs(pairs))
    assert path.is_relative_to(cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x03\x04 not really a zip file")
    return path


def test_subprocess_damaged_cached_run(fresh_cache):
    """A damaged cached run is one plain `warning: ...` line on stderr (no UserWarning, no source line), and the run
    is trained again and stored."""
    from memlib.cache import load
    from memlib.config import config_from_pairs

    path = _damage_cached_run(fresh_cache, PAIRS)
    proc = _subprocess(["run", *PAIRS, "--json"], fresh_cache)
    assert proc.returncode == 0, proc.stderr
    _check_summary(json.loads(proc.stdout), cached=False)  # retrained
    warned = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1, proc.stderr
    assert path.name in warned[0] and "damaged" in warned[0] and warned[0].endswith("retraining it")
    for needle in ("Warning:", "UserWarning", "cli.py", "cache.py", "warnings.warn"):
        assert needle not in proc.stderr, (needle, proc.stderr)
    load(config_from_pairs(PAIRS), path)  # the file was repaired


def test_damaged_cached_run_warning_category(fresh_cache, capsys):
    """From Python (a notebook) the damage is one DamagedCacheWarning (a UserWarning) with a one-line message;
    cli.main shows it as `warning: ...` and puts the usual display back afterwards."""
    import warnings

    from memlib.cache import DamagedCacheWarning, run
    from memlib.config import config_from_pairs

    cfg = config_from_pairs(PAIRS)
    _damage_cached_run(fresh_cache, PAIRS)
    with pytest.warns(DamagedCacheWarning) as record:
        assert run(cfg).cached is False
    assert issubclass(DamagedCacheWarning, UserWarning)
    record = [w for w in record if w.category is DamagedCacheWarning]  # np.load may add a ResourceWarning
    assert len(record) == 1 and "\n" not in str(record[0].message) and "retraining it" in str(record[0].message)
    assert record[0].filename == __file__  # points at the caller's line, not into memlib

    shown = warnings.showwarning
    _damage_cached_run(fresh_cache, PAIRS)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli.main(["run", *PAIRS, "--json"]) == 0
    assert warnings.showwarning is shown
    err = capsys.readouterr().err
    assert err.startswith("warning: cached run ") and err.count("\n") == 1 and "UserWarning" not in err, err

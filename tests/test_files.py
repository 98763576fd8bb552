"""memlib.files: whole-or-nothing writes and the lock between processes."""
from __future__ import annotations

import subprocess
import sys

import pytest
from filelock import Timeout

from memlib.files import atomic_write_text, locked


def test_atomic_write_text_writes_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a" / "b.txt"
    atomic_write_text(path, "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert [p.name for p in path.parent.iterdir()] == ["b.txt"]


def test_lock_excludes_another_process_until_released(tmp_path):
    """While one process holds the lock a second cannot take it; once released, it can."""
    target = tmp_path / "run.npz"
    probe = (f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
             "from filelock import Timeout\nfrom memlib.files import locked\n"
             f"try:\n    locked({str(target)!r}).acquire(timeout=0.2)\n    print('took')\n"
             "except Timeout:\n    print('blocked')\n")
    take = lambda: subprocess.run([sys.executable, "-c", probe],  # noqa: E731
                                  capture_output=True, text=True, check=True).stdout.strip()
    with locked(target):
        assert take() == "blocked"
    assert take() == "took"


def test_lock_times_out_in_the_same_process_too(tmp_path):
    with locked(tmp_path / "x"):
        with pytest.raises(Timeout):
            locked(tmp_path / "x").acquire(timeout=0.1)


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path):
    """A tool writing to the temporary path fails: the target keeps its old content and no temporary is left."""
    from memlib.files import atomic_path

    target = tmp_path / "book.pdf"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the tool died")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["book.pdf"]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["book.pdf"]


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("name", ["run.partial.pt", "odd [1]*?.npz"])
def test_the_next_writer_sweeps_what_a_killed_writer_left(name, tmp_path):
    """A writer killed mid-write (SIGKILL) leaves its temporary file: the next write of the same path removes it,
    and leaves alone the temporaries of live writers, of other hosts, and of other paths."""
    import os

    from memlib.files import _host, _writer, atomic_path, discard, sweep

    host = _host()
    target = tmp_path / name
    dead = tmp_path / f".{name}.{host}-{_dead_pid()}.abc123.tmp"
    alive = tmp_path / f".{name}.{host}-{os.getpid()}.def456.tmp"
    elsewhere = tmp_path / f".{name}.other-host-1.ghi789.tmp"
    other_path = tmp_path / f".x{name}.{host}-{_dead_pid()}.jkl012.tmp"
    for p in (dead, alive, elsewhere, other_path):
        p.write_bytes(b"half")
    with atomic_path(target) as tmp:
        assert not dead.exists() and tmp.name.startswith(f".{name}.{_writer()}.")
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert {p.name for p in tmp_path.iterdir()} == {name, alive.name, elsewhere.name, other_path.name}
    again = tmp_path / f".{name}.{host}-{_dead_pid()}.mno345.tmp"
    again.write_bytes(b"half")
    discard(target)
    assert {p.name for p in tmp_path.iterdir()} == {alive.name, elsewhere.name, other_path.name}
    assert sweep(target) == []

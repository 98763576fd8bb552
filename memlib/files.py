"""Files that appear whole or not at all, and locks between processes (filelock)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from filelock import FileLock


@contextlib.contextmanager
def atomic_path(path: Path):
    """A temporary path beside path to write (by any tool); renamed onto path when the block succeeds, else removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a shared cache wants the usual permissions
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write(path: Path, write) -> None:
    """Call write(file) on a temporary file beside path, then rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write text (UTF-8) to path atomically."""
    atomic_write(Path(path), lambda f: f.write(text.encode()))


def locked(path: Path) -> FileLock:
    """An exclusive lock between processes on path + '.lock' (a context manager; waits for the holder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.with_name(path.name + ".lock")))

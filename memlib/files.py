"""Files that appear whole or not at all, and locks between processes (filelock)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from filelock import FileLock


def atomic_write(path: Path, write) -> None:
    """Call write(file) on a temporary file beside path, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a shared cache wants the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write text (UTF-8) to path atomically."""
    atomic_write(Path(path), lambda f: f.write(text.encode()))


def locked(path: Path) -> FileLock:
    """An exclusive lock between processes on path + '.lock' (a context manager; waits for the holder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.with_name(path.name + ".lock")))

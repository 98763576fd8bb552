"""Files that appear whole or not at all, and locks between processes (filelock)."""
from __future__ import annotations

import contextlib
import glob
import os
import re
import socket
import tempfile
from pathlib import Path

from filelock import FileLock


def _host() -> str:
    """This machine's name as temporary files carry it (odd characters become '-')."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())


def _writer() -> str:
    """This process as its temporary files name it: host and pid."""
    return f"{_host()}-{os.getpid()}"


def _alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep(path: Path) -> list[Path]:
    """Remove the temporary files of writers of path that died mid-write (SIGKILL, power loss) on this host.

    A killed process cannot remove its own temporary file; its name (see atomic_path) says which host and pid wrote
    it, so the next writer of path removes it when that process no longer runs. Returns the files removed.
    """
    path, host, gone = Path(path), _host(), []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.{host}-*.tmp"):
        m = re.fullmatch(rf"\.{re.escape(path.name)}\.{re.escape(host)}-(\d+)\..+\.tmp", tmp.name)
        if m and not _alive(int(m.group(1))):
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


def discard(path: Path) -> None:
    """Remove path and whatever killed writers of it left beside it (sweep)."""
    Path(path).unlink(missing_ok=True)
    sweep(path)


@contextlib.contextmanager
def atomic_path(path: Path):
    """A temporary path beside path to write (by any tool); renamed onto path when the block succeeds, else removed.

    Its name, .<name>.<host>-<pid>.<random>.tmp, lets a later writer sweep() it if this process is killed mid-write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_writer()}.", suffix=".tmp")
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

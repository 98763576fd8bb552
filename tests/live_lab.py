"""A throwaway JupyterLab on loopback, for tests that drive the live book in a real browser.

Used by tests/test_live_explorer.py:

    with LabServer(root, cache) as lab:          # jupyter lab on 127.0.0.1:<free port>, random token
        page.goto(lab.url("lab/tree/chapter.ipynb"))
    # the server, its kernels and its temporary folders are gone here

The server runs from this virtual environment (`<sys.prefix>/bin/jupyter-lab`) with its own Jupyter config, data,
runtime and settings folders (the user's kernels, settings and workspaces are not read, nothing is written into
them), no network calls of its own (no news, no update check, read-only extension manager), and $MEMLIB_CACHE
pointing at the given cache folder. `disabled_extensions` switches lab extensions off (e.g. "jupyterlab-myst", to
see what a student without it would see). Starting fails with LabUnavailable and the server's log, never silently.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARAM_LINE = re.compile(r'^mode\s*=\s*["\'](quick|standard|full)["\']', re.M)

# User settings for the throwaway lab: no news prompt or update check, and every notebook cell attached to the DOM
# (the default windowing mode skips rendering of cells outside the viewport).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


class LabUnavailable(RuntimeError):
    """JupyterLab could not be started (or did not answer)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_chapter(src: Path, dest_dir: Path, mode: str = "quick") -> Path:
    """Copy a chapter notebook into dest_dir with `mode = "<mode>"` in its parameters cell (outputs cleared)."""
    nb = json.loads(Path(src).read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{src}: expected one cell tagged `parameters`, found {len(tagged)}")
    source = "".join(tagged[0]["source"])
    new, n = PARAM_LINE.subn(f'mode = "{mode}"', source)
    if n != 1:
        raise ValueError(f"{src}: the parameters cell does not assign mode = \"...\": {source!r}")
    tagged[0]["source"] = new
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            c["outputs"], c["execution_count"] = [], None
    nb.setdefault("metadata", {})["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    dest = Path(dest_dir) / Path(src).name
    dest.write_text(json.dumps(nb, indent=1))
    return dest


def lab_command() -> list[str]:
    exe = Path(sys.executable).parent / "jupyter-lab"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyterlab"]


class LabServer:
    """`jupyter lab` on 127.0.0.1 with a random token, serving `root`; a context manager that always stops it."""

    def __init__(self, root: Path, cache: Path, start_timeout: float = 90.0, disabled_extensions: tuple[str, ...] = ()):
        self.root, self.cache, self.start_timeout = Path(root), Path(cache), start_timeout
        self.disabled_extensions = tuple(disabled_extensions)  # lab extensions switched off (page_config.json)
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="live-lab-")
        self.home = Path(self._tmp.name)
        self.log_path = self.home / "jupyter-lab.log"
        self.runtime = self.home / "runtime"

    # ------------------------------------------------------------------ addresses

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def url(self, path: str) -> str:
        return f"{self.base}{path.lstrip('/')}?token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5.0):
        req = urllib.request.Request(self.base + "api/" + path.lstrip("/"), method=method,
                                     headers={"Authorization": f"token {self.token}"},
                                     data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - loopback only
            body = r.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    # ------------------------------------------------------------------ start / stop

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "JPY_"))}
        env.pop("MEMLIB_MNIST_DIR", None)
        env.update({
            "MEMLIB_CACHE": str(self.cache),
            "JUPYTER_CONFIG_DIR": str(self.home / "config"),
            "JUPYTER_DATA_DIR": str(self.home / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.runtime),
            "IPYTHONDIR": str(self.home / "ipython"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        })
        return env

    def start(self) -> "LabServer":
        settings = self.home / "settings"
        for rel, value in LAB_SETTINGS.items():
            p = settings / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(value))
        if self.disabled_extensions:
            page_config = self.home / "config" / "labconfig" / "page_config.json"
            page_config.parent.mkdir(parents=True, exist_ok=True)
            page_config.write_text(json.dumps({"disabledExtensions": {name: True
                                                                      for name in self.disabled_extensions}}))
        cmd = [*lab_command(), "--no-browser", "--ip=127.0.0.1", f"--port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
               "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
               f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={self.home / 'workspaces'}"]
        if os.name == "posix" and os.geteuid() == 0:
            cmd.append("--allow-root")
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._log = log
        try:
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            raise LabUnavailable(f"could not run {cmd[0]}: {e}") from e
        deadline = time.monotonic() + self.start_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabUnavailable(f"jupyter lab exited with status {self.proc.returncode} before answering; "
                                     f"its log:\n{self.log_tail()}")
            try:
                self.api("status", timeout=2)
                return self
            except (urllib.error.URLError, OSError, ValueError) as e:
                last = e
                time.sleep(0.25)
        raise LabUnavailable(f"jupyter lab did not answer on {self.base}api/status within {self.start_timeout:.0f} s "
                             f"(last error: {last}); its log:\n{self.log_tail()}")

    def _kernel_pids(self) -> list[int]:
        """Kernels this server started: their command line names a connection file in our runtime folder."""
        pids, marker = [], str(self.runtime).encode()
        for d in Path("/proc").glob("[0-9]*"):
            try:
                if marker in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except (OSError, ValueError):
                continue
        return pids

    def stop(self) -> None:
        """Shut the server down (its kernels first), escalating to SIGTERM and SIGKILL; remove the temp folders."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.api("shutdown", method="POST", timeout=5)
                except Exception:  # noqa: BLE001 - SIGTERM below
                    pass
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.terminate()
                    try:
                        self.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait(timeout=10)
            if os.name == "posix":
                for pid in self._kernel_pids():  # a kernel left behind by a killed server
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        finally:
            if getattr(self, "_log", None):
                self._log.close()
            self._tmp.cleanup()

    def __enter__(self) -> "LabServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

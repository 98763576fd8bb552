"""Shared fixtures: an isolated memlib cache for the whole session and tiny training configs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import seed_cache, tiny

import memlib.data as D


@pytest.fixture(scope="session", autouse=True)
def memlib_cache(tmp_path_factory) -> Path:
    """Point $MEMLIB_CACHE at a session temp folder (with a copy of the converted MNIST) for every test.

    The user's real cache is only read, never written: when it has no converted MNIST yet, the
    conversion happens once inside the temp folder instead.
    """
    real = D.cache_dir()  # before the environment changes
    tmp = tmp_path_factory.mktemp("memlib-cache")
    seed_cache(tmp, real)
    old = {k: os.environ.get(k) for k in (D.CACHE_ENV, D.MNIST_DIR_ENV)}
    os.environ[D.CACHE_ENV] = str(tmp)
    os.environ.pop(D.MNIST_DIR_ENV, None)
    D.load_mnist.cache_clear()
    D.shifted_test.cache_clear()
    D.load_mnist()  # converts into tmp only when the real cache had no copy
    try:
        yield tmp
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        D.load_mnist.cache_clear()
        D.shifted_test.cache_clear()


@pytest.fixture
def make_cfg():
    """The tiny() config factory, for tests that need configs built at run time."""
    return tiny


@pytest.fixture
def fresh_cache(memlib_cache, tmp_path, monkeypatch) -> Path:
    """A new, empty run cache for one test (MNIST files linked from the session cache)."""
    root = tmp_path / "cache"
    (root / "mnist").mkdir(parents=True)
    for f in (memlib_cache / "mnist").iterdir():
        if f.is_file() and not f.name.startswith("."):
            os.symlink(f, root / "mnist" / f.name)
    monkeypatch.setenv(D.CACHE_ENV, str(root))
    return root

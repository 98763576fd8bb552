"""memlib: the thin library behind the book (data -> models -> train -> cache -> analysis -> plots -> widgets)."""
from .cache import run, run_many
from .config import RunConfig
from .results import METRICS, RunResult
from .train import train

__all__ = ["RunConfig", "RunResult", "METRICS", "train", "run", "run_many"]
__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it (setuptools attr)

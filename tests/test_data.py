"""MNIST loading (safe unpickling, checksum, idx folders, uint8 cache), subsets, label noise and rotation."""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct

import numpy as np
import pytest

import memlib.data as D
from memlib.rng import rng_for


@pytest.fixture
def clean_lru():
    """Clear the in-memory MNIST caches before and after a test that loads from elsewhere."""
    D.load_mnist.cache_clear()
    D.shifted_test.cache_clear()
    yield
    D.load_mnist.cache_clear()
    D.shifted_test.cache_clear()


# ---------------------------------------------------------------- label noise


@pytest.mark.parametrize("p", [0.0, 0.1, 0.37, 0.5, 0.999, 1.0])
def test_symmetric_noise_changes_exactly_round_p_n(p):
    """Symmetric noise changes exactly round(p*n) labels, each to a different class, and mask == (noisy != y)."""
    y = np.random.default_rng(1).integers(0, 10, size=1001)
    y0 = y.copy()
    noisy, mask = D.corrupt_labels(y, p, "symmetric", np.random.default_rng(2))
    assert np.array_equal(y, y0)  # input untouched
    assert noisy.dtype == np.int64 and mask.dtype == bool and noisy.shape == mask.shape == y.shape
    assert mask.sum() == round(p * len(y))
    assert np.array_equal(mask, noisy != y)
    assert np.array_equal(noisy[~mask], y[~mask])
    assert ((noisy >= 0) & (noisy < 10)).all()


def test_symmetric_noise_is_uniform_over_the_other_classes():
    """Every wrong class is about equally likely (offsets 1..9 each ~1/9; true class never drawn)."""
    y = np.random.default_rng(3).integers(0, 10, size=18_000)
    noisy, mask = D.corrupt_labels(y, 1.0, "symmetric", np.random.default_rng(4))
    assert mask.all()
    offsets = np.bincount((noisy - y) % 10, minlength=10)
    assert offsets[0] == 0
    assert np.all(np.abs(offsets[1:] - 2000) < 200), offsets  # sd ~ 42
    # with a single true class, the nine others are hit equally often
    noisy0, _ = D.corrupt_labels(np.zeros(9_000, int), 1.0, "symmetric", np.random.default_rng(5))
    counts = np.bincount(noisy0, minlength=10)
    assert counts[0] == 0 and np.all(np.abs(counts[1:] - 1000) < 150), counts


@pytest.mark.parametrize("p", [0.0, 0.3, 0.8, 1.0])
def test_uniform_noise_changes_about_0_9_p(p):
    """Uniform noise redraws from all 10 classes, so about 0.9*p of labels change; the mask is exact."""
    n = 20_000
    y = np.random.default_rng(6).integers(0, 10, size=n)
    noisy, mask = D.corrupt_labels(y, p, "uniform", np.random.default_rng(7))
    assert np.array_equal(mask, noisy != y)
    expected = 0.9 * p * n
    sd = np.sqrt(n * 0.9 * p * (1 - 0.9 * p)) + 1e-9
    assert abs(mask.sum() - expected) <= 5 * sd + 0.5, (mask.sum(), expected)
    if p == 1.0:  # every label redrawn: the result is uniform over all classes
        counts = np.bincount(noisy, minlength=10)
        assert np.all(np.abs(counts - 2000) < 220), counts


@pytest.mark.parametrize("kind", ["symmetric", "uniform"])
def test_noise_is_fixed_by_the_generator(kind):
    """The same generator seed gives the same noise, another seed different noise."""
    y = np.arange(500) % 10
    a = D.corrupt_labels(y, 0.4, kind, rng_for(0, "noise"))
    b = D.corrupt_labels(y, 0.4, kind, rng_for(0, "noise"))
    c = D.corrupt_labels(y, 0.4, kind, rng_for(1, "noise"))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("p,kind,needle", [(1.5, "symmetric", "p=1.5"), (-0.1, "uniform", "p=-0.1"),
                                           (0.2, "pairflip", "kind='pairflip'")])
def test_corrupt_labels_bad_arguments(p, kind, needle):
    """A rate outside [0, 1] or an unknown kind raises ValueError naming it."""
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace(".", r"\.")):
        D.corrupt_labels(np.zeros(10, int), p, kind, np.random.default_rng(0))


# ---------------------------------------------------------------- subsets


def test_train_subset():
    """n distinct sorted indices in range, fixed by the seed; n == n_total is the whole split."""
    a = D.train_subset(1000, 0)
    assert len(a) == 1000 and len(np.unique(a)) == 1000 and np.all(np.diff(a) > 0)
    assert a.min() >= 0 and a.max() < 50_000
    assert np.array_equal(a, D.train_subset(1000, 0))
    assert not np.array_equal(a, D.train_subset(1000, 1))
    assert np.array_equal(D.train_subset(50, 3, n_total=50), np.arange(50))
    assert set(D.train_subset(10, 0)) <= set(D.train_subset(10, 0, n_total=50_000))


@pytest.mark.parametrize("n", [0, 50_001])
def test_train_subset_bad_n(n):
    """n outside [1, n_total] raises ValueError naming n."""
    with pytest.raises(ValueError, match=f"n={n}"):
        D.train_subset(n, 0)


# ---------------------------------------------------------------- rotation


def _test_image() -> np.ndarray:
    """An asymmetric 28x28 uint8 image (an 'L' plus a dot)."""
    img = np.zeros((28, 28), np.uint8)
    img[3:20, 5:8] = 200  # vertical bar
    img[17:20, 5:18] = 120  # foot to the right
    img[6, 22] = 255  # a dot in the upper right
    return img


@pytest.mark.parametrize("angle,k", [(90.0, 1), (-90.0, -1), (180.0, 2), (270.0, 3), (0.0, 0)])
def test_rotation_matches_rot90(angle, k):
    """Positive angles rotate counter-clockwise (as torchvision does): 90 degrees equals np.rot90(img, 1)."""
    img = _test_image()
    out = D.rotate_images(img.reshape(1, 784), np.array([angle]))
    assert out.shape == (1, 784) and out.dtype == np.float32
    assert np.allclose(out.reshape(28, 28), np.rot90(img, k), atol=1e-2)
    if k % 2:
        assert not np.allclose(out.reshape(28, 28), np.rot90(img, -k), atol=1)  # not the other direction


def test_zero_rotation_is_identity_after_rounding():
    """0 degrees leaves uint8 images unchanged once rounded (as shifted_test rounds)."""
    x = np.random.default_rng(0).integers(0, 256, size=(3, 784)).astype(np.uint8)
    out = D.rotate_images(x, np.zeros(3))
    assert np.array_equal(np.rint(out).astype(np.uint8), x)


def test_each_image_gets_its_own_angle():
    """Rows are rotated independently by their own angles."""
    img = _test_image().reshape(1, 784)
    out = D.rotate_images(np.repeat(img, 3, 0), np.array([0.0, 90.0, -90.0]))
    assert np.allclose(out[0], img[0], atol=1e-2)
    assert np.allclose(out[1].reshape(28, 28), np.rot90(img.reshape(28, 28), 1), atol=1e-2)
    assert np.allclose(out[2].reshape(28, 28), np.rot90(img.reshape(28, 28), -1), atol=1e-2)


def test_rotation_angles():
    """Angles are fixed by the seed, lie in [-d, d] and fill that range."""
    a = D.rotation_angles(10_000, 30.0, 0)
    assert a.shape == (10_000,)
    assert np.array_equal(a, D.rotation_angles(10_000, 30.0, 0))
    assert not np.array_equal(a, D.rotation_angles(10_000, 30.0, 1))
    assert a.min() >= -30 and a.max() <= 30 and a.min() < -29 and a.max() > 29
    assert abs(a.mean()) < 1.0
    assert np.all(D.rotation_angles(5, 0.0, 0) == 0)


def test_shifted_test_rotates_the_test_split():
    """shifted_test is the test split rotated by rotation_angles, rounded to uint8, and cached on disk."""
    mn = D.load_mnist()
    out = D.shifted_test(30.0, 0)
    assert out.shape == (10_000, 784) and out.dtype == np.uint8
    angles = D.rotation_angles(10_000, 30.0, 0)[:4]
    expected = np.clip(np.rint(D.rotate_images(mn.x_test[:4], angles)), 0, 255).astype(np.uint8)
    assert np.array_equal(out[:4], expected)
    assert not np.array_equal(out[:4], mn.x_test[:4])
    assert (D.cache_dir() / "mnist" / "test-rotated-30deg-seed0-v1.npy").exists()


# ---------------------------------------------------------------- standardisation and the loaded splits


def test_standardize():
    """uint8 k -> (k/256 - mean) / std as float32."""
    x = np.array([[0, 128, 255]], np.uint8)
    out = D.standardize(x)
    assert out.dtype == np.float32
    assert np.allclose(out, (np.array([0, 128, 255]) / 256 - D.MEAN) / D.STD)


def test_loaded_mnist_splits():
    """The cached MNIST has 50k/10k/10k uint8 images and int64 labels 0..9, all classes present."""
    mn = D.load_mnist()
    for x, y, n in ((mn.x_train, mn.y_train, 50_000), (mn.x_val, mn.y_val, 10_000), (mn.x_test, mn.y_test, 10_000)):
        assert x.shape == (n, 784) and x.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.int64
        assert set(np.unique(y)) == set(range(10))
    assert mn.x_train.max() == 255 and mn.x_train.min() == 0


# ---------------------------------------------------------------- the pickle: checksum, arrays only, lossless uint8


def _write_pickle(path, obj, protocol=4) -> bytes:
    raw = gzip.compress(pickle.dumps(obj, protocol=protocol))
    path.write_bytes(raw)
    return raw


def _fake_splits():
    """Three (x, y) float splits on the k/256 grid, covering every k in 0..255."""
    rng = np.random.default_rng(0)
    x = np.arange(256 * 4, dtype=np.float32).reshape(4, 256) % 256
    x = np.concatenate([x, x[:, ::-1], x, x[:, :16]], axis=1)[:, :784] / np.float32(256)
    return tuple((x.copy(), rng.integers(0, 10, size=4)) for _ in range(3))


class _RunsShell:
    """Pickles to a call of os.system (what a hostile mnist.pkl.gz could contain)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _CallsFunction:
    """Pickles to a call of an arbitrary importable function."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("wrap", ["bare", "in_split"])
def test_unpickler_refuses_os_system(tmp_path, wrap):
    """A pickle that would call os.system is refused with UnpicklingError and nothing runs."""
    marker = tmp_path / "pwned"
    evil = _RunsShell(marker)
    obj = evil if wrap == "bare" else ((evil, np.zeros(3)), (np.zeros(1), np.zeros(1)), (np.zeros(1), np.zeros(1)))
    path = tmp_path / "evil.pkl.gz"
    _write_pickle(path, obj, protocol=2)  # the protocol of the real (Python 2 era) file
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load \w+\.system"):
        D.read_mnist_pickle(path, sha256=None)
    assert not marker.exists()


@pytest.mark.parametrize("fn,args", [(eval, ("1+1",)), (np.load, ("x.npy",)), (os.getcwd, ()),
                                     (__import__("subprocess").Popen, (["true"],))],
                         ids=["builtins.eval", "numpy.load", "os.getcwd", "subprocess.Popen"])
def test_unpickler_refuses_any_callable_but_array_rebuilding(tmp_path, fn, args):
    """Only the classes needed to rebuild NumPy arrays are allowed, even other NumPy functions are refused."""
    path = tmp_path / "evil.pkl.gz"
    _write_pickle(path, _CallsFunction(fn, *args))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        D.read_mnist_pickle(path, sha256=None)


def test_checksum_is_verified_before_unpickling(tmp_path):
    """With the default checksum a modified file fails on SHA-256 (naming the digest) before anything is unpickled."""
    marker = tmp_path / "pwned"
    path = tmp_path / "mnist.pkl.gz"
    raw = _write_pickle(path, _RunsShell(marker))
    digest = hashlib.sha256(raw).hexdigest()
    with pytest.raises(ValueError) as err:
        D.read_mnist_pickle(path)
    assert digest in str(err.value) and D.MNIST_SHA256 in str(err.value)
    assert not marker.exists()


def test_checksum_mismatch_names_the_digest(tmp_path):
    """A wrong expected SHA-256 on a harmless file raises ValueError naming the actual digest."""
    path = tmp_path / "mnist.pkl.gz"
    raw = _write_pickle(path, _fake_splits())
    digest = hashlib.sha256(raw).hexdigest()
    with pytest.raises(ValueError, match=digest):
        D.read_mnist_pickle(path, sha256="0" * 64)
    assert isinstance(D.read_mnist_pickle(path, sha256=digest), D.MNIST)


def test_pickle_of_arrays_loads_losslessly(tmp_path):
    """A pickle of (x, y) float splits loads; pixels k/256 become exactly uint8 k, labels int64."""
    splits = _fake_splits()
    path = tmp_path / "mnist.pkl.gz"
    _write_pickle(path, splits)
    mn = D.read_mnist_pickle(path, sha256=None)
    for (x, y), xo, yo in zip(splits, (mn.x_train, mn.x_val, mn.x_test), (mn.y_train, mn.y_val, mn.y_test),
                              strict=True):
        assert xo.dtype == np.uint8 and xo.shape == (4, 784)
        assert np.array_equal(xo.astype(np.float32) / 256, x)  # lossless round trip
        assert set(np.unique(xo)) == set(range(256))
        assert yo.dtype == np.int64 and np.array_equal(yo, y)


def test_pickle_must_hold_three_splits(tmp_path):
    """A pickle that is not a tuple of three splits is rejected."""
    path = tmp_path / "mnist.pkl.gz"
    _write_pickle(path, _fake_splits()[:2])
    with pytest.raises(ValueError, match="three"):
        D.read_mnist_pickle(path, sha256=None)


def test_uint8_conversion_is_lossless():
    """_to_uint8 maps k/256 to k for every k in 0..255."""
    k = np.tile(np.arange(256), 4)[:784].reshape(1, 784)
    assert np.array_equal(D._to_uint8(k.astype(np.float32) / 256), k.astype(np.uint8))


def test_bundled_pickle_matches_the_cache():
    """The bundled mnist.pkl.gz passes its checksum and converts to exactly the cached uint8 arrays."""
    path = D._packaged_file()
    mn = D.read_mnist_pickle(path)
    cached = D.load_mnist()
    for f in D.MNIST.__dataclass_fields__:
        assert np.array_equal(getattr(mn, f), getattr(cached, f)), f
    with gzip.open(path) as fh:  # independent check: the raw floats are exactly k/256
        x_val = pickle.load(fh, encoding="latin1")[1][0]
    assert np.array_equal(mn.x_val.astype(np.float32) / 256, x_val)


def test_damaged_mnist_cache_is_rebuilt(fresh_cache, clean_lru):
    """A damaged mnist-uint8 cache warns and is rebuilt from the bundled pickle."""
    path = fresh_cache / "mnist" / "mnist-uint8-v1.npz"
    good = np.load(path.resolve())["y_test"]
    path.unlink()
    path.write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.warns(UserWarning, match="damaged"):
        mn = D.load_mnist()
    assert np.array_equal(mn.y_test, good)
    with np.load(path) as z:
        assert np.array_equal(z["y_test"], good)


# ---------------------------------------------------------------- torchvision idx folders


def _idx(arr: np.ndarray) -> bytes:
    return (struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
            + arr.tobytes())


def _fake_idx_data(n_train=10_003, n_test=5):
    """Images whose first two pixels encode their index; labels index % 10."""
    def images(n, salt):
        x = np.zeros((n, 28, 28), np.uint8)
        i = np.arange(n)
        x[:, 0, 0], x[:, 0, 1] = i % 256, i // 256
        x[i, 1 + i % 27, (i + salt) % 28] = 255
        return x
    return (images(n_train, 0), (np.arange(n_train) % 10).astype(np.uint8),
            images(n_test, 7), (np.arange(n_test) * 3 % 10).astype(np.uint8))


def _write_idx_folder(root, sub, gz, data):
    folder = root / sub
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in zip(("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                          "t10k-labels-idx1-ubyte"), data, strict=True):
        raw = _idx(arr)
        if gz:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(raw, compresslevel=1))
        else:
            (folder / stem).write_bytes(raw)


@pytest.fixture(scope="module")
def idx_data():
    """The fake idx arrays (built once)."""
    return _fake_idx_data()


@pytest.mark.parametrize("sub", ["", "raw", "MNIST/raw"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_read_torchvision_folder(tmp_path, idx_data, sub, gz):
    """idx files in folder/, folder/raw/ or folder/MNIST/raw/ (gz or not) load; last 10,000 train images: validation."""
    _write_idx_folder(tmp_path, sub, gz, idx_data)
    mn = D.read_torchvision_folder(tmp_path)
    xtr, ytr, xte, yte = idx_data
    assert mn.x_train.shape == (3, 784) and mn.x_val.shape == (10_000, 784) and mn.x_test.shape == (5, 784)
    assert mn.x_train.dtype == np.uint8 and mn.y_train.dtype == np.int64 and mn.y_test.dtype == np.int64
    assert np.array_equal(mn.x_train, xtr[:3].reshape(3, 784)) and np.array_equal(mn.y_train, ytr[:3])
    assert np.array_equal(mn.x_val, xtr[3:].reshape(-1, 784)) and np.array_equal(mn.y_val, ytr[3:])
    assert np.array_equal(mn.x_test, xte.reshape(5, 784)) and np.array_equal(mn.y_test, yte)
    assert mn.x_val[0, 0] == 3 and mn.x_val[-1, 0] == 10_002 % 256 and mn.x_val[-1, 1] == 10_002 // 256


def test_load_mnist_from_idx_folder(tmp_path, idx_data, monkeypatch, clean_lru):
    """load_mnist(source) and $MEMLIB_MNIST_DIR read an idx folder instead of the bundled copy."""
    _write_idx_folder(tmp_path, "raw", True, idx_data)
    assert np.array_equal(D.load_mnist(str(tmp_path)).y_test, idx_data[3])
    monkeypatch.setenv(D.MNIST_DIR_ENV, str(tmp_path))
    D.load_mnist.cache_clear()
    assert np.array_equal(D.load_mnist().y_test, idx_data[3])


def test_read_torchvision_folder_missing_file(tmp_path, idx_data):
    """A missing idx file raises FileNotFoundError naming it and the places looked in."""
    _write_idx_folder(tmp_path, "", False, idx_data)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.*MNIST/raw"):
        D.read_torchvision_folder(tmp_path)


def test_read_torchvision_folder_rejects_non_byte_idx(tmp_path, idx_data):
    """idx files of another element type (here float32, 0x0D) are refused."""
    _write_idx_folder(tmp_path, "", False, idx_data)
    arr = np.zeros(5, ">f4")
    raw = struct.pack(">BBBB", 0, 0, 0x0D, 1) + struct.pack(">I", 5) + arr.tobytes()
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(raw)
    with pytest.raises(ValueError, match="unsigned-byte"):
        D.read_torchvision_folder(tmp_path)


def test_read_torchvision_folder_needs_more_than_10000_training_images(tmp_path):
    """A folder with too few training images for the 10,000-image validation split is refused (not silently split)."""
    _write_idx_folder(tmp_path, "", False, _fake_idx_data(n_train=6_000))
    with pytest.raises(ValueError, match="10,?000"):
        D.read_torchvision_folder(tmp_path)


def test_read_torchvision_folder_rejects_mismatched_labels(tmp_path, idx_data):
    """Image and label files of different lengths are refused instead of silently misaligned."""
    xtr, ytr, xte, yte = idx_data
    _write_idx_folder(tmp_path, "", False, (xtr, ytr[:-1], xte, yte))
    with pytest.raises(ValueError):
        D.read_torchvision_folder(tmp_path)


# ---------------------------------------------------------------- cache folder and atomic writes


def test_cache_dir_resolution(monkeypatch, tmp_path):
    """$MEMLIB_CACHE wins, then $XDG_CACHE_HOME/memlib, then ~/.cache/memlib."""
    monkeypatch.setenv(D.CACHE_ENV, str(tmp_path / "a"))
    assert D.cache_dir() == tmp_path / "a"
    monkeypatch.delenv(D.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert D.cache_dir() == tmp_path / "xdg" / "memlib"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert D.cache_dir() == tmp_path / "home" / ".cache" / "memlib"


def test_atomic_write_success(tmp_path):
    """atomic_write creates parent folders, writes the content and leaves no temporary file."""
    path = tmp_path / "a" / "b" / "f.bin"
    D.atomic_write(path, lambda f: f.write(b"hello"))
    assert path.read_bytes() == b"hello"
    assert os.listdir(path.parent) == ["f.bin"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    """A writer that fails halfway leaves the previous file intact and no temporary file behind."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def bad(f):
        f.write(b"half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        D.atomic_write(path, bad)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]

"""load() on every source kind, from real files: shapes, dtypes, labels and the fixed splits."""

from __future__ import annotations

import gzip
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from tf_genai.data import (default_split_indices, keras_cache_dir, load, mnist_or_digits,
                           train_validation_split)
from tf_genai.data.sources import keras_parts
from tf_genai.errors import DataError


def _label_file_bytes(mnist_dir: Path) -> bytes:
    """The raw label bytes of the shared MNIST test set (after the 8-byte IDX header)."""
    return gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())[8:]


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write a uint8 IDX file (the MNIST format) by hand, independently of the reader."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# --- IDX -------------------------------------------------------------------------------------

def test_shared_mnist_fixed_split(mnist_dir):
    train_x, train_y = load(mnist_dir)
    held_x, held_y = load(mnist_dir, split="heldout")
    all_x, all_y = load(mnist_dir, split="all")
    assert train_x.shape == (8000, 28, 28, 1) and train_x.dtype == np.uint8
    assert held_x.shape == (2000, 28, 28, 1) and held_x.dtype == np.uint8
    assert all_x.shape == (10000, 28, 28, 1)
    assert train_y.dtype == np.int64 and train_y.shape == (8000,) and held_y.shape == (2000,)
    raw_labels = _label_file_bytes(mnist_dir)
    assert held_y[0] == raw_labels[8000]  # the label file's 8,001st entry
    np.testing.assert_array_equal(all_y, np.frombuffer(raw_labels, np.uint8))
    np.testing.assert_array_equal(np.concatenate([train_x, held_x]), all_x)
    assert set(np.unique(train_y)) == set(range(10))
    assert 20 < all_x.mean() < 60  # MNIST's mean intensity is ~33: a real decode, not zeros


def test_single_idx_file_raw_and_gzip_agree(mnist_dir, tmp_path):
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw_dir / name).write_bytes(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()))
    x_gz, y_gz = load(mnist_dir / "t10k-images-idx3-ubyte.gz", split="heldout")
    x_raw, y_raw = load(raw_dir / "t10k-images-idx3-ubyte", split="heldout")
    assert x_raw.shape == (2000, 28, 28, 1)
    np.testing.assert_array_equal(x_gz, x_raw)
    np.testing.assert_array_equal(y_gz, y_raw)


def test_idx_folder_with_train_and_t10k_files(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (12, 5, 6)), True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(12) % 3, True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (4, 5, 6)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([9, 8, 7, 6]))
    x, y = load(tmp_path)
    assert x.shape == (12, 5, 6, 1) and list(y[:4]) == [0, 1, 2, 0]
    hx, hy = load(tmp_path, split="heldout")
    assert hx.shape == (4, 5, 6, 1) and list(hy) == [9, 8, 7, 6]
    assert load(tmp_path, split="all")[0].shape == (16, 5, 6, 1)


def test_idx_without_labels_uses_default_split(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (10, 4, 4))
    path = write_idx(tmp_path / "mine-images-idx3-ubyte", images)
    x, y = load(path)
    train_idx, held_idx = default_split_indices(10)
    assert y is None and len(held_idx) == 2
    np.testing.assert_array_equal(x[..., 0], images[train_idx])


def test_image_size_resizes_and_keeps_uint8(mnist_dir):
    x, y = load(mnist_dir, split="heldout", image_size=32)
    assert x.shape == (2000, 32, 32, 1) and x.dtype == np.uint8 and len(y) == 2000
    assert x.max() > 200  # strokes survive the resize


# --- built-in datasets -----------------------------------------------------------------------

def test_digits_scaled_and_split():
    digits = load_digits()
    x, y = load("digits")
    hx, hy = load("digits", split="heldout")
    ax, ay = load("digits", split="all")
    assert x.shape == (1438, 8, 8, 1) and hx.shape == (359, 8, 8, 1) and ax.shape[0] == 1797
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(ax[..., 0], digits.images / 16.0, rtol=1e-6)
    np.testing.assert_array_equal(ay, digits.target)
    train_idx, held_idx = default_split_indices(1797)
    assert not set(train_idx) & set(held_idx)
    np.testing.assert_array_equal(hy, digits.target[held_idx])
    np.testing.assert_array_equal(load("digits")[1], y)  # deterministic


@pytest.fixture
def offline_keras(tmp_path, monkeypatch) -> Path:
    """The one allowed monkeypatch: point Keras' cache at an empty folder and make the download
    fail as it does on a machine without network, so the test never downloads anything."""
    import keras.src.backend.config as keras_config
    import keras.src.utils.file_utils as file_utils

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))  # what Keras reads...
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # ...from this, at import time
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    return tmp_path


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_keras_dataset_offline_and_uncached_is_a_data_error(name, offline_keras):
    with pytest.raises(DataError) as err:
        load(name)
    message = str(err.value)
    assert name in message and str(offline_keras / "datasets") in message
    assert "download failed" in message and keras_cache_dir() == offline_keras / "datasets"


def test_the_examples_take_the_shared_mnist_else_keras_else_digits(
        mnist_dir, offline_keras, monkeypatch, capsys):
    monkeypatch.setenv("TF_GENAI_MNIST", str(mnist_dir))
    assert mnist_or_digits() == str(mnist_dir)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("TF_GENAI_MNIST", str(offline_keras / "no_such_folder"))
    assert mnist_or_digits() == "digits"  # no shared copy, no Keras cache, no network
    note = capsys.readouterr().out
    assert "\nnote: no MNIST here" in note and "using scikit-learn's 'digits'" in note
    assert str(offline_keras / "datasets") in note


def test_keras_parts_shapes_like_cifar10():
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    y_train = rng.integers(0, 10, (6, 1), dtype=np.uint8)  # CIFAR-10 labels come as (N, 1)
    parts = keras_parts("cifar10", x_train, y_train, x_train[:2], y_train[:2])
    x, y = parts["train"]
    assert x.shape == (6, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (6,) and y.dtype == np.int64
    np.testing.assert_array_equal(y, y_train[:, 0])
    assert parts["heldout"][0].shape == (2, 32, 32, 3)


# --- NumPy files -----------------------------------------------------------------------------

def test_npz_with_train_and_test_keys(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (7, 6, 6), dtype=np.uint8)
    x_test = rng.integers(0, 256, (3, 6, 6), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x_train, y_train=np.arange(7), x_test=x_test,
             y_test=np.array([2, 1, 0]))
    x, y = load(tmp_path / "d.npz")
    hx, hy = load(tmp_path / "d.npz", split="heldout")
    assert x.shape == (7, 6, 6, 1) and x.dtype == np.uint8 and list(y) == list(range(7))
    np.testing.assert_array_equal(hx[..., 0], x_test)
    assert list(hy) == [2, 1, 0]
    assert load(tmp_path / "d.npz", split="all")[0].shape == (10, 6, 6, 1)


@pytest.mark.parametrize("keys", [("x", "y"), ("images", "labels"), ("arr_0", "arr_1")])
def test_npz_key_pairs_use_default_split(tmp_path, keys):
    x_all = np.random.default_rng(0).random((10, 4, 4, 3)).astype(np.float32)
    y_all = np.arange(10) % 4
    np.savez(tmp_path / "d.npz", **{keys[0]: x_all, keys[1]: y_all})
    x, y = load(tmp_path / "d.npz", split="heldout")
    held = default_split_indices(10)[1]
    assert x.dtype == np.float32 and x.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(x, x_all[held])
    np.testing.assert_array_equal(y, y_all[held])


def test_npy_of_flat_vectors_with_image_shape(tmp_path):
    flat = np.random.default_rng(0).integers(0, 256, (5, 12), dtype=np.uint8)
    np.save(tmp_path / "flat.npy", flat)
    x, y = load(tmp_path / "flat.npy", split="all", image_shape=(3, 4))
    assert x.shape == (5, 3, 4, 1) and y is None
    np.testing.assert_array_equal(x.reshape(5, 12), flat)


# --- image folders ---------------------------------------------------------------------------

def test_image_folder_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {}
    for cls in ("zebra", "apple", "mango"):  # sorted names -> labels apple 0, mango 1, zebra 2
        (tmp_path / cls).mkdir()
        for i in range(2):
            arr = rng.integers(0, 256, (9, 7), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / cls / f"{i}.png")
            pixels[(cls, i)] = arr
    (tmp_path / "notes.txt").write_text("not an image")
    x, y = load(tmp_path, split="all")
    assert x.shape == (6, 9, 7, 1) and x.dtype == np.uint8
    assert list(y) == [0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(x[4, ..., 0], pixels[("zebra", 0)])  # lossless PNG


def test_flat_rgb_jpeg_folder_resized(tmp_path):
    for i in range(5):
        Image.new("RGB", (20 + i, 10), (200, 30 * i, 10)).save(tmp_path / f"{i}.jpg")
    x, y = load(tmp_path, split="all", image_size=(8, 16))
    assert x.shape == (5, 8, 16, 3) and x.dtype == np.uint8 and y is None
    assert abs(int(x[0, 4, 8, 0]) - 200) < 8  # the colour survives JPEG + resize


def test_mixed_sizes_without_image_size_name_the_files(tmp_path):
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    Image.new("L", (8, 8)).save(tmp_path / "b.png")
    Image.new("L", (12, 9)).save(tmp_path / "c.png")
    with pytest.raises(DataError, match=r"differ in size.*a\.png is 8x8.*c\.png 9x12"):
        load(tmp_path)


def test_sixteen_bit_png_is_float(tmp_path):
    arr = (np.arange(36, dtype=np.uint16).reshape(6, 6) * 1800)
    for i in range(2):
        Image.fromarray(arr).save(tmp_path / f"{i}.png")
    x, _ = load(tmp_path, split="all")
    assert x.dtype == np.float32 and x.shape == (2, 6, 6, 1)
    np.testing.assert_allclose(x[0, ..., 0], arr / 65535.0, rtol=1e-5)


# --- arrays ----------------------------------------------------------------------------------

def test_array_sources():
    x = np.random.default_rng(0).integers(0, 256, (10, 5, 5), dtype=np.uint8)
    y = np.arange(10)
    ax, ay = load(x, split="all")
    assert ax.shape == (10, 5, 5, 1) and ay is None
    tx, ty = load((x, y), split="all")
    lx, ly = load(x, labels=y, split="all")
    np.testing.assert_array_equal(tx, lx)
    np.testing.assert_array_equal(ty, y)
    np.testing.assert_array_equal(ly, y)
    flat_x, _ = load(x.reshape(10, 25), image_shape=(5, 5, 1), split="all")
    np.testing.assert_array_equal(flat_x, ax)


def test_float_ranges_are_rescaled_and_ints_become_uint8():
    base = np.linspace(0, 1, 2 * 4 * 4).reshape(2, 4, 4).astype(np.float64)
    unit, _ = load(base, split="all")
    symmetric, _ = load(base * 2 - 1, split="all")
    byte_floats, _ = load(base * 255, split="all")
    ints, _ = load((base * 255).round().astype(np.int64), split="all")
    assert unit.dtype == symmetric.dtype == byte_floats.dtype == np.float32
    np.testing.assert_allclose(symmetric, unit, atol=1e-6)
    np.testing.assert_allclose(byte_floats, unit, atol=1e-6)
    assert ints.dtype == np.uint8
    np.testing.assert_allclose(ints / 255.0, unit, atol=1 / 255)


def test_train_validation_split():
    x = np.arange(50 * 4).reshape(50, 2, 2, 1).astype(np.uint8)
    y = np.arange(50)
    (tx, ty), (vx, vy) = train_validation_split(x, y, fraction=0.2, seed=3)
    assert len(tx) == 40 and len(vx) == 10
    assert sorted(np.concatenate([ty, vy])) == list(range(50))
    np.testing.assert_array_equal(tx[:, 0, 0, 0], x[ty, 0, 0, 0])  # pairs stay together
    (_, ty2), _ = train_validation_split(x, y, fraction=0.2, seed=3)
    (_, ty3), _ = train_validation_split(x, y, fraction=0.2, seed=4)
    np.testing.assert_array_equal(ty, ty2)
    assert not np.array_equal(ty, ty3)
    (ux, uy), _ = train_validation_split(x, fraction=0.5)
    assert uy is None and len(ux) == 25


def test_t10k_convention_needs_exactly_ten_thousand(mnist_dir, tmp_path):
    # A 9,999-image t10k file gets the default split, not the 8,000/2,000 convention.
    images = load(mnist_dir, split="all")[0][:9999, ..., 0]
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    x, y = load(tmp_path / "t10k-images-idx3-ubyte")
    assert x.shape[0] == 9999 - 9999 // 5 and y is None

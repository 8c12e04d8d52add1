"""Every kind of bad input is refused with a DataError that names the source and the problem."""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from tf_genai.data import load, make_dataset, read_idx, validate_images, validate_labels
from tf_genai.errors import ConfigError, DataError

GOOD = np.zeros((4, 6, 6, 1), dtype=np.uint8)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((0, 6, 6, 1), np.uint8), "no images"),
        (np.zeros((4, 6, 6, 1, 1), np.uint8), "rank 5"),
        (np.float32(0.5), "a single number"),
        (np.zeros((4, 36), np.uint8), "pass image_shape"),
        (np.zeros((4, 1, 6, 1), np.uint8), "1x6 pixels are not images"),
        (np.zeros((4, 6, 6, 2), np.uint8), "2 channels, expected 1, 3 or 4"),
        (np.zeros((4, 3, 6, 6), np.uint8), "channels-first"),
        (np.full((4, 6, 6, 1), np.nan, np.float32), "non-finite values (NaN)"),
        (np.full((4, 6, 6, 1), np.inf, np.float64), "non-finite values (Inf)"),
        (np.linspace(-2, 3, 144).reshape(4, 6, 6, 1), "must lie in [0, 1]"),
        (np.linspace(-1, 2, 144).reshape(4, 6, 6, 1), "got [-1, 2]"),
        (np.full((4, 6, 6, 1), 300, np.int32), "0..255, got 300..300"),
        (np.full((4, 6, 6, 1), -1, np.int8), "0..255"),
        (np.full((4, 6, 6, 1), "a"), "must hold numbers"),
        (np.zeros((4, 6, 6, 1), np.complex64), "must hold numbers"),
    ],
)
def test_bad_image_arrays(images, message):
    with pytest.raises(DataError) as err:
        load(images)
    assert str(err.value).startswith("array: ")
    assert message in str(err.value)


def test_ragged_list_is_a_data_error():
    with pytest.raises(DataError, match="array: images are not an array"):
        load([np.zeros((6, 6)), np.zeros((5, 5))])


def test_flat_vectors_that_do_not_fit_image_shape():
    with pytest.raises(DataError, match="length 36 do not fit image_shape"):
        load(np.zeros((4, 36), np.uint8), image_shape=(5, 5))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.arange(3), "3 labels for 4 images"),
        (np.array([0.5, 1, 2, 3]), "must be integers"),
        (np.array(["a", "b", "c", "d"]), "must be integers, got dtype <U1"),
        (np.array([True, False, True, False]), "must be integers"),
        (np.array([0, 1, -1, 2]), "class ids >= 0"),
        (np.eye(4), "one-hot"),
        (np.array([0, 1, np.nan, 2]), "must be integers"),
    ],
)
def test_bad_labels(labels, message):
    with pytest.raises(DataError, match="array: .*" + message.replace("(", r"\(")):
        load(GOOD, labels=labels)
    with pytest.raises(DataError, match="array: "):
        make_dataset(GOOD, labels)


def test_whole_float_labels_and_column_labels_are_accepted():
    assert validate_labels(np.array([0.0, 1.0, 2.0]), 3).dtype == np.int64
    assert validate_labels(np.array([[1], [2]], np.uint8), 2).tolist() == [1, 2]


def test_make_dataset_validates_and_checks_arguments():
    with pytest.raises(DataError, match="non-finite"):
        make_dataset(np.full((4, 6, 6, 1), np.nan, np.float32))
    with pytest.raises(ConfigError, match="scale='unit'"):
        make_dataset(GOOD, binarize=True, scale="symmetric")
    with pytest.raises(ConfigError, match="scale must be one of"):
        make_dataset(GOOD, scale="zero_one")
    with pytest.raises(ConfigError, match="batch_size"):
        make_dataset(GOOD, batch_size=0)


# --- files -----------------------------------------------------------------------------------

def test_missing_path_and_unknown_name(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: no such file or directory"):
        load(tmp_path / "nowhere")
    with pytest.raises(DataError, match="'mnsit'|mnsit: no such file.*digits, mnist"):
        load("mnsit")


def test_truncated_gzip_idx(mnist_dir, tmp_path):
    data = (mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"{path}: corrupt or truncated gzip"):
        load(path)


def test_truncated_raw_idx(mnist_dir, tmp_path):
    data = gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(data[:-100])
    with pytest.raises(DataError, match=r"truncated IDX file: header says shape \(10000, 28, 28\)"):
        load(path)
    path.write_bytes(data[:6])
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(path)


def test_idx_with_bad_magic_and_mismatched_labels(mnist_dir, tmp_path):
    (tmp_path / "bad").mkdir()
    bad = tmp_path / "bad" / "x-images-idx3-ubyte"
    bad.write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(DataError, match="not an IDX file"):
        load(bad)
    # Images from the shared file with a labels file one entry short.
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    images.write_bytes((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    short = labels[:4] + (9999).to_bytes(4, "big") + labels[8:-1]
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(short)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: 9999 labels for 10000 images"):
        load(tmp_path)


def test_truncated_and_corrupt_npz(tmp_path):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.random.default_rng(0).random((20, 8, 8)), y=np.arange(20))
    path = tmp_path / "d.npz"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    with pytest.raises(DataError, match=f"{path}: corrupt or unreadable NumPy file"):
        load(path)
    path.write_bytes(b"definitely not a zip file")
    with pytest.raises(DataError, match="corrupt or unreadable NumPy file"):
        load(path)


def test_npz_with_unknown_keys_or_bad_arrays(tmp_path):
    np.savez(tmp_path / "a.npz", foo=np.zeros((2, 4, 4)), bar=np.zeros(2))
    with pytest.raises(DataError, match="no images found.*got bar, foo"):
        load(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x=np.full((3, 4, 4), np.nan), y=np.arange(3))
    with pytest.raises(DataError, match=r"b\.npz \[x\]: images contain 48 non-finite"):
        load(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x=np.zeros((3, 4, 4)), y=np.arange(2))
    with pytest.raises(DataError, match=r"c\.npz \[y\]: 2 labels for 3 images"):
        load(tmp_path / "c.npz")
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as z:  # a pickled object array
        z.writestr("x.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, "
                   b"'shape': (1,), }" + b" " * 60 + b"\n" + b"\x80\x04N.")
    with pytest.raises(DataError, match="corrupt or unreadable NumPy file"):
        load(tmp_path / "d.npz")


def test_corrupt_and_truncated_images(tmp_path):
    Image.new("L", (8, 8), 100).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(30))
    with pytest.raises(DataError, match=r"bad\.png: corrupt or unreadable image"):
        load(tmp_path)
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(
        buffer, format="PNG"
    )
    (tmp_path / "bad.png").write_bytes(buffer.getvalue()[:-200])
    with pytest.raises(DataError, match=r"bad\.png: corrupt or unreadable image"):
        load(tmp_path)


def test_folders_without_data_or_with_mixed_layout(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="no IDX files and no images"):
        load(tmp_path)
    (tmp_path / "cats").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "cats" / "0.png")
    Image.new("L", (4, 4)).save(tmp_path / "loose.png")
    with pytest.raises(DataError, match="both images .*and class sub-folders"):
        load(tmp_path)


def test_unknown_file_type_and_single_image(tmp_path):
    (tmp_path / "data.csv").write_text("1,2,3\n")
    with pytest.raises(DataError, match="unknown file type"):
        load(tmp_path / "data.csv")
    Image.new("L", (4, 4)).save(tmp_path / "one.png")
    with pytest.raises(DataError, match="single image"):
        load(tmp_path / "one.png")


def test_split_and_size_arguments():
    with pytest.raises(ConfigError, match="split must be one of"):
        load(GOOD, split="test")
    with pytest.raises(ConfigError, match="image_size"):
        load(GOOD, image_size=(1, 5))
    with pytest.raises(DataError, match="the heldout split is empty"):
        load(GOOD, split="heldout")  # 4 images: 4 // 5 == 0 held out


def test_validate_images_returns_canonical_form_unchanged():
    assert validate_images(GOOD) is GOOD

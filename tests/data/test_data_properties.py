"""Property tests: malformed arrays and files are either loaded correctly or refused with DataError.

Never another exception type, never a hang: whatever hypothesis feeds ``load``, the result is
canonical images (and labels) or a :class:`DataError`.
"""

from __future__ import annotations

import gzip
import io
import struct
import tempfile
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from tf_genai.data import load, make_dataset
from tf_genai.errors import DataError

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16,
          np.float16, np.float32, np.float64, np.bool_]


def assert_canonical(images: np.ndarray, labels: np.ndarray | None) -> None:
    """What every accepted source must produce (the contract in tf_genai/data/README.md)."""
    assert isinstance(images, np.ndarray) and images.ndim == 4
    n, h, w, c = images.shape
    assert n >= 1 and h >= 2 and w >= 2 and c in (1, 3)  # alpha is composited away
    assert images.dtype in (np.uint8, np.float32)
    if images.dtype == np.float32:
        assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
    if labels is not None:
        assert labels.dtype == np.int64 and labels.shape == (n,) and labels.min() >= 0


@st.composite
def pixel_arrays(draw) -> np.ndarray:
    """Arrays of random rank, shape and dtype, with values in plausible and implausible ranges."""
    if draw(st.booleans()):  # image-like: (N, H, W) or (N, H, W, C) with plausible sizes
        shape = (draw(st.integers(1, 6)), draw(st.integers(2, 5)), draw(st.integers(2, 5)))
        shape += tuple(draw(st.lists(st.sampled_from([1, 2, 3, 4]), max_size=1)))
    else:  # anything: 0 and 1 make empty and degenerate arrays
        rank = draw(st.integers(0, 5))
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=rank, max_size=rank)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    if dtype.kind == "f":
        lo, hi = draw(st.sampled_from([(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0), (-3.0, 300.0)]))
        elements = st.one_of(
            st.floats(lo, hi, width=dtype.itemsize * 8),
            st.sampled_from([np.nan, np.inf, -np.inf]),
        ) if draw(st.booleans()) else st.floats(lo, hi, width=dtype.itemsize * 8)
        return draw(hnp.arrays(dtype, shape, elements=elements))
    return draw(hnp.arrays(dtype, shape))


label_arrays = st.one_of(
    st.none(),
    hnp.arrays(st.sampled_from([np.int64, np.uint8, np.int8, np.float64, np.bool_]),
               hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=6)),
)


@SETTINGS
@given(
    images=pixel_arrays(),
    labels=label_arrays,
    split=st.sampled_from(["train", "heldout", "all"]),
    image_shape=st.sampled_from([None, (2, 2), (5, 1), (2, 2, 1)]),
)
def test_malformed_arrays_are_loaded_or_refused(images, labels, split, image_shape):
    try:
        out_images, out_labels = load(images, split, labels=labels, image_shape=image_shape)
    except DataError:
        return
    assert_canonical(out_images, out_labels)
    if split == "all":
        assert len(out_images) == len(images)
    # What load accepts, the pipeline accepts too, in range.
    batch = next(iter(make_dataset(out_images, out_labels, batch_size=4, cache=False)))
    batch_images = batch[0] if out_labels is not None else batch
    assert 0.0 <= float(batch_images.numpy().min()) <= float(batch_images.numpy().max()) <= 1.0


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _valid_files() -> dict[str, bytes]:
    """Small valid files of every kind, to truncate and corrupt."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 5, 5), dtype=np.uint8)
    files = {}
    for name, save in (("compressed.npz", np.savez_compressed), ("plain.npz", np.savez)):
        buffer = io.BytesIO()
        save(buffer, x=images, y=np.arange(6))
        files[name] = buffer.getvalue()
    buffer = io.BytesIO()
    np.save(buffer, images)
    files["images.npy"] = buffer.getvalue()
    files["t10k-images-idx3-ubyte"] = _idx_bytes(images)
    files["t10k-images-idx3-ubyte.gz"] = gzip.compress(_idx_bytes(images))
    for fmt in ("png", "jpeg", "bmp"):
        buffer = io.BytesIO()
        Image.fromarray(images[0]).save(buffer, format=fmt)
        files[f"a.{fmt}"] = buffer.getvalue()
    return files


VALID_FILES = _valid_files()


@st.composite
def broken_files(draw) -> tuple[str, bytes]:
    """A file name and contents: random bytes, a truncated valid file or one with bytes flipped."""
    name = draw(st.sampled_from(sorted(VALID_FILES)))
    valid = VALID_FILES[name]
    how = draw(st.sampled_from(["random", "truncated", "flipped"]))
    if how == "random":
        return name, draw(st.binary(max_size=600))
    if how == "truncated":
        return name, valid[: draw(st.integers(0, len(valid)))]
    data = bytearray(valid)
    for pos in draw(st.lists(st.integers(0, len(valid) - 1), min_size=1, max_size=6)):
        data[pos] ^= draw(st.integers(1, 255))
    return name, bytes(data)


# Found by this test: a mangled .npy header makes NumPy raise tokenize.TokenError.
MANGLED_NPY = VALID_FILES["images.npy"].replace(b"'shape': (", b"'shape': )")


@SETTINGS
@given(file=broken_files(), split=st.sampled_from(["train", "all"]))
@example(file=("images.npy", MANGLED_NPY), split="train")
def test_malformed_files_are_loaded_or_refused(file, split):
    name, data = file
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / name
        path.write_bytes(data)
        if name.startswith("a."):  # an image goes into a folder beside a good image
            (folder / "b.png").write_bytes(VALID_FILES["a.png"])
            source = folder
        else:
            source = path
            if name.startswith("t10k"):  # with its (valid) labels file
                (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.arange(6)))
        try:
            images, labels = load(source, split, image_size=(5, 5))
        except DataError:
            return
        assert_canonical(images, labels)

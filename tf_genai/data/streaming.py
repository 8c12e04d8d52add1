"""Streaming input: image files (a folder, or TFRecord shards) -> ``tf.data``, never all in memory.

:func:`tf_genai.data.load` reads a whole folder into one array, which is right for small data and
impossible for a folder larger than memory. Here the images stay files::

    scan_folder(folder, split)            file list (+ class labels), image shape, split: once,
                                          reading headers only (and checking every file with
                                          Pillow's verify unless verify=False)
    stream_dataset(files, ...)            list -> shuffle(seed, every epoch) -> read + decode
                                          (+ resize) in parallel -> [cache to disk -> shuffle
                                          buffer] -> batch -> float32 in the model's range
                                          -> prefetch

The decoded images keep the in-memory loader's conventions (:mod:`tf_genai.data.sources`): the
channels are decided once from every file of the folder (:mod:`tf_genai.data.channels`: colour
is RGB with transparency composited on white, grey stays grey unless mixed with colour, or
``channels=1|3``; ``ImageFiles.channels.description`` says what was decided); class
sub-folders (sorted names) are labels 0, 1, ...; ``split`` picks the same images as ``load`` does
for a folder (the fixed permutation of ``default_split_indices`` over the sorted file list). At
the native size the pixels equal ``load``'s; resizing (``image_size``) uses
``tf.image.resize(antialias=True)`` per image, close to but not bit-equal with Pillow's.

Corrupt files: ``scan_folder`` opens every file with Pillow and runs its integrity check
(``Image.verify``: a truncated PNG, a wrong CRC, a non-image with an image suffix), so they fail
with the in-memory loader's :class:`DataError`, naming the file, before any training starts.
``verify`` does not decode JPEG data (a truncated JPEG passes it), and a TFRecord scan reads no
image: ``scan(..., check="decode")`` decodes every image once with the stream's own decoder
(:func:`check_decodable`; about one to two streamed epochs' time, docs/reliability.md) and
``check="skip"`` leaves the corrupt ones out, naming them. An image that fails while training
anyway (changed or removed after the scan) becomes a :class:`DataError` naming it
(:func:`naming_unreadable`). 16-bit images are refused here (the in-memory loader maps them to
float32; streaming keeps uint8).

``cache_dir`` caches the decoded images on disk after the first epoch (``Dataset.cache(file)``);
its file name is a fingerprint of the file list (paths, sizes, modification times) and the image
shape, so a changed folder never reads a stale cache and one folder's cache never overwrites
another's. With the cache on, shuffling happens after it, over a bounded buffer of decoded
images (``shuffle_buffer``) rather than the whole file list.

TFRecord shards (:func:`write_tfrecords`, :func:`scan_tfrecords`): one ``tf.train.Example`` per
image with ``image`` (PNG bytes), ``height``, ``width``, ``channels`` and, for labelled data,
``label``; the shards are read in parallel, interleaved, and decoded like the files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from tf_genai import outputs
from tf_genai.data import channels as channels_lib
from tf_genai.data.checks import CHECKS, check_option  # noqa: F401  (re-exported)
from tf_genai.data.pipeline import _bernoulli, check_pipeline_args, flip_batches, to_model_range
from tf_genai.data.sources import (
    _CORRUPT_FILE_ERRORS,
    SPLITS,
    _image_files,
    _normalize_size,
    check_same_size,
    default_split_indices,
)
from tf_genai.errors import ConfigError, DataError

# What each Pillow mode holds, as the in-memory loader's canonical modes see it
# (sources._canonical_mode); a palette ("P") image is RGBA when it has a transparent colour.
_MODE_KINDS = {"1": "grey", "L": "grey", "LA": "grey+alpha", "La": "grey+alpha",
               "RGBA": "RGBA", "RGBa": "RGBA", "PA": "RGBA",
               "RGB": "RGB", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}
FEATURES = ("image", "height", "width", "channels", "label")


@dataclasses.dataclass(frozen=True)
class ImageFiles:
    """What :func:`stream_dataset` streams: ``paths`` (image files or TFRecord shards),
    ``labels`` (int64, one per image, or None), ``image_shape`` ``(H, W, C)`` of the decoded
    (and resized) images, ``kind`` ``"files"`` or ``"tfrecord"``, ``num_images``, ``source``
    (for messages), ``fingerprint`` (names the disk cache) and ``channels``, the
    :class:`~tf_genai.data.channels.ChannelDecision` made over the whole folder or set of
    shards (``channels.description`` is the line a training run prints and records)."""

    paths: tuple[str, ...]
    labels: np.ndarray | None
    image_shape: tuple[int, int, int]
    kind: str
    num_images: int
    source: str
    fingerprint: str
    resize: bool = False
    split: str = "all"
    record_mask: np.ndarray | None = None  # TFRecord: which records the split keeps (None: all)
    channels: channels_lib.ChannelDecision | None = None
    shard_records: tuple[int, ...] | None = None  # TFRecord: the records in each shard

    @property
    def num_classes(self) -> int | None:
        return None if self.labels is None else int(self.labels.max()) + 1


def _split_indices(count: int, split: str, source: str) -> np.ndarray:
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if split == "all":
        return np.arange(count)
    train, heldout = default_split_indices(count)
    index = train if split == "train" else heldout
    if len(index) == 0:
        raise DataError(f"{source}: the {split} split is empty ({count} images)")
    return index


def _header(path: Path, verify: bool) -> tuple[tuple[int, int], str]:
    """``((H, W), kind)`` of one image from its header (kind: :data:`channels.KINDS`'s values);
    DataError if it is not readable."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                size, mode, info = (im.size[1], im.size[0]), im.mode, dict(im.info)
                if verify:
                    im.verify()  # integrity without decoding: CRCs, truncation
    except _CORRUPT_FILE_ERRORS as err:
        raise DataError(f"{path}: corrupt or unreadable image ({err})") from None
    if mode.startswith("I;16") or mode in ("I", "F"):
        raise DataError(f"{path}: a {mode} (16-bit or float) image; streaming reads 8-bit "
                        "images only -- load() the folder in memory instead")
    if mode == "P":
        return size, "RGBA" if "transparency" in info else "RGB"
    if mode not in _MODE_KINDS:
        raise DataError(f"{path}: unsupported image mode {mode!r}")
    return size, _MODE_KINDS[mode]


def _fingerprint(parts: Sequence[Any]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode())
    return digest.hexdigest()[:16]


def _files_fingerprint(paths: Sequence[Path], shape: tuple[int, int, int]) -> str:
    """Names a disk cache: the files (path, size, modification time) and the decoded shape."""
    return _fingerprint([[(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths],
                         shape])


def scan_folder(
    folder: str | os.PathLike,
    split: str = "train",
    *,
    image_size: int | Sequence[int] | None = None,
    verify: bool = True,
    channels: int | None = None,
) -> ImageFiles:
    """The image files of ``folder`` for :func:`stream_dataset`, without decoding them.

    Args:
        folder: PNG/JPEG/BMP/GIF files, flat (no labels) or in class sub-folders.
        split: ``"train"``, ``"heldout"`` or ``"all"``: the same images ``load`` picks.
        image_size: ``(H, W)`` (or one int) to resize to; without it every image must have the
            first one's size.
        verify: run Pillow's integrity check on every file of the split (reads each file
            once; headers only without it).
        channels: None (decided from every file of the folder, as ``load`` does), 1 or 3.

    Raises:
        DataError: a missing folder, no images, mixed layouts, a corrupt file, differing sizes
            without ``image_size``, or a 16-bit image, each named.
        ConfigError: a bad ``split``, ``image_size`` or ``channels``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    size = _normalize_size(image_size)
    requested = channels_lib.check_choice(channels)
    all_files, all_labels = _image_files(root)
    index = _split_indices(len(all_files), split, str(root))
    chosen = set(index.tolist())
    # Every file's header, so that the channels are the whole folder's (each split the same).
    all_headers = [_header(p, verify and i in chosen) for i, p in enumerate(all_files)]
    decision = channels_lib.decide((kind for _, kind in all_headers), requested)
    files = [all_files[i] for i in index]
    labels = None if all_labels is None else all_labels[index]
    sizes = [all_headers[i][0] for i in index]
    if size is None:
        check_same_size(root, files, sizes)
    height, width = size if size is not None else sizes[0]
    shape = (int(height), int(width), decision.channels)
    return ImageFiles(
        paths=tuple(str(p) for p in files), labels=labels, image_shape=shape, kind="files",
        num_images=len(files), source=str(root), fingerprint=_files_fingerprint(files, shape),
        resize=size is not None and set(sizes) != {size}, split=split, channels=decision)


def _to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """A decoded ``(H, W, c)`` uint8 image with c in {1, 2, 3, 4} -> ``(H, W, channels)`` with
    channels 1 or 3, in the integer arithmetic of :func:`tf_genai.data.channels.convert` (equal
    pixels): alpha composited on white, grey repeated to RGB, RGB to grey by ITU-R 601 luma."""
    def on_white(colour, alpha):
        c, a = tf.cast(colour, tf.int32), tf.cast(alpha, tf.int32)
        return tf.cast((c * a + 255 * (255 - a) + 127) // 255, tf.uint8)

    def from_grey(g):  # (H, W, 1)
        return g if channels == 1 else tf.tile(g, [1, 1, 3])

    def from_rgb(c3):  # (H, W, 3)
        if channels == 3:
            return c3
        luma = tf.reduce_sum(tf.cast(c3, tf.int32) * channels_lib.LUMA_WEIGHTS, -1,
                             keepdims=True)  # (H, W, 1)
        return tf.cast((luma + 32768) // 65536, tf.uint8)

    branches = [
        lambda: from_grey(image[..., :1]),                                  # c = 1
        lambda: from_grey(on_white(image[..., :1], image[..., 1:2])),       # grey + alpha
        lambda: from_rgb(image[..., :3]),                                   # c = 3
        lambda: from_rgb(on_white(image[..., :3], image[..., 3:4])),        # RGBA
    ]
    return tf.switch_case(tf.shape(image)[-1] - 1, branches)


def _decoder(shape: tuple[int, int, int], resize: bool):
    height, width, channels = shape

    def decode(contents: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(contents, channels=0, dtype=tf.uint8, expand_animations=False)
        image = _to_channels(image, channels)
        if resize:
            image = tf.image.resize(image, (height, width), antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        return tf.ensure_shape(image, (height, width, channels))  # (H, W, C) uint8

    return decode


def stream_dataset(
    files: ImageFiles,
    *,
    batch_size: int = 128,
    scale: str = "unit",
    binarize: bool = False,
    labels: bool | None = None,
    shuffle: bool = True,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    shuffle_buffer: int = 10_000,
    drop_remainder: bool = False,
    binarize_fixed: bool = False,
) -> tf.data.Dataset:
    """Batches of ``files`` read from disk: the same elements :func:`make_dataset` yields.

    Args:
        files: from :func:`scan_folder` or :func:`scan_tfrecords`.
        batch_size, scale, binarize, seed, drop_remainder: as in :func:`make_dataset`.
        labels: yield ``(images, labels)``; None: when ``files`` has labels.
        shuffle: reshuffle every epoch (the file list, or the buffer after a disk cache).
        cache_dir: a folder for the decoded images' disk cache (created if missing).
        shuffle_buffer: decoded images in the shuffle buffer when ``cache_dir`` is set.
        binarize_fixed: binarize every image once and for all (the held-out rule of
            :func:`tf_genai.data.binarize_once`): image ``i`` of the stream draws its Bernoulli
            pixels from a stateless op seeded by ``(seed, i)``, the same every epoch; needs
            ``shuffle=False`` and ``scale="unit"``.

    Raises:
        ConfigError: bad pipeline arguments, or labels asked of unlabelled files.
    """
    check_pipeline_args(batch_size=batch_size, scale=scale, binarize=binarize)
    labelled = files.labels is not None if labels is None else bool(labels)
    if labelled and files.labels is None:
        raise ConfigError(f"{files.source}: labels=True, but these images have no labels "
                          "(a flat folder, or shards without a label feature)")
    if int(shuffle_buffer) < 1:
        raise ConfigError(f"shuffle_buffer must be >= 1, got {shuffle_buffer!r}")
    if binarize_fixed and (shuffle or binarize or scale != "unit"):
        raise ConfigError("binarize_fixed needs shuffle=False, binarize=False and scale='unit'")
    decode = _decoder(files.image_shape, files.resize)
    full_shuffle = shuffle and cache_dir is None
    if files.kind == "files":
        paths = tf.constant(files.paths)
        ds = tf.data.Dataset.from_tensor_slices(
            (paths, files.labels.astype(np.int32)) if labelled else paths)
        if full_shuffle:  # names only: a buffer of N strings, not N images
            ds = ds.shuffle(files.num_images, seed=seed, reshuffle_each_iteration=True)
        read = (lambda p, y: (decode(tf.io.read_file(p)), y)) if labelled else (
            lambda p: decode(tf.io.read_file(p)))
        ds = ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = _tfrecord_images(files, labelled, decode, full_shuffle, seed)
    if cache_dir is not None:
        folder = Path(cache_dir)
        folder.mkdir(parents=True, exist_ok=True)
        ds = ds.cache(str(folder / f"tf_genai_stream_{files.fingerprint}_{files.split}"))
        if shuffle:
            ds = ds.shuffle(min(int(shuffle_buffer), files.num_images), seed=seed,
                            reshuffle_each_iteration=True)
    dtype = np.uint8
    if binarize_fixed:
        ds = ds.enumerate().map(
            lambda i, e: (_fixed_bernoulli(e[0], seed, i), e[1]) if labelled
            else _fixed_bernoulli(e, seed, i), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True)
        dtype = np.float32  # {0, 1} already
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    ds = ds.apply(tf.data.experimental.assert_cardinality(
        _batches(files.num_images, int(batch_size), drop_remainder)))
    return to_model_range(ds, labelled=labelled, dtype=dtype, scale=scale,
                          binarize=binarize, seed=seed)


def _fixed_bernoulli(image: tf.Tensor, seed: int, index: tf.Tensor) -> tf.Tensor:
    """One uint8 image -> float32 {0, 1} pixels, Bernoulli(intensity), seeded by (seed, index)."""
    return _bernoulli(tf.cast(image, tf.float32) / 255.0,
                      tf.stack([tf.constant(seed, tf.int64), index]))


def _batches(count: int, batch_size: int, drop_remainder: bool) -> int:
    return count // batch_size if drop_remainder else -(-count // batch_size)


# --- TFRecord shards ------------------------------------------------------------------------


def write_tfrecords(
    images: Any,
    labels: Any = None,
    out_dir: str | os.PathLike = "shards",
    *,
    images_per_shard: int = 10_000,
    prefix: str = "images",
) -> list[Path]:
    """Write images (anything ``load`` returns: ``(N, H, W, C)`` uint8) as PNG-in-TFRecord
    shards ``<out_dir>/<prefix>-00000-of-000NN.tfrecord``; returns their paths.

    Raises:
        DataError: float images (8-bit only), or a shard file that already exists (nothing is
            overwritten).
    """
    from tf_genai.data.validation import validate_images, validate_labels

    x = validate_images(images, "array")
    if x.dtype != np.uint8:
        raise DataError("write_tfrecords: 8-bit (uint8) images only; got float images")
    y = validate_labels(labels, len(x), "array")
    if int(images_per_shard) < 1:
        raise ConfigError(f"images_per_shard must be >= 1, got {images_per_shard!r}")
    out = Path(out_dir)
    count = -(-len(x) // int(images_per_shard))
    paths = [out / f"{prefix}-{i:05d}-of-{count:05d}.tfrecord" for i in range(count)]
    taken = [str(p) for p in paths if p.exists()]
    if taken:
        raise DataError(f"write_tfrecords: {', '.join(taken[:3])} already exist(s); "
                        "choose another out_dir or prefix")
    out.mkdir(parents=True, exist_ok=True)
    h, w, c = x.shape[1:]
    for i, path in enumerate(paths):
        # Whole shards only: a failed or killed write leaves no half shard behind.
        with outputs.atomic_write(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
            for j in range(i * images_per_shard, min(len(x), (i + 1) * images_per_shard)):
                feature = {
                    "image": _bytes(tf.io.encode_png(x[j]).numpy()),
                    "height": _int(h), "width": _int(w), "channels": _int(c),
                }
                if y is not None:
                    feature["label"] = _int(int(y[j]))
                example = tf.train.Example(features=tf.train.Features(feature=feature))
                writer.write(example.SerializeToString())
    return paths


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def scan_tfrecords(
    shards: str | os.PathLike | Sequence[str | os.PathLike],
    split: str = "all",
    *,
    image_size: int | Sequence[int] | None = None,
    channels: int | None = None,
) -> ImageFiles:
    """TFRecord shards (a folder of ``*.tfrecord``, a glob, or a list of files) for
    :func:`stream_dataset`: one pass over the records' small features (not the images) counts
    them, reads their shapes and labels; ``split`` is the fixed permutation over record order;
    ``channels`` as in :func:`scan_folder`, decided over every record.

    Raises:
        DataError: no shards, an unreadable shard or record, records of differing shapes
            without ``image_size``, or labels on only some records.
    """
    if isinstance(shards, (str, os.PathLike)):
        root = Path(shards)
        found = sorted(root.glob("*.tfrecord")) if root.is_dir() else sorted(
            Path(p) for p in tf.io.gfile.glob(str(shards)))
    else:
        found = [Path(p) for p in shards]
    if not found:
        raise DataError(f"{shards}: no TFRecord shards found")
    size = _normalize_size(image_size)
    requested = channels_lib.check_choice(channels)
    spec = {"height": tf.io.FixedLenFeature([], tf.int64),
            "width": tf.io.FixedLenFeature([], tf.int64),
            "channels": tf.io.FixedLenFeature([], tf.int64),
            "label": tf.io.FixedLenFeature([], tf.int64, default_value=-1)}
    shapes, labels, counts = [], [], []
    for path in found:
        counts.append(len(shapes))
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                f = tf.io.parse_single_example(record, spec)
                shapes.append((int(f["height"]), int(f["width"]), int(f["channels"])))
                labels.append(int(f["label"]))
        except (tf.errors.OpError, ValueError) as err:
            raise DataError(f"{path}: corrupt or not a tf_genai TFRecord shard "
                            f"({str(err).splitlines()[0]})") from None
    if not shapes:
        raise DataError(f"{shards}: the shards hold no records")
    hw = {s[:2] for s in shapes}
    if size is None and len(hw) > 1:
        raise DataError(f"{shards}: records differ in size ({sorted(hw)[:3]}); pass image_size")
    has = [lab >= 0 for lab in labels]
    if any(has) and not all(has):
        raise DataError(f"{shards}: only some records have a label")
    index = _split_indices(len(shapes), split, str(shards))
    y = np.asarray(labels, dtype=np.int64)[index] if all(has) else None
    height, width = size if size is not None else shapes[0][:2]
    decision = channels_lib.decide((channels_lib.KINDS[s[2]] for s in shapes), requested)
    shape = (int(height), int(width), decision.channels)
    return ImageFiles(
        paths=tuple(str(p) for p in found), labels=y, image_shape=shape, kind="tfrecord",
        num_images=len(index), source=str(shards), fingerprint=_files_fingerprint(found, shape),
        resize=size is not None and hw != {size}, split=split,
        record_mask=None if split == "all" else np.isin(np.arange(len(shapes)), index),
        channels=decision,
        shard_records=tuple(np.diff([*counts, len(shapes)]).tolist()))


def _tfrecord_images(files: ImageFiles, labelled: bool, decode, shuffle: bool, seed: int):
    """Records -> (split filter) -> shuffle -> decode, for :func:`stream_dataset`."""
    spec = {"image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64, default_value=-1)}
    ds = tf.data.TFRecordDataset(list(files.paths), num_parallel_reads=None)  # shard order
    ds = ds.enumerate()
    if files.record_mask is not None:
        keep = tf.constant(files.record_mask)  # (records,) bool, in shard order
        ds = ds.filter(lambda i, record: tf.gather(keep, i))
    if shuffle:  # a bounded buffer of encoded records (the shards may not fit in memory)
        ds = ds.shuffle(min(files.num_images, 10_000), seed=seed, reshuffle_each_iteration=True)

    def parse(i, record):
        f = tf.io.parse_single_example(record, spec)
        image = decode(f["image"])
        return (image, tf.cast(f["label"], tf.int32)) if labelled else image

    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


# --- corrupt images: a decode check before training, and a name when training meets one ------

# In a run's backup folder: the images that stopped a streamed run (checked before resuming).
UNREADABLE_RECORD = "unreadable_images.json"
_READ_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.DataLossError)


def _shard_counts(files: ImageFiles) -> tuple[int, ...]:
    if files.shard_records is not None:
        return files.shard_records
    return tuple(sum(1 for _ in tf.data.TFRecordDataset(p)) for p in files.paths)


def image_names(files: ImageFiles) -> list[str]:
    """A name for each image of ``files``, in stream order: its path, or ``<shard> (record k)``."""
    if files.kind == "files":
        return list(files.paths)
    names = [f"{shard} (record {k})"
             for shard, count in zip(files.paths, _shard_counts(files)) for k in range(count)]
    mask = files.record_mask
    return names if mask is None else [name for name, keep in zip(names, mask) if keep]


def _touch(image: tf.Tensor) -> tf.Tensor:
    """A value that needs every decoded pixel: the image's size alone is known from its static
    shape, and TensorFlow would prune the decode it then no longer needs."""
    return tf.reduce_max(image)


def _survivors(ds: tf.data.Dataset) -> set[int]:
    """The positions of ``(position, value)`` elements that were produced without an error
    (in batches: one Python step per element would cost more than the decoding)."""
    batches = ds.ignore_errors().batch(4096).as_numpy_iterator()
    return {int(i) for positions, _ in batches for i in positions}


def _decoded_positions(files: ImageFiles, positions: np.ndarray) -> set[int]:
    """The ``positions`` (indices into ``files``' images) that read and decode with the
    stream's own decoder, decoded in parallel; the others raise inside and are dropped."""
    decode = _decoder(files.image_shape, files.resize)
    if files.kind == "files":
        paths = np.asarray(files.paths, dtype=object)[positions].astype(str)
        ds = tf.data.Dataset.from_tensor_slices((positions, paths)).map(
            lambda i, p: (i, _touch(decode(tf.io.read_file(p)))),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        return _survivors(ds)
    spec = {"image": tf.io.FixedLenFeature([], tf.string)}
    counts = _shard_counts(files)
    mask = np.ones(sum(counts), bool) if files.record_mask is None else files.record_mask
    position_of = np.full(len(mask), -1, np.int64)  # record -> position among the kept ones
    position_of[np.flatnonzero(mask)] = np.arange(int(mask.sum()))
    position_of[~np.isin(position_of, positions)] = -1
    found, start = set(), 0
    for shard, count in zip(files.paths, counts):  # per shard: a damaged one ends only itself
        table = tf.constant(position_of[start:start + count])
        start += count
        ds = tf.data.TFRecordDataset(shard).take(count).enumerate().map(
            lambda k, record, table=table: (tf.gather(table, k), record))
        ds = ds.filter(lambda i, record: i >= 0).map(
            lambda i, record: (i, _touch(decode(tf.io.parse_single_example(record,
                                                                           spec)["image"]))),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        found |= _survivors(ds)
    return found


def _problem(files: ImageFiles, name: str) -> str:
    """What is wrong with the image ``name`` (read and decoded again, alone)."""
    decode = _decoder(files.image_shape, files.resize)
    try:
        if files.kind == "files":
            decode(tf.io.read_file(name))
        else:
            shard, k = name.rsplit(" (record ", 1)
            records = list(tf.data.TFRecordDataset(shard).skip(int(k[:-1])).take(1))
            if not records:
                return "missing: the shard holds fewer records than when it was scanned"
            decode(tf.io.parse_single_example(
                records[0], {"image": tf.io.FixedLenFeature([], tf.string)})["image"])
    except tf.errors.NotFoundError:
        return "vanished since the scan"
    except tf.errors.OpError as err:
        # "{{function_node ...}} Invalid PNG data, size 54 [Op:DecodeImage]" -> the middle
        message = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", err.message).strip().splitlines()
        return f"corrupt ({message[0] if message else type(err).__name__})"
    return "unreadable while streaming (it reads now: was it being written?)"


def find_unreadable(files: ImageFiles, names: Sequence[str] | None = None
                    ) -> list[tuple[int, str, str]]:
    """``(position, name, problem)`` of every image of ``files`` (or of those ``names``) that
    the stream cannot read and decode: corrupt, truncated, vanished or changed since the scan.

    Every image is read and decoded once, by the stream's own decoder, in parallel (the cost
    of a full decode check: docs/reliability.md).
    """
    all_names = image_names(files)
    wanted = None if names is None else set(names)
    positions = np.asarray([i for i, name in enumerate(all_names)
                            if wanted is None or name in wanted], dtype=np.int64)
    if len(positions) == 0:
        return []
    good = _decoded_positions(files, positions)
    return [(int(i), all_names[i], _problem(files, all_names[i]))
            for i in positions if int(i) not in good]


def _listing(bad: Sequence[tuple[int, str, str]], limit: int = 5) -> str:
    shown = "; ".join(f"{name}: {problem}" for _, name, problem in bad[:limit])
    return shown + (f"; and {len(bad) - limit} more" if len(bad) > limit else "")


def check_decodable(files: ImageFiles, *, skip: bool = False,
                    names: Sequence[str] | None = None) -> ImageFiles:
    """``files`` once every image (or every one of ``names``) decodes; with ``skip``, ``files``
    without the ones that do not (a warning names them).

    Raises:
        DataError: images that do not decode (naming them and what to do), or, with ``skip``,
            none that does.
    """
    bad = find_unreadable(files, names)
    if not bad:
        return files
    if not skip:
        raise DataError(
            f"{files.source}: {len(bad)} image(s) the stream cannot decode: {_listing(bad)}. "
            "Replace or remove them, or leave them out with --skip-corrupt "
            "(train(check_files='skip'))")
    keep = np.setdiff1d(np.arange(files.num_images), [i for i, _, _ in bad])
    if len(keep) == 0:
        raise DataError(f"{files.source}: no image of the {files.split} split decodes")
    warnings.warn(f"{files.source}: leaving out {len(bad)} corrupt image(s): {_listing(bad)}",
                  stacklevel=2)
    return subset(files, keep, files.split)


@contextlib.contextmanager
def naming_unreadable(files: ImageFiles, record: str | os.PathLike | None = None):
    """Turn a read or decode failure while ``files`` stream into a :class:`DataError` naming
    the images and what to do (TensorFlow's own error names none); ``record``: a JSON file
    that remembers them, so that resuming checks them before it trains."""
    try:
        yield
    except _READ_ERRORS as err:
        bad = find_unreadable(files)
        if not bad:
            raise
        if record is not None:
            outputs.write_json(record, {"images": [name for _, name, _ in bad]})
        raise DataError(
            f"{files.source}: training stopped at {len(bad)} image(s) the stream cannot read: "
            f"{_listing(bad)}. They changed after the scan, or are damaged in a way the scan's "
            "integrity check (Pillow's verify) does not see: --decode-check decodes every "
            "image before training. Replace or remove them and --resume, or --resume with "
            "--skip-corrupt to leave them out") from err


def _recorded_unreadable(record: Path) -> list[str] | None:
    """The image names a previous attempt recorded (None: no record, or a malformed one)."""
    try:
        names = json.loads(record.read_text())["images"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as err:
        warnings.warn(f"ignoring the malformed record {record} ({err})", stacklevel=3)
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


# --- what tf_genai.training needs -----------------------------------------------------------


def scan(source: str | os.PathLike, split: str = "train", *,
         image_size: int | Sequence[int] | None = None, verify: bool = True,
         channels: int | None = None, check: str = "verify",
         recheck: str | os.PathLike | None = None) -> ImageFiles:
    """:func:`scan_tfrecords` for a ``.tfrecord`` file, a glob of them or a folder holding them,
    else :func:`scan_folder`; then the images' ``check`` (:data:`CHECKS`).

    Args:
        check: ``"verify"`` (the scan's own checks), ``"decode"`` (every image decoded once:
            :func:`check_decodable`), ``"skip"`` (the same, leaving corrupt images out).
        recheck: a record :func:`naming_unreadable` wrote when images stopped an earlier
            attempt of the run: those images are decoded again first, so a resumed run
            stops before training if they are still unreadable (the record is removed once
            they read).
    """
    check_option(check)
    path = Path(source)
    if path.suffix == ".tfrecord" or any(ch in str(source) for ch in "*?[") or (
            path.is_dir() and any(path.glob("*.tfrecord"))):
        files = scan_tfrecords([path] if path.is_file() else source, split,
                               image_size=image_size, channels=channels)
    else:
        files = scan_folder(path, split, image_size=image_size, verify=verify,
                            channels=channels)
    if check != "verify":
        return check_decodable(files, skip=check == "skip")
    recorded = None if recheck is None else _recorded_unreadable(Path(recheck))
    if recorded:
        try:
            check_decodable(files, names=recorded)
        except DataError as err:
            raise DataError(f"{err} (they stopped this run before: {recheck})") from None
        Path(recheck).unlink()
    return files


def subset(files: ImageFiles, positions: Any, split: str) -> ImageFiles:
    """The images at ``positions`` (indices into ``files``' images, in order) as their own
    :class:`ImageFiles` (e.g. a validation part); ``split`` names it (and its disk cache)."""
    positions = np.asarray(positions, dtype=np.int64)
    labels = None if files.labels is None else files.labels[positions]
    # The disk cache is named by the fingerprint: another choice of images is another cache.
    files = dataclasses.replace(files, fingerprint=_fingerprint([files.fingerprint,
                                                                 positions.tolist()]))
    if files.kind == "files":
        paths = tuple(files.paths[i] for i in positions)
        return dataclasses.replace(files, paths=paths, labels=labels,
                                   num_images=len(positions), split=split)
    records = np.flatnonzero(files.record_mask) if files.record_mask is not None else None
    total = len(files.record_mask) if files.record_mask is not None else files.num_images
    chosen = positions if records is None else records[positions]
    return dataclasses.replace(files, labels=labels, num_images=len(positions), split=split,
                               record_mask=np.isin(np.arange(total), chosen))


def read_images(files: ImageFiles, limit: int | None = None) -> tuple[np.ndarray, Any]:
    """The first ``limit`` images (all without one) as uint8 ``(n, H, W, C)`` and their labels:
    for the plots of a streamed run, never the whole data set."""
    n = files.num_images if limit is None else min(int(limit), files.num_images)
    part = subset(files, np.arange(n), f"{files.split}_first{n}")
    ds = stream_dataset(part, batch_size=max(1, min(n, 256)), shuffle=False, scale="unit",
                        labels=part.labels is not None)
    images, labels = [], []
    for batch in ds:
        x = batch[0] if isinstance(batch, tuple) else batch
        images.append(np.round(x.numpy() * 255.0).astype(np.uint8))
        if isinstance(batch, tuple):
            labels.append(batch[1].numpy().astype(np.int64))
    return np.concatenate(images), (np.concatenate(labels) if labels else None)


def stream_epochs(
    files: ImageFiles,
    *,
    batch_size: int,
    scale: str,
    seed: int,
    epochs: int,
    initial_epoch: int = 0,
    labels: bool | None = None,
    shuffle_buffer: int = 10_000,
    flip: bool = False,
) -> tuple[tf.data.Dataset, int]:
    """:func:`tf_genai.training.epoch_dataset` for files: epochs ``initial_epoch .. epochs-1``
    as one dataset whose epoch ``e`` depends only on ``(seed, e)`` (a stateless shuffle of the
    file list; for TFRecord shards, which cannot be read out of order, a shuffle buffer seeded by
    ``(seed, e)``), so a resumed run streams exactly the batches of an uninterrupted one.
    ``flip`` mirrors each image left-right with probability 1/2, drawn from ``(seed, e)`` too.

    Returns:
        ``(dataset, steps_per_epoch)``.
    """
    check_pipeline_args(batch_size=batch_size, scale=scale, binarize=False)
    labelled = files.labels is not None if labels is None else bool(labels)
    if labelled and files.labels is None:
        raise ConfigError(f"{files.source}: labels were asked for, but these images have none")
    decode = _decoder(files.image_shape, files.resize)
    n = files.num_images
    steps_per_epoch = -(-n // int(batch_size))
    paths = tf.constant(files.paths)
    ids = tf.constant((files.labels if files.labels is not None else np.zeros(n)).astype(np.int32))

    def one_epoch(epoch):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])  # (2,) stateless seed
        if files.kind == "files":
            order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                             epoch_seed)
            ds = tf.data.Dataset.from_tensor_slices(order)

            def read(i):
                image = decode(tf.io.read_file(tf.gather(paths, i)))
                return (image, tf.gather(ids, i)) if labelled else image

            ds = ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        else:
            ds = _tfrecord_images(files, labelled, decode, shuffle=False, seed=seed)
            buffer_seed = tf.random.experimental.stateless_uniform(
                [], epoch_seed, minval=0, maxval=2**31 - 1, dtype=tf.int64)
            ds = ds.shuffle(min(n, int(shuffle_buffer)), seed=buffer_seed,
                            reshuffle_each_iteration=False)
        ds = ds.batch(int(batch_size))
        return flip_batches(ds, epoch_seed) if flip else ds

    first = min(int(initial_epoch), int(epochs) - 1)  # a finished run keeps one epoch
    dataset = tf.data.Dataset.range(first, int(epochs)).flat_map(one_epoch)
    dataset = to_model_range(dataset, labelled=labelled, dtype=np.uint8, scale=scale)
    return dataset, steps_per_epoch

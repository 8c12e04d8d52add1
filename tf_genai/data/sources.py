"""Data sources: one :func:`load` for built-in datasets, IDX, NumPy files, image folders, arrays.

``load(source, split)`` returns ``(images, labels)``: images ``(N, H, W, C)``, **uint8** when the
source holds 8-bit pixels (IDX, Keras' MNIST/Fashion-MNIST/CIFAR-10, 8-bit PNG/JPEG, uint8
arrays) and **float32 in [0, 1]** otherwise (scikit-learn digits, 16-bit PNGs, float arrays);
labels int64 ``(N,)`` or ``None``. The accepted array forms and ranges are listed in
:mod:`tf_genai.data.validation`.

Splits (``split="train" | "heldout" | "all"``):

- Keras datasets: their own train and test sets.
- An IDX folder with ``train-*`` and ``t10k-*`` files: those two.
- The 10,000-image MNIST test set (an IDX source named ``t10k-*`` with exactly 10,000 images,
  such as ``../shared/data/mnist``): train = images 0-7,999, heldout = images 8,000-9,999.
- An ``.npz`` with ``x_train`` and ``x_test``: those two.
- Every other source: a fixed permutation (``numpy.random.default_rng(0)``) of the N images;
  its last ``N // 5`` entries are the held-out split. Both splits keep the source's order.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tf_genai import ranges
from tf_genai.data import channels as channels_lib
from tf_genai.data import idx
from tf_genai.data.validation import validate_images, validate_labels
from tf_genai.errors import ConfigError, DataError

KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
BUILTIN_DATASETS = ("digits", *KERAS_DATASETS)
"""The sources :func:`load` knows by name: scikit-learn's digits and Keras' datasets."""
SPLITS = ("train", "heldout", "all")
"""The values of ``split``: the training part, the held-out part, or every image."""
HELDOUT_DIVISOR = 5  # the held-out split is the last 1/5 (20 %), in exact integer arithmetic
SPLIT_SEED = 0
# The shared MNIST test set convention: images 0-7,999 train, 8,000-9,999 held out.
T10K_SIZE = 10_000
T10K_TRAIN = 8_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
NUMPY_KEYS = (("x", "y"), ("images", "labels"), ("arr_0", "arr_1"))

# What a corrupt file can make NumPy's or Pillow's parser raise. Their parsers let through
# whatever their internals hit (tokenize.TokenError from a mangled .npy header, struct.error,
# zlib.error, ...), so at that boundary, and only there, every Exception means "corrupt file".
_CORRUPT_FILE_ERRORS = (Exception,)
_IDX_NAME = re.compile(r"^(?P<prefix>.+?)[-._]images[-._]idx(?P<rank>\d)[-._]ubyte(?:\.gz)?$")

Pair = tuple[np.ndarray, np.ndarray | None]  # (images, labels)


class Loaded(tuple):
    """What :func:`load` returns: the pair ``(images, labels)`` (unpack it as one), which also
    carries ``channels``, the :class:`~tf_genai.data.channels.ChannelDecision` made for the
    source (``loaded.channels.description`` is the line a training run prints and records)."""

    channels: channels_lib.ChannelDecision

    def __new__(cls, images: np.ndarray, labels: np.ndarray | None,
                channels: channels_lib.ChannelDecision) -> "Loaded":
        pair = super().__new__(cls, (images, labels))
        pair.channels = channels
        return pair


def load(
    source: Any,
    split: str = "train",
    *,
    labels: Any = None,
    image_size: int | Sequence[int] | None = None,
    image_shape: Sequence[int] | None = None,
    channels: int | None = None,
) -> Loaded:
    """Load images and labels from any supported source.

    Args:
        source: ``"digits"`` (scikit-learn's 8x8 digits, offline), ``"mnist"``,
            ``"fashion_mnist"``, ``"cifar10"`` (Keras' loaders: its cache or a download), a path
            to an IDX file or folder (gzip or raw), an ``.npz``/``.npy`` file or a folder of
            PNG/JPEG images (sub-folders are classes, sorted by name), or images as an array,
            or an ``(images, labels)`` tuple.
        split: ``"train"``, ``"heldout"`` or ``"all"`` (see the module docstring).
        labels: labels for an array source (one per image, before splitting).
        image_size: ``(H, W)`` (or one int for square) to resize to; for image folders the
            default is the first image's size and differing sizes are an error.
        image_shape: ``(H, W[, C])`` for sources holding flat ``(N, H*W*C)`` vectors.
        channels: ``None`` (decided from the whole source: RGB if it holds any colour image,
            else grey), ``1`` (grey) or ``3`` (RGB). Transparency is composited on white;
            the rules: :mod:`tf_genai.data.channels`.

    Returns:
        ``(images, labels)``: ``(N, H, W, C)`` uint8 or float32 in [0, 1] with C = 1 or 3,
        int64 ``(N,)`` or None; a :class:`Loaded` pair whose ``.channels`` says what was
        decided.

    Raises:
        DataError: a missing, corrupt or unsuitable source, named in the message.
        ConfigError: a bad ``split``, ``image_size``, ``labels`` or ``channels`` argument.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    size = _normalize_size(image_size)
    requested = channels_lib.check_choice(channels)
    name, parts, decision = _read_source(source, labels=labels, size=size,
                                         image_shape=image_shape, channels=requested)
    if decision is None:  # array-like sources: every image of a part has its channel count
        decision = channels_lib.decide(
            (channels_lib.KINDS[x.shape[-1]] for x, _ in parts.values() for _ in range(len(x))),
            requested)
    images, labels_out = _select_split(name, parts, split)
    if size is not None:
        images = resize(images, size)
    return Loaded(channels_lib.convert(images, decision.channels), labels_out, decision)


def load_for_shape(source: Any, split: str, image_shape: Sequence[int], *,
                   image_size: int | Sequence[int] | None = None) -> Loaded:
    """:func:`load` at a model's ``image_shape``: resized to its (H, W) and, for a grey or RGB
    model, at its channels -- the data as the model saw it in training.

    ``image_size`` (how ``train`` was told to read the data) may be given; it must be the
    model's size, since its networks take no other.
    """
    size = tuple(int(d) for d in image_shape[:2])
    if image_size is not None and _normalize_size(image_size) != size:
        raise ConfigError(f"image_size={image_size!r} differs from the model's image size "
                          f"{size[0]}x{size[1]}, the only size it takes; leave image_size out "
                          "to read the data at the model's size")
    channels = int(image_shape[-1]) if int(image_shape[-1]) in (1, 3) else None
    return load(source, split=split, image_size=size, channels=channels)


def default_split_indices(num_images: int) -> tuple[np.ndarray, np.ndarray]:
    """The documented split of a source without its own: ``(train_indices, heldout_indices)``."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(num_images)
    num_heldout = num_images // HELDOUT_DIVISOR
    cut = num_images - num_heldout
    return np.sort(perm[:cut]), np.sort(perm[cut:])


def train_validation_split(
    images: np.ndarray,
    labels: np.ndarray | None = None,
    fraction: float = 0.1,
    seed: int = 0,
) -> tuple[Pair, Pair]:
    """Split training data into ``((train_images, train_labels), (val_images, val_labels))``.

    A seeded random ``fraction`` of the images becomes the validation part (for early
    stopping); both parts keep the input order. Labels are ``None`` when not given.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"validation fraction must lie in (0, 1), got {fraction}")
    images = np.asarray(images)
    n = len(images)
    num_val = int(round(n * fraction))
    if num_val < 1 or num_val >= n:
        raise DataError(
            f"cannot split {n} images into training and validation parts with fraction {fraction}"
        )
    perm = np.random.default_rng(seed).permutation(n)
    val, train = np.sort(perm[:num_val]), np.sort(perm[num_val:])
    if labels is not None and len(labels) != n:
        raise DataError(f"array: {len(labels)} labels for {n} images")
    pick = (lambda i: None) if labels is None else (lambda i: np.asarray(labels)[i])
    return (images[train], pick(train)), (images[val], pick(val))


def resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(N, H, W, C)`` images to ``size`` (antialiased bilinear), keeping the dtype."""
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    import tensorflow as tf  # only here: loading needs no TensorFlow otherwise

    chunks = []
    for start in range(0, len(images), 4096):  # bound the float32 copy's memory
        chunk = tf.image.resize(images[start : start + 4096], size, antialias=True).numpy()
        chunks.append(chunk)
    out = np.concatenate(chunks)  # (N, size[0], size[1], C) float32
    if images.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# --- dispatch -------------------------------------------------------------------------------

def _read_source(
    source: Any, *, labels: Any, size: tuple[int, int] | None, image_shape: Any,
    channels: int | None,
) -> tuple[str, dict[str, Pair], channels_lib.ChannelDecision | None]:
    """``(name for messages, parts, decision)``; parts is ``{"all": ...}`` or
    ``{"train", "heldout"}``; ``decision`` is an image folder's (its images already converted),
    None for array-like sources."""
    if isinstance(source, (str, os.PathLike)):
        if labels is not None:
            raise ConfigError(
                "labels= is for array sources; files and datasets carry their own labels"
            )
        if isinstance(source, str) and source in BUILTIN_DATASETS:
            if source == "digits":
                return source, {"all": _read_digits()}, None
            return source, _read_keras(source), None
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(
                f"{source}: no such file or directory (and not a built-in dataset: "
                f"{', '.join(BUILTIN_DATASETS)})"
            )
        if path.is_dir() and not _idx_image_files(path):
            pair, decision = _read_image_folder(path, size, channels)
            return str(path), {"all": pair}, decision
        return str(path), _read_path(path, image_shape=image_shape), None
    if isinstance(source, tuple):
        if len(source) != 2:
            raise DataError(
                f"array: a tuple source must be (images, labels), got {len(source)} items"
            )
        if labels is not None:
            raise ConfigError("array: labels given twice (in the tuple and as labels=)")
        source, labels = source
    images = validate_images(source, "array", image_shape=image_shape)
    return "array", {"all": (images, validate_labels(labels, len(images), "array"))}, None


def _select_split(name: str, parts: dict[str, Pair], split: str) -> Pair:
    if "all" in parts:
        images, labels = parts["all"]
        if split == "all":
            return images, labels
        train, heldout = default_split_indices(len(images))
        index = train if split == "train" else heldout
        if len(index) == 0:
            raise DataError(
                f"{name}: the {split} split is empty ({len(images)} images; the held-out split "
                f"is the last {100 // HELDOUT_DIVISOR}% of a fixed permutation)"
            )
        return images[index], None if labels is None else labels[index]
    if split != "all":
        return parts[split]
    (x_tr, y_tr), (x_te, y_te) = parts["train"], parts["heldout"]
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(
            f"{name}: train and held-out images differ in shape ({x_tr.shape[1:]} vs "
            f"{x_te.shape[1:]})"
        )
    if (y_tr is None) != (y_te is None):
        raise DataError(f"{name}: only one of the train and held-out parts has labels")
    labels = None if y_tr is None else np.concatenate([y_tr, y_te])
    if x_tr.dtype == x_te.dtype:
        return np.concatenate([x_tr, x_te]), labels
    return np.concatenate([_as_unit_float(x_tr), _as_unit_float(x_te)]), labels


def _as_unit_float(images: np.ndarray) -> np.ndarray:
    """Canonical images as float32 in [0, 1] (uint8 divided by 255)."""
    return ranges.uint8_to_unit(images)


def _normalize_size(image_size: Any) -> tuple[int, int] | None:
    if image_size is None:
        return None
    try:
        size = (int(image_size),) * 2 if np.ndim(image_size) == 0 else tuple(
            int(s) for s in image_size
        )
    except (TypeError, ValueError):
        raise ConfigError(f"image_size must be an int or (H, W), got {image_size!r}") from None
    if len(size) != 2 or min(size) < 2:
        raise ConfigError(f"image_size must be (H, W) with H, W >= 2, got {image_size!r}")
    return size  # type: ignore[return-value]


# --- built-in datasets ----------------------------------------------------------------------

def _read_digits() -> Pair:
    """scikit-learn's 1,797 8x8 digits (values 0..16) as float32 in [0, 1]; no network."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)  # (1797, 8, 8)
    images = validate_images(images, "digits")
    return images, validate_labels(digits.target, len(images), "digits")


def keras_cache_dir() -> Path:
    """The folder Keras' dataset loaders cache their downloads in (``$KERAS_HOME/datasets``)."""
    # Keras' documented rule: $KERAS_HOME, else ~/.keras, else /tmp/.keras when the home
    # folder cannot be written (keras.utils.get_file's cache_dir default).
    home = Path(os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))))
    if "KERAS_HOME" not in os.environ and not os.access(home.parent, os.W_OK):
        home = Path("/tmp") / ".keras"
    return home / "datasets"


MNIST_ENV = "TF_GENAI_MNIST"


def shared_mnist_dir() -> Path:
    """Where the project's shared MNIST copy is looked for: ``$TF_GENAI_MNIST`` when set, else
    ``../shared/data/mnist`` beside the checkout that holds this package."""
    if os.environ.get(MNIST_ENV):
        return Path(os.environ[MNIST_ENV]).expanduser()
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


def mnist_or_digits(verbose: bool = True) -> str:
    """A source for :func:`load` that every copy of the project can train the examples on.

    In order: the shared MNIST copy (:func:`shared_mnist_dir`: the 10,000-image test set, train
    = images 0-7,999), else Keras' MNIST (``"mnist"``: its cache, or downloaded once as
    ``keras.datasets`` does), else -- no network -- scikit-learn's ``"digits"`` (1,797 8x8
    images, shipped with scikit-learn), with a printed note saying why.

    Returns:
        A path or a built-in dataset name; ``load`` gives uint8 images for MNIST and float32 in
        [0, 1] for digits, so scale with :func:`tf_genai.ranges.for_model`, never by hand.
    """
    shared = shared_mnist_dir()
    if shared.is_dir() and _idx_image_files(shared):
        return str(shared)
    try:
        _read_keras("mnist")
    except DataError:
        if verbose:
            print(f"note: no MNIST here (no IDX files in {shared}, and Keras' MNIST is neither "
                  f"in {keras_cache_dir()} nor downloadable): using scikit-learn's 'digits' "
                  f"(1,797 8x8 images) instead", flush=True)
        return "digits"
    return "mnist"


def _read_keras(name: str) -> dict[str, Pair]:
    """One of Keras' datasets: train = its training set, heldout = its test set."""
    import keras

    loader = getattr(keras.datasets, name).load_data
    try:
        (x_train, y_train), (x_test, y_test) = loader()
    except Exception as err:  # noqa: BLE001  Keras raises a bare Exception on a failed fetch
        raise DataError(
            f"{name}: not in the Keras cache ({keras_cache_dir()}) and the download failed "
            f"({err}). Run once with network access, copy the file into that folder, or use an "
            f"offline source such as 'digits' or an IDX folder."
        ) from None
    return keras_parts(name, x_train, y_train, x_test, y_test)


def keras_parts(
    name: str, x_train: Any, y_train: Any, x_test: Any, y_test: Any
) -> dict[str, Pair]:
    """Validate a Keras ``load_data`` result into train/heldout parts."""
    x_train = validate_images(x_train, name)
    x_test = validate_images(x_test, name)
    return {
        "train": (x_train, validate_labels(y_train, len(x_train), name)),
        "heldout": (x_test, validate_labels(y_test, len(x_test), name)),
    }


# --- files ----------------------------------------------------------------------------------

def _read_path(path: Path, *, image_shape: Any) -> dict[str, Pair]:
    """An IDX folder or file, or a NumPy file (image folders: :func:`_read_image_folder`)."""
    if path.is_dir():
        return _read_idx_folder(path, _idx_image_files(path), image_shape)
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        return _read_numpy(path, image_shape)
    if suffix in IMAGE_SUFFIXES:
        raise DataError(f"{path}: a single image; pass the folder that holds the images")
    data = idx.read_bytes(path)
    if _IDX_NAME.match(path.name) or idx.is_idx(data):
        return _read_idx_images(path, image_shape)
    raise DataError(
        f"{path}: unknown file type (expected an IDX file, .npz, .npy or a folder of images)"
    )


def _idx_image_files(folder: Path) -> dict[str, Path]:
    """``{prefix: images file}`` for the IDX image files in ``folder`` (raw preferred to gzip)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        m = _IDX_NAME.match(path.name)
        if m and path.is_file() and (m["prefix"] not in found or path.suffix != ".gz"):
            found[m["prefix"]] = path
    return found


def _labels_file(images_path: Path) -> Path | None:
    """The labels file that belongs to an IDX images file, if it exists."""
    m = _IDX_NAME.match(images_path.name)
    if not m:
        return None
    stem = images_path.name.replace("images", "labels", 1)
    stem = re.sub(r"idx\d", "idx1", stem, count=1)
    candidates = [stem, stem[:-3] if stem.endswith(".gz") else stem + ".gz"]
    for name in candidates:
        if (images_path.parent / name).is_file():
            return images_path.parent / name
    return None


def _read_idx_pair(path: Path, image_shape: Any) -> Pair:
    images = validate_images(idx.read_idx(path), str(path), image_shape=image_shape)
    labels_path = _labels_file(path)
    labels = None
    if labels_path is not None:
        labels = validate_labels(idx.read_idx(labels_path), len(images), str(labels_path))
    return images, labels


def _read_idx_images(path: Path, image_shape: Any) -> dict[str, Pair]:
    images, labels = _read_idx_pair(path, image_shape)
    if path.name.startswith("t10k") and len(images) == T10K_SIZE:
        cut = T10K_TRAIN
        return {
            "train": (images[:cut], None if labels is None else labels[:cut]),
            "heldout": (images[cut:], None if labels is None else labels[cut:]),
        }
    return {"all": (images, labels)}


def _read_idx_folder(folder: Path, files: dict[str, Path], image_shape: Any) -> dict[str, Pair]:
    if set(files) == {"train", "t10k"}:  # the original MNIST layout
        return {
            "train": _read_idx_pair(files["train"], image_shape),
            "heldout": _read_idx_pair(files["t10k"], image_shape),
        }
    if len(files) > 1:
        names = ", ".join(p.name for p in files.values())
        raise DataError(
            f"{folder}: several IDX image files ({names}); pass one file, or a folder with "
            f"train-* and t10k-* files"
        )
    return _read_idx_images(next(iter(files.values())), image_shape)


def _read_numpy(path: Path, image_shape: Any) -> dict[str, Pair]:
    """An ``.npy`` array of images or an ``.npz`` with one of the documented key pairs."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            arrays = {"x": np.asarray(loaded)}
        else:
            with loaded:
                arrays = {key: loaded[key] for key in loaded.files}
    except _CORRUPT_FILE_ERRORS as err:
        raise DataError(f"{path}: corrupt or unreadable NumPy file ({type(err).__name__}: "
                        f"{err})") from None
    name = str(path)
    if "x_train" in arrays:
        train = _checked_pair(arrays, "x_train", "y_train", name, image_shape)
        if "x_test" in arrays:
            return {"train": train,
                    "heldout": _checked_pair(arrays, "x_test", "y_test", name, image_shape)}
        return {"all": train}
    for x_key, y_key in NUMPY_KEYS:
        if x_key in arrays:
            return {"all": _checked_pair(arrays, x_key, y_key, name, image_shape)}
    if len(arrays) == 1:
        return {"all": _checked_pair(arrays, next(iter(arrays)), None, name, image_shape)}
    raise DataError(
        f"{path}: no images found; expected the keys x/y, x_train/y_train, images/labels or "
        f"arr_0/arr_1, got {', '.join(sorted(arrays)) or 'no arrays'}"
    )


def _checked_pair(
    arrays: dict[str, np.ndarray], x_key: str, y_key: str | None, name: str, image_shape: Any
) -> Pair:
    images = validate_images(arrays[x_key], f"{name} [{x_key}]", image_shape=image_shape)
    raw_labels = arrays.get(y_key) if y_key else None
    return images, validate_labels(raw_labels, len(images), f"{name} [{y_key}]")


# --- image folders --------------------------------------------------------------------------

def _is_image(path: Path) -> bool:
    suffix_ok = path.suffix.lower() in IMAGE_SUFFIXES
    return suffix_ok and path.is_file() and not path.name.startswith(".")


def _image_files(folder: Path) -> tuple[list[Path], np.ndarray | None]:
    """The image files (sorted) and their labels: sub-folder index by sorted name, or None."""
    entries = sorted(folder.iterdir())
    flat = [p for p in entries if _is_image(p)]
    class_dirs = [
        d for d in entries
        if d.is_dir() and not d.name.startswith(".") and any(_is_image(p) for p in d.iterdir())
    ]
    if class_dirs and flat:
        raise DataError(
            f"{folder}: holds both images ({flat[0].name}, ...) and class sub-folders "
            f"({class_dirs[0].name}, ...); use one layout"
        )
    if class_dirs:
        files, labels = [], []
        for label, d in enumerate(class_dirs):
            members = sorted(p for p in d.iterdir() if _is_image(p))
            files += members
            labels += [label] * len(members)
        return files, np.asarray(labels, dtype=np.int64)
    if not flat:
        raise DataError(
            f"{folder}: no IDX files and no images ({', '.join(IMAGE_SUFFIXES)}) found, "
            f"neither directly nor in class sub-folders"
        )
    return flat, None


def _read_image(path: Path, size: tuple[int, int] | None) -> tuple[np.ndarray, str]:
    """One image as ``(array, kind)``: ``(H, W, 1 or 3)`` with any transparency composited on
    white, uint8 for 8-bit modes, float32 in [0, 1] for 16-bit grey; ``kind`` what the file
    held (:data:`tf_genai.data.channels.KINDS`)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # A corrupt header can claim ~10^8 pixels; refuse it rather than decode it slowly.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                array = np.asarray(_canonical_mode(opened, path))
    except DataError:
        raise
    except _CORRUPT_FILE_ERRORS as err:  # includes Pillow's DecompressionBomb* errors
        raise DataError(f"{path}: corrupt or unreadable image ({err})") from None
    if array.ndim == 2:
        array = array[:, :, np.newaxis]  # (H, W, 1)
    kind = channels_lib.KINDS[array.shape[2]]
    if kind in ("grey+alpha", "RGBA"):
        # Before resizing, so that no transparent pixel's hidden colour bleeds into its
        # neighbours.
        array = channels_lib.composite_on_white(array)  # (H, W, 1 or 3)
    if size is not None and array.shape[:2] != size:
        im = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        array = np.asarray(im).reshape(size[0], size[1], array.shape[2])
    if array.dtype == np.float32:
        array = np.clip(array, 0.0, 1.0)
    return array, kind


def _canonical_mode(im: Any, path: Path) -> Any:
    """Grey "L", grey with alpha "LA", colour "RGB", colour with alpha "RGBA", 16-bit grey "F"."""
    from PIL import Image

    if im.mode.startswith("I;16"):  # 16-bit gray: float32 in [0, 1]
        return Image.fromarray(np.asarray(im, dtype=np.float32) / 65535.0)
    if im.mode in ("1", "L"):
        return im.convert("L")
    if im.mode in ("LA", "La"):
        return im.convert("LA")
    if im.mode in ("RGBA", "RGBa", "PA") or (im.mode == "P" and "transparency" in im.info):
        return im.convert("RGBA")
    if im.mode in ("RGB", "P", "CMYK", "YCbCr", "LAB", "HSV"):
        return im.convert("RGB")
    raise DataError(f"{path}: unsupported image mode {im.mode!r}")


def _read_image_folder(
    folder: Path, size: tuple[int, int] | None, channels: int | None
) -> tuple[Pair, channels_lib.ChannelDecision]:
    """Every image of ``folder``, at the channels decided once for the whole folder."""
    files, labels = _image_files(folder)
    read = [_read_image(p, size) for p in files]
    if size is None:
        check_same_size(folder, files, [a.shape[:2] for a, _ in read])
    decision = channels_lib.decide((kind for _, kind in read), channels)
    any_float = any(a.dtype == np.float32 for a, _ in read)
    out = np.stack([_match(a, decision.channels, any_float) for a, _ in read])  # (N, H, W, C)
    images = validate_images(out, str(folder))
    return (images, validate_labels(labels, len(images), str(folder))), decision


def check_same_size(folder: Path, files: Sequence[Path], shapes: Sequence[tuple[int, int]]) -> None:
    """DataError naming the files whose ``(H, W)`` differs from the first one's."""
    if len(set(shapes)) > 1:
        odd = [f"{p.name} {h}x{w}" for p, (h, w) in zip(files, shapes) if (h, w) != shapes[0]]
        raise DataError(
            f"{folder}: images differ in size ({files[0].name} is {shapes[0][0]}x{shapes[0][1]}, "
            f"but {', '.join(odd[:5])}{', ...' if len(odd) > 5 else ''}); pass image_size to "
            "resize them all to one size"
        )


def _match(array: np.ndarray, channels: int, as_float: bool) -> np.ndarray:
    """Bring one ``(H, W, c)`` image to ``channels`` channels (and float32 if asked)."""
    array = channels_lib.convert(array, channels)
    return ranges.uint8_to_unit(array) if as_float else array

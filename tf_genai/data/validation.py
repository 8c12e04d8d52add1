"""Checks that turn any image/label arrays into the package's canonical form, or a DataError.

Every loader and :func:`tf_genai.data.make_dataset` runs its arrays through
:func:`validate_images` and :func:`validate_labels`, so bad data is refused with a message that
names the source (a path, a dataset name or ``"array"``) before any training starts.

The canonical form (see ``tf_genai/data/README.md``):

- images: NumPy ``(N, H, W, C)`` with ``N >= 1``, ``H, W >= 2``, ``C`` in {1, 3, 4};
  **uint8** (0..255) when the source holds 8-bit pixels, otherwise **float32 in [0, 1]**;
- labels: NumPy int64 ``(N,)`` of class ids ``>= 0``, or ``None``.

Accepted inputs and how they are converted:

- ``uint8`` arrays: kept as they are (8-bit pixels).
- other integer arrays with every value in 0..255: cast to uint8 (8-bit pixels stored wider).
  ``uint16`` arrays with larger values are 16-bit pixels: float32 ``x / 65535``.
- ``bool`` arrays: binary images, float32 {0, 1}.
- float arrays (float16/32/64), all values finite and:
  in [0, 1] -> float32 as they are;
  in [-1, 1] with some value below 0 -> the symmetric GAN range, rescaled ``(x + 1) / 2``;
  in [0, 255] with some value above 1 -> 8-bit intensities stored as floats, ``x / 255``.
  Anything else (for example standardized data with values below -1 or a mix of negative values
  and values above 1) is refused: we cannot tell what range it was meant to have.
- ``(N, H, W)`` gains a channel axis; flat ``(N, D)`` vectors are reshaped only when an
  ``image_shape`` with ``H * W * C == D`` is given.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tf_genai.errors import DataError

VALID_CHANNELS = (1, 3, 4)
MIN_SIDE = 2


def _describe(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def normalize_image_shape(image_shape: Any, source: str) -> tuple[int, int, int]:
    """``image_shape`` as an ``(H, W, C)`` tuple; ``(H, W)`` means one channel."""
    try:
        shape = tuple(int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise DataError(
            f"{source}: image_shape must be (H, W) or (H, W, C), got {image_shape!r}"
        ) from None
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise DataError(f"{source}: image_shape must be (H, W) or (H, W, C), got {image_shape!r}")
    return shape  # type: ignore[return-value]


def validate_images(
    images: Any, source: str = "array", *, image_shape: Any = None
) -> np.ndarray:
    """Check ``images`` and return them as ``(N, H, W, C)`` uint8 or float32 in [0, 1].

    Args:
        images: an array-like of images (see the module docstring for accepted forms).
        source: what the images came from, named in every error message.
        image_shape: ``(H, W[, C])`` to reshape flat ``(N, D)`` vectors; when given for
            image-shaped data it must match the data's shape.

    Returns:
        The images in canonical form (a new array unless they already were canonical).

    Raises:
        DataError: empty, wrongly shaped, non-numeric, non-finite or out-of-range images.
    """
    try:
        x = np.asarray(images)
    except Exception as err:  # ragged lists and the like: numpy's own message says why
        raise DataError(f"{source}: images are not an array ({err})") from None
    if x.dtype.kind not in "biuf":
        raise DataError(
            f"{source}: images must hold numbers, got dtype {x.dtype} (shape {_describe(x.shape)})"
        )
    if x.ndim == 0:
        raise DataError(f"{source}: images must be an array of images, got a single number")
    if x.shape[0] == 0 or x.size == 0:
        raise DataError(f"{source}: no images (empty data, shape {_describe(x.shape)})")

    want = normalize_image_shape(image_shape, source) if image_shape is not None else None
    if x.ndim == 2:
        if want is None:
            raise DataError(
                f"{source}: images have shape {_describe(x.shape)}, flat vectors; pass "
                f"image_shape=(H, W, C) to reshape them"
            )
        if int(np.prod(want)) != x.shape[1]:
            raise DataError(
                f"{source}: flat images of length {x.shape[1]} do not fit image_shape "
                f"{_describe(want)} ({int(np.prod(want))} values)"
            )
        x = x.reshape((x.shape[0], *want))  # (N, H, W, C)
    elif x.ndim == 3:
        x = x[..., np.newaxis]  # (N, H, W, 1)
    elif x.ndim != 4:
        raise DataError(
            f"{source}: images must have rank 3 (N, H, W) or 4 (N, H, W, C), got rank {x.ndim} "
            f"with shape {_describe(x.shape)}"
        )
    _, h, w, c = x.shape
    if h < MIN_SIDE or w < MIN_SIDE:
        raise DataError(
            f"{source}: images of {h}x{w} pixels are not images (height and width must be at "
            f"least {MIN_SIDE}; shape {_describe(x.shape)})"
        )
    if c not in VALID_CHANNELS:
        hint = " (channels-first data? move the channel axis last)" if h in VALID_CHANNELS else ""
        raise DataError(
            f"{source}: images have {c} channels, expected 1, 3 or 4 (shape "
            f"{_describe(x.shape)}){hint}"
        )
    if want is not None and tuple(x.shape[1:]) != want:
        raise DataError(
            f"{source}: images have shape {_describe(x.shape[1:])}, image_shape says "
            f"{_describe(want)}"
        )
    return _to_canonical_range(x, source)


def _to_canonical_range(x: np.ndarray, source: str) -> np.ndarray:
    """Apply the dtype/range rule of the module docstring to rank-4 data."""
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.bool_:
        return x.astype(np.float32)
    if x.dtype.kind in "iu":
        lo, hi = int(x.min()), int(x.max())
        if lo >= 0 and hi <= 255:
            return x.astype(np.uint8)
        if x.dtype == np.uint16:
            return (x.astype(np.float32) / 65535.0).astype(np.float32)
        raise DataError(
            f"{source}: integer pixel values must lie in 0..255, got {lo}..{hi} (dtype {x.dtype})"
        )
    # Floats: reduce in float64 so float16 data cannot overflow in the checks.
    finite = np.isfinite(x)
    if not finite.all():
        bad = x[~finite]
        kinds = sorted({"NaN" if np.isnan(v) else "Inf" for v in bad[:1000]})
        raise DataError(
            f"{source}: images contain {bad.size} non-finite values ({'/'.join(kinds)})"
        )
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        return x.astype(np.float32, copy=False)
    if lo >= -1.0 and hi <= 1.0:  # the symmetric GAN range
        return ((x.astype(np.float32) + 1.0) / 2.0).clip(0.0, 1.0)
    if lo >= 0.0 and hi <= 255.0:  # 8-bit intensities stored as floats
        return (x.astype(np.float32) / 255.0).clip(0.0, 1.0)
    raise DataError(
        f"{source}: float pixel values must lie in [0, 1] (or [-1, 1], or 0..255), got "
        f"[{lo:.4g}, {hi:.4g}]"
    )


def validate_labels(labels: Any, num_images: int, source: str = "array") -> np.ndarray | None:
    """Check ``labels`` against ``num_images`` and return them as int64 ``(N,)`` (or ``None``).

    Integer arrays and float arrays holding whole numbers are accepted; ``(N, 1)`` is flattened.

    Raises:
        DataError: labels that are not whole numbers >= 0, not one per image, or not 1-D.
    """
    if labels is None:
        return None
    try:
        y = np.asarray(labels)
    except Exception as err:
        raise DataError(f"{source}: labels are not an array ({err})") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # (N, 1) -> (N,), as Keras' CIFAR-10 labels come
    if y.ndim != 1:
        hint = " (one-hot? pass labels.argmax(axis=1))" if y.ndim == 2 else ""
        raise DataError(
            f"{source}: labels must be class ids of shape (N,), got shape "
            f"{_describe(y.shape)}{hint}"
        )
    if y.shape[0] != num_images:  # also catches empty labels, as N >= 1
        raise DataError(f"{source}: {y.shape[0]} labels for {num_images} images")
    if y.dtype.kind == "b" or y.dtype.kind not in "iuf":
        raise DataError(f"{source}: labels must be integers, got dtype {y.dtype}")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise DataError(
                f"{source}: labels must be integers (class ids), got non-whole float values"
            )
    if y.min() < 0:
        raise DataError(f"{source}: labels must be class ids >= 0, got {y.min()}")
    if float(y.max()) >= 2.0**53:  # far beyond any class count; int64 would overflow
        raise DataError(f"{source}: label value {y.max()} is too large for a class id")
    return y.astype(np.int64)

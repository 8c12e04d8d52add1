"""Pixel value ranges: the one place that knows ``"unit"`` ([0, 1]) and ``"symmetric"`` ([-1, 1]).

Every model has a ``data_range``: the range of the images it trains on and draws. VAEs use
``"unit"`` (a Bernoulli decoder needs it), GANs ``"symmetric"`` (a tanh generator). Data
sources hand out uint8 or [0, 1] floats; these functions are the only conversions between the
three, and the data pipeline, plotting, evaluation, training and export all call them.

Depends on nothing of ours but :mod:`tf_genai.errors`; NumPy arrays in, NumPy arrays out (the
``unit_to`` and ``to_unit_tensor`` forms also take tensors).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tf_genai.errors import ConfigError

DATA_RANGES = ("unit", "symmetric")
VALUE_RANGES = {"unit": (0.0, 1.0), "symmetric": (-1.0, 1.0)}


def check(data_range: str, source: str = "data_range") -> str:
    """``data_range`` itself; :class:`ConfigError` naming ``source`` if it is not a known range."""
    if data_range not in DATA_RANGES:
        raise ConfigError(
            f"{source} must be one of {', '.join(DATA_RANGES)}, got {data_range!r}")
    return data_range


def uint8_to_unit(images: Any) -> np.ndarray:
    """uint8 images -> float32 in [0, 1]; float images -> float32 unchanged."""
    arr = np.asarray(images)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return arr.astype(np.float32)


def unit_to(unit: Any, data_range: str) -> Any:
    """[0, 1] values -> ``data_range`` (``2x - 1`` for symmetric). Arrays or tensors."""
    return unit * 2.0 - 1.0 if check(data_range) == "symmetric" else unit


def to_unit_tensor(x: Any, data_range: str) -> Any:
    """``data_range`` values -> [0, 1] (``(x + 1) / 2`` for symmetric), unclipped. Any tensor."""
    return (x + 1.0) / 2.0 if check(data_range) == "symmetric" else x


def to_unit(x: Any, data_range: str = "unit") -> np.ndarray:
    """``data_range`` values -> float32 [0, 1], clipped (decoders overshoot slightly)."""
    arr = np.asarray(x, dtype=np.float32)
    return np.clip(to_unit_tensor(arr, data_range), 0.0, 1.0)


def to_uint8(x: Any, data_range: str = "unit") -> np.ndarray:
    """``data_range`` values (or uint8) -> uint8, clipped and rounded to the nearest of the 256
    levels an 8-bit image file stores: real data is 8-bit, so generated images are measured
    after the same quantisation (reference FID code does the same to both)."""
    arr = np.asarray(x)
    if arr.dtype == np.uint8:
        return arr
    return np.round(to_unit(arr, data_range) * 255.0).astype(np.uint8)


def for_model(images: Any, data_range: str) -> np.ndarray:
    """uint8 or [0, 1] float images (what ``data.load`` returns) -> float32 in ``data_range``."""
    return unit_to(uint8_to_unit(images), data_range)

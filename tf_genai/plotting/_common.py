"""Shared helpers of the plotting package: array conversion, grid composition, figures.

Nothing here imports pyplot: figures are built with ``matplotlib.figure.Figure`` directly and
drawn on an Agg canvas, so plotting works in threads, in tests and on machines without a
display, and never touches pyplot's global figure list.
"""

from __future__ import annotations

import io
import math
import os
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
import matplotlib.figure

from tf_genai import capabilities, outputs, ranges
from tf_genai.errors import ConfigError, DataError

DATA_RANGES = ranges.DATA_RANGES


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy array from a NumPy array, a tf.Tensor, a Keras tensor or a nested list."""
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x)


def as_tensor(x: Any, dtype: str):
    """``x`` as a backend tensor for a model call.

    Keras refuses a functional network call whose input list mixes NumPy arrays and tensors
    (a conditional model's ``[images, labels]``), so everything handed to a model is a tensor.
    """
    if x is None:
        return None
    # Here, not at the top: plotting arrays needs no Keras (importing it costs ~10 s of start-up
    # on 2 cores against 0.8 s for tf_genai.plotting), only handing them to a model does.
    from keras import ops

    return ops.convert_to_tensor(np.asarray(to_numpy(x)), dtype=dtype)


def check_data_range(data_range: str, source: str = "data_range") -> str:
    """``data_range`` itself, or a ConfigError that names the two allowed values."""
    return ranges.check(data_range, source)


def to_unit(images: Any, data_range: str = "unit") -> np.ndarray:
    """Images as float32 in [0, 1] for display.

    uint8 images are divided by 255 whatever ``data_range`` says; float images in the
    ``"symmetric"`` range [-1, 1] are mapped with ``(x + 1) / 2``. Values are clipped, since a
    decoder's output may overshoot its range slightly.
    """
    check_data_range(data_range)
    arr = to_numpy(images)
    if arr.dtype == np.uint8:
        return ranges.uint8_to_unit(arr)
    if not np.all(np.isfinite(arr)):
        raise DataError("images to plot contain NaN or infinite values")
    return ranges.to_unit(arr, data_range)


def to_model_range(images: Any, data_range: str) -> np.ndarray:
    """Images as float32 in a model's ``data_range``; uint8 [0, 255] input is rescaled."""
    check_data_range(data_range)
    arr = to_numpy(images)
    if arr.dtype == np.uint8:
        return ranges.for_model(arr, data_range)
    return arr.astype(np.float32)


def as_image_batch(images: Any, source: str = "images") -> np.ndarray:
    """A batch of images as (N, H, W, C); accepts (N, H, W) grayscale and a single (H, W, C)."""
    arr = to_numpy(images)
    if arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4):
        arr = arr[..., None]  # (N, H, W) -> (N, H, W, 1)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{source}: expected images of shape (N, H, W, C) with C in 1, 3, 4; "
            f"got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise DataError(f"{source}: no images to plot")
    return arr


def grid_shape(n: int, nrows: int | None = None, ncols: int | None = None) -> tuple[int, int]:
    """(rows, columns) for ``n`` tiles: as square as possible unless one side is given."""
    if n < 1:
        raise ConfigError(f"cannot lay out a grid of {n} images")
    if nrows is not None and nrows < 1 or ncols is not None and ncols < 1:
        raise ConfigError(f"grid sides must be >= 1, got nrows={nrows}, ncols={ncols}")
    if nrows is None and ncols is None:
        ncols = math.ceil(math.sqrt(n))
    if nrows is None:
        nrows = math.ceil(n / ncols)
    elif ncols is None:
        ncols = math.ceil(n / nrows)
    if nrows * ncols < n:
        raise ConfigError(f"a {nrows}x{ncols} grid cannot hold {n} images")
    return nrows, ncols


def compose_grid(
    images: np.ndarray,
    nrows: int | None = None,
    ncols: int | None = None,
    *,
    pad: int = 1,
    pad_value: float = 1.0,
) -> np.ndarray:
    """Tile unit-range images (N, H, W, C) into one image.

    Returns (rows*(H+pad)-pad, cols*(W+pad)-pad) for one channel, or (..., C) for colour; empty
    trailing cells and the ``pad``-pixel gutters between tiles take ``pad_value``.
    """
    n, h, w, c = images.shape
    nrows, ncols = grid_shape(n, nrows, ncols)
    canvas = np.full(
        (nrows * (h + pad) - pad, ncols * (w + pad) - pad, c), pad_value, dtype=np.float32
    )
    for i in range(n):
        r, col = divmod(i, ncols)
        top, left = r * (h + pad), col * (w + pad)
        canvas[top : top + h, left : left + w] = images[i]
    return canvas[..., 0] if c == 1 else canvas


def show_image(ax: Any, image: np.ndarray, **kwargs: Any) -> Any:
    """imshow for a unit-range grid: gray colormap pinned to [0, 1] for one channel."""
    if image.ndim == 2:
        kwargs = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0, **kwargs}
    im = ax.imshow(image, interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


class Figure(matplotlib.figure.Figure):
    """A ``matplotlib.figure.Figure`` that shows itself as a PNG in Jupyter.

    IPython only renders a figure inline through a formatter that pyplot's inline backend
    registers; figures built without pyplot would print as ``<Figure size ...>``. With
    ``_repr_png_`` a figure returned as a cell's last expression is drawn in any kernel (when
    the inline formatter is registered, it takes precedence and the figure is drawn once).
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def new_figure(figsize: Sequence[float], **kwargs: Any) -> Figure:
    """A pyplot-free Figure with an Agg canvas attached (so ``savefig`` works anywhere)."""
    fig = Figure(figsize=tuple(figsize), **kwargs)
    FigureCanvasAgg(fig)
    return fig


def finish(
    fig: matplotlib.figure.Figure, path: str | os.PathLike | None, dpi: int = 100
) -> matplotlib.figure.Figure:
    """Save ``fig`` as a PNG at ``path`` (creating its folder) when given, whole or not at all
    (:func:`tf_genai.outputs.write_with`); return ``fig``."""
    if path is not None:
        outputs.write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi,
                                                         bbox_inches="tight"))
    return fig


def tile_figsize(grid: np.ndarray, max_inches: float = 8.0, min_inches: float = 3.0) -> tuple:
    """A figure size that keeps the grid's aspect ratio, its long side within bounds."""
    h, w = grid.shape[:2]
    long_side = max(h, w)
    # ~ 70 screen pixels per 28-pixel digit at dpi 100, capped so big grids stay on screen
    inches = float(np.clip(long_side / 40.0, min_inches, max_inches))
    return (inches * w / long_side, inches * h / long_side)


def require(model: Any, capability: str, what: str) -> None:
    """ConfigError unless ``model`` is a tf_genai model whose capabilities include
    ``capability`` (``"latent"``, ``"encodes"``, ``"iterative"``); ``what`` names the plot."""
    caps = capabilities.of(model)
    if caps is None:
        raise ConfigError(f"{what} needs a tf_genai model, got {type(model).__name__}")
    if not getattr(caps, capability):
        raise ConfigError(f"{what}: {getattr(model, 'name', type(model).__name__)} "
                          f"({model.family}) has no {CAPABILITY_NAMES[capability]}")


CAPABILITY_NAMES = {"latent": "latent space (capabilities.latent)",
                    "encodes": "encoder from images to latents (capabilities.encodes)",
                    "iterative": "iterative sampler (capabilities.iterative)"}


def model_data_range(model: Any) -> str:
    """``model.data_range``, or a ConfigError saying the object is not a tf_genai model."""
    data_range = getattr(model, "data_range", None)
    if data_range is None:
        raise ConfigError(
            f"{type(model).__name__} has no data_range attribute; pass a tf_genai model"
        )
    return check_data_range(data_range, f"{type(model).__name__}.data_range")


def batched_labels(labels: Any, n: int, source: str) -> np.ndarray:
    """Labels as int32 (n,): a single class is repeated, a sequence must have length n."""
    arr = np.asarray(to_numpy(labels))
    if arr.ndim == 0:
        arr = np.full((n,), int(arr), dtype=np.int32)
    arr = arr.astype(np.int32).reshape(-1)
    if arr.shape[0] != n:
        raise DataError(f"{source}: {arr.shape[0]} labels for {n} images")
    return arr

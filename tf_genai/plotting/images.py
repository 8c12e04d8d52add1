"""Image grids: arrays, model samples and reconstructions.

Each grid is drawn as ONE composed image on ONE axes (tiles separated by a 1-pixel white
gutter), not one axes per image: a 64-image grid then costs one ``imshow`` instead of 64, and
the figure's single ``AxesImage`` holds exactly the pixels that were drawn.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from tf_genai import capabilities
from tf_genai.errors import ConfigError
from tf_genai.plotting._common import (
    as_image_batch,
    as_tensor,
    batched_labels,
    check_data_range,
    compose_grid,
    finish,
    grid_shape,
    model_data_range,
    new_figure,
    require,
    show_image,
    tile_figsize,
    to_model_range,
    to_numpy,
    to_unit,
)

PathLike = str | os.PathLike


def image_grid(
    images: Any,
    *,
    nrows: int | None = None,
    ncols: int | None = None,
    data_range: str = "unit",
    title: str | None = None,
    pad: int = 1,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    path: PathLike | None = None,
) -> Figure:
    """One axes showing ``images`` (N, H, W, C) or (N, H, W) tiled into a single grid image.

    Args:
        images: uint8 [0, 255] or float images in ``data_range``; grayscale or RGB(A).
        nrows, ncols: grid shape; as square as possible when neither is given.
        data_range: ``"unit"`` ([0, 1]) or ``"symmetric"`` ([-1, 1], mapped to [0, 1]).
        pad: pixels of white gutter between tiles (0 for a seamless grid).
        row_labels, col_labels: tick labels at the rows' / columns' centres (e.g. classes).
        path: where to save the figure as a PNG.

    Returns:
        The Figure; its one ``AxesImage`` has shape (rows*(H+pad)-pad, cols*(W+pad)-pad[, C]).
    """
    check_data_range(data_range)
    batch = to_unit(as_image_batch(images), data_range)  # (N, H, W, C) in [0, 1]
    grid = compose_grid(batch, nrows, ncols, pad=pad)
    fig = new_figure(tile_figsize(grid), layout="constrained")
    ax = fig.add_subplot()
    show_image(ax, grid)
    n, h, w = batch.shape[:3]
    rows, cols = grid_shape(n, nrows, ncols)
    for labels, count, size, set_ticks in ((row_labels, rows, h, ax.set_yticks),
                                           (col_labels, cols, w, ax.set_xticks)):
        if labels is not None:
            if len(labels) != count:
                raise ConfigError(f"image_grid: {len(labels)} tick labels for {count} rows/columns")
            set_ticks([i * (size + pad) + (size - 1) / 2 for i in range(count)], list(labels),
                      fontsize="small")
    ax.tick_params(length=0)
    if title:
        ax.set_title(title)
    return finish(fig, path)


def label_columns(labels: np.ndarray) -> int | None:
    """Columns that line classes up in a grid of ``labels``, or None for no clear pattern.

    Runs of equal length r (``np.repeat(classes, r)``) give r columns, one class per row; a
    repeating cycle of period p (``arange(n) % p``) gives p columns, one class per column.
    """
    labels = np.asarray(labels).reshape(-1)
    n = labels.shape[0]
    if n < 2:
        return None
    starts = np.flatnonzero(np.diff(labels)) + 1
    runs = np.diff(np.concatenate([[0], starts, [n]]))
    if len(runs) > 1 and runs[0] > 1 and np.all(runs == runs[0]):
        return int(runs[0])
    for period in range(2, n):
        if np.array_equal(labels, np.resize(labels[:period], n)):
            return period
    return None


def _class_labels(model: Any, n: int, labels: Any) -> np.ndarray | None:
    """Labels for a conditional model: given ones, else 0, 1, ..., K-1, 0, 1, ... (None if not)."""
    num_classes = model.num_classes
    if labels is not None:
        return batched_labels(labels, n, f"{type(model).__name__} labels")
    if num_classes:
        return (np.arange(n) % num_classes).astype(np.int32)
    return None


def plot_samples(
    model_or_images: Any,
    n: int = 64,
    seed: int = 0,
    labels: Any = None,
    *,
    nrows: int | None = None,
    ncols: int | None = None,
    data_range: str | None = None,
    title: str | None = None,
    path: PathLike | None = None,
    **options: Any,
) -> Figure:
    """A grid of ``n`` samples drawn with ``model.sample(n, seed=seed, labels=labels,
    **options)`` (options: the model's ``sampling_options``, e.g. a diffusion model's steps).

    Given an array instead of a model, shows its first ``n`` images. A conditional model without
    ``labels`` is sampled for classes 0, 1, ..., K-1 in turn with ``ncols = K``, so each column
    holds one class; given labels such as ``np.repeat(classes, 8)`` get 8 columns, one class a
    row (see :func:`label_columns`). Such class grids name each row's (column's) class.

    Args:
        data_range: only for arrays (default ``"unit"``); a model's own ``data_range`` is used.

    Returns:
        The Figure of :func:`image_grid`.
    """
    if n < 1:
        raise ConfigError(f"plot_samples: n must be >= 1, got {n}")
    row_labels = col_labels = None
    if capabilities.of(model_or_images) is not None:
        model = model_or_images
        class_labels = _class_labels(model, n, labels)
        if class_labels is not None and nrows is None and ncols is None:
            ncols = label_columns(class_labels)
            row_labels, col_labels = _class_ticks(class_labels, ncols)
        images = model.sample(n, seed=seed, labels=as_tensor(class_labels, "int32"),
                              **options)
        data_range = model_data_range(model)
        if title is None:
            title = f"{getattr(model, 'name', type(model).__name__)}: {n} samples"
    else:
        images = as_image_batch(model_or_images)[:n]
        data_range = data_range or "unit"
    return image_grid(
        images, nrows=nrows, ncols=ncols, data_range=data_range, title=title,
        row_labels=row_labels, col_labels=col_labels, path=path,
    )


def _class_ticks(labels: np.ndarray, ncols: int | None) -> tuple[list | None, list | None]:
    """Row or column tick labels naming the class of a grid that holds one class per row or
    per column (the patterns of :func:`label_columns`); (None, None) otherwise."""
    if ncols is None:
        return None, None
    grid = np.full(grid_shape(len(labels), None, ncols)[0] * ncols, -1)
    grid[: len(labels)] = labels
    grid = grid.reshape(-1, ncols)  # -1: an empty cell
    rows_one_class = all(len(set(r[r >= 0])) == 1 for r in grid)
    cols_one_class = all(len(set(c[c >= 0])) == 1 for c in grid.T)
    if rows_one_class and not cols_one_class:
        return [f"class {int(r[0])}" for r in grid], None
    if cols_one_class and not rows_one_class:
        return None, [str(int(c[0])) for c in grid.T]
    return None, None


def plot_reconstructions(
    model: Any,
    images: Any,
    labels: Any = None,
    n: int = 10,
    *,
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """The first ``n`` images (top axes) above ``model.reconstruct`` of them (bottom axes).

    Args:
        model: a model that encodes (``capabilities.encodes``: ``reconstruct``).
        images: uint8 [0, 255] (rescaled to the model's range) or float in ``model.data_range``.
        labels: class labels of ``images``; required by a conditional model.

    Returns:
        A Figure with two axes, each showing one strip of shape (H, n*(W+1)-1[, C]).
    """
    require(model, "encodes", "plot_reconstructions")
    data_range = model_data_range(model)
    batch = as_image_batch(images)[:n]
    x = to_model_range(batch, data_range)  # (n, H, W, C)
    n = x.shape[0]
    if labels is not None:
        labels = batched_labels(to_numpy(labels)[:n] if np.ndim(labels) else labels, n, "labels")
    elif getattr(model, "num_classes", None):
        raise ConfigError(
            f"{type(model).__name__} is conditional: pass the images' labels to "
            "plot_reconstructions"
        )
    recon = model.reconstruct(as_tensor(x, "float32"), labels=as_tensor(labels, "int32"))
    recon = to_numpy(recon)  # (n, H, W, C)
    strips = [compose_grid(to_unit(a, data_range), 1, n) for a in (x, recon)]
    w_in, h_in = tile_figsize(np.concatenate(strips, axis=0), max_inches=12.0, min_inches=2.0)
    fig = new_figure((max(w_in, 4.0), h_in + 0.9), layout="constrained")
    axes = fig.subplots(2, 1)
    for ax, strip, name in zip(axes, strips, ("originals", "reconstructions")):
        show_image(ax, strip)
        ax.set_title(name, loc="left", fontsize="medium")
    if title:
        fig.suptitle(title)
    return finish(fig, path)


__all__: Sequence[str] = ["image_grid", "plot_samples", "plot_reconstructions"]

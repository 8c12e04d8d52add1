"""The denoising trajectory of an iterative sampler (diffusion models).

Works on any object with ``trajectory(n, seed=, labels=, **options) -> (images (n, R, H, W, C),
timesteps (R,))`` and ``data_range`` (the model interface of docs/ARCHITECTURE.md): one row a
sample, one column a recorded sampler state, from the initial noise x_T (left) to the sample x_0
(right), each column headed by its timestep.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from matplotlib.figure import Figure

from tf_genai.errors import ConfigError
from tf_genai.plotting._common import as_tensor, model_data_range, require, to_numpy
from tf_genai.plotting.images import _class_labels, image_grid

PathLike = str | os.PathLike


def plot_trajectory(
    model: Any,
    n: int = 4,
    seed: int = 0,
    labels: Any = None,
    *,
    record: int = 8,
    title: str | None = None,
    path: PathLike | None = None,
    **options: Any,
) -> Figure:
    """``n`` samples' denoising trajectories in one grid: row i is sample i, column j the state
    at the j-th of ``record`` evenly spaced sampler steps (``x_T`` first, the sample last).

    Args:
        model: a model that samples iteratively (``capabilities.iterative``, e.g. ddpm).
        labels: class ids for a conditional model (default: 0, 1, ..., one class a row).
        options: the model's sampling options (``steps``, ``eta``, ``guidance``).

    Returns:
        The Figure of :func:`image_grid`, columns labelled ``t=<timestep>``; the last column is
        what ``model.sample(n, seed=seed, labels=labels, **options)`` returns.
    """
    require(model, "iterative", "plot_trajectory")
    if n < 1 or record < 2:
        raise ConfigError(f"plot_trajectory: need n >= 1 and record >= 2, got {n}, {record}")
    data_range = model_data_range(model)
    class_labels = _class_labels(model, n, labels)
    images, timesteps = model.trajectory(n, seed=seed, labels=as_tensor(class_labels, "int32"),
                                         record=record, **options)
    images = to_numpy(images)  # (n, R, H, W, C)
    rows, cols = images.shape[:2]
    if title is None:
        title = f"{getattr(model, 'name', type(model).__name__)}: denoising x_T -> x_0"
    row_labels = None if class_labels is None else [f"class {int(c)}" for c in class_labels]
    return image_grid(images.reshape(rows * cols, *images.shape[2:]), nrows=rows, ncols=cols,
                      data_range=data_range, title=title, row_labels=row_labels,
                      col_labels=[f"t={int(t)}" for t in to_numpy(timesteps)], path=path)


__all__: Sequence[str] = ["plot_trajectory"]

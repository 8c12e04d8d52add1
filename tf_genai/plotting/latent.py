"""Latent-space figures: scatter of encodings, the decoded manifold, interpolations.

Everything that decodes several latent points does it in ONE batched ``model.render`` call
(a VAE's ``decode``, a GAN's ``generate``): the keras-io examples call ``decoder.predict`` once
per grid cell, which for a 30x30 manifold is 900 calls and ~650x slower
(0.458 s against 296 s for a 30x30 manifold, Zen 4, 2026-11-29; ``benchmarks/README.md``, Findings).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from tf_genai import capabilities
from tf_genai.errors import ConfigError, DataError
from tf_genai.plotting._common import (
    as_image_batch,
    as_tensor,
    batched_labels,
    compose_grid,
    finish,
    model_data_range,
    require,
    new_figure,
    show_image,
    tile_figsize,
    to_model_range,
    to_numpy,
    to_unit,
)

PathLike = str | os.PathLike


def _model_name(model: Any) -> str:
    return getattr(model, "name", None) or type(model).__name__


def _conditional_labels(model: Any, labels: Any, n: int, what: str) -> np.ndarray | None:
    """int32 (n,) labels for a conditional model (ConfigError when missing), None otherwise."""
    if labels is None:
        if getattr(model, "num_classes", None):
            raise ConfigError(
                f"{_model_name(model)} is conditional (num_classes={model.num_classes}): "
                f"pass labels= to {what}"
            )
        return None
    return batched_labels(labels, n, f"{what} labels")


def encode_means(
    model: Any, images: Any, labels: Any = None, batch_size: int = 256
) -> np.ndarray:
    """``model.encode(x)`` of ``images`` (a VAE's posterior means), in batches:
    ``(N, *latent_shape)``."""
    require(model, "encodes", "encode_means")
    x = to_model_range(as_image_batch(images), model_data_range(model))  # (N, H, W, C)
    y = _conditional_labels(model, labels, x.shape[0], "encode")
    means = []
    for start in range(0, x.shape[0], batch_size):
        stop = start + batch_size
        kwargs = {} if y is None else {"labels": as_tensor(y[start:stop], "int32")}
        z = model.encode(as_tensor(x[start:stop], "float32"), **kwargs)  # (batch, *latent)
        means.append(to_numpy(z))
    return np.concatenate(means, axis=0).astype(np.float32)


def decode_latents(model: Any, z: np.ndarray, labels: np.ndarray | None = None) -> tuple:
    """Draw all of ``z`` (n, *latent_shape) in ONE ``model.render`` call (the family contract:
    a VAE's decoder, a GAN's generator); returns (images (n, H, W, C), model.data_range)."""
    require(model, "latent", "decode_latents")
    z = as_tensor(np.asarray(z, dtype=np.float32), "float32")
    labels = None if labels is None else as_tensor(labels, "int32")
    return to_numpy(model.render(z, labels)), model_data_range(model)


def _project_2d(latents: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, list[str]]:
    """(N, d) latents -> (N, 2) points and the two axis labels."""
    d = latents.shape[1]
    if method not in ("auto", "pca", "tsne"):
        raise ConfigError(f"plot_latent_scatter: method {method!r} is not auto, pca or tsne")
    if d == 1:  # nothing to project: spread along y=0
        return np.concatenate([latents, np.zeros_like(latents)], axis=1), ["z[0]", ""]
    if d == 2 and method == "auto":
        return latents, ["z[0]", "z[1]"]
    # scikit-learn and SciPy are imported where used: ~2.5 s each of start-up (2 cores)
    # that only projections and quantile grids need.
    if method in ("auto", "pca"):
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        points = pca.fit_transform(latents)  # (N, 2)
        ratio = pca.explained_variance_ratio_
        return points, [f"PC 1 ({ratio[0]:.0%} of variance)", f"PC 2 ({ratio[1]:.0%})"]
    from sklearn.manifold import TSNE

    if latents.shape[0] < 5:
        raise DataError(f"t-SNE needs at least 5 points, got {latents.shape[0]}")
    perplexity = min(30.0, (latents.shape[0] - 1) / 3.0)
    points = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(latents)
    return points, ["t-SNE 1", "t-SNE 2"]


def plot_latent_scatter(
    model_or_latents: Any,
    images: Any = None,
    labels: Any = None,
    method: str = "auto",
    *,
    batch_size: int = 256,
    seed: int = 0,
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """Scatter of latent codes coloured by label, on one axes.

    Args:
        model_or_latents: a model that encodes (then ``images`` are encoded in batches and
            ``model.encode``, a VAE's posterior means, plotted) or an array of codes (N, d).
        labels: int class of each point (colours and a legend); also the conditioning labels
            of a conditional VAE.
        method: ``"auto"`` plots 2-D codes as they are and projects wider ones with PCA;
            ``"pca"`` or ``"tsne"`` (scikit-learn, ``seed`` fixes it) force a projection.

    Returns:
        A Figure with one axes (the scatter plot) and a legend when labels are given.
    """
    if capabilities.of(model_or_latents) is not None:
        if images is None:
            raise ConfigError("plot_latent_scatter: pass images= to encode with the model")
        latents = encode_means(model_or_latents, images, labels, batch_size)
        name = _model_name(model_or_latents)
    else:
        latents = np.asarray(to_numpy(model_or_latents), dtype=np.float32)
        name = "latents"
    if latents.ndim > 2:  # image-shaped latents (a diffusion model's x_T): one row a point
        latents = latents.reshape(len(latents), -1)
    if latents.ndim != 2 or latents.shape[0] == 0:
        raise DataError(f"plot_latent_scatter: expected latents (N, d), got {latents.shape}")
    points, axis_labels = _project_2d(latents, method, seed)
    fig = new_figure((6.0, 5.2), layout="constrained")
    ax = fig.add_subplot()
    size = float(np.clip(20000.0 / len(points), 4.0, 40.0))  # smaller dots for big sets
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=size, alpha=0.6, color="tab:blue", lw=0)
    else:
        y = batched_labels(labels, len(points), "plot_latent_scatter labels")
        classes = np.unique(y)
        palette = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
        for i, c in enumerate(classes):
            mask = y == c
            ax.scatter(
                points[mask, 0], points[mask, 1], s=size, alpha=0.7, lw=0,
                color=palette(i % palette.N), label=str(c),
            )
        legend = ax.legend(
            title="label", markerscale=max(1.0, 6.0 / np.sqrt(size)), fontsize="small",
            loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
        )
        for handle in legend.legend_handles:
            handle.set_alpha(1.0)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title or f"{name}: {len(points)} latent codes")
    return finish(fig, path)


def manifold_coordinates(n: int, grid: str = "quantiles", extent: float = 2.0) -> np.ndarray:
    """The ``n`` coordinates of the manifold along one latent axis, ascending.

    ``"quantiles"`` places them at the standard normal quantiles of ``n`` equal-probability
    bins' centres (Kingma & Welling 2014, fig. 4: a uniform grid pushed through the inverse CDF,
    so each cell covers equal prior mass); ``"range"`` spaces them evenly in [-extent, extent].
    """
    if n < 2:
        raise ConfigError(f"a latent manifold needs n >= 2, got {n}")
    if grid == "quantiles":
        from scipy.stats import norm  # where used: ~2.5 s of start-up (see _project_2d)

        return norm.ppf(np.linspace(0.5 / n, 1.0 - 0.5 / n, n)).astype(np.float32)
    if grid == "range":
        if not extent > 0:
            raise ConfigError(f"extent must be > 0, got {extent}")
        return np.linspace(-extent, extent, n, dtype=np.float32)
    raise ConfigError(f"grid {grid!r} is not 'quantiles' or 'range'")


def plot_latent_manifold(
    vae: Any,
    n: int = 30,
    *,
    grid: str = "quantiles",
    extent: float = 2.0,
    dims: tuple[int, int] | None = None,
    labels: int | None = None,
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """The decoded n x n grid over two latent dimensions, decoded in ONE ``render`` call.

    Args:
        vae: a tf_genai model (``render``, ``latent_dim``): a VAE, or a GAN's generator.
        grid: ``"quantiles"`` (normal quantiles, see :func:`manifold_coordinates`) or
            ``"range"`` (evenly spaced in [-extent, extent]).
        dims: the two latent dimensions to vary; the others stay 0 (the prior mean). Required
            unless ``latent_dim == 2``.
        labels: the class to decode every cell with; required by a conditional model.

    Returns:
        A Figure with one axes showing one seamless (n*H, n*W[, C]) image; column k is
        coordinate k of ``dims[0]`` (left to right), row k from the top is coordinate
        n-1-k of ``dims[1]`` (bottom to top, like a plot's y axis).
    """
    require(vae, "latent", "plot_latent_manifold")
    latent_dim = int(vae.latent_dim or 0)  # None for image-shaped latents
    if dims is None:
        if latent_dim != 2:
            raise ConfigError(
                f"plot_latent_manifold: {_model_name(vae)} has latent_dim={latent_dim}; "
                "the manifold needs latent_dim=2 or dims=(i, j) to pick two dimensions"
            )
        dims = (0, 1)
    i, j = (int(d) for d in dims)
    if i == j or not (0 <= i < latent_dim and 0 <= j < latent_dim):
        raise ConfigError(f"dims={dims} must be two different indices below {latent_dim}")
    coords = manifold_coordinates(n, grid, extent)  # (n,)
    xs, ys = np.meshgrid(coords, coords[::-1])  # (n, n): y decreases down the rows
    z = np.zeros((n * n, latent_dim), dtype=np.float32)  # (n*n, latent)
    z[:, i] = xs.reshape(-1)
    z[:, j] = ys.reshape(-1)
    y = _conditional_labels(vae, labels, n * n, "plot_latent_manifold")
    decoded, data_range = decode_latents(vae, z, y)  # (n*n, H, W, C), row-major like z
    image = compose_grid(to_unit(decoded, data_range), n, n, pad=0)
    fig = new_figure(tile_figsize(image, max_inches=9.0, min_inches=4.0), layout="constrained")
    ax = fig.add_subplot()
    show_image(ax, image)
    h, w = decoded.shape[1:3]
    ticks = np.unique(np.linspace(0, n - 1, min(n, 5)).round().astype(int))
    ax.set_xticks(ticks * w + (w - 1) / 2.0, [f"{coords[k]:.2f}" for k in ticks])
    ax.set_yticks(ticks * h + (h - 1) / 2.0, [f"{coords[::-1][k]:.2f}" for k in ticks])
    ax.set_xlabel(f"z[{i}]")
    ax.set_ylabel(f"z[{j}]")
    if title is None:
        of_class = "" if labels is None else f", class {labels}"
        title = f"{_model_name(vae)}: latent manifold ({grid}, {n}x{n}{of_class})"
    ax.set_title(title)
    return finish(fig, path)


def slerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation (Shoemake 1985; White 2016, arXiv:1609.04468).

    ``z0`` and ``z1`` may have any (equal) shape, e.g. a diffusion model's image-shaped x_T;
    the angle is taken between them flattened. Returns (len(t), *z0.shape). Falls back to linear
    interpolation when the two are (nearly) parallel, where the spherical formula divides by
    sin(angle) ~ 0.
    """
    a, b = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    if a.shape != b.shape:
        raise DataError(f"slerp: the two points have shapes {a.shape} and {b.shape}")
    shape = a.shape
    a, b = a.reshape(-1), b.reshape(-1)
    t = np.asarray(t, dtype=np.float64)[:, None]  # (steps, 1)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    omega = np.arccos(np.clip(np.dot(a, b) / norms, -1.0, 1.0)) if norms >= 1e-12 else 0.0
    if norms < 1e-12 or np.sin(omega) < 1e-6:
        out = (1.0 - t) * a + t * b
    else:
        out = (np.sin((1.0 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
    return out.reshape(len(t), *shape).astype(np.float32)


def plot_interpolation(
    model: Any,
    start: Any,
    end: Any,
    *,
    steps: int = 10,
    method: str = "linear",
    from_images: bool | None = None,
    labels: int | None = None,
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """Images decoded along a path between two latent points, in ONE ``render`` call.

    Args:
        start, end: two images (H, W, C) — encoded with ``model.encode`` (a VAE's posterior
            means, a diffusion model's DDIM inversion to x_T) — or two latent points of
            ``model.latent_shape`` ((latent_dim,) for a VAE or GAN, (H, W, C) for diffusion,
            whose latents are image-shaped: pass ``from_images=False`` for those).
        method: ``"linear"`` or ``"slerp"`` (spherical, which keeps the norm typical of a
            Gaussian prior sample instead of shrinking it midway).
        from_images: whether ``start``/``end`` are images; by default, decided by their shape.
        labels: the class to encode and decode with; required by a conditional model.

    Returns:
        A Figure with one axes showing a strip of ``steps`` tiles, (H, steps*(W+1)-1[, C]),
        ticks labelled with the interpolation weight t.
    """
    if steps < 2:
        raise ConfigError(f"plot_interpolation: steps must be >= 2, got {steps}")
    if method not in ("linear", "slerp"):
        raise ConfigError(f"plot_interpolation: method {method!r} is not linear or slerp")
    start, end = to_numpy(start), to_numpy(end)
    if from_images is None:
        from_images = start.ndim >= 2
    if from_images:
        pair = np.stack([as_image_batch(start[None])[0], as_image_batch(end[None])[0]])
        y2 = None if labels is None else [labels, labels]
        z0, z1 = encode_means(model, pair, y2)  # each (*latent_shape)
    else:
        require(model, "latent", "plot_interpolation")
        shape = tuple(int(d) for d in model.latent_shape)
        # A flat point (the old (latent_dim,) form) is reshaped when its size fits.
        z0, z1 = (p.astype(np.float32).reshape(shape) if p.size == np.prod(shape) else p
                  for p in (start, end))
        if z0.shape != shape or z1.shape != shape:
            expected = f"latent_dim={shape[0]}" if len(shape) == 1 else f"latent shape {shape}"
            raise DataError(f"plot_interpolation: latent points of shape {start.shape} and "
                            f"{end.shape} do not match the model's {expected}")
    t = np.linspace(0.0, 1.0, steps)
    if method == "slerp":
        z = slerp(z0, z1, t)
    else:
        tt = t.reshape(-1, *([1] * z0.ndim))
        z = ((1.0 - tt) * z0 + tt * z1).astype(np.float32)  # (steps, *latent_shape)
    y = _conditional_labels(model, labels, steps, "plot_interpolation")
    decoded, data_range = decode_latents(model, z, y)  # (steps, H, W, C)
    strip = compose_grid(to_unit(decoded, data_range), 1, steps)
    w_in, h_in = tile_figsize(strip, max_inches=12.0, min_inches=1.2)
    fig = new_figure((max(w_in, 4.0), h_in + 0.8), layout="constrained")
    ax = fig.add_subplot()
    show_image(ax, strip)
    w = decoded.shape[2]
    ax.set_xticks(np.arange(steps) * (w + 1) + (w - 1) / 2.0, [f"{v:.2f}" for v in t])
    ax.tick_params(axis="x", labelsize="small")
    ax.set_xlabel("t")
    of_class = "" if labels is None else f" (class {labels})"
    ax.set_title(title or f"{_model_name(model)}{of_class}: {method} interpolation")
    return finish(fig, path)


__all__: Sequence[str] = [
    "encode_means",
    "decode_latents",
    "plot_latent_scatter",
    "manifold_coordinates",
    "plot_latent_manifold",
    "slerp",
    "plot_interpolation",
]

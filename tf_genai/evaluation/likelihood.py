"""A model's negative log-likelihood as ``evaluate`` reports it: nats per image and bits/dim.

Any model whose capabilities declare a likelihood (``"exact"`` or ``"bound"``) answers
``model.nll(images, labels, seed=, **nll_options)`` with per-image figures in nats; this module
averages them, names them (``conditional_`` for a conditional model, whose figure is
``-log p(x | y)``), and converts the NLL to bits per subpixel where the likelihood is a
probability mass over pixel values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tf_genai import capabilities, losses, ranges
from tf_genai.errors import ConfigError
from tf_genai.progress import ProgressFactory, step


# Images per call of ``model.nll``: the unit of evaluate's NLL progress bar.
NLL_CHUNK = 200


def chunk_seed(seed: int, k: int) -> int:
    """The seed of chunk ``k`` of a seeded computation done in chunks: ``seed`` itself for the
    first (a computation of one chunk is the unchunked one), then seeds drawn from
    ``(seed, k)``, so that runs with neighbouring seeds share no chunk's draws."""
    if k == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed) % 2**32, k]).generate_state(1)[0] % (2**31 - 2))


def nll_summary(model: Any, images: Any, labels: Any = None, *, seed: int = 0,
                progress: ProgressFactory | None = None, **options: Any) -> dict[str, Any]:
    """Mean per-image NLL (and the model's other per-image figures) of ``images``.

    The figures are computed :data:`NLL_CHUNK` images at a time, chunk ``k`` seeded with
    :func:`chunk_seed` ``(seed, k)``, and a ``progress`` bar (:mod:`tf_genai.progress`)
    advances after each.

    Args:
        model: a model with ``capabilities.likelihood``.
        images: ``(N, H, W, C)`` uint8 or [0, 1] floats, as ``tf_genai.data.load`` returns them.
        labels: class ids ``(N,)``; used by a conditional model only.
        seed: seeds any sampling the estimate needs (a bound's importance samples).
        progress: draws a bar (None: nothing).
        options: options of ``model.nll`` among ``model.nll_options``; others are dropped, so a
            caller can pass what it has (``evaluate``'s ``num_samples`` to a model without it).

    Returns:
        ``{"nll", <other figures>, "nll_unit", "likelihood", "nll_options"}`` (each figure
        prefixed ``conditional_`` for a conditional model), plus ``nll_bits_per_dim`` and
        ``likelihood_levels`` for a probability mass: ``nll / (H W C ln 2)``.

    Raises:
        ConfigError: a model without a likelihood.
    """
    caps = capabilities.of(model)
    if caps is None or caps.likelihood is None:
        raise ConfigError(f"{type(model).__name__} has no likelihood to evaluate")
    options = {k: v for k, v in options.items() if k in model.nll_options and v is not None}
    labels = labels if caps.conditional else None
    if model.likelihood_levels == 256:  # a mass over 8-bit values scores 8-bit images: [0, 1]
        images = ranges.to_uint8(images)  # data of other depths (digits' 17 levels) is rounded
    parts = []
    with step(progress, "NLL", len(images)) as advance:
        for k, start in enumerate(range(0, len(images), NLL_CHUNK)):
            part = slice(start, start + NLL_CHUNK)
            parts.append(model.nll(images[part], None if labels is None else labels[part],
                                   seed=chunk_seed(seed, k), **options))
            advance(len(images[part]))
    per_image = {key: np.concatenate([np.reshape(p[key], (-1,)) for p in parts])
                 for key in parts[0]}
    prefix = "conditional_" if caps.conditional else ""
    result: dict[str, Any] = {f"{prefix}{key}": float(np.mean(values))
                              for key, values in per_image.items()}
    result["nll_unit"] = "nats per image"
    result["likelihood"] = caps.likelihood
    levels = model.likelihood_levels
    if levels is not None:
        result[f"{prefix}nll_bits_per_dim"] = float(losses.bits_per_dim(
            result[f"{prefix}nll"], int(np.prod(model.image_shape))))
        result["likelihood_levels"] = int(levels)
    result["nll_options"] = options
    return result

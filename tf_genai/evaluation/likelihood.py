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

from tf_genai import capabilities, losses
from tf_genai.errors import ConfigError


def nll_summary(model: Any, images: Any, labels: Any = None, *, seed: int = 0,
                **options: Any) -> dict[str, Any]:
    """Mean per-image NLL (and the model's other per-image figures) of ``images``.

    Args:
        model: a model with ``capabilities.likelihood``.
        images: ``(N, H, W, C)`` uint8 or [0, 1] floats, as ``tf_genai.data.load`` returns them.
        labels: class ids ``(N,)``; used by a conditional model only.
        seed: seeds any sampling the estimate needs (a bound's importance samples).
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
    per_image = model.nll(images, labels if caps.conditional else None, seed=seed, **options)
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

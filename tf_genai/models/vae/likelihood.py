"""Importance-sampled negative log-likelihood of a VAE.

``log p(x) ≈ log (1/k) Σ_i p(x|z_i) p(z_i) / q(z_i|x)`` with ``z_i ~ q(z|x)``: the k-sample
importance-weighted bound of Burda, Grosse & Salakhutdinov 2016 ("Importance Weighted
Autoencoders", arXiv:1509.00519), which tightens towards ``log p(x)`` as k grows; with k=1000
it is the standard way to report a VAE's test NLL (Rezende et al. 2014; Burda et al. 2016).
:meth:`tf_genai.models.vae.model.VAE.nll` (the family contract's likelihood) runs it.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from tf_genai import losses, ranges
from tf_genai.errors import ConfigError, DataError

# How many decoder evaluations one compiled call makes (images x importance samples): bounds
# the memory of the decoder activations (~0.1 MB each for a 28x28 conv decoder).
_DECODES_PER_CALL = 5000


def _as_model_images(model, images) -> np.ndarray:
    """``images`` as float32 in the model's data range, checked against its image shape."""
    images = np.asarray(images)
    if images.ndim == 3 and len(model.image_shape) == 3 and model.image_shape[-1] == 1:
        images = images[..., None]  # (N, H, W) grey -> (N, H, W, 1)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(model.image_shape):
        raise DataError(
            f"importance_sampled_nll: images of shape {images.shape} do not match the model's "
            f"image_shape {tuple(model.image_shape)}"
        )
    if len(images) == 0:
        raise DataError("importance_sampled_nll: no images")
    images = ranges.for_model(images, model.data_range) if images.dtype == np.uint8 else (
        images.astype("float32"))
    low, high = ranges.VALUE_RANGES[model.data_range]
    if not np.isfinite(images).all() or images.min() < low - 1e-6 or images.max() > high + 1e-6:
        raise DataError(
            f"importance_sampled_nll: images must be finite and in the model's data range "
            f"{model.data_range!r}, got [{images.min()}, {images.max()}]"
        )
    # The likelihood's own rule: binary pixels for a Bernoulli decoder, [-1, 1] (not [0, 1])
    # data for a symmetric model. A value in range can still be the wrong kind of data.
    model.check_likelihood_data(images)
    return images


def importance_sampled_nll(
    model,
    images,
    labels=None,
    *,
    num_samples: int = 1000,
    batch_size: int = 100,
    seed: int = 0,
) -> dict:
    """Per-image importance-sampled NLL ``-log p(x)`` and ELBO of a VAE, in nats.

    Args:
        model: a VAE (``log_weights`` and ``check_likelihood_data``).
        images: ``(N, H, W, C)`` float in the model's data range (uint8 is rescaled). Binarise
            held-out data once beforehand for a Bernoulli model: grey levels are refused, as is
            [0, 1] data for a [-1, 1] model (DataError).
        labels: int ``(N,)`` for a conditional model.
        num_samples: k importance samples per image.
        batch_size: images per batch; the k samples are chunked so that one compiled call
            decodes at most a few thousand latents.
        seed: seed of the importance samples.

    Returns:
        ``{"nll", "elbo"}`` (means over images; for a conditional model these are
        ``-log p(x | y)`` and its bound, which :func:`tf_genai.evaluation.report.evaluate_model`
        reports as ``conditional_nll`` / ``conditional_elbo``; ``elbo`` is the k-sample Monte Carlo ELBO, so
        ``nll <= -elbo`` per image), ``"nll_per_image"``, ``"elbo_per_image"`` (arrays (N,)),
        ``"num_samples"``, and ``"nll_bits_per_dim"``: the NLL in bits per subpixel,
        ``nll / (H W C ln 2)``, where the likelihood is a probability mass over the pixel
        values (``model.likelihood_levels``: 256 for 8-bit images under the discretized
        logistic, 2 for binary pixels), else None (a Gaussian density).
    """
    if int(num_samples) < 1 or int(batch_size) < 1:
        raise ConfigError("importance_sampled_nll: num_samples and batch_size must be >= 1")
    images = _as_model_images(model, images)
    if model.num_classes is not None:
        if labels is None:
            raise ConfigError("importance_sampled_nll: a conditional VAE needs labels")
        # DataError for labels that are not len(images) class ids in [0, num_classes).
        labels = np.asarray(model.check_labels(labels, len(images)))
    else:
        labels = None

    k = int(num_samples)
    chunk = max(1, min(k, _DECODES_PER_CALL // int(batch_size)))
    generator = keras.random.SeedGenerator(int(seed))

    @tf.function(reduce_retracing=True)
    def chunk_log_weights(x, y, num):
        log_w, _, _, _ = model.log_weights(x, y, num, seed=generator)  # (num, batch)
        return log_w

    nll, elbo = [], []
    for start in range(0, len(images), int(batch_size)):
        x = tf.constant(images[start:start + int(batch_size)])
        y = None if labels is None else tf.constant(labels[start:start + int(batch_size)])
        parts = []
        for done in range(0, k, chunk):
            parts.append(chunk_log_weights(x, y, min(chunk, k - done)).numpy())
        log_w = np.concatenate(parts, axis=0).astype("float64")  # (k, batch)
        nll.append(-(_logsumexp(log_w) - math.log(k)))
        elbo.append(log_w.mean(axis=0))
    nll_per_image = np.concatenate(nll)
    elbo_per_image = np.concatenate(elbo)
    levels = model.likelihood_levels
    return {
        "nll": float(nll_per_image.mean()),
        "nll_bits_per_dim": None if levels is None else float(
            losses.bits_per_dim(nll_per_image.mean(), int(np.prod(model.image_shape)))),
        "elbo": float(elbo_per_image.mean()),
        "nll_per_image": nll_per_image,
        "elbo_per_image": elbo_per_image,
        "num_samples": k,
    }


def _logsumexp(values: np.ndarray) -> np.ndarray:
    """Stable log Σ exp over axis 0 in float64 (the k weights of each image)."""
    top = values.max(axis=0)
    return top + np.log(np.exp(values - top).sum(axis=0))


__all__ = ["importance_sampled_nll"]

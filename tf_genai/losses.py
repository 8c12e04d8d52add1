"""Pure loss functions for the VAE and GAN families.

Every function is a pure function of tensors (no model, no state, no randomness of its own) and
states its reduction:

* VAE terms return one value **per example**, summed over pixels (or latent dimensions), in nats.
  The model averages them over the batch, so a reported loss is "nats per image".
* GAN losses return a **scalar**: the mean over the batch.

All GAN losses take discriminator **logits** (no sigmoid inside the network), which is the
numerically stable form (softplus instead of ``log(sigmoid(.))``).
"""

from __future__ import annotations

import math

import tensorflow as tf
from keras import ops

from tf_genai.errors import ConfigError

LOG_2PI = math.log(2.0 * math.pi)


def _flat_sum(x):
    """Sum over every axis but the first: (batch, ...) -> (batch,)."""
    return ops.sum(ops.reshape(x, (ops.shape(x)[0], -1)), axis=-1)


# --------------------------------------------------------------------------------------------
# VAE terms — Kingma & Welling 2014, "Auto-Encoding Variational Bayes" (arXiv:1312.6114).
# --------------------------------------------------------------------------------------------


def gaussian_kl(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) in closed form (Kingma & Welling 2014, App. B).

    Reduction: summed over latent dimensions, one value per example, shape (batch,).
    """
    return 0.5 * ops.sum(ops.exp(log_var) + ops.square(mean) - 1.0 - log_var, axis=-1)


def bernoulli_log_likelihood(x, logits):
    """log p(x | z) for independent Bernoulli pixels parameterised by decoder ``logits``.

    ``x`` lies in [0, 1] (binary, or grey levels used as soft targets). Computed as
    ``-(softplus(l) - x*l)``, the stable form of ``x log σ(l) + (1-x) log(1-σ(l))``.
    Reduction: summed over all pixels and channels, shape (batch,).
    """
    x = ops.cast(x, logits.dtype)
    return -_flat_sum(ops.softplus(logits) - x * logits)


def gaussian_log_likelihood(x, mean, log_scale):
    """log N(x; mean, exp(log_scale)^2), independent per pixel.

    ``log_scale`` broadcasts against ``mean`` (a learned scalar, per-channel or per-pixel scale).
    Reduction: summed over all pixels and channels, shape (batch,).
    """
    x = ops.cast(x, mean.dtype)
    log_scale = ops.cast(log_scale, mean.dtype) + ops.zeros_like(mean)
    z = (x - mean) * ops.exp(-log_scale)
    return -_flat_sum(0.5 * ops.square(z) + log_scale + 0.5 * LOG_2PI)


def discretized_logistic_log_likelihood(x, means, log_scales, logits=None, *, low=0.0,
                                        high=1.0, levels=256):
    """log P(x | z) of pixels quantised to ``levels`` values in [low, high] under a (mixture of)
    discretized logistic(s) (Salimans et al. 2017, "PixelCNN++", eq. 2; arXiv:1701.05517).

    Each subpixel value ``x`` is the centre of a bin of width ``delta = (high - low) /
    (levels - 1)``; its probability is the logistic CDF's mass over ``[x - delta/2, x +
    delta/2]``, the first bin's reaching down to -inf and the last bin's up to +inf, so the
    ``levels`` probabilities of a subpixel sum to 1 exactly: this is a probability mass, and
    ``-log P / (D ln 2)`` is the bits/dim the field reports for 8-bit images. Where a bin's mass
    underflows float32 (a very confident component, ``delta / s`` large) the log-density at the
    centre times ``delta`` replaces it (PixelCNN++'s fallback).

    Args:
        x: ``(batch, H, W, C)`` values on the grid ``low + k * delta``.
        means, log_scales: ``(batch, H, W, C)`` for one logistic per subpixel, or
            ``(batch, H, W, C, K)`` for a mixture of K (subpixels independent given z).
        logits: ``(batch, H, W, C, K)`` unnormalised mixture weights; None for K = 1.
        low, high, levels: the data grid ([0, 1] or [-1, 1]; 256 levels for 8-bit images).

    Reduction: summed over all pixels and channels, shape (batch,).
    """
    x = ops.cast(x, "float32")
    if logits is not None:
        x = x[..., None]  # (batch, H, W, C, 1) against K components
    log_probs = _discretized_logistic_log_probs(x, means, log_scales, low, high, levels)
    if logits is not None:
        log_weights = ops.cast(logits, "float32")
        log_weights = log_weights - ops.logsumexp(log_weights, axis=-1, keepdims=True)
        log_probs = ops.logsumexp(log_probs + log_weights, axis=-1)  # (batch, H, W, C)
    return _flat_sum(log_probs)


def _discretized_logistic_log_probs(x, means, log_scales, low, high, levels):
    """Elementwise log-mass of grid values ``x`` under logistics (broadcast), see above."""
    means = ops.cast(means, "float32")
    log_scales = ops.cast(log_scales, "float32")
    half = 0.5 * (float(high) - float(low)) / (int(levels) - 1)
    centred = x - means
    inv_s = ops.exp(-log_scales)
    plus_in = inv_s * (centred + half)
    min_in = inv_s * (centred - half)
    log_cdf_plus = plus_in - ops.softplus(plus_in)  # log sigmoid: the first bin, (-inf, x + d/2]
    log_one_minus_cdf_min = -ops.softplus(min_in)  # log(1 - sigmoid): the last bin, [x - d/2, inf)
    cdf_delta = ops.sigmoid(plus_in) - ops.sigmoid(min_in)
    mid_in = inv_s * centred
    log_pdf_mid = mid_in - log_scales - 2.0 * ops.softplus(mid_in)  # log logistic density
    inner = ops.where(cdf_delta > 1e-5, ops.log(ops.maximum(cdf_delta, 1e-12)),
                      log_pdf_mid + math.log(2.0 * half))
    return ops.where(x < low + half, log_cdf_plus,
                     ops.where(x > high - half, log_one_minus_cdf_min, inner))


def coupled_channel_means(x, means, coeffs):
    """PixelCNN++'s channel coupling (Salimans et al. 2017, eq. 3): channel c's component means
    shifted by the *observed* earlier channels, ``mu_c + sum_{j<c} coeffs[c, j] * x_j``.

    Args:
        x: ``(batch, H, W, C)``; means ``(batch, H, W, C, K)``; coeffs ``(batch, H, W, C, C,
            K)``, of which only ``coeffs[..., c, j, :]`` with ``j < c`` is used (the caller
            bounds them, e.g. with tanh).

    Returns:
        ``(batch, H, W, C, K)``.
    """
    x = ops.cast(x, "float32")
    channels = int(x.shape[-1])
    lower = [[1.0 if j < c else 0.0 for j in range(channels)] for c in range(channels)]
    mask = ops.reshape(ops.convert_to_tensor(lower, "float32"), (channels, channels, 1))
    # (batch, H, W, 1, C, 1): channel j's observed value against every channel c and component
    shift = ops.sum(ops.cast(coeffs, "float32") * mask * x[..., None, :, None], axis=-2)
    return ops.cast(means, "float32") + shift


def discretized_logistic_mixture_coupled_log_likelihood(x, means, log_scales, coeffs, logits,
                                                         *, low=0.0, high=1.0, levels=256):
    """log P(x | z) under PixelCNN++'s full pixel model (Salimans et al. 2017, eqs. 2 and 3).

    Each *pixel* is a mixture of K components shared by its channels (``logits`` per pixel);
    within a component the channels are discretized logistics in order, channel c's mean shifted
    by the observed values of channels ``j < c`` (:func:`coupled_channel_means`): the chain rule
    p(r) p(g | r) p(b | r, g), so the masses of a pixel's ``levels ** C`` values sum to 1.
    Independent subpixels (:func:`discretized_logistic_log_likelihood`) pay for each channel's
    uncertainty separately; colour channels are strongly correlated, which this model can use.

    Args:
        x: ``(batch, H, W, C)`` values on the grid; means, log_scales ``(batch, H, W, C, K)``;
            coeffs ``(batch, H, W, C, C, K)`` (strictly lower part used); logits ``(batch, H, W,
            K)`` unnormalised mixture weights per pixel.

    Reduction: summed over all pixels, shape (batch,).
    """
    x = ops.cast(x, "float32")
    shifted = coupled_channel_means(x, means, coeffs)  # (batch, H, W, C, K)
    log_probs = _discretized_logistic_log_probs(x[..., None], shifted, log_scales, low, high,
                                                levels)
    per_component = ops.sum(log_probs, axis=-2)  # (batch, H, W, K): the pixel's channels
    log_weights = ops.cast(logits, "float32")
    log_weights = log_weights - ops.logsumexp(log_weights, axis=-1, keepdims=True)
    return _flat_sum(ops.logsumexp(per_component + log_weights, axis=-1))  # (batch,)


def bits_per_dim(nats_per_image, dims):
    """Nats per image -> bits per subpixel: ``nats / (dims * ln 2)`` (``dims = H * W * C``)."""
    return nats_per_image / (float(dims) * math.log(2.0))


def gaussian_log_density(z, mean, log_var):
    """log N(z; mean, diag(exp(log_var))), summed over the last axis: (..., d) -> (...)."""
    return -0.5 * ops.sum(
        LOG_2PI + log_var + ops.square(z - mean) * ops.exp(-log_var), axis=-1
    )


def standard_normal_log_density(z):
    """log N(z; 0, I), summed over the last axis: (..., d) -> (...)."""
    return -0.5 * ops.sum(LOG_2PI + ops.square(z), axis=-1)


def log_mean_exp(values, axis=0):
    """log(mean(exp(values))) along ``axis``, computed stably (the IWAE bound's reduction).

    Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders" (arXiv:1509.00519).
    """
    k = ops.cast(ops.shape(values)[axis], values.dtype)
    return ops.logsumexp(values, axis=axis) - ops.log(k)


# --------------------------------------------------------------------------------------------
# GAN losses. Each returns (d_loss, g_loss)-style scalars: the mean over the batch.
# --------------------------------------------------------------------------------------------


def _mean(x):
    return ops.mean(ops.cast(x, "float32"))


def _terms(real_term, fake_term, return_parts: bool):
    """Sum the real and fake terms of a discriminator loss, or return both (for logging)."""
    return (real_term, fake_term) if return_parts else real_term + fake_term


def non_saturating_d_loss(
    real_logits, fake_logits, label_smoothing: float = 0.0, return_parts: bool = False
):
    """Discriminator loss of Goodfellow et al. 2014 ("Generative Adversarial Nets").

    ``-log D(x) - log(1 - D(G(z)))`` on logits: ``softplus(-real) + softplus(fake)``. With
    one-sided label smoothing (Salimans et al. 2016) the real target is ``1 - label_smoothing``.
    Reduction: mean over the batch of each term, then summed (``return_parts=True`` returns the
    two terms ``(real, fake)`` instead of their sum; every discriminator loss here accepts it).
    """
    real_logits = ops.cast(real_logits, "float32")
    fake_logits = ops.cast(fake_logits, "float32")
    t = 1.0 - label_smoothing
    real = t * ops.softplus(-real_logits) + (1.0 - t) * ops.softplus(real_logits)
    return _terms(_mean(real), _mean(ops.softplus(fake_logits)), return_parts)


def non_saturating_g_loss(fake_logits):
    """Non-saturating generator loss ``-log D(G(z))`` = ``softplus(-logits)``.

    Goodfellow et al. 2014, section 3. Reduction: mean over the batch.
    """
    return _mean(ops.softplus(-ops.cast(fake_logits, "float32")))


def minimax_g_loss(fake_logits):
    """Original minimax generator loss ``log(1 - D(G(z)))`` = ``-softplus(logits)``.

    Goodfellow et al. 2014, eq. 1 (saturates early in training; kept for completeness).
    Reduction: mean over the batch.
    """
    return -_mean(ops.softplus(ops.cast(fake_logits, "float32")))


def least_squares_d_loss(
    real_logits, fake_logits, label_smoothing: float = 0.0, return_parts: bool = False
):
    """LSGAN discriminator loss ``½(D(x) - 1)² + ½ D(G(z))²`` (Mao et al. 2017, eq. 9, a=0, b=c=1).

    Reduction: mean over the batch of each term, then summed.
    """
    t = 1.0 - label_smoothing
    return _terms(
        0.5 * _mean(ops.square(ops.cast(real_logits, "float32") - t)),
        0.5 * _mean(ops.square(ops.cast(fake_logits, "float32"))),
        return_parts,
    )


def least_squares_g_loss(fake_logits):
    """LSGAN generator loss ``½(D(G(z)) - 1)²`` (Mao et al. 2017). Reduction: batch mean."""
    return 0.5 * _mean(ops.square(ops.cast(fake_logits, "float32") - 1.0))


def hinge_d_loss(
    real_logits, fake_logits, label_smoothing: float = 0.0, return_parts: bool = False
):
    """Hinge discriminator loss ``relu(1 - D(x)) + relu(1 + D(G(z)))``.

    Lim & Ye 2017 ("Geometric GAN"); Miyato et al. 2018. ``label_smoothing`` is accepted for a
    uniform signature and ignored (a margin loss has no target to smooth).
    Reduction: mean over the batch of each term, then summed.
    """
    del label_smoothing
    return _terms(
        _mean(ops.relu(1.0 - ops.cast(real_logits, "float32"))),
        _mean(ops.relu(1.0 + ops.cast(fake_logits, "float32"))),
        return_parts,
    )


def hinge_g_loss(fake_logits):
    """Hinge generator loss ``-D(G(z))`` (Lim & Ye 2017). Reduction: batch mean."""
    return -_mean(fake_logits)


def wasserstein_d_loss(
    real_logits, fake_logits, label_smoothing: float = 0.0, return_parts: bool = False
):
    """Critic loss ``D(G(z)) - D(x)`` (Arjovsky et al. 2017, "Wasserstein GAN").

    ``label_smoothing`` is accepted for a uniform signature and ignored.
    Reduction: mean over the batch of each term.
    """
    del label_smoothing
    return _terms(-_mean(real_logits), _mean(fake_logits), return_parts)


def wasserstein_g_loss(fake_logits):
    """Generator loss ``-D(G(z))`` (Arjovsky et al. 2017). Reduction: batch mean."""
    return -_mean(fake_logits)


def safe_norm(x, epsilon: float = 1e-12):
    """Euclidean norm over every axis but the first, ``sqrt(sum(x²) + ε)``: (batch, ...) -> (batch,).

    ``ε`` keeps the gradient of the norm finite at ``x = 0`` (plain ``sqrt`` has an infinite
    derivative there, which turns the gradient penalty into NaN when real == fake).
    """
    x = ops.cast(x, "float32")
    return ops.sqrt(_flat_sum(ops.square(x)) + epsilon)


def gradient_penalty(critic_fn, real, fake, alpha, target: float = 1.0):
    """WGAN-GP penalty ``E[(‖∇_x̂ D(x̂)‖ - 1)²]`` at ``x̂ = α·real + (1-α)·fake``.

    Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Algorithm 1: ``α ~ U[0, 1]``,
    one per example — the caller draws ``alpha`` (shape (batch, 1, ..., 1)) from the model's own
    seed generator. ``critic_fn`` maps a batch of images to logits. TensorFlow backend: uses
    ``tf.GradientTape`` for the input gradient. Reduction: mean over the batch.
    """
    real = tf.cast(real, "float32")
    fake = tf.cast(fake, "float32")
    alpha = tf.cast(alpha, "float32")
    interpolated = alpha * real + (1.0 - alpha) * fake  # (batch, H, W, C)
    with tf.GradientTape() as tape:
        tape.watch(interpolated)
        logits = tf.cast(critic_fn(interpolated), "float32")
    grads = tape.gradient(logits, interpolated)  # (batch, H, W, C)
    norms = safe_norm(grads)  # (batch,)
    return ops.mean(ops.square(norms - target))


GAN_LOSSES = {
    "non_saturating": (non_saturating_d_loss, non_saturating_g_loss),
    "minimax": (non_saturating_d_loss, minimax_g_loss),
    "least_squares": (least_squares_d_loss, least_squares_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
    "wasserstein": (wasserstein_d_loss, wasserstein_g_loss),
}
"""Name -> (discriminator loss, generator loss). The names are the ``loss=`` values of the GANs."""


def gan_losses(name: str):
    """The (d_loss, g_loss) pair for a loss name; ``ValueError`` naming the choices otherwise."""
    try:
        return GAN_LOSSES[name]
    except KeyError:
        raise ConfigError(
            f"unknown GAN loss {name!r}; choose one of {', '.join(sorted(GAN_LOSSES))}"
        ) from None


__all__ = [
    "gaussian_kl",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "discretized_logistic_log_likelihood",
    "bits_per_dim",
    "gaussian_log_density",
    "standard_normal_log_density",
    "log_mean_exp",
    "non_saturating_d_loss",
    "non_saturating_g_loss",
    "minimax_g_loss",
    "least_squares_d_loss",
    "least_squares_g_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "wasserstein_d_loss",
    "wasserstein_g_loss",
    "safe_norm",
    "gradient_penalty",
    "GAN_LOSSES",
    "gan_losses",
]


# --------------------------------------------------------------------------------------------
# Diffusion — Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models"
# (arXiv:2006.11239); v-prediction: Salimans & Ho 2022 (arXiv:2202.00512).
# --------------------------------------------------------------------------------------------


def diffusion_target(prediction: str, x0, noise, alpha_bar):
    """What the denoiser regresses on: ``eps`` (Ho et al. eq. 14), ``x0``, or
    ``v = sqrt(abar) eps - sqrt(1 - abar) x0`` (Salimans & Ho 2022 section 4).

    ``alpha_bar`` broadcasts against ``x0`` (e.g. (batch, 1, 1, 1)). Reduction: none (x0's shape).
    """
    x0 = ops.cast(x0, "float32")
    noise = ops.cast(noise, "float32")
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    if prediction == "v":
        alpha_bar = ops.cast(alpha_bar, "float32")
        return ops.sqrt(alpha_bar) * noise - ops.sqrt(1.0 - alpha_bar) * x0
    raise ConfigError(f"unknown diffusion prediction {prediction!r}; choose eps, x0 or v")


def diffusion_mse(target, prediction, weights=None):
    """The simple objective ``||target - prediction||^2`` (Ho et al. 2020 eq. 14, L_simple).

    Reduction: the mean over pixels and channels of each example, then (``weights`` (batch,)
    given) times its weight, then the mean over the batch (a scalar; equal batches and no
    weights make it the plain mean of every squared error).
    """
    error = ops.square(ops.cast(target, "float32") - ops.cast(prediction, "float32"))
    per_example = ops.mean(ops.reshape(error, (ops.shape(error)[0], -1)), axis=-1)  # (batch,)
    if weights is not None:
        per_example = per_example * ops.reshape(ops.cast(weights, "float32"), (-1,))
    return ops.mean(per_example)


def min_snr_weights(prediction: str, alpha_bar, gamma: float):
    """Min-SNR-gamma loss weights (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR
    Weighting Strategy", arXiv:2303.09556, section 3.4), for the loss in ``prediction``'s units.

    With ``SNR = abar / (1 - abar)``, each timestep's loss is weighted so that, measured as an
    x0 error, it counts ``min(SNR, gamma)``: ``min(SNR, gamma) / SNR`` for eps,
    ``min(SNR, gamma)`` for x0, ``min(SNR, gamma) / (SNR + 1)`` for v. Written without a
    division by SNR or 1 - abar, so abar = 0 or 1 gives finite weights. No gradient flows
    through them. ``alpha_bar``: any shape; returns that shape, float32.
    """
    abar = ops.cast(alpha_bar, "float32")
    gamma = float(gamma)
    if gamma <= 0:
        raise ConfigError(f"min-SNR gamma must be > 0, got {gamma}")
    noise = 1.0 - abar
    # min(SNR, gamma) = min(abar, gamma (1 - abar)) / (1 - abar)
    capped = ops.minimum(abar, gamma * noise)
    if prediction == "eps":  # min(SNR, gamma) / SNR = min(1, gamma (1 - abar) / abar)
        weights = ops.where(abar > 0, capped / ops.maximum(abar, 1e-20), 1.0)
    elif prediction == "x0":
        weights = ops.where(noise > 0, capped / ops.maximum(noise, 1e-20), gamma)
    elif prediction == "v":  # min(SNR, gamma) (1 - abar)
        weights = capped
    else:
        raise ConfigError(f"unknown diffusion prediction {prediction!r}; choose eps, x0 or v")
    return ops.stop_gradient(weights)


__all__ += ["diffusion_target", "diffusion_mse", "min_snr_weights"]

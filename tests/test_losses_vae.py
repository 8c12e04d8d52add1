"""The VAE loss terms against closed forms, Monte Carlo estimates and hand-computed values."""

import math

import numpy as np
from scipy import stats

from tf_genai import losses


def test_gaussian_kl_matches_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(3, 4)).astype("float32")
    log_var = rng.normal(scale=0.5, size=(3, 4)).astype("float32")
    closed = np.asarray(losses.gaussian_kl(mean, log_var))  # (3,)
    # KL(q || p) = E_q[log q(z) - log p(z)], estimated from 200k draws per example.
    std = np.exp(0.5 * log_var)
    z = mean + std * rng.normal(size=(200_000, 3, 4))
    log_q = stats.norm.logpdf(z, mean, std).sum(-1)
    log_p = stats.norm.logpdf(z).sum(-1)
    mc = (log_q - log_p).mean(0)
    assert closed.shape == (3,)
    np.testing.assert_allclose(closed, mc, atol=0.03, rtol=0.01)
    # and KL is zero exactly at the prior
    np.testing.assert_allclose(losses.gaussian_kl(np.zeros((2, 5)), np.zeros((2, 5))), 0.0)


def test_bernoulli_log_likelihood_matches_hand_computation():
    x = np.array([[[1.0, 0.0], [0.5, 1.0]], [[0.0, 0.0], [1.0, 0.2]]], "float32")[..., None]
    logits = np.array([[[2.0, -1.0], [0.0, 30.0]], [[-3.0, 0.5], [1.5, -40.0]]], "float32")[
        ..., None
    ]
    p = 1.0 / (1.0 + np.exp(-logits.astype("float64")))
    expected = (x * np.log(p) + (1 - x) * np.log1p(-p)).reshape(2, -1).sum(-1)
    got = np.asarray(losses.bernoulli_log_likelihood(x, logits))
    assert got.shape == (2,)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_gaussian_log_likelihood_matches_scipy():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(3, 4, 4, 2)).astype("float32")
    mean = rng.uniform(size=(3, 4, 4, 2)).astype("float32")
    log_scale = np.array([-1.0, 0.3], "float32")  # one scale per channel, broadcast
    expected = stats.norm.logpdf(x, mean, np.exp(log_scale)).reshape(3, -1).sum(-1)
    got = np.asarray(losses.gaussian_log_likelihood(x, mean, log_scale))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_latent_densities_match_scipy():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(5, 3)).astype("float32")
    mean = rng.normal(size=(5, 3)).astype("float32")
    log_var = rng.normal(size=(5, 3)).astype("float32")
    np.testing.assert_allclose(
        losses.gaussian_log_density(z, mean, log_var),
        stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(-1),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        losses.standard_normal_log_density(z), stats.norm.logpdf(z).sum(-1), rtol=1e-5
    )


def test_log_mean_exp_is_stable_and_exact():
    values = np.array([[1000.0, -5.0], [1001.0, -6.0], [999.0, -7.0]], "float32")
    expected = [
        1000.0 + math.log((1 + math.e + math.exp(-1)) / 3),
        -5.0 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3),
    ]
    np.testing.assert_allclose(losses.log_mean_exp(values, axis=0), expected, rtol=1e-6)


def _logistic_mass(x, mean, scale, low, high, levels):
    """P(bin of x) under a logistic(mean, scale), from scipy's CDF in float64."""
    half = 0.5 * (high - low) / (levels - 1)
    upper = np.where(x > high - half, 1.0, stats.logistic.cdf(x + half, mean, scale))
    lower = np.where(x < low + half, 0.0, stats.logistic.cdf(x - half, mean, scale))
    return upper - lower


def test_discretized_logistic_matches_scipy_bin_masses():
    rng = np.random.default_rng(3)
    levels = 256
    k = rng.integers(0, levels, size=(2, 3, 3, 3))
    k[0, 0, 0] = [0, 255, 128]  # both edge bins and an inner one
    x = (k / (levels - 1)).astype("float32")  # the 8-bit grid in [0, 1]
    mean = rng.uniform(-0.1, 1.1, size=x.shape).astype("float32")
    log_scale = rng.uniform(-4.0, -1.0, size=x.shape).astype("float32")
    expected = np.log(_logistic_mass(x.astype("float64"), mean, np.exp(log_scale), 0.0, 1.0,
                                     levels)).reshape(2, -1).sum(-1)
    got = np.asarray(losses.discretized_logistic_log_likelihood(x, mean, log_scale))
    assert got.shape == (2,)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_discretized_logistic_is_a_probability_mass_on_either_grid():
    # Summed over all 256 values of one subpixel the probabilities are 1, for [0, 1] and
    # [-1, 1] data, for a broad, a sharp and an off-grid-centred component alike.
    for low, high in ((0.0, 1.0), (-1.0, 1.0)):
        grid = np.linspace(low, high, 256, dtype="float32").reshape(256, 1, 1, 1)
        for mean, log_scale in ((0.3, -1.0), (0.5 * (low + high), -6.0), (high + 0.2, -3.0)):
            m = np.full_like(grid, mean)
            s = np.full_like(grid, log_scale)
            logp = np.asarray(losses.discretized_logistic_log_likelihood(
                grid, m, s, low=low, high=high), "float64")
            np.testing.assert_allclose(np.exp(logp).sum(), 1.0, atol=2e-4)


def test_discretized_logistic_mixture_is_the_weighted_sum_of_its_components():
    rng = np.random.default_rng(4)
    x = (rng.integers(0, 256, size=(3, 2, 2, 1)) / 255.0).astype("float32")
    means = rng.uniform(0, 1, size=x.shape + (4,)).astype("float32")
    log_scales = rng.uniform(-4, -1.5, size=x.shape + (4,)).astype("float32")
    logits = rng.normal(size=x.shape + (4,)).astype("float32")
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    mass = sum(weights[..., j] * _logistic_mass(x.astype("float64"), means[..., j],
                                                np.exp(log_scales[..., j]), 0.0, 1.0, 256)
               for j in range(4))
    got = losses.discretized_logistic_log_likelihood(x, means, log_scales, logits)
    np.testing.assert_allclose(got, np.log(mass).reshape(3, -1).sum(-1), rtol=1e-4)
    # one component with all the weight is that component alone
    one_hot = np.where(np.arange(4) == 2, 30.0, -30.0).astype("float32") + np.zeros_like(logits)
    np.testing.assert_allclose(
        losses.discretized_logistic_log_likelihood(x, means, log_scales, one_hot),
        losses.discretized_logistic_log_likelihood(x, means[..., 2], log_scales[..., 2]),
        rtol=1e-5)


def test_discretized_logistic_stays_finite_when_a_bin_mass_underflows():
    # A component far sharper than the bin: the mass of the bin at its mean is ~1 (log ~0),
    # and of a bin 40 bins away ~0; neither is -inf or NaN.
    x = np.array([0.5, 0.5 + 40 / 255], "float32").reshape(2, 1, 1, 1)
    mean = np.full_like(x, 0.5)
    got = np.asarray(losses.discretized_logistic_log_likelihood(x, mean, np.full_like(x, -9.0)))
    assert np.isfinite(got).all()
    assert abs(got[0]) < 1e-3 and got[1] < -100


def test_bits_per_dim_converts_nats():
    # 8 bits per subpixel is log(256) nats; 784 subpixels of 1 bit are 784 ln 2 nats.
    np.testing.assert_allclose(losses.bits_per_dim(3 * 4 * math.log(256.0), 12), 8.0)
    np.testing.assert_allclose(losses.bits_per_dim(784 * math.log(2.0), 784), 1.0)


def _coupled_reference(x, means, log_scales, coeffs, logits, levels):
    """eq. 3 of PixelCNN++ by hand, in float64: per pixel, per component, channel by channel."""
    b, h, w, c = x.shape
    k = means.shape[-1]
    out = np.zeros(b)
    for n, i, j in np.ndindex(b, h, w):
        wts = np.exp(logits[n, i, j]) / np.exp(logits[n, i, j]).sum()
        total = 0.0
        for comp in range(k):
            p = wts[comp]
            for ch in range(c):
                mu = means[n, i, j, ch, comp] + sum(coeffs[n, i, j, ch, q, comp] * x[n, i, j, q]
                                                    for q in range(ch))
                p *= _logistic_mass(np.float64(x[n, i, j, ch]), mu,
                                    np.exp(log_scales[n, i, j, ch, comp]), 0.0, 1.0, levels)
            total += p
        out[n] += np.log(total)
    return out


def _coupled_inputs(rng, shape, k, levels=256):
    b, h, w, c = shape
    x = (rng.integers(0, levels, size=shape) / (levels - 1)).astype("float32")
    means = rng.uniform(0, 1, size=shape + (k,)).astype("float32")
    log_scales = rng.uniform(-3.5, -1.0, size=shape + (k,)).astype("float32")
    coeffs = rng.uniform(-0.9, 0.9, size=shape + (c, k)).astype("float32")
    logits = rng.normal(size=(b, h, w, k)).astype("float32")
    return x, means, log_scales, coeffs, logits


def test_coupled_logistic_mixture_matches_eq3_by_hand():
    rng = np.random.default_rng(7)
    x, means, log_scales, coeffs, logits = _coupled_inputs(rng, (2, 2, 2, 3), k=3)
    got = losses.discretized_logistic_mixture_coupled_log_likelihood(
        x, means, log_scales, coeffs, logits)
    expected = _coupled_reference(x, means, log_scales, coeffs, logits, 256)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # The upper triangle and the diagonal of coeffs are not used: channel c sees only j < c.
    noisy = coeffs + np.triu(np.ones((3, 3)))[:, :, None] * 5.0
    np.testing.assert_allclose(losses.discretized_logistic_mixture_coupled_log_likelihood(
        x, means, log_scales, noisy.astype("float32"), logits), got, rtol=1e-6)


def test_coupled_logistic_mixture_is_a_probability_mass_over_a_pixels_values():
    # All 8^3 values of one RGB pixel on an 8-level grid: the chain rule makes them sum to 1
    # whatever the coupling coefficients and weights.
    levels = 8
    grid = np.stack(np.meshgrid(*[np.arange(levels)] * 3, indexing="ij"), -1).reshape(-1, 1, 1, 3)
    x = (grid / (levels - 1)).astype("float32")  # (512, 1, 1, 3)
    rng = np.random.default_rng(8)
    _, means, log_scales, coeffs, logits = _coupled_inputs(rng, (1, 1, 1, 3), k=4, levels=levels)
    tile = lambda a: np.repeat(a, len(x), axis=0)  # noqa: E731
    logp = np.asarray(losses.discretized_logistic_mixture_coupled_log_likelihood(
        x, tile(means), tile(log_scales), tile(coeffs), tile(logits), levels=levels), "float64")
    np.testing.assert_allclose(np.exp(logp).sum(), 1.0, atol=1e-4)


def test_coupled_with_zero_coefficients_and_one_component_is_the_independent_model():
    rng = np.random.default_rng(9)
    x, means, log_scales, coeffs, logits = _coupled_inputs(rng, (3, 2, 2, 3), k=1)
    got = losses.discretized_logistic_mixture_coupled_log_likelihood(
        x, means, log_scales, np.zeros_like(coeffs), logits)
    independent = losses.discretized_logistic_log_likelihood(x, means[..., 0], log_scales[..., 0])
    np.testing.assert_allclose(got, independent, rtol=1e-5)

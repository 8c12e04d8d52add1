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

"""The flow-matching family: the ODE solvers and the likelihood against a Gaussian's closed
form, the loss, sampling, encoding, guidance, save/load and the export's sampler."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_genai import registry
from tf_genai.errors import ConfigError, DataError
from tf_genai.models.flow import Flow
from tf_genai.models.flow.model import integrate, ode_log_likelihood, time_grid

SHAPE = (8, 8, 1)
TINY = dict(image_shape=SHAPE, widths=(8, 16), sample_steps=4, seed=0)
# Gaussian data x_0 ~ N(MU, SIGMA^2 I): on the linear path x_t = (1 - t) x_0 + t eps the
# exact velocity E[eps - x_0 | x_t] is known, so solvers and the likelihood have closed forms.
MU, SIGMA = 0.3, 0.5


def gaussian_velocity(x, t):
    """``E[eps - x_0 | x_t = x]`` for x_0 ~ N(MU, SIGMA^2), eps ~ N(0, 1), per dimension."""
    a, b = 1.0 - t, t
    var = a * a * SIGMA**2 + b * b  # Var(x_t)
    centred = x - a * MU
    return (b / var) * centred - (MU + a * SIGMA**2 / var * centred)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, *SHAPE)).astype("float32")


@pytest.fixture(scope="module")
def trained():
    """A tiny flow after one epoch on the 8x8 digits (its velocity says something)."""
    from sklearn.datasets import load_digits

    x = (load_digits().images[:128, ..., None] / 16.0 * 2 - 1).astype("float32")
    model = registry.create("flow", **TINY)
    model.compile()
    model.fit(x, batch_size=32, epochs=2, verbose=0)
    return model, x


# ----------------------------------------------------------------- solvers and likelihood


def test_the_gaussian_velocity_transports_noise_to_the_data_distribution():
    """Sampling (t: 1 -> 0) with the exact field turns N(0, 1) into N(MU, SIGMA^2): checks the
    path's direction and the velocity's sign as the model uses them."""
    z = tf.random.stateless_normal((20000, 4), seed=[1, 2])
    x = integrate(gaussian_velocity, z, time_grid(64), "heun").numpy()
    assert abs(x.mean() - MU) < 0.01 and abs(x.std() - SIGMA) < 0.01


def test_heun_with_many_steps_converges_to_euler_with_very_many():
    z = tf.random.stateless_normal((256, 6), seed=[3, 4])
    heun = integrate(gaussian_velocity, z, time_grid(200), "heun").numpy()
    euler = integrate(gaussian_velocity, z, time_grid(20000), "euler").numpy()
    midpoint = integrate(gaussian_velocity, z, time_grid(200), "midpoint").numpy()
    np.testing.assert_allclose(heun, euler, atol=2e-4)
    np.testing.assert_allclose(midpoint, euler, atol=2e-4)
    # second order: at 8 steps Heun is far closer to the ODE's solution than Euler
    err = {s: np.abs(integrate(gaussian_velocity, z, time_grid(8), s).numpy() - euler).max()
           for s in ("euler", "heun", "midpoint")}
    assert err["heun"] < err["euler"] / 5 and err["midpoint"] < err["euler"] / 5, err


def test_encode_integrates_back_to_the_latent():
    z = tf.random.stateless_normal((64, 5), seed=[5, 6])
    x = integrate(gaussian_velocity, z, time_grid(100), "heun")
    back = integrate(gaussian_velocity, x, tf.reverse(time_grid(100), [0]), "heun")
    # the sampling direction's last step onto t = 0 is first order: errors of h^2 = 1e-4
    np.testing.assert_allclose(back.numpy(), z.numpy(), atol=2e-3)


def test_hutchinson_likelihood_matches_the_gaussian_closed_form():
    """log p_0(x) along the ODE equals log N(x; MU, SIGMA^2) of Gaussian data."""
    x = tf.constant(np.random.default_rng(7).normal(MU, SIGMA, (32, 3, 3, 2)), tf.float32)
    got = ode_log_likelihood(gaussian_velocity, x, steps=64, seed=tf.constant([1, 2])).numpy()
    exact = (-0.5 * ((x.numpy() - MU) / SIGMA) ** 2 - math.log(SIGMA)
             - 0.5 * math.log(2 * math.pi)).reshape(32, -1).sum(axis=1)
    np.testing.assert_allclose(got, exact, rtol=2e-4, atol=2e-3)


def test_hutchinson_estimate_is_unbiased_for_a_full_jacobian():
    """A velocity with a non-diagonal Jacobian (a fixed rotation-and-scale of x): the estimate
    varies with the probe, its mean over probes is the exact trace integral."""
    a = np.array([[0.5, 0.8], [-0.3, 0.2]], "float32")
    velocity = lambda x, t: tf.linalg.matvec(tf.constant(a), x)  # noqa: E731 (batch, 2)
    x = tf.zeros((4000, 2))
    # x stays 0: log p_0(0) = log N(0; 0, I) + int tr(A) dt
    got = ode_log_likelihood(velocity, x, steps=4, seed=tf.constant([3, 4])).numpy()
    exact = -math.log(2 * math.pi) + float(np.trace(a))
    assert got.std() > 0.1  # the probe matters for a non-diagonal Jacobian
    assert abs(got.mean() - exact) < 4 * got.std() / math.sqrt(len(got))


def test_time_grid_is_shifted_towards_the_noise():
    np.testing.assert_allclose(time_grid(4).numpy(), [1.0, 0.75, 0.5, 0.25, 0.0])
    shifted = time_grid(4, shift=3.0).numpy()
    assert shifted[0] == 1.0 and shifted[-1] == 0.0 and np.all(shifted[1:-1] > [0.75, 0.5, 0.25])


# ------------------------------------------------------------------------------ the model


def test_config_round_trip_and_zoo_entries():
    for name, classes in (("flow", None), ("cflow", 10)):
        entry = registry.entry(name)
        assert entry.cls is Flow and entry.family == "flow"
        assert entry.defaults.get("num_classes") == classes
    model = Flow(image_shape=(30, 26, 2), widths=(8, 16), sampler="midpoint", time_shift=2.0,
                 time_sampling="uniform", name="f")
    config = model.get_config()
    assert Flow.from_config(config).get_config() == config
    assert model.latent_shape == (30, 26, 2) and model.latent_dim is None
    assert model.capabilities.iterative and model.capabilities.likelihood == "bound"
    for bad in (dict(sampler="rk4"), dict(time_sampling="cosine"), dict(sample_steps=0),
                dict(time_shift=0.0)):
        with pytest.raises(ConfigError):
            Flow(image_shape=SHAPE, widths=(8,), **bad)


@pytest.mark.parametrize("time_sampling", ["logit_normal", "uniform"])
def test_fit_lowers_the_flow_matching_loss(time_sampling):
    from sklearn.datasets import load_digits

    x = (load_digits().images[:256, ..., None] / 16.0 * 2 - 1).astype("float32")
    model = Flow(**{**TINY, "time_sampling": time_sampling})
    model.compile()
    loss = model.fit(x, batch_size=32, epochs=4, verbose=0).history["loss"]
    # an untrained network outputs 0: the loss starts at E||eps - x_0||^2 / D ~ 1 + E[x_0^2]
    assert np.isfinite(loss).all() and loss[-1] < loss[0] < 2.0


def test_samples_are_reproducible_and_each_sampler_runs(trained):
    model = trained[0]
    a, b = np.array(model.sample(4, seed=1)), np.array(model.sample(4, seed=1))
    assert a.shape == (4, *SHAPE) and np.array_equal(a, b) and a.min() >= -1 and a.max() <= 1
    assert not np.array_equal(a, np.array(model.sample(4, seed=2)))
    for sampler in ("euler", "heun", "midpoint"):
        assert np.isfinite(np.array(model.sample(2, seed=1, sampler=sampler, steps=2))).all()
    with pytest.raises(ConfigError, match="sampler"):
        model.sample(2, sampler="rk4")
    with pytest.raises(ConfigError, match="guidance"):
        model.sample(2, guidance=1.0)  # unconditional


def test_the_trained_model_agrees_heun_many_steps_with_euler_very_many(trained):
    model = trained[0]
    heun = np.array(model.sample(4, seed=3, sampler="heun", steps=64))
    euler = np.array(model.sample(4, seed=3, sampler="euler", steps=2048))
    np.testing.assert_allclose(heun, euler, atol=5e-3)


def test_encode_then_render_reconstructs(trained):
    model, x = trained
    back = np.array(model.render(model.encode(x[:4], steps=64), steps=64))
    np.testing.assert_allclose(back, x[:4], atol=0.02)
    trajectory, times = model.trajectory(2, seed=5, steps=4)
    assert trajectory.shape == (2, 5, *SHAPE) and times[0] == 1.0 and times[-1] == 0.0
    np.testing.assert_allclose(np.array(trajectory[:, -1]),
                               np.array(model.sample(2, seed=5, steps=4)), atol=1e-6)


def test_nll_is_finite_in_bits_and_refuses_off_grid_values(trained):
    model, x = trained
    pixels = np.round((x[:8] + 1) / 2 * 255).astype("uint8")
    nll = model.nll(pixels, steps=4)["nll"]
    assert nll.shape == (8,) and np.isfinite(nll).all()
    np.testing.assert_array_equal(nll, model.nll(pixels, steps=4)["nll"])  # seeded
    with pytest.raises(DataError, match="8-bit"):
        model.nll(pixels / 255.0 * 0.999, steps=2)


def test_guidance_mixes_the_conditional_and_null_velocities(tmp_path):
    model = Flow(**TINY, num_classes=10)
    model.compile()
    x, y = images(16), np.arange(16) % 10
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    z, labels = images(4, seed=2), np.array([1, 2, 3, 4], "int32")
    t = tf.constant(0.4)
    cond = np.array(model.velocity(z, t, labels, ema=True))
    null = np.full((4,), 10, "int32")  # the null class: the network's input, not a label
    uncond = np.array(model.ema_velocity(model._inputs(tf.constant(z), t, tf.constant(null))))
    guided = np.array(model._guided(tf.constant(labels), 1.5)(tf.constant(z), t))
    np.testing.assert_allclose(guided, 2.5 * cond - 1.5 * uncond, atol=1e-5)
    with pytest.raises(DataError):
        model.sample(2, seed=1, labels=np.array([0, 10]))
    samples = np.array(model.sample(4, seed=1, labels=labels))
    # .keras round trip: the same guided samples, and fit goes on with labels
    model.save(tmp_path / "cflow.keras")
    loaded = keras.saving.load_model(tmp_path / "cflow.keras")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(np.array(loaded.sample(4, seed=1, labels=labels)), samples)
    assert int(loaded.optimizer.iterations.numpy()) == 2
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(loaded.optimizer.iterations.numpy()) == 4

"""Our layers against the Keras ones they replace.

FastDropout: the same inverted dropout as keras.layers.Dropout, from 16-bit random integers.
FusedBatchNormalization: the same outputs, gradients and moving statistics as
keras.layers.BatchNormalization, from TensorFlow's fused kernel.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_genai.errors import ConfigError
from tf_genai import devices
from tf_genai.layers import FastDropout, FusedBatchNormalization


def test_mask_has_the_drop_rate_and_keeps_the_expectation():
    layer = FastDropout(0.3, seed=1)
    x = np.random.default_rng(0).uniform(0.5, 2.0, (64, 14, 14, 32)).astype(np.float32)
    y = np.asarray(layer(x, training=True))  # 401,408 elements
    kept = y != 0
    n = kept.size
    # Binomial(n, 0.7): 5 standard deviations is 0.0036 at this n.
    assert abs(kept.mean() - 0.7) < 5 * np.sqrt(0.3 * 0.7 / n)
    # Kept values are the input scaled by the inverse keep probability; dropped ones are 0.
    np.testing.assert_allclose(y[kept], x[kept] / layer.keep_probability, rtol=1e-6)
    assert layer.keep_probability == pytest.approx(0.7, abs=1 / 65536)
    # Neighbouring elements (the two halves of one 32-bit draw) are independent.
    flat = kept.reshape(-1).astype(np.float64)
    assert abs(np.corrcoef(flat[0::2], flat[1::2])[0, 1]) < 0.01
    # E[y] = x: the scaled mean over many elements matches the input mean.
    assert y.mean() == pytest.approx(x.mean(), rel=0.01)


def test_gradient_is_the_mask_times_the_scale():
    layer = FastDropout(0.5, seed=2)
    x = tf.constant(np.random.default_rng(1).normal(size=(8, 100)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        total = tf.reduce_sum(y * 3.0)
    grad = np.asarray(tape.gradient(total, x))
    mask = np.asarray(y) != 0
    np.testing.assert_allclose(grad, np.where(mask, 3.0 / layer.keep_probability, 0.0), rtol=1e-6)


def test_inference_mode_and_rate_zero_return_the_input():
    x = np.random.default_rng(2).normal(size=(4, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(FastDropout(0.4, seed=0)(x)), x)
    np.testing.assert_array_equal(np.asarray(FastDropout(0.4, seed=0)(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(FastDropout(0.0, seed=0)(x, training=True)), x)


def test_seed_fixes_the_masks_and_each_call_draws_a_new_one():
    x = np.ones((3, 5, 7), np.float32)  # odd size: 105 elements from 53 draws
    a, b = FastDropout(0.5, seed=7), FastDropout(0.5, seed=7)
    first = np.asarray(a(x, training=True))
    assert first.shape == x.shape
    np.testing.assert_array_equal(first, np.asarray(b(x, training=True)))
    assert not np.array_equal(first, np.asarray(a(x, training=True)))  # the state advanced
    assert not np.array_equal(first, np.asarray(FastDropout(0.5, seed=8)(x, training=True)))


def test_mixed_bfloat16_computes_in_bfloat16_with_the_same_mask():
    x = np.ones((16, 64), np.float32)
    layer = FastDropout(0.25, seed=3, dtype="mixed_bfloat16")
    y = layer(x, training=True)
    assert y.dtype == tf.bfloat16
    ref = np.asarray(FastDropout(0.25, seed=3)(x, training=True))
    np.testing.assert_array_equal(np.asarray(tf.cast(y, tf.float32)) != 0, ref != 0)


def test_config_round_trip_inside_a_saved_model(tmp_path):
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(10), FastDropout(0.3, seed=4)])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer = loaded.layers[-1]
    assert isinstance(layer, FastDropout) and layer.rate == 0.3 and layer.seed == 4
    x = np.random.default_rng(3).normal(size=(5, 10)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, 0.9999999])
def test_bad_rates_are_refused(rate):
    with pytest.raises(ConfigError, match="rate"):
        FastDropout(rate)


def _twin_batch_norms(shape, policy, **kwargs):
    """A Keras batch norm and ours, built alike, with non-trivial gamma and beta."""
    with devices.mixed_precision(policy):
        pair = keras.layers.BatchNormalization(**kwargs), FusedBatchNormalization(**kwargs)
    channels = shape[-1]
    for layer in pair:
        layer.build(shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, channels, dtype=np.float32))
        layer.beta.assign(np.linspace(-1.0, 1.0, channels, dtype=np.float32))
    return pair


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("shape", [(16, 5, 5, 3), (16, 7), (8, 6, 4)])
def test_fused_batch_norm_matches_keras_in_training_mode(policy, shape):
    x = tf.constant(np.random.default_rng(1).normal(1.0, 3.0, shape).astype(np.float32))
    weights = tf.constant(np.random.default_rng(2).normal(size=shape).astype(np.float32))
    results = []
    for layer in _twin_batch_norms(shape, policy, momentum=0.8):
        for _ in range(2):  # two steps: the moving averages compound
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
            grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append((y, grads, layer.moving_mean, layer.moving_variance))
    (y_k, g_k, mean_k, var_k), (y_f, g_f, mean_f, var_f) = results
    assert y_f.dtype == y_k.dtype == (tf.bfloat16 if policy == "mixed_bfloat16" else tf.float32)
    tol = 2e-2 if policy == "mixed_bfloat16" else 1e-5  # bf16 outputs carry 8 bits
    np.testing.assert_allclose(np.asarray(tf.cast(y_f, tf.float32)),
                               np.asarray(tf.cast(y_k, tf.float32)), rtol=tol, atol=tol)
    for a, b in zip(g_f, g_k):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol * 10)
    # The moving variance follows the biased batch variance, as Keras 3's does.
    np.testing.assert_allclose(np.asarray(mean_f), np.asarray(mean_k), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(var_f), np.asarray(var_k), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(var_f), 1.0)  # the statistics did move


def test_fused_batch_norm_falls_back_to_keras_where_it_does_not_apply():
    x = np.random.default_rng(3).normal(2.0, 2.0, (12, 4, 4, 3)).astype(np.float32)
    keras_bn, fused = _twin_batch_norms(x.shape, "float32")
    for layer in (keras_bn, fused):
        layer(x, training=True)
        layer.moving_mean.assign(np.array([0.5, 1.0, 1.5], np.float32))
    # Inference mode uses the moving statistics, exactly as the Keras layer does.
    np.testing.assert_array_equal(np.asarray(fused(x, training=False)),
                                  np.asarray(keras_bn(x, training=False)))
    assert fused._fused_applies(tf.constant(x), True, None)
    assert not fused._fused_applies(tf.constant(x), False, None)
    assert not fused._fused_applies(tf.constant(x), True, tf.ones((12, 4, 4)))
    channels_first = FusedBatchNormalization(axis=1)
    channels_first.build(x.shape)
    assert not channels_first._fused_applies(tf.constant(x), True, None)


def test_fused_batch_norm_round_trips_in_a_saved_model(tmp_path):
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4),
                              FusedBatchNormalization(momentum=0.9, synchronized=True)])
    x = np.random.default_rng(4).normal(size=(32, 6)).astype(np.float32)
    model(x, training=True)  # move the statistics off their initial values
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    layer = loaded.layers[-1]
    assert isinstance(layer, FusedBatchNormalization)
    assert layer.momentum == 0.9 and layer.synchronized
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6)


# ------------------------------------------------------------------ spectral normalisation


def _sn_conv(seed: int = 1):
    from tf_genai.layers import SpectralNormalization

    layer = SpectralNormalization(keras.layers.Conv2D(
        4, 3, padding="same", kernel_initializer=keras.initializers.GlorotUniform(seed=seed)))
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
    layer(x)  # build
    return layer, x


def test_spectral_normalization_runs_on_w_over_sigma_and_never_rewrites_w():
    layer, x = _sn_conv()
    kernel = np.array(layer.layer.kernel)
    u0 = np.array(layer.vector_u)
    layer(x, training=False)
    np.testing.assert_array_equal(np.array(layer.vector_u), u0)  # inference: u stays
    for _ in range(30):  # training calls: one power iteration each
        layer(x, training=True)
    assert not np.array_equal(np.array(layer.vector_u), u0)
    np.testing.assert_array_equal(np.array(layer.layer.kernel), kernel)  # W itself is kept
    sigma = np.linalg.svd(kernel.reshape(-1, 4), compute_uv=False)[0]
    assert abs(sigma - 1.0) > 0.02  # so normalising matters
    want = tf.nn.conv2d(x, kernel / sigma, 1, "SAME") + np.array(layer.layer.bias)
    np.testing.assert_allclose(np.asarray(layer(x)), want, rtol=1e-5, atol=1e-6)


def test_spectral_normalization_gradient_flows_through_sigma():
    """In training mode, the tape's gradient w.r.t. W matches finite differences of
    W -> conv(x, W / sigma(W)) (u converged first and reset before each call); Keras' own
    layer, which drops sigma's dependence on W, misses the paper's second term."""
    layer, x = _sn_conv()
    for _ in range(30):  # converge u, so sigma's estimate is the largest singular value
        layer(x, training=True)
    u0 = np.array(layer.vector_u)
    w = tf.constant(np.random.default_rng(3).normal(size=(2, 6, 6, 4)).astype(np.float32))
    kernel = layer.layer.kernel
    base = np.array(kernel)

    def objective(value):
        kernel.assign(value)
        layer.vector_u.assign(u0)
        return tf.reduce_sum(w * layer(x, training=True))

    with tf.GradientTape() as tape:
        value = objective(base)
    grad = np.asarray(tape.gradient(value, kernel))
    direction = np.random.default_rng(4).normal(size=base.shape).astype(np.float32)
    step = 1e-2
    numeric = (float(objective(base + step * direction))
               - float(objective(base - step * direction))) / (2 * step)
    assert float(np.sum(grad * direction)) == pytest.approx(numeric, rel=2e-2)


def test_spectral_normalization_seed_fixes_u_and_is_in_the_config():
    from tf_genai.layers import SpectralNormalization

    def u(seed):
        layer = SpectralNormalization(keras.layers.Dense(5), seed=seed)
        layer.build((None, 3))
        return layer, np.array(layer.vector_u)

    (layer, a), (_, b), (_, c) = u(7), u(7), u(8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and 0 < np.abs(a).max() <= 0.04  # truncated at 2 stddev
    clone = SpectralNormalization.from_config(layer.get_config())
    assert clone.seed == 7 and clone.get_config() == layer.get_config()

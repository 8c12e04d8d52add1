"""FastDropout: the same inverted dropout as keras.layers.Dropout, from 16-bit random integers."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_genai.errors import ConfigError
from tf_genai.layers import FastDropout


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

"""The GAN losses of tf_genai.losses against hand-computed NumPy values on fixed logits."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_genai import losses
from tf_genai.errors import ConfigError

REAL = np.array([[2.0], [-1.0], [0.5], [30.0]], dtype=np.float32)  # (batch, 1) logits
FAKE = np.array([[-3.0], [0.0], [1.5], [-40.0]], dtype=np.float32)


def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def f(x) -> float:
    return float(np.asarray(x))


def test_non_saturating_matches_binary_cross_entropy_on_probabilities():
    # -log D(x) - log(1 - D(G(z))), D = sigmoid(logit); 30 and -40 check the stable form.
    d_real = sigmoid(REAL.astype(np.float64))
    d_fake = sigmoid(FAKE.astype(np.float64))
    expected_real = np.mean(-np.log(d_real))
    expected_fake = np.mean(-np.log1p(-d_fake))
    real, fake = losses.non_saturating_d_loss(REAL, FAKE, return_parts=True)
    assert f(real) == pytest.approx(expected_real, rel=1e-5)
    assert f(fake) == pytest.approx(expected_fake, rel=1e-5)
    assert f(losses.non_saturating_d_loss(REAL, FAKE)) == pytest.approx(
        expected_real + expected_fake, rel=1e-5
    )
    assert f(losses.non_saturating_g_loss(FAKE)) == pytest.approx(
        np.mean(-np.log(d_fake)), rel=1e-5
    )


def test_one_sided_label_smoothing_uses_a_soft_real_target_only():
    t = 0.9
    d_real = sigmoid(REAL.astype(np.float64))
    one_minus_d = sigmoid(-REAL.astype(np.float64))  # 1 - D(x) without cancellation at 30
    expected_real = np.mean(-(t * np.log(d_real) + (1 - t) * np.log(one_minus_d)))
    real, fake = losses.non_saturating_d_loss(REAL, FAKE, label_smoothing=0.1, return_parts=True)
    assert f(real) == pytest.approx(expected_real, rel=1e-5)
    # One-sided: the fake term is the unsmoothed one.
    unsmoothed_fake = losses.non_saturating_d_loss(REAL, FAKE, return_parts=True)[1]
    assert f(fake) == pytest.approx(f(unsmoothed_fake))


def test_minimax_generator_loss_is_log_one_minus_d():
    expected = np.mean(np.log1p(-sigmoid(FAKE.astype(np.float64))))
    assert f(losses.minimax_g_loss(FAKE)) == pytest.approx(expected, rel=1e-5)
    d_loss, g_loss = losses.gan_losses("minimax")
    assert d_loss is losses.non_saturating_d_loss and g_loss is losses.minimax_g_loss


def test_least_squares():
    expected_d = 0.5 * np.mean((REAL - 1.0) ** 2) + 0.5 * np.mean(FAKE**2)
    expected_g = 0.5 * np.mean((FAKE - 1.0) ** 2)
    assert f(losses.least_squares_d_loss(REAL, FAKE)) == pytest.approx(expected_d, rel=1e-6)
    assert f(losses.least_squares_g_loss(FAKE)) == pytest.approx(expected_g, rel=1e-6)
    smoothed = 0.5 * np.mean((REAL - 0.8) ** 2) + 0.5 * np.mean(FAKE**2)
    assert f(losses.least_squares_d_loss(REAL, FAKE, 0.2)) == pytest.approx(smoothed, rel=1e-6)


def test_hinge():
    expected_d = np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE))
    assert f(losses.hinge_d_loss(REAL, FAKE)) == pytest.approx(expected_d, rel=1e-6)
    assert f(losses.hinge_g_loss(FAKE)) == pytest.approx(-np.mean(FAKE), rel=1e-6)


def test_wasserstein():
    real, fake = losses.wasserstein_d_loss(REAL, FAKE, return_parts=True)
    assert f(real) == pytest.approx(-np.mean(REAL), rel=1e-6)
    assert f(fake) == pytest.approx(np.mean(FAKE), rel=1e-6)
    assert f(losses.wasserstein_d_loss(REAL, FAKE)) == pytest.approx(
        np.mean(FAKE) - np.mean(REAL), rel=1e-6
    )
    assert f(losses.wasserstein_g_loss(FAKE)) == pytest.approx(-np.mean(FAKE), rel=1e-6)


@pytest.mark.parametrize("name", sorted(losses.GAN_LOSSES))
def test_parts_sum_to_the_loss_and_the_table_is_complete(name):
    d_loss, g_loss = losses.gan_losses(name)
    real, fake = d_loss(REAL, FAKE, return_parts=True)
    assert f(real) + f(fake) == pytest.approx(f(d_loss(REAL, FAKE)), rel=1e-6)
    assert np.isfinite(f(g_loss(FAKE)))


def test_unknown_loss_name_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="hinge"):
        losses.gan_losses("nonsaturating")


def test_safe_norm_is_exact_away_from_zero_and_has_finite_gradient_at_zero():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    assert np.allclose(np.asarray(losses.safe_norm(x)), [5.0, 0.0], atol=1e-5)
    v = tf.Variable(np.zeros((2, 3), np.float32))
    with tf.GradientTape() as tape:
        n = tf.reduce_sum(losses.safe_norm(v))
    assert np.all(np.isfinite(tape.gradient(n, v).numpy()))
    # A plain sqrt would be NaN here: the check above could fail.
    with tf.GradientTape() as tape:
        n = tf.reduce_sum(tf.sqrt(tf.reduce_sum(tf.square(v), axis=-1)))
    assert not np.all(np.isfinite(tape.gradient(n, v).numpy()))


# ---------------------------------------------------------------- gradient penalty


def _linear_critic(weight):
    """D(x) = <w, flatten(x)>: its input gradient is w for every x."""

    def critic(x):
        flat = tf.reshape(x, (tf.shape(x)[0], -1))  # (batch, H*W*C)
        return tf.reduce_sum(flat * tf.reshape(weight, (1, -1)), axis=-1, keepdims=True)

    return critic


def _images(seed, shape=(6, 4, 4, 1)):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _alpha(seed, n=6):
    return np.random.default_rng(seed).uniform(0, 1, (n, 1, 1, 1)).astype(np.float32)


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    w = np.random.default_rng(0).normal(size=16).astype(np.float32)
    w /= np.linalg.norm(w)
    gp = losses.gradient_penalty(_linear_critic(tf.constant(w)), _images(1), _images(2), _alpha(3))
    assert f(gp) == pytest.approx(0.0, abs=1e-6)


def test_gradient_penalty_matches_the_closed_form_for_a_linear_critic():
    w = np.random.default_rng(0).normal(size=16).astype(np.float32)  # norm != 1
    gp = losses.gradient_penalty(_linear_critic(tf.constant(w)), _images(1), _images(2), _alpha(3))
    assert f(gp) == pytest.approx((np.linalg.norm(w) - 1.0) ** 2, rel=1e-4)
    assert f(gp) > 0.1


def test_gradient_penalty_is_finite_when_real_equals_fake_and_the_gradient_is_zero():
    # A ReLU critic that is flat (zero input gradient) where real == fake: the worst case for
    # sqrt. Both the penalty and its gradient w.r.t. the critic weights must stay finite.
    real = _images(4)
    w = tf.Variable(np.full((16,), -1.0, np.float32))
    b = tf.Variable(-100.0)

    def critic(x):
        flat = tf.reshape(x, (tf.shape(x)[0], -1))
        return tf.nn.relu(tf.reduce_sum(flat * w, axis=-1, keepdims=True) + b)  # dead ReLU

    with tf.GradientTape() as tape:
        gp = losses.gradient_penalty(critic, real, real, _alpha(5))
    grads = tape.gradient(gp, [w, b])
    assert f(gp) == pytest.approx(1.0, abs=1e-5)  # (0 - 1)^2
    for g in grads:
        assert g is None or np.all(np.isfinite(np.asarray(g)))

    # A live linear critic with real == fake: finite penalty and finite weight gradients.
    with tf.GradientTape() as tape:
        gp = losses.gradient_penalty(_linear_critic(w), real, real, _alpha(5))
    g = tape.gradient(gp, w).numpy()
    assert np.isfinite(f(gp)) and np.all(np.isfinite(g)) and np.abs(g).sum() > 0

"""Differentiable augmentation (tf_genai/augment.py): identity at strength 0, each transform
against a hand-computed reference, the strength as a per-image probability, exact gradients."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_genai import augment
from tf_genai.errors import ConfigError

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(-1, 1, (6, 8, 8, 3)).astype(np.float32)


def uniforms(policy: str, n: int = 6, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, augment.num_uniforms(policy))).astype(
        np.float32)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", augment.DIFF_AUGMENT])
def test_strength_zero_is_the_identity_bit_for_bit(policy):
    out = augment.apply(IMAGES, uniforms(policy), policy, strength=0.0)
    assert np.asarray(out).tobytes() == IMAGES.tobytes()
    assert np.asarray(augment.apply(IMAGES, uniforms(""), "", 1.0)).tobytes() == IMAGES.tobytes()


def test_full_strength_changes_every_image():
    out = np.asarray(augment.apply(IMAGES, uniforms(augment.DIFF_AUGMENT), strength=1.0))
    assert all(not np.allclose(a, b) for a, b in zip(out, IMAGES))


def test_color_matches_diffaugment_formulas():
    # Columns: brightness (value, gate), saturation (value, gate), contrast (value, gate).
    u = np.array([[0.9, 0.0, 0.25, 0.0, 0.75, 0.0]] * 6, np.float32)
    out = np.asarray(augment.apply(IMAGES, u, "color", strength=1.0))
    x = IMAGES + 0.4  # brightness + (0.9 - 0.5)
    grey = x.mean(axis=3, keepdims=True)
    x = (x - grey) * 0.5 + grey  # saturation factor 2 * 0.25
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * 1.25 + mean  # contrast factor 0.75 + 0.5
    np.testing.assert_allclose(out, x, rtol=1e-5, atol=1e-6)


def _shifted(image, dy, dx):
    """Output pixel (i, j) = input (i + dy, j + dx), zero outside: the reference shift."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    for i in range(h):
        for j in range(w):
            if 0 <= i + dy < h and 0 <= j + dx < w:
                out[i, j] = image[i + dy, j + dx]
    return out


def test_translation_shifts_by_whole_pixels_up_to_an_eighth_with_zero_fill():
    # 8 pixels: shifts of -1, 0, 1 (reach round(8 / 8) = 1) from u in thirds of [0, 1).
    u = np.array([[0.1, 0.9, 0.0], [0.5, 0.5, 0.0], [0.9, 0.1, 0.0],
                  [0.0, 0.99, 0.0], [0.4, 0.7, 0.0], [0.2, 0.2, 0.0]], np.float32)
    out = np.asarray(augment.apply(IMAGES, u, "translation", strength=1.0))
    for image, result, row in zip(IMAGES, out, u):
        dy, dx = (int(np.floor(v * 3)) - 1 for v in row[:2])
        np.testing.assert_array_equal(result, _shifted(image, dy, dx))
    # A 32-pixel side moves by up to 4 (DiffAugment: int(32 * 0.125 + 0.5)).
    big = RNG.uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
    edge = np.array([[0.0, 0.5, 0.0], [0.999, 0.5, 0.0]], np.float32)
    moved = np.asarray(augment.apply(big, edge, "translation", 1.0))
    np.testing.assert_array_equal(moved[0], _shifted(big[0], -4, 0))
    np.testing.assert_array_equal(moved[1], _shifted(big[1], 4, 0))


def test_cutout_zeroes_a_half_side_square_clipped_at_the_border():
    u = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [0.999, 0.3, 0.0]] * 2, np.float32)
    out = np.asarray(augment.apply(IMAGES, u, "cutout", strength=1.0))
    for image, result, row in zip(IMAGES, out, u):
        # Side 8: a 4x4 square at centre floor(u * 9) (size even), rows centre - 2 .. + 1.
        mask = np.ones((8, 8), np.float32)
        top, left = (int(np.floor(v * 9)) - 2 for v in row[:2])
        mask[max(top, 0):max(top + 4, 0), max(left, 0):max(left + 4, 0)] = 0.0
        np.testing.assert_array_equal(result, image * mask[..., None])
    assert (out[0] == 0).all(axis=-1).sum() == 16  # the centred square lies inside


def test_strength_is_the_probability_each_transform_applies():
    policy, n, p = "cutout", 4000, 0.3
    images = np.ones((n, 8, 8, 1), np.float32)
    out = np.asarray(augment.apply(images, uniforms(policy, n, seed=2), policy, strength=p))
    share = np.mean((out == 0).any(axis=(1, 2, 3)))
    assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n), share


def test_gradient_is_the_exact_adjoint_of_the_augmentation():
    """apply is linear in the images up to the brightness offset, so for any direction d the
    tape's gradient g of <w, apply(x)> satisfies <g, d> = <w, apply(x + d) - apply(x)>."""
    policy = augment.DIFF_AUGMENT
    u = uniforms(policy)
    x = tf.constant(IMAGES)
    w = tf.constant(RNG.normal(size=IMAGES.shape).astype(np.float32))
    d = RNG.normal(size=IMAGES.shape).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = tf.reduce_sum(w * augment.apply(x, u, policy, 1.0))
    g = tape.gradient(value, x)
    change = augment.apply(x + d, u, policy, 1.0) - augment.apply(x, u, policy, 1.0)
    np.testing.assert_allclose(float(tf.reduce_sum(g * d)), float(tf.reduce_sum(w * change)),
                               rtol=1e-4)
    assert np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0)


def test_policies_and_strengths_are_checked():
    assert augment.check_policy(" colour , cutout") == "color,cutout"
    assert augment.check_policy("") == ""
    assert augment.num_uniforms("") == 0 and augment.num_uniforms(augment.DIFF_AUGMENT) == 12
    for bad in ("colr", "cutout,cutout", None, "flip"):
        with pytest.raises(ConfigError, match="policy"):
            augment.check_policy(bad)
    for bad in (-0.1, 1.5, "1", True):
        with pytest.raises(ConfigError, match="strength"):
            augment.check_strength(bad)
    assert augment.check_strength(1) == 1.0

"""The augmentation itself (:func:`apply`): TensorFlow ops on a batch and its drawn uniforms;
the policy, its checks and the paper are in :mod:`tf_genai.augment`."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tf_genai.augment import (
    CUTOUT_RATIO,
    DIFF_AUGMENT,
    PARAMETERS,
    TRANSLATION_RATIO,
    transforms,
)


def apply(images: Any, uniforms: Any, policy: str = DIFF_AUGMENT, strength: float = 1.0):
    """Augment a batch of images with ``policy``, every random choice read from ``uniforms``.

    Args:
        images: ``(batch, H, W, C)`` floats in [-1, 1].
        uniforms: ``(batch, tf_genai.augment.num_uniforms(policy))`` draws from U[0, 1), one
            row per image.
        policy: a policy string (:func:`tf_genai.augment.check_policy`).
        strength: the probability p that each transform applies to an image.

    Returns:
        The augmented images, ``(batch, H, W, C)``, same dtype. A transform that does not apply
        adds an exact zero (or multiplies by an exact one), so ``strength=0`` returns the
        images bit for bit.
    """
    x = tf.convert_to_tensor(images)
    u = tf.cast(uniforms, x.dtype)  # (batch, K)
    column = 0
    for name in transforms(policy):
        k = PARAMETERS[name]
        params, gate = u[:, column:column + k], u[:, column + k]
        column += k + 1
        on = tf.cast(gate < strength, x.dtype)  # (batch,) 1 where the transform applies
        x = _TRANSFORM[name](x, params, on)
    return x


def _per_image(values):
    """(batch,) -> (batch, 1, 1, 1), to broadcast over an image."""
    return tf.reshape(values, (-1, 1, 1, 1))


def _brightness(x, params, on):
    return x + _per_image((params[:, 0] - 0.5) * on)  # U[-1/2, 1/2)


def _saturation(x, params, on):
    grey = tf.reduce_mean(x, axis=3, keepdims=True)  # (batch, H, W, 1)
    return x + _per_image((2.0 * params[:, 0] - 1.0) * on) * (x - grey)  # factor U[0, 2)


def _contrast(x, params, on):
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)  # (batch, 1, 1, 1)
    return x + _per_image((params[:, 0] - 0.5) * on) * (x - mean)  # factor U[1/2, 3/2)


def _integer_below(u, count):
    """floor(u * count) for u in [0, 1): an integer in 0 .. count - 1, as int32."""
    return tf.minimum(tf.cast(tf.floor(u * count), tf.int32), count - 1)


def _translation(x, params, on):
    height, width = x.shape[1], x.shape[2]
    on = tf.cast(on, tf.int32)
    out = x
    for axis, side, u in ((1, height, params[:, 0]), (2, width, params[:, 1])):
        reach = int(side * TRANSLATION_RATIO + 0.5)  # DiffAugment's rounding
        shift = (_integer_below(u, 2 * reach + 1) - reach) * on  # (batch,) in [-reach, reach]
        # Row i of the output is row i + shift of the input, zero past the border: a one-hot
        # matrix (tf.one_hot gives an all-zero row for an index outside 0 .. side - 1).
        source = tf.range(side)[None, :] + shift[:, None]  # (batch, side)
        moves = tf.one_hot(source, side, dtype=x.dtype)  # (batch, side out, side in)
        equation = "bij,bjwc->biwc" if axis == 1 else "bij,bhjc->bhic"
        out = tf.einsum(equation, moves, out)  # (batch, H, W, C)
    return out


def _cutout(x, params, on):
    height, width = x.shape[1], x.shape[2]
    inside = []
    for side, u in ((height, params[:, 0]), (width, params[:, 1])):
        size = int(side * CUTOUT_RATIO + 0.5)
        # DiffAugment's centre: 0 .. side - (size odd), the square [centre - size//2, + size).
        start = _integer_below(u, side + 1 - size % 2) - size // 2  # (batch,)
        index = tf.range(side)[None, :]
        inside.append(tf.cast((index >= start[:, None]) & (index < start[:, None] + size),
                              x.dtype))  # (batch, side)
    square = inside[0][:, :, None] * inside[1][:, None, :]  # (batch, H, W)
    keep = 1.0 - square * on[:, None, None]
    return x * keep[..., None]  # (batch, H, W, C)


_TRANSFORM = {"brightness": _brightness, "saturation": _saturation, "contrast": _contrast,
              "translation": _translation, "cutout": _cutout}

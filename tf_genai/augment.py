"""Differentiable augmentation of images before a discriminator (DiffAugment).

Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"
(arXiv:2006.10738): a discriminator trained on a few thousand images memorises them, and its
feedback to the generator stops meaning anything. Augmenting what the discriminator sees
(the real images *and* the generated ones, in the discriminator's update and in the
generator's) regularises it without changing the distribution the generator learns, because
the generator is scored on augmented fakes against augmented reals; the augmentation must then
be differentiable, since the generator's gradient flows through it.

The policy is DiffAugment's (``DiffAugment_tf.py`` of the paper's code), on images in [-1, 1]:

* ``color``: brightness ``x + (u - 1/2)``, saturation ``(x - mean_c) * 2u + mean_c`` (the mean
  over channels), contrast ``(x - mean) * (u + 1/2) + mean`` (the mean over the image).
* ``translation``: an integer shift of up to 1/8 of each side, the same for every channel,
  filled with zeros (mid-grey in [-1, 1]).
* ``cutout``: a zeroed square of half each side, centred anywhere (clipped at the border).

``strength`` p in [0, 1] applies each of the five transforms to each image with probability p
(the ``p`` of ADA, Karras et al. 2020, "Training Generative Adversarial Networks with Limited
Data", arXiv:2006.06676): 0 is the identity, 1 is DiffAugment as published. p is a constant
here: ADA's controller moves p by at most 1 in 500,000 real images shown, more than a
10-minute two-core run shows in all.

Pure functions: :func:`apply` is a function of the images and of an array of uniforms
``(batch, num_uniforms(policy))`` that the caller draws (a model from its own seed generator,
for the global batch: :func:`tf_genai.distribute.random_for_batch`), so an augmentation is
reproducible from its inputs and N replicas augment as one device does. Shifts are
multiplications by one-hot shift matrices and cutout a multiplication by a mask, so the
output is linear in the images and its gradient exact.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tf_genai.errors import ConfigError

# The transforms of each policy word, in DiffAugment's order, and the uniforms each takes (its
# parameters, then one to decide whether it applies).
TRANSFORMS = {"color": ("brightness", "saturation", "contrast"),
              "translation": ("translation",),
              "cutout": ("cutout",)}
PARAMETERS = {"brightness": 1, "saturation": 1, "contrast": 1, "translation": 2, "cutout": 2}
DIFF_AUGMENT = "color,translation,cutout"  # the published policy
TRANSLATION_RATIO = 0.125  # largest shift, a fraction of each side
CUTOUT_RATIO = 0.5  # side of the cut square, a fraction of each side
_ALIASES = {"colour": "color"}


def check_policy(policy: str) -> str:
    """The canonical form of a policy: comma-separated words of :data:`TRANSFORMS`, each once,
    in the given order (``""`` = no augmentation); ConfigError for anything else."""
    if not isinstance(policy, str):
        raise ConfigError(f"augmentation policy must be a string like {DIFF_AUGMENT!r} (or '' "
                          f"for none), got {policy!r}")
    words = [_ALIASES.get(w.strip(), w.strip()) for w in policy.split(",") if w.strip()]
    unknown = [w for w in words if w not in TRANSFORMS]
    if unknown or len(set(words)) != len(words):
        raise ConfigError(f"augmentation policy {policy!r}: use each of "
                          f"{', '.join(TRANSFORMS)} at most once, comma-separated "
                          f"(e.g. {DIFF_AUGMENT!r}; '' for none)")
    return ",".join(words)


def check_strength(strength: Any) -> float:
    """``strength`` as a float in [0, 1]; ConfigError otherwise."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) \
            or not 0.0 <= strength <= 1.0:
        raise ConfigError(f"augmentation strength must be a number in [0, 1], got {strength!r}")
    return float(strength)


def _transforms(policy: str) -> list[str]:
    return [t for word in check_policy(policy).split(",") if word for t in TRANSFORMS[word]]


def num_uniforms(policy: str) -> int:
    """How many uniforms per image :func:`apply` takes for ``policy``."""
    return sum(PARAMETERS[t] + 1 for t in _transforms(policy))


def apply(images: Any, uniforms: Any, policy: str = DIFF_AUGMENT, strength: float = 1.0):
    """Augment a batch of images with ``policy``, every random choice read from ``uniforms``.

    Args:
        images: ``(batch, H, W, C)`` floats in [-1, 1].
        uniforms: ``(batch, num_uniforms(policy))`` draws from U[0, 1), one row per image.
        policy: a policy string (:func:`check_policy`).
        strength: the probability p that each transform applies to an image.

    Returns:
        The augmented images, ``(batch, H, W, C)``, same dtype. A transform that does not apply
        adds an exact zero (or multiplies by an exact one), so ``strength=0`` returns the
        images bit for bit.
    """
    x = tf.convert_to_tensor(images)
    u = tf.cast(uniforms, x.dtype)  # (batch, K)
    column = 0
    for name in _transforms(policy):
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

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

:func:`apply` lives in :mod:`tf_genai.augment.ops` and is imported on first use: the policy
checks here need no TensorFlow, so a run's config is checked before TensorFlow loads.
"""

from __future__ import annotations

from typing import Any

from tf_genai import lazy
from tf_genai.errors import ConfigError

__getattr__, __dir__ = lazy.exports(__name__, {"ops": ("apply",)})

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
    in the given order (``""`` or ``"none"`` = no augmentation); ConfigError for anything
    else."""
    if not isinstance(policy, str):
        raise ConfigError(f"augmentation policy must be a string like {DIFF_AUGMENT!r} (or '' "
                          f"for none), got {policy!r}")
    if policy.strip().lower() == "none":
        return ""
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


def transforms(policy: str) -> list[str]:
    """The transforms of ``policy``, in the order :func:`apply` runs them."""
    return [t for word in check_policy(policy).split(",") if word for t in TRANSFORMS[word]]


def num_uniforms(policy: str) -> int:
    """How many uniforms per image :func:`apply` takes for ``policy``."""
    return sum(PARAMETERS[t] + 1 for t in transforms(policy))

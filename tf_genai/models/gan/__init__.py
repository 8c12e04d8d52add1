"""Generative adversarial networks: GAN, DCGAN, WGAN-GP, conditional GAN.

Importing this package registers the zoo names ``gan``, ``dcgan``, ``wgan_gp`` and ``cgan``
(one class, :class:`GAN`, with different defaults).
"""

from tf_genai.models.gan.model import GAN, default_optimizer  # noqa: F401  (registers the zoo)
from tf_genai.models.gan.networks import build_discriminator, build_generator  # noqa: F401

"""Variational autoencoders: VAE, conditional VAE, IWAE."""

from tf_genai.models.vae import networks  # noqa: F401
from tf_genai.models.vae.model import VAE  # noqa: F401  (registers vae, mlp_vae, cvae, iwae)

__all__ = ["VAE"]

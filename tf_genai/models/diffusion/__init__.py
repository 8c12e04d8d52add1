"""Denoising diffusion models: DDPM and class-conditional DDPM with classifier-free guidance."""

from tf_genai.models.diffusion import networks, schedules  # noqa: F401
from tf_genai.models.diffusion.model import Diffusion  # noqa: F401  (registers ddpm, cddpm)

__all__ = ["Diffusion"]

"""Noise schedules of the diffusion family and the maps between a network output and (x0, eps).

Timesteps are 0-based: network timestep ``t`` in ``0..T-1`` is the papers' step ``t + 1``, and
``alpha_bar[t] = prod_{s <= t} (1 - beta[s])``. Schedules are NumPy float64 (exact constants);
:func:`to_x0_eps` and :func:`eps_from_x0` work on tensors.

Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models" (arXiv:2006.11239); Nichol &
Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models" (arXiv:2102.09672); Salimans &
Ho 2022, "Progressive Distillation for Fast Sampling of Diffusion Models" (arXiv:2202.00512).
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from tf_genai.errors import ConfigError

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "x0", "v")
MAX_BETA = 0.999  # Nichol & Dhariwal 2021 section 3.2: avoids a singularity at t = T
COSINE_OFFSET = 0.008  # s of Nichol & Dhariwal eq. 17


def linear_betas(timesteps: int, start: float = 1e-4, end: float = 0.02) -> np.ndarray:
    """Ho et al. 2020 section 4: betas linear from 1e-4 to 0.02 at T = 1000.

    For another T the end points scale by 1000 / T (Nichol & Dhariwal's ``get_named_beta_schedule``),
    so the total noise stays about the same; clipped at :data:`MAX_BETA`.
    """
    scale = 1000.0 / int(timesteps)
    betas = np.linspace(start * scale, end * scale, int(timesteps), dtype=np.float64)
    return np.minimum(betas, MAX_BETA)


def cosine_alpha_bar_formula(timesteps: int, s: float = COSINE_OFFSET) -> np.ndarray:
    """Nichol & Dhariwal 2021 eq. 17 at papers' steps 1..T: ``f(t) / f(0)``,
    ``f(t) = cos((t / T + s) / (1 + s) * pi / 2) ** 2`` (before beta clipping)."""
    steps = np.arange(int(timesteps) + 1, dtype=np.float64) / int(timesteps)
    f = np.cos((steps + s) / (1.0 + s) * math.pi / 2.0) ** 2  # (T + 1,)
    return f[1:] / f[0]


def cosine_betas(timesteps: int, s: float = COSINE_OFFSET) -> np.ndarray:
    """Nichol & Dhariwal 2021 eq. 17: ``beta_t = 1 - abar_t / abar_{t-1}``, clipped at 0.999."""
    abar = np.concatenate([[1.0], cosine_alpha_bar_formula(timesteps, s)])  # (T + 1,)
    return np.minimum(1.0 - abar[1:] / abar[:-1], MAX_BETA)


def betas(schedule: str, timesteps: int) -> np.ndarray:
    """The (T,) float64 betas of schedule ``"linear"`` or ``"cosine"``."""
    if int(timesteps) < 1:
        raise ConfigError(f"diffusion timesteps must be >= 1, got {timesteps}")
    if schedule == "linear":
        return linear_betas(timesteps)
    if schedule == "cosine":
        return cosine_betas(timesteps)
    raise ConfigError(f"unknown diffusion schedule {schedule!r}; choose one of {SCHEDULES}")


def alphas_cumprod(beta: np.ndarray) -> np.ndarray:
    """``abar_t = prod_{s <= t} (1 - beta_s)`` (Ho et al. 2020, before eq. 4), shape (T,)."""
    return np.cumprod(1.0 - np.asarray(beta, np.float64))


def alphas_cumprod_prev(beta: np.ndarray) -> np.ndarray:
    """``abar_{t-1}`` with ``abar_{-1} = 1`` (the clean image), shape (T,)."""
    return np.concatenate([[1.0], alphas_cumprod(beta)[:-1]])


def posterior_variance(beta: np.ndarray) -> np.ndarray:
    """``beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)`` (Ho et al. 2020 eq. 7); 0 at t = 0."""
    beta = np.asarray(beta, np.float64)
    abar, prev = alphas_cumprod(beta), alphas_cumprod_prev(beta)
    return beta * (1.0 - prev) / (1.0 - abar)


def posterior_mean_coefficients(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(c0, ct)`` with ``mu~_t(x_t, x0) = c0 x0 + ct x_t`` (Ho et al. 2020 eq. 7)."""
    beta = np.asarray(beta, np.float64)
    abar, prev = alphas_cumprod(beta), alphas_cumprod_prev(beta)
    c0 = beta * np.sqrt(prev) / (1.0 - abar)
    ct = np.sqrt(1.0 - beta) * (1.0 - prev) / (1.0 - abar)
    return c0, ct


def to_x0_eps(prediction: str, output, x_t, alpha_bar):
    """Network ``output`` at noise level ``alpha_bar`` (broadcasting) -> ``(x0, eps)``.

    ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps`` (Ho et al. eq. 4) and, for v-prediction,
    ``v = sqrt(abar) eps - sqrt(1 - abar) x0`` (Salimans & Ho 2022 section 4), inverted.
    """
    a, b = ops.sqrt(alpha_bar), ops.sqrt(1.0 - alpha_bar)
    if prediction == "eps":
        return (x_t - b * output) / a, output
    if prediction == "x0":
        return output, (x_t - a * output) / b
    if prediction == "v":
        return a * x_t - b * output, b * x_t + a * output
    raise ConfigError(f"unknown diffusion prediction {prediction!r}; choose one of {PREDICTIONS}")


def eps_from_x0(x_t, x0, alpha_bar):
    """The eps consistent with ``x0`` at ``x_t`` (after x0 is clipped): eq. 4 solved for eps."""
    return (x_t - ops.sqrt(alpha_bar) * x0) / ops.sqrt(1.0 - alpha_bar)

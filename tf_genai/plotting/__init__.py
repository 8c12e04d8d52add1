"""Figures for generative models: every function returns a matplotlib Figure.

None of them calls ``plt.show()`` or touches pyplot's global state: figures are
``matplotlib.figure.Figure`` objects on an Agg canvas (display one in a notebook by making it a
cell's last expression), and every function takes ``path=`` to save a PNG. Functions work on
arrays or on any object with the model interface of docs/ARCHITECTURE.md (duck typing); this
package never imports ``tf_genai.models``.

Grids are one composed image on one axes (see :func:`image_grid`). Anything that decodes many
latent points (the manifold, interpolations) does it in one batched call.
"""

from tf_genai.plotting._common import compose_grid, to_unit
from tf_genai.plotting.history import load_history, plot_history
from tf_genai.plotting.images import image_grid, plot_reconstructions, plot_samples
from tf_genai.plotting.latent import (
    decode_latents,
    encode_means,
    manifold_coordinates,
    plot_interpolation,
    plot_latent_manifold,
    plot_latent_scatter,
    slerp,
)
from tf_genai.plotting.trajectory import plot_trajectory

__all__ = [
    "compose_grid",
    "to_unit",
    "image_grid",
    "plot_samples",
    "plot_reconstructions",
    "plot_latent_scatter",
    "plot_latent_manifold",
    "manifold_coordinates",
    "plot_interpolation",
    "slerp",
    "encode_means",
    "decode_latents",
    "load_history",
    "plot_history",
    "plot_trajectory",
]

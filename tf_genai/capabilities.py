"""What a generative model can do, declared once by its class and read by everything else.

Export, evaluation, plotting, callbacks, ``training.write_plots`` and the shared tests ask a
model's :class:`Capabilities` (``model.capabilities``) what it offers, never which family it is:
a new family declares its capabilities and works with all of them (docs/ARCHITECTURE.md).
This module imports nothing, so the lowest layers (plotting, data) can read it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

LIKELIHOODS = ("exact", "bound")


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """The declared capabilities of a generative model.

    Attributes:
        latent: a continuous latent space with a standard normal prior:
            ``latents(n, seed)``, ``render(z, labels)``, ``latent_shape``
            (:class:`tf_genai.models.base.LatentModel`). Latent grids, interpolations and the
            export's ``render`` signature need it.
        encodes: ``encode(images, labels) -> z``, one latent point per image (a VAE's posterior
            mean, a diffusion model's DDIM inversion), and ``reconstruct(images, labels)``.
        likelihood: ``"exact"`` (``nll`` is ``-log p(x)``), ``"bound"`` (an upper bound on it,
            e.g. a VAE's importance-weighted bound) or None (no likelihood).
            ``nll(images, labels, seed=, **nll_options)`` gives it in nats per image.
        iterative: sampling runs a loop of network evaluations whose count the ``steps``
            sampling option sets; ``trajectory(n, seed)`` returns the intermediate states.
        conditional: the model takes class labels (``num_classes`` is set).
        augments: the model augments what its discriminator sees (:mod:`tf_genai.augment`;
            Zhao et al. 2020): its constructor takes ``augment`` (a policy string, ``""`` for
            none) and ``augment_strength``, which ``training`` sets for small data sets.
    """

    latent: bool = False
    encodes: bool = False
    likelihood: str | None = None
    iterative: bool = False
    conditional: bool = False
    augments: bool = False

    def __post_init__(self) -> None:
        if self.likelihood not in (None, *LIKELIHOODS):
            raise ValueError(f"likelihood must be None or one of {LIKELIHOODS}, "
                             f"got {self.likelihood!r}")
        if self.encodes and not self.latent:
            raise ValueError("a model that encodes needs a latent space (latent=True)")


def of(obj: Any) -> Capabilities | None:
    """``obj.capabilities`` for a tf_genai model, None for anything else (an array, say)."""
    caps = getattr(obj, "capabilities", None)
    return caps if isinstance(caps, Capabilities) else None

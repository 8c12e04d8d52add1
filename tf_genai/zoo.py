"""The model zoo as data: every zoo name, the class it builds, its defaults and why.

Presets as data (keras-hub's ``<model>_presets.py``): this module imports nothing, so
``tf-genai models`` lists the zoo without loading TensorFlow, and ``import tf_genai`` can tell
Keras which classes it serves before any model module is imported. :mod:`tf_genai.registry`
reads this table; a class is named by ``"module:Class"`` and imported on first use. A new
family adds its rows here and its subclass of ``GenerativeModel``; nothing else changes.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Preset:
    """One zoo name: the class (``"module:Class"``), its family, a line, its defaults."""

    target: str
    family: str
    description: str
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)


_VAE = "tf_genai.models.vae.model:VAE"
_GAN = "tf_genai.models.gan.model:GAN"
_DIFFUSION = "tf_genai.models.diffusion.model:Diffusion"
_FLOW = "tf_genai.models.flow.model:Flow"

PRESETS: dict[str, Preset] = {
    # The VAEs' likelihood is "auto": Bernoulli for grey images, a discretized logistic (bits/dim)
    # for colour ones (VAE docstring).
    "vae": Preset(_VAE, "vae", "Convolutional VAE (Kingma & Welling 2014), Bernoulli decoder "
                  "(grey) or discretized logistic (colour)"),
    "mlp_vae": Preset(_VAE, "vae", "MLP VAE (Kingma & Welling 2014), 512-256 encoder, Bernoulli "
                      "or discretized logistic",
                      {"architecture": "mlp", "hidden_units": (512, 256)}),
    # Sized for 32x32 / 64x64 colour photos on the CIFAR subset (docs/families/vae.md, Quality): the
    # latent grows to 256 with no dense layer between it and the conv grid, and PixelCNN++'s
    # channel-coupled logistic mixture models R, G, B jointly. Measured held-out 5.38 bits/dim
    # (600 s) where `vae` reaches 6.73 and PNG 5.85.
    "colour_vae": Preset(_VAE, "vae", "Convolutional VAE for colour images: 32-64 conv, latent "
                         "256, PixelCNN++ channel-coupled logistic mixture (Salimans et al. 2017)",
                         {"latent_dim": 256, "filters": (32, 64), "hidden_units": (),
                          "logistic_components": 5, "logistic_coupling": True}),
    "cvae": Preset(_VAE, "vae", "Conditional convolutional VAE (Sohn et al. 2015)",
                   {"num_classes": 10}),
    "iwae": Preset(_VAE, "vae", "Convolutional IWAE, k=5 importance samples (Burda et al. 2016)",
                   {"num_importance_samples": 5}),
    # Chen et al. 2016 (InfoGAN, arXiv:1606.03657) give their MNIST DCGAN a dense layer before
    # G's projection and after D's convolutions; with D's dropout 0.3 these lifted the mean
    # classifier confidence of 10-minute runs from 0.88 to 0.93 (docs/families/gan.md).
    "dcgan": Preset(_GAN, "gan",
                    "DCGAN (Radford et al. 2016) with InfoGAN's dense layers: strided conv G and D",
                    {"architecture": "conv", "generator_hidden": 256,
                     "discriminator_hidden": 1024, "dropout": 0.3}),
    "gan": Preset(_GAN, "gan",
                  "The original fully connected GAN (Goodfellow et al. 2014), discriminator logits",
                  {"architecture": "mlp"}),
    "wgan_gp": Preset(_GAN, "gan",
                      "WGAN-GP (Gulrajani et al. 2017): conv critic, gradient penalty, 5 critic "
                      "steps", {"architecture": "conv", "loss": "wasserstein", "gp_weight": 10.0,
                                "n_critic": 5, "dropout": 0.0}),
    "cgan": Preset(_GAN, "gan",
                   "Conditional DCGAN (Mirza & Osindero 2014): samples a chosen digit class",
                   {"architecture": "conv", "num_classes": 10}),
    # SNGAN's residual CIFAR networks (Miyato et al. 2018) at a width that trains on CPUs:
    # 64 channels in D and G where the paper has 128 and 256. A 32x32 step of batch 64 ran at
    # 0.19x dcgan's images/s, 0.58x at 32 channels, 0.11x at 64/128 (benchmarks/results/
    # gan_step_speed_zen4_2026-12-07.md). One critic step with DCGAN's Adam is the paper's
    # setting C (Table 1), where spectral normalisation held up; the hinge loss is the paper's
    # choice for its ResNet results.
    "sngan": Preset(_GAN, "gan",
                    "SNGAN (Miyato et al. 2018): residual G and spectrally normalised residual D, "
                    "hinge loss, for colour images",
                    {"architecture": "resnet", "loss": "hinge", "base_filters": 64,
                     "generator_filters": 64}),
    "ddpm": Preset(_DIFFUSION, "diffusion",
                   "DDPM (Ho et al. 2020), cosine schedule, v-prediction with Min-SNR-5 weights, "
                   "DDIM sampling (Song et al. 2021)"),
    "cddpm": Preset(_DIFFUSION, "diffusion",
                    "Class-conditional DDPM with classifier-free guidance (Ho & Salimans 2022), "
                    "DDIM sampling", {"num_classes": 10}),
    "flow": Preset(_FLOW, "flow",
                   "Flow matching, linear path (Lipman et al. 2023; Liu et al. 2023), "
                   "logit-normal times (Esser et al. 2024), Heun ODE sampler in few steps"),
    "cflow": Preset(_FLOW, "flow",
                    "Class-conditional flow matching with classifier-free guidance",
                    {"num_classes": 10}),
}

"""The VAE model: β-VAE, conditional VAE and IWAE in one ``keras.Model`` with its own train_step.

Kingma & Welling 2014, "Auto-Encoding Variational Bayes" (arXiv:1312.6114); β-VAE: Higgins et al.
2017; conditional VAE: Sohn, Lee & Yan 2015, "Learning Structured Output Representation using
Deep Conditional Generative Models"; IWAE: Burda, Grosse & Salakhutdinov 2016, "Importance
Weighted Autoencoders" (arXiv:1509.00519).

The family contract's one-optimizer ``train_step`` and ``test_step``
(:class:`tf_genai.models.base.GenerativeModel`) share :meth:`VAE.loss_terms`, which builds every
term from the pure functions of :mod:`tf_genai.losses`. Reported metrics are nats per image:
summed over pixels (reconstruction) or latent dimensions (KL), averaged over the batch.
``test_step`` (``val_*`` metrics, early stopping, ``evaluate``) always reports the true
negative ELBO, KL weight 1, whatever β or a warm-up has set for training: otherwise ``val_loss``
would compare a different objective from one warm-up epoch to the next.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tf_genai import distribute, losses, ranges
from tf_genai.capabilities import Capabilities
from tf_genai.data import binarize_once
from tf_genai.errors import ConfigError, DataError
from tf_genai.models.base import LatentModel, ServingSignature, adam
from tf_genai.models.vae.likelihood import importance_sampled_nll
from tf_genai.models.vae.networks import ARCHITECTURES, build_decoder, build_encoder
from tf_genai.registry import serializable

LIKELIHOODS = ("bernoulli", "gaussian", "logistic")
# "auto": Bernoulli (with dynamic binarisation) for one channel -- grey digits, the field's
# binarized-MNIST convention -- and the discretized logistic for colour, where binarising would
# throw the image away and a Gaussian density gives no likelihood in bits/dim.
AUTO = "auto"
# Floor on a learned Gaussian scale: without it the scale collapses towards 0 on pixels that
# are constant in the data (MNIST borders) and the likelihood diverges.
_MIN_LOG_SCALE = math.log(1e-3)
LOGISTIC_LEVELS = 256  # the discretized logistic's grid: 8-bit images
# K of the logistic mixture: on the CIFAR subset, 360 s each, K = 5 reached 6.73 bits/dim
# held-out against K = 1's 7.68 (benchmarks/results/cifar_bits_zen4_2026-12-03.md).
LOGISTIC_COMPONENTS = 5


# The zoo names and defaults of this class are rows of tf_genai/zoo.py.
@serializable
class VAE(LatentModel):
    """A variational autoencoder with a Bernoulli, Gaussian or discretized logistic decoder.

    Args:
        image_shape: (H, W, C) of the images.
        latent_dim: size of z.
        architecture: ``"conv"`` or ``"mlp"`` (see :mod:`tf_genai.models.vae.networks`).
        filters: conv channels, one stride-2 stage each (conv only).
        hidden_units: dense layers after the conv stages (encoder), mirrored in the decoder.
        num_classes: set for a conditional VAE; ``fit`` data must then yield (images, labels).
        likelihood: ``"bernoulli"`` (decoder logits, data in [0, 1]), ``"gaussian"`` (a
            density), ``"logistic"`` (a discretized logistic, or a mixture of
            ``logistic_components``, per subpixel over the 256 values of 8-bit images: a
            probability, so the NLL is in bits/dim; Salimans et al. 2017), or ``"auto"``:
            Bernoulli for one channel, logistic for more. ``get_config`` holds the choice made.
        gaussian_scale: the fixed Gaussian standard deviation, or None to learn one per channel.
        logistic_components: K of the logistic mixture (default 5, chosen by measurement; 1:
            one logistic per subpixel). The decoder outputs per subpixel a mean and a log-scale
            (K = 1), or K weights, means and log-scales.
        logistic_coupling: PixelCNN++'s full pixel model (eq. 3) instead of independent
            subpixels: one mixture per *pixel* (its channels share the component) and, within a
            component, channel c's mean shifted by the observed channels before it
            (``mu_c + sum_{j<c} tanh(a_cj) x_j``; ``(3 + C) K`` decoder outputs per subpixel).
        data_range: ``"unit"`` ([0, 1]) or ``"symmetric"`` ([-1, 1]; not Bernoulli).
        binarize: draw a fresh Bernoulli binarisation of every batch (dynamic binarisation);
            None: exactly when the likelihood is Bernoulli.
        beta: the KL weight of the β-VAE objective; held in the non-trainable ``kl_weight``
            variable so a warm-up callback can assign to it.
        num_importance_samples: k of the IWAE bound; 1 is the ordinary ELBO.
        seed: seed of the model's own random generator.
    """

    CAPABILITIES = Capabilities(latent=True, encodes=True, likelihood="bound")
    family = "vae"
    metric_names = ("loss", "reconstruction_loss", "kl_loss")
    render_signature = "decode"
    serving_default = "decode"
    tflite_signature = "decode"
    tflite_part = "decoder"
    nll_options = ("num_samples", "batch_size")

    def __init__(
        self,
        image_shape: Sequence[int] = (28, 28, 1),
        latent_dim: int = 32,
        architecture: str = "conv",
        filters: Sequence[int] = (16, 32),
        hidden_units: Sequence[int] = (256,),
        num_classes: int | None = None,
        likelihood: str = AUTO,
        gaussian_scale: float | None = None,
        logistic_components: int = LOGISTIC_COMPONENTS,
        logistic_coupling: bool = False,
        data_range: str = "unit",
        binarize: bool | None = None,
        beta: float = 1.0,
        num_importance_samples: int = 1,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if likelihood == AUTO:
            channels = int(tuple(image_shape)[-1]) if len(tuple(image_shape)) == 3 else 1
            likelihood = "bernoulli" if channels == 1 else "logistic"
        if likelihood not in LIKELIHOODS:
            raise ConfigError(f"VAE likelihood must be one of {LIKELIHOODS} or {AUTO!r}, got "
                              f"{likelihood!r}")
        if binarize is None:
            binarize = likelihood == "bernoulli"
        if int(logistic_components) < 1:
            raise ConfigError(f"VAE logistic_components must be >= 1, got {logistic_components!r}")
        ranges.check(data_range, "VAE data_range")
        if likelihood == "bernoulli" and data_range != "unit":
            raise ConfigError("a Bernoulli VAE needs data_range='unit' (pixels in [0, 1])")
        if binarize and likelihood != "bernoulli":
            raise ConfigError("binarize=True needs likelihood='bernoulli'")
        if int(num_importance_samples) < 1:
            raise ConfigError("VAE num_importance_samples must be >= 1")
        if beta < 0:
            raise ConfigError(f"VAE beta must be >= 0, got {beta!r}")
        if architecture not in ARCHITECTURES:
            raise ConfigError(
                f"unknown VAE architecture {architecture!r}; choose one of {ARCHITECTURES}"
            )
        self._init_contract(image_shape=image_shape, latent_dim=latent_dim,
                            num_classes=num_classes, seed=seed, data_range=data_range)
        self.architecture = architecture
        self.filters = tuple(int(f) for f in filters)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.likelihood = likelihood
        self.gaussian_scale = None if gaussian_scale is None else float(gaussian_scale)
        self.logistic_components = int(logistic_components)
        self.logistic_coupling = bool(logistic_coupling)
        self.binarize = bool(binarize)
        self.beta = float(beta)
        self.num_importance_samples = int(num_importance_samples)

        net = dict(architecture=architecture, num_classes=self.num_classes,
                   filters=self.filters, hidden_units=self.hidden_units)
        self.encoder = build_encoder(self.image_shape, self.latent_dim, **net)
        # Under mixed_bfloat16 the output layer of a Bernoulli decoder computes in bfloat16
        # (AMX and AVX512-BF16 run it on their bf16 units; float32 it ran on AVX-512) and its
        # logits are cast to float32. Rounding a logit l to 8 mantissa bits (< 0.2 % of |l|)
        # moves the pixel's log-likelihood by |x - sigmoid(l)| times that: least where the
        # decoder is confident and right. Measured (Zen 4, seed 0, against float32): held-out
        # loss +0.012 % on digits (20 epochs) and +0.030 % on MNIST (4 epochs), against
        # +0.008 % / +0.015 % with a float32 output layer. Logistic means and log-scales must
        # resolve a 1/255 bin and Gaussian means a learned scale, so they stay float32, and so
        # does everything under mixed_float16.
        bf16 = keras.mixed_precision.global_policy().compute_dtype == "bfloat16"
        self.decoder = build_decoder(
            self.image_shape, self.latent_dim, params_per_channel=self._params_per_channel(),
            output_dtype=None if bf16 and likelihood == "bernoulli" else "float32", **net)
        # The current KL weight: starts at beta; KL warm-up callbacks assign to it.
        self.kl_weight = keras.Variable(self.beta, trainable=False, dtype="float32",
                                        name="kl_weight")
        self.log_scale = None
        if likelihood == "gaussian" and self.gaussian_scale is None:
            self.log_scale = self.add_weight(
                shape=(self.image_shape[-1],), initializer=keras.initializers.Constant(
                    math.log(0.1)), trainable=True, name="log_scale")
        self._init_trackers()
        self.built = True

    # ------------------------------------------------------------------ config

    def get_config(self) -> dict:
        """The constructor arguments, exactly."""
        return {
            "image_shape": list(self.image_shape),
            "latent_dim": self.latent_dim,
            "architecture": self.architecture,
            "filters": list(self.filters),
            "hidden_units": list(self.hidden_units),
            "num_classes": self.num_classes,
            "likelihood": self.likelihood,
            "gaussian_scale": self.gaussian_scale,
            "logistic_components": self.logistic_components,
            "logistic_coupling": self.logistic_coupling,
            "data_range": self.data_range,
            "binarize": self.binarize,
            "beta": self.beta,
            "num_importance_samples": self.num_importance_samples,
            "seed": self.seed,
            "name": self.name,  # a reloaded model keeps its name (not "vae_3")
        }

    # ------------------------------------------------------------------ networks

    def posterior(self, x, labels=None, training: bool = False):
        """q(z | x): ``(batch, H, W, C)`` -> ``(mean, log_var)``, each ``(batch, latent)``."""
        mean, log_var = self.encoder(self._net_inputs(x, labels), training=training)
        return ops.cast(mean, "float32"), ops.cast(log_var, "float32")

    def encode(self, images, labels=None):
        """The family contract's images -> latents: the posterior mean ``(batch, latent)``."""
        return self.posterior(images, labels)[0]

    def decoder_logits(self, z, labels=None, training: bool = False):
        """The raw decoder output: ``(batch, H, W, C)`` Bernoulli logits or pre-squash Gaussian
        means; ``(batch, H, W, C, P)`` logistic parameters (:meth:`_logistic_params`)."""
        raw = ops.cast(self.decoder(self._net_inputs(z, labels), training=training), "float32")
        if self.likelihood == "logistic":
            raw = ops.reshape(raw, (-1, *self.image_shape, self._params_per_channel()))
        return raw

    def _params_per_channel(self) -> int:
        """Decoder outputs per subpixel: 1, or the logistic's mean and log-scale (K = 1), or
        K mixture logits, means and log-scales."""
        if self.likelihood != "logistic":
            return 1
        if self.logistic_coupling:  # weights, means, log-scales and C coupling coefficients
            return (3 + self.image_shape[-1]) * self.logistic_components
        return 2 if self.logistic_components == 1 else 3 * self.logistic_components

    def _squash(self, raw):
        """Unbounded values -> ``data_range`` (tanh or sigmoid)."""
        if self.data_range == "symmetric":
            return ops.tanh(raw)
        return ops.sigmoid(raw)

    def _logistic_params(self, raw):
        """``(batch, H, W, C, P)`` -> ``(means, log_scales, logits)``, each ``(batch, H, W, C[,
        K])`` (logits None for K = 1); means squashed into the data range, log-scales floored."""
        k = self.logistic_components
        if k == 1:
            logits, means, log_scales = None, raw[..., 0], raw[..., 1]
        else:
            logits, means, log_scales = raw[..., :k], raw[..., k:2 * k], raw[..., 2 * k:]
        return self._squash(means), ops.maximum(log_scales, _MIN_LOG_SCALE), logits

    def _coupled_params(self, raw):
        """``(batch, H, W, C, (3 + C) K)`` -> ``(means, log_scales, coeffs, pixel_logits)``:
        ``(batch, H, W, C, K)`` twice, ``(batch, H, W, C, C, K)`` coupling coefficients in
        (-1, 1), ``(batch, H, W, K)`` mixture logits per pixel (the channels' slots summed)."""
        k, c = self.logistic_components, self.image_shape[-1]
        logits, means, log_scales = raw[..., :k], raw[..., k:2 * k], raw[..., 2 * k:3 * k]
        coeffs = ops.tanh(ops.reshape(raw[..., 3 * k:], (-1, *self.image_shape, c, k)))
        return (self._squash(means), ops.maximum(log_scales, _MIN_LOG_SCALE), coeffs,
                ops.sum(logits, axis=-2))

    def _coupled_mean(self, raw):
        """The mixture mean under channel coupling: component means in channel order, each
        channel's shifted by the expected values of the channels before it, then weighted."""
        k = self.logistic_components
        means = self._squash(raw[..., k:2 * k])  # (batch, H, W, C, K)
        logits = ops.sum(raw[..., :k], axis=-2)  # (batch, H, W, K)
        low, high = ranges.VALUE_RANGES[self.data_range]
        expected = []  # per channel (batch, H, W, K): E[x_c | component]
        for ch in range(self.image_shape[-1]):
            e = means[..., ch, :]
            for j in range(ch):
                # coeffs[..., ch, j, :] of _coupled_params, sliced from the 5-D output so the
                # graph stays within TFLite's 5-D limit (its StridedSlice refuses 6-D)
                a = ops.tanh(raw[..., ch, (3 + j) * k:(4 + j) * k])
                e = e + a * expected[j]
            expected.append(ops.clip(e, low, high))
        weights = ops.softmax(logits, axis=-1)[..., None, :]  # (batch, H, W, 1, K)
        return ops.sum(weights * ops.stack(expected, axis=-2), axis=-1)  # (batch, H, W, C)

    def _mean_from_raw(self, raw):
        """Decoder output -> image means in ``data_range`` (a mixture's mean for logistic)."""
        if self.likelihood == "logistic" and self.logistic_coupling:
            return self._coupled_mean(raw)
        if self.likelihood == "logistic":
            means, _, logits = self._logistic_params(raw)
            if logits is None:
                return means
            return ops.sum(ops.softmax(logits, axis=-1) * means, axis=-1)
        return self._squash(raw)

    def decode(self, z, labels=None):
        """p(x | z) means ``(batch, H, W, C)`` in the data range."""
        return self._mean_from_raw(self.decoder_logits(z, labels))

    def render(self, z, labels=None):
        """The family contract's latent -> image map: :meth:`decode`."""
        return self.decode(z, labels)

    def _reparameterize(self, mean, log_var, num: int = 1, seed=None):
        """``num`` draws z ~ q(z | x): ``(num, batch, latent)``."""
        shape = (num,) + tuple(ops.shape(mean))  # dynamic batch size inside tf.function
        # Drawn for the global batch and sliced per replica, so N replicas draw what one
        # device draws (tf_genai.distribute.random_for_batch).
        eps = distribute.random_for_batch(
            keras.random.normal, shape, batch_axis=1,
            seed=self.seed_generator if seed is None else seed)  # (num, batch, latent)
        return mean[None] + ops.exp(0.5 * log_var)[None] * eps

    def reconstruct(self, x, labels=None):
        """Decode one posterior draw of each image: ``(batch, H, W, C)`` in the data range."""
        mean, log_var = self.posterior(x, labels)
        z = self._reparameterize(mean, log_var)[0]  # (batch, latent)
        return self.decode(z, labels)

    def call_input_signature(self) -> list:
        """``call`` takes images (``[images, labels]`` if conditional)."""
        images = self._image_spec()
        return [images if self.num_classes is None else [images, tf.TensorSpec(
            (None,), tf.int32, name="labels")]]

    def call(self, inputs, training: bool = False):
        """Reconstruction means of ``images`` or ``[images, labels]``."""
        if isinstance(inputs, (list, tuple)):
            x, labels = inputs
        else:
            x, labels = inputs, None
        return self.reconstruct(x, labels)

    # ------------------------------------------------------------------ likelihood

    def log_likelihood(self, x, raw):
        """log p(x | z) summed over pixels: x ``(n, H, W, C)``, raw decoder output -> ``(n,)``."""
        x = ops.cast(x, "float32")
        if self.likelihood == "bernoulli":
            return losses.bernoulli_log_likelihood(x, raw)
        if self.likelihood == "logistic" and self.logistic_coupling:
            low, high = ranges.VALUE_RANGES[self.data_range]
            means, log_scales, coeffs, logits = self._coupled_params(raw)
            return losses.discretized_logistic_mixture_coupled_log_likelihood(
                x, means, log_scales, coeffs, logits, low=low, high=high, levels=LOGISTIC_LEVELS)
        if self.likelihood == "logistic":
            low, high = ranges.VALUE_RANGES[self.data_range]
            means, log_scales, logits = self._logistic_params(raw)
            return losses.discretized_logistic_log_likelihood(
                x, means, log_scales, logits, low=low, high=high, levels=LOGISTIC_LEVELS)
        if self.log_scale is None:
            log_scale = ops.convert_to_tensor(math.log(self.gaussian_scale), "float32")
        else:
            log_scale = ops.maximum(ops.cast(self.log_scale, "float32"), _MIN_LOG_SCALE)
        return losses.gaussian_log_likelihood(x, self._mean_from_raw(raw), log_scale)

    def log_weights(self, x, labels=None, num_samples: int = 1, seed=None, kl_weight=1.0,
                    training: bool = False):
        """Importance log-weights ``log p(x|z) + w·(log p(z) - log q(z|x))``, z ~ q(z|x).

        Returns ``(log_w, log_px, mean, log_var)`` with ``log_w``, ``log_px`` of shape
        ``(num_samples, batch)``. ``w = kl_weight`` (1 gives the true importance weights).
        """
        x = ops.cast(x, "float32")
        labels = self.check_labels(labels)  # None for an unconditional VAE
        mean, log_var = self.posterior(x, labels, training=training)  # (batch, latent) each
        z = self._reparameterize(mean, log_var, num_samples, seed)  # (k, batch, latent)
        batch = ops.shape(x)[0]
        flat_z = ops.reshape(z, (-1, self.latent_dim))  # (k * batch, latent)
        flat_labels = None
        if labels is not None:
            flat_labels = ops.tile(ops.reshape(labels, (1, -1)), (num_samples, 1))
            flat_labels = ops.reshape(flat_labels, (-1,))  # (k * batch,)
        raw = self.decoder_logits(flat_z, flat_labels, training=training)  # (k * batch, H, W, C[, P])
        flat_x = ops.reshape(ops.tile(x[None], (num_samples, 1, 1, 1, 1)),
                             (-1,) + self.image_shape)  # (k * batch, H, W, C)
        log_px = ops.reshape(self.log_likelihood(flat_x, raw), (num_samples, batch))  # (k, b)
        log_prior_ratio = losses.standard_normal_log_density(z) - losses.gaussian_log_density(
            z, mean[None], log_var[None])  # (k, batch)
        return log_px + kl_weight * log_prior_ratio, log_px, mean, log_var

    # ------------------------------------------------------------------ training

    def _binarized(self, x):
        """A fresh Bernoulli draw of every pixel (dynamic binarisation); binary data unchanged."""
        u = distribute.random_for_batch(keras.random.uniform, ops.shape(x),
                                        seed=self.seed_generator)  # global draw, sliced
        return ops.cast(u < ops.cast(x, "float32"), "float32")

    def loss_terms(self, images, labels, training: bool) -> dict:
        """The per-image batch-mean ``loss``, ``reconstruction_loss`` and ``kl_loss`` (nats).

        Training minimises the β-weighted objective at the current ``kl_weight``; evaluation
        (``training=False``) reports the true negative ELBO (KL weight 1), the quantity that
        ``val_loss`` and early stopping must compare across epochs.
        """
        x = images
        if self.binarize:
            x = self._binarized(x)
        kl_weight = ops.cast(self.kl_weight, "float32") if training else 1.0
        k = self.num_importance_samples
        log_w, log_px, mean, log_var = self.log_weights(x, labels, k, kl_weight=kl_weight,
                                                        training=training)
        reconstruction = -ops.mean(log_px)  # mean over draws and batch of -log p(x|z)
        kl = ops.mean(losses.gaussian_kl(mean, log_var))
        if k == 1:
            # The ELBO with the closed-form KL has lower variance than the sampled log-ratio.
            loss = reconstruction + kl_weight * kl
        else:
            loss = -ops.mean(losses.log_mean_exp(log_w, axis=0))  # IWAE bound, Burda et al. eq. 8
        return {"loss": loss, "reconstruction_loss": reconstruction, "kl_loss": kl}

    def default_optimizers(self, learning_rate=None, weight_decay=0.0) -> dict:
        """Adam(1e-3) (Kingma & Welling 2014 used Adagrad; Adam is today's default);
        AdamW with ``weight_decay``."""
        return {"optimizer": adam(1e-3 if learning_rate is None else learning_rate,
                                  weight_decay)}

    # ------------------------------------------------------------------ evaluation, serving

    def nll(self, images, labels=None, *, seed: int = 0, num_samples: int = 1000,
            batch_size: int = 100) -> dict:
        """The family contract's likelihood: the importance-weighted bound on ``-log p(x)``
        with ``num_samples`` = k (Burda et al. 2016; k = 1000 is the field's standard), and the
        k-sample ELBO, nats per image (:func:`tf_genai.models.vae.likelihood.importance_sampled_nll`).
        ``images`` are uint8 or [0, 1] (:meth:`likelihood_inputs` prepares them: a Bernoulli
        decoder scores one seeded binarisation)."""
        scored = importance_sampled_nll(self, self.likelihood_inputs(images, seed), labels,
                                        num_samples=num_samples, batch_size=batch_size,
                                        seed=seed)
        return {"nll": scored["nll_per_image"], "elbo": scored["elbo_per_image"]}

    @property
    def likelihood_levels(self) -> int | None:
        """256 for the discretized logistic (8-bit images), 2 for Bernoulli (binary pixels),
        None for the Gaussian (a density, whose NLL in nats is not a bits/dim figure)."""
        return {"logistic": LOGISTIC_LEVELS, "bernoulli": 2}.get(self.likelihood)

    def likelihood_inputs(self, images, seed: int = 0):
        """uint8 or [0, 1] images -> what the likelihood scores: a fixed binarisation (seeded)
        for a Bernoulli decoder, else the images in ``data_range``."""
        if self.likelihood == "bernoulli":
            return np.asarray(binarize_once(ranges.uint8_to_unit(images), seed=seed), "float32")
        return ranges.for_model(images, self.data_range)

    def check_likelihood_data(self, images) -> None:
        """DataError unless ``images`` (float, model range) are data this likelihood scores.

        A Bernoulli likelihood is a probability only for binary pixels: grey levels must be
        binarised first (``tf_genai.data.binarize_once``). A [-1, 1] model given [0, 1] data
        (no negative value at all) would score the wrong images: map it with ``2x - 1``.
        """
        x = np.asarray(images)
        if self.likelihood == "bernoulli":
            grey = np.count_nonzero((x != 0.0) & (x != 1.0))
            if grey:
                raise DataError(
                    f"{self.name}: a Bernoulli VAE scores binary images only, but {grey} "
                    "pixels are grey levels; binarize them first "
                    "(tf_genai.data.binarize_once(images, seed))")
        if self.likelihood == "logistic" and x.size:
            low, high = ranges.VALUE_RANGES[self.data_range]
            steps = (x - low) * ((LOGISTIC_LEVELS - 1) / (high - low))
            off = np.count_nonzero(np.abs(steps - np.round(steps)) > 1e-3)
            if off:
                raise DataError(
                    f"{self.name}: a discretized logistic VAE scores 8-bit images, but {off} "
                    f"values are off the {LOGISTIC_LEVELS}-level grid of {self.data_range!r} "
                    "data; pass uint8 images (or k/255 values)")
        if self.data_range == "symmetric" and x.size and x.min() >= 0.0:
            raise DataError(
                f"{self.name} models [-1, 1] images, but these have no negative value: they "
                "look like [0, 1] data; map them with x * 2 - 1")

    def serving_signatures(self) -> dict:
        """``decode(z)``, ``sample(num_samples, seed)``, ``encode(images)`` -> ``{mean,
        log_var}`` (the posterior) and ``reconstruct(images)`` -> ``{reconstruction}`` (the
        decoded posterior mean: deterministic, unlike :meth:`reconstruct`, which decodes one
        posterior draw)."""
        def encode(images, labels=None):
            mean, log_var = self.posterior(images, labels)
            return {"mean": tf.cast(mean, tf.float32), "log_var": tf.cast(log_var, tf.float32)}

        def reconstruct(images, labels=None):
            mean, _ = self.posterior(images, labels)  # (batch, latent)
            return {"reconstruction": tf.cast(self.decode(mean, labels), tf.float32)}

        moments = ("float32", [None, self.latent_dim])
        images = {"images": self._image_spec()}
        return {
            **super().serving_signatures(),
            **self._with_labels({
                "encode": ServingSignature(images, encode,
                                           {"mean": moments, "log_var": moments}),
                "reconstruct": ServingSignature(
                    images, reconstruct,
                    {"reconstruction": ("float32", [None, *self.image_shape])}),
            }),
        }

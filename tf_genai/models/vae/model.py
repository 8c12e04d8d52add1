"""The VAE model: β-VAE, conditional VAE and IWAE in one ``keras.Model`` with its own train_step.

Kingma & Welling 2014, "Auto-Encoding Variational Bayes" (arXiv:1312.6114); β-VAE: Higgins et al.
2017; conditional VAE: Sohn, Lee & Yan 2015, "Learning Structured Output Representation using
Deep Conditional Generative Models"; IWAE: Burda, Grosse & Salakhutdinov 2016, "Importance
Weighted Autoencoders" (arXiv:1509.00519).

``train_step`` and ``test_step`` share :meth:`VAE._loss_terms`, which builds every term from the
pure functions of :mod:`tf_genai.losses`. Reported metrics are nats per image: summed over
pixels (reconstruction) or latent dimensions (KL), averaged over the batch.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import tensorflow as tf
from keras import ops
from keras.src.losses.loss import scale_loss_for_distribution

from tf_genai import distribute, losses
from tf_genai.errors import ConfigError
from tf_genai.models.vae.networks import ARCHITECTURES, build_decoder, build_encoder
from tf_genai.registry import register

LIKELIHOODS = ("bernoulli", "gaussian")
DATA_RANGES = ("unit", "symmetric")
# Floor on a learned Gaussian scale: without it the scale collapses towards 0 on pixels that
# are constant in the data (MNIST borders) and the likelihood diverges.
_MIN_LOG_SCALE = math.log(1e-3)


@register("mlp_vae", description="MLP VAE (Kingma & Welling 2014), 512-256 encoder, Bernoulli",
          architecture="mlp", hidden_units=(512, 256))
@register("cvae", description="Conditional convolutional VAE (Sohn et al. 2015)", num_classes=10)
@register("iwae", description="Convolutional IWAE, k=5 importance samples (Burda et al. 2016)",
          num_importance_samples=5)
@register("vae", description="Convolutional VAE (Kingma & Welling 2014), Bernoulli decoder")
class VAE(keras.Model):
    """A variational autoencoder with a Bernoulli or Gaussian decoder.

    Args:
        image_shape: (H, W, C) of the images.
        latent_dim: size of z.
        architecture: ``"conv"`` or ``"mlp"`` (see :mod:`tf_genai.models.vae.networks`).
        filters: conv channels, one stride-2 stage each (conv only).
        hidden_units: dense layers after the conv stages (encoder), mirrored in the decoder.
        num_classes: set for a conditional VAE; ``fit`` data must then yield (images, labels).
        likelihood: ``"bernoulli"`` (decoder logits, data in [0, 1]) or ``"gaussian"``.
        gaussian_scale: the fixed Gaussian standard deviation, or None to learn one per channel.
        data_range: ``"unit"`` ([0, 1]) or ``"symmetric"`` ([-1, 1], Gaussian only).
        binarize: draw a fresh Bernoulli binarisation of every batch (dynamic binarisation).
        beta: the KL weight of the β-VAE objective; held in the non-trainable ``kl_weight``
            variable so a warm-up callback can assign to it.
        num_importance_samples: k of the IWAE bound; 1 is the ordinary ELBO.
        seed: seed of the model's own random generator.
    """

    family = "vae"

    def __init__(
        self,
        image_shape: Sequence[int] = (28, 28, 1),
        latent_dim: int = 32,
        architecture: str = "conv",
        filters: Sequence[int] = (16, 32),
        hidden_units: Sequence[int] = (256,),
        num_classes: int | None = None,
        likelihood: str = "bernoulli",
        gaussian_scale: float | None = None,
        data_range: str = "unit",
        binarize: bool = True,
        beta: float = 1.0,
        num_importance_samples: int = 1,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if likelihood not in LIKELIHOODS:
            raise ConfigError(f"VAE likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if data_range not in DATA_RANGES:
            raise ConfigError(f"VAE data_range must be one of {DATA_RANGES}, got {data_range!r}")
        if likelihood == "bernoulli" and data_range != "unit":
            raise ConfigError("a Bernoulli VAE needs data_range='unit' (pixels in [0, 1])")
        if binarize and likelihood != "bernoulli":
            raise ConfigError("binarize=True needs likelihood='bernoulli'")
        if int(latent_dim) < 1 or int(num_importance_samples) < 1:
            raise ConfigError("VAE latent_dim and num_importance_samples must be >= 1")
        if num_classes is not None and int(num_classes) < 2:
            raise ConfigError(f"VAE num_classes must be >= 2 or None, got {num_classes!r}")
        if beta < 0:
            raise ConfigError(f"VAE beta must be >= 0, got {beta!r}")
        if architecture not in ARCHITECTURES:
            raise ConfigError(
                f"unknown VAE architecture {architecture!r}; choose one of {ARCHITECTURES}"
            )
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_dim = int(latent_dim)
        self.architecture = architecture
        self.filters = tuple(int(f) for f in filters)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.likelihood = likelihood
        self.gaussian_scale = None if gaussian_scale is None else float(gaussian_scale)
        self.data_range = data_range
        self.binarize = bool(binarize)
        self.beta = float(beta)
        self.num_importance_samples = int(num_importance_samples)
        self.seed = int(seed)

        net = dict(architecture=architecture, num_classes=self.num_classes,
                   filters=self.filters, hidden_units=self.hidden_units)
        self.encoder = build_encoder(self.image_shape, self.latent_dim, **net)
        self.decoder = build_decoder(self.image_shape, self.latent_dim, **net)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="vae_seed")
        # The current KL weight: starts at beta; KL warm-up callbacks assign to it.
        self.kl_weight = keras.Variable(self.beta, trainable=False, dtype="float32",
                                        name="kl_weight")
        self.log_scale = None
        if likelihood == "gaussian" and self.gaussian_scale is None:
            self.log_scale = self.add_weight(
                shape=(self.image_shape[-1],), initializer=keras.initializers.Constant(
                    math.log(0.1)), trainable=True, name="log_scale")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
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
            "data_range": self.data_range,
            "binarize": self.binarize,
            "beta": self.beta,
            "num_importance_samples": self.num_importance_samples,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict) -> "VAE":
        return cls(**config)

    # ------------------------------------------------------------------ networks

    def _net_inputs(self, x, labels):
        """``x`` or ``[x, labels]`` for a sub-network; ConfigError when labels are missing."""
        if self.num_classes is None:
            return x
        if labels is None:
            raise ConfigError(
                f"this VAE is conditional (num_classes={self.num_classes}): pass labels, "
                "i.e. data that yields (images, labels)"
            )
        # Keras refuses a list that mixes NumPy arrays and tensors: convert both.
        return [ops.convert_to_tensor(x), ops.cast(ops.reshape(labels, (-1,)), "int32")]

    def encode(self, x, labels=None, training: bool = False):
        """q(z | x): ``(batch, H, W, C)`` -> ``(mean, log_var)``, each ``(batch, latent)``."""
        mean, log_var = self.encoder(self._net_inputs(x, labels), training=training)
        return ops.cast(mean, "float32"), ops.cast(log_var, "float32")

    def decoder_logits(self, z, labels=None, training: bool = False):
        """The raw decoder output ``(batch, H, W, C)`` (Bernoulli logits / pre-squash means)."""
        return ops.cast(self.decoder(self._net_inputs(z, labels), training=training), "float32")

    def _mean_from_raw(self, raw):
        """Decoder output -> image means in ``data_range``."""
        if self.data_range == "symmetric":
            return ops.tanh(raw)
        return ops.sigmoid(raw)

    def decode(self, z, labels=None):
        """p(x | z) means ``(batch, H, W, C)`` in the data range."""
        return self._mean_from_raw(self.decoder_logits(z, labels))

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
        mean, log_var = self.encode(x, labels)
        z = self._reparameterize(mean, log_var)[0]  # (batch, latent)
        return self.decode(z, labels)

    def call(self, inputs, training: bool = False):
        """Reconstruction means of ``images`` or ``[images, labels]``."""
        if isinstance(inputs, (list, tuple)):
            x, labels = inputs
        else:
            x, labels = inputs, None
        return self.reconstruct(x, labels)

    def sample(self, num_samples: int, seed: int | None = None, labels=None):
        """Decode ``num_samples`` draws z ~ N(0, I): ``(n, H, W, C)`` means in the data range.

        A conditional model without ``labels`` cycles through the classes 0, 1, 2, ...
        """
        generator = self.seed_generator if seed is None else keras.random.SeedGenerator(seed)
        z = keras.random.normal((int(num_samples), self.latent_dim), seed=generator)
        if self.num_classes is not None and labels is None:
            labels = ops.arange(int(num_samples), dtype="int32") % self.num_classes
        return self.decode(z, labels)

    # ------------------------------------------------------------------ likelihood

    def log_likelihood(self, x, raw):
        """log p(x | z) summed over pixels: x ``(n, H, W, C)``, raw decoder output -> ``(n,)``."""
        x = ops.cast(x, "float32")
        if self.likelihood == "bernoulli":
            return losses.bernoulli_log_likelihood(x, raw)
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
        mean, log_var = self.encode(x, labels, training=training)  # (batch, latent) each
        z = self._reparameterize(mean, log_var, num_samples, seed)  # (k, batch, latent)
        batch = ops.shape(x)[0]
        flat_z = ops.reshape(z, (-1, self.latent_dim))  # (k * batch, latent)
        flat_labels = None
        if labels is not None and self.num_classes is not None:
            flat_labels = ops.tile(ops.reshape(labels, (1, -1)), (num_samples, 1))
            flat_labels = ops.reshape(flat_labels, (-1,))  # (k * batch,)
        raw = self.decoder_logits(flat_z, flat_labels, training=training)  # (k * batch, H, W, C)
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

    def _loss_terms(self, data, training: bool) -> dict:
        """The per-image batch-mean ``loss``, ``reconstruction_loss`` and ``kl_loss`` (nats)."""
        x, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if self.num_classes is None:
            labels = None
        elif labels is None:
            self._net_inputs(x, None)  # raises the ConfigError that names the problem
        x = ops.cast(x, "float32")
        if self.binarize:
            x = self._binarized(x)
        kl_weight = ops.cast(self.kl_weight, "float32")
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

    def compile(self, optimizer="adam", **kwargs):
        """``keras.Model.compile``, then build the optimizer's slots at once.

        The networks exist from ``__init__``; building the optimizer here (not inside the first
        traced ``train_step``) lets ``fit`` be called again after a failed first call.
        """
        super().compile(optimizer=optimizer, **kwargs)
        self.optimizer.build(self.trainable_variables)

    def compile_from_config(self, config: dict) -> None:
        """Re-compile from a saved ``compile_config`` (``.keras`` loading calls this)."""
        self.compile(**keras.saving.deserialize_keras_object(config))

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def _update_metrics(self, terms: dict) -> dict:
        self.loss_tracker.update_state(terms["loss"])
        self.reconstruction_tracker.update_state(terms["reconstruction_loss"])
        self.kl_tracker.update_state(terms["kl_loss"])
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            terms = self._loss_terms(data, training=True)
            # Keras 3 optimizers sum gradients over replicas: divide the per-replica mean.
            loss = scale_loss_for_distribution(terms["loss"])
            # A LossScaleOptimizer multiplies here and unscales in apply (mixed precision).
            loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._update_metrics(terms)

    def test_step(self, data):
        return self._update_metrics(self._loss_terms(data, training=False))

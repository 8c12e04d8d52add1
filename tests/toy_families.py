"""Two toy families, defined outside the package in a few dozen lines each, that prove the
family contract (tests/test_family_contract.py runs them through the package).

``ToyAutoencoder`` has a Gaussian latent (a :class:`~tf_genai.models.base.LatentModel`: dense
encoder, noisy code, dense decoder, squared error). ``ToyPixels`` has no latent at all and an
exact likelihood: every subpixel an independent categorical over its 256 values (a learned
histogram per subpixel), so ``-log p(x)`` is a sum of table look-ups and sampling is one
categorical draw per subpixel. Nothing in ``tf_genai/`` knows either class.

A module of its own (not the test file) so that a fresh process, which reloads a ``.keras``
file, can import it: the classes register with Keras on import (``registry.serializable``);
:func:`register` / :func:`unregister` add and remove their zoo names.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tf_genai import distribute, ranges, registry
from tf_genai.capabilities import Capabilities
from tf_genai.models.base import GenerativeModel, LatentModel, adam

TOY_LATENT, TOY_PIXELS = "toy_autoencoder", "toy_pixels"
LEVELS = 256


@registry.serializable
class ToyAutoencoder(LatentModel):
    """A toy family with a Gaussian latent: a dense autoencoder with a noisy code."""

    CAPABILITIES = Capabilities(latent=True, encodes=True)
    family = "toy"
    render_signature = serving_default = tflite_signature = "decode"
    tflite_part = "decoder"

    def __init__(self, image_shape=(8, 8, 1), latent_dim=4, seed=0, **kwargs):
        super().__init__(**kwargs)
        self._init_contract(image_shape=image_shape, latent_dim=latent_dim, num_classes=None,
                            seed=seed)
        pixels = int(np.prod(self.image_shape))
        self.encoder = keras.Sequential([
            keras.Input(self.image_shape), keras.layers.Flatten(),
            keras.layers.Dense(self.latent_dim, name="toy_code",
                               kernel_initializer=keras.initializers.GlorotUniform(seed))],
            name="toy_encoder")
        self.decoder = keras.Sequential([
            keras.Input((self.latent_dim,)),
            keras.layers.Dense(pixels, activation="sigmoid", name="toy_pixels",
                               kernel_initializer=keras.initializers.GlorotUniform(seed + 1)),
            keras.layers.Reshape(self.image_shape)], name="toy_decoder")
        self._init_trackers()
        self.built = True

    def get_config(self):
        return {"image_shape": list(self.image_shape), "latent_dim": self.latent_dim,
                "seed": self.seed, "name": self.name}

    def render(self, z, labels=None):
        return ops.cast(self.decoder(z), "float32")

    def encode(self, images, labels=None):
        return ops.cast(self.encoder(images), "float32")

    def loss_terms(self, images, labels, training):
        code = self.encoder(images, training=training)  # (batch, latent)
        noise = distribute.random_for_batch(keras.random.normal, ops.shape(code),
                                            seed=self.seed_generator)
        # Mixed-precision safe, as a family must be: training_options() picks mixed_bfloat16 on
        # CPUs with bf16 units, so the code is bf16 there; the loss is taken in float32.
        recon = self.decoder(code + 0.1 * ops.cast(noise, code.dtype), training=training)
        error = ops.square(ops.cast(images, "float32") - ops.cast(recon, "float32"))
        return {"loss": ops.mean(ops.sum(error, axis=(1, 2, 3)))}


@registry.serializable
class ToyPixels(GenerativeModel):
    """A toy family with no latent and an exact likelihood: independent categorical subpixels."""

    CAPABILITIES = Capabilities(likelihood="exact")
    family = "toy_exact"

    def __init__(self, image_shape=(8, 8, 1), seed=0, **kwargs):
        super().__init__(**kwargs)
        self._init_contract(image_shape=image_shape, num_classes=None, seed=seed)
        # (subpixels, 256) logits, uniform at first: log p(x) = -H W C log 256
        self.logits = self.add_weight(shape=(int(np.prod(self.image_shape)), LEVELS),
                                      initializer="zeros", name="logits")
        self._init_trackers()
        self.built = True

    def get_config(self):
        return {"image_shape": list(self.image_shape), "seed": self.seed, "name": self.name}

    @property
    def likelihood_levels(self):
        return LEVELS

    def default_optimizers(self, learning_rate=None, weight_decay=0.0):
        return {"optimizer": adam(0.05 if learning_rate is None else learning_rate)}

    def _nll(self, images):
        """-log p(x) per image, nats ``(batch,)``, of [0, 1] images on the 256-level grid."""
        levels = ops.cast(ops.round(ops.cast(images, "float32") * (LEVELS - 1)), "int32")
        log_p = ops.log_softmax(ops.cast(self.logits, "float32"), axis=-1)  # (P, 256)
        flat = ops.reshape(levels, (ops.shape(levels)[0], -1))  # (batch, P)
        picked = ops.take_along_axis(log_p[None], flat[..., None], axis=-1)  # (batch, P, 1)
        return -ops.sum(picked, axis=(1, 2))

    def loss_terms(self, images, labels, training):
        return {"loss": ops.mean(self._nll(images))}

    def nll(self, images, labels=None, *, seed=0, **options):
        return {"nll": np.asarray(self._nll(ranges.uint8_to_unit(images)), "float64")}

    def draw(self, num_samples, seed, labels, **options):
        logits = ops.cast(self.logits, "float32")  # (P, 256)
        if seed is None:  # the model's own stream
            seed = tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1)
        else:  # a fixed seed, as a tensor in the export's sample signature
            seed = tf.stack([tf.math.floormod(tf.cast(seed, tf.int64), tf.int32.max - 1), 0])
        draws = tf.random.stateless_categorical(logits, num_samples, seed=tf.cast(seed, tf.int32))
        levels = tf.transpose(draws)  # (n, P)
        unit = tf.cast(levels, tf.float32) / (LEVELS - 1)
        return tf.reshape(unit, (-1, *self.image_shape))


def register() -> None:
    """Add the toy families to the zoo."""
    registry.register(TOY_LATENT, description="a toy family with a Gaussian latent")(
        ToyAutoencoder)
    registry.register(TOY_PIXELS, description="a toy family with an exact likelihood")(ToyPixels)


def unregister() -> None:
    registry.unregister(TOY_LATENT)
    registry.unregister(TOY_PIXELS)

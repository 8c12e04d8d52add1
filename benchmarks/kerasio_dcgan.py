"""The keras-io DCGAN pattern ("DCGAN to generate face images", ``dcgan_overriding_train_step``),
as the baseline row of ``benchmarks/quality.py``.

The example's networks and step, sized for the data's images instead of 64x64 faces: the
discriminator is three 4x4 stride-2 convolutions (64, 128, 128) with LeakyReLU 0.2, a 0.2
dropout and one sigmoid unit; the generator a dense layer to (H/8, W/8, 128), three 4x4 stride-2
transposed convolutions (128, 256, 512) with LeakyReLU 0.2 and a 5x5 sigmoid convolution to C
channels (the example's output is [0, 1]). Latent 128, Adam 1e-4 for both, binary
cross-entropy, D on fakes and reals in one batch with 0.05-scaled noisy labels, then G on fresh
noise -- all as the example does it. It needs H and W divisible by 8.

Only what ``quality.train`` / ``quality.generate`` use: ``data_range``, ``binarize``,
``num_classes``, ``nll_key``, ``family``, ``training_optimizers()`` and ``sample()``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

NAME = "kerasio_dcgan"
LATENT_DIM = 128


def networks(image_shape, seed: int):
    h, w, c = image_shape
    if h % 8 or w % 8:
        raise SystemExit(f"{NAME}: image sides must be multiples of 8, got {image_shape}")
    init = lambda k: keras.initializers.GlorotUniform(seed=seed + k)  # noqa: E731
    disc = keras.Sequential([
        keras.Input(shape=image_shape),
        layers.Conv2D(64, 4, strides=2, padding="same", kernel_initializer=init(0)),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(128, 4, strides=2, padding="same", kernel_initializer=init(1)),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(128, 4, strides=2, padding="same", kernel_initializer=init(2)),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Flatten(),
        layers.Dropout(0.2, seed=seed),
        layers.Dense(1, activation="sigmoid", kernel_initializer=init(3)),
    ], name="discriminator")
    gen = keras.Sequential([
        keras.Input(shape=(LATENT_DIM,)),
        layers.Dense((h // 8) * (w // 8) * 128, kernel_initializer=init(4)),
        layers.Reshape((h // 8, w // 8, 128)),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same", kernel_initializer=init(5)),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2DTranspose(256, 4, strides=2, padding="same", kernel_initializer=init(6)),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2DTranspose(512, 4, strides=2, padding="same", kernel_initializer=init(7)),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(c, 5, padding="same", activation="sigmoid", kernel_initializer=init(8)),
    ], name="generator")
    return disc, gen


class KerasIODCGAN(keras.Model):
    """The example's ``GAN`` class (its ``train_step``), plus ``sample`` for scoring."""

    family = "gan (keras-io)"
    data_range = "unit"
    binarize = False
    num_classes = None
    nll_key = None

    def __init__(self, image_shape, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.discriminator, self.generator = networks(tuple(image_shape), seed)
        self.seed_gen = tf.random.Generator.from_seed(seed)

    def compile(self, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = keras.optimizers.Adam(1e-4)
        self.g_optimizer = keras.optimizers.Adam(1e-4)
        self.loss_fn = keras.losses.BinaryCrossentropy()

    def training_optimizers(self):
        return [("d", self.d_optimizer, self.discriminator.trainable_variables),
                ("g", self.g_optimizer, self.generator.trainable_variables)]

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch = tf.shape(real_images)[0]
        z = self.seed_gen.normal((batch, LATENT_DIM))
        fake = self.generator(z)
        combined = tf.concat([fake, real_images], axis=0)
        labels = tf.concat([tf.ones((batch, 1)), tf.zeros((batch, 1))], axis=0)
        labels += 0.05 * self.seed_gen.uniform(tf.shape(labels))
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        z = self.seed_gen.normal((batch, LATENT_DIM))
        misleading = tf.zeros((batch, 1))
        with tf.GradientTape() as tape:
            g_loss = self.loss_fn(misleading, self.discriminator(self.generator(z)))
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        return {"d_loss": d_loss, "g_loss": g_loss}

    def sample(self, n: int, seed: int = 0, labels=None, **kwargs):
        z = np.random.default_rng(seed).standard_normal((n, LATENT_DIM)).astype("float32")
        return np.asarray(self.generator.predict(z, batch_size=256, verbose=0))


def build(image_shape, seed: int = 0) -> KerasIODCGAN:
    model = KerasIODCGAN(image_shape, seed=seed, name=NAME)
    model.compile()
    return model

"""Generator and discriminator networks of the GAN family, as functional ``keras.Model``s.

Two architectures, both building for any image shape ``(H, W, C)``:

* ``"mlp"`` — the fully connected GAN of Goodfellow et al. 2014 ("Generative Adversarial
  Nets", arXiv:1406.2661) in the layout of the common Keras tutorials, corrected: G is
  100-256-512-1024-H·W·C with LeakyReLU(0.2) and a tanh output; D is flatten-1024-512-256-1
  with LeakyReLU(0.2) and Dropout(0.3) and outputs a **logit** (no sigmoid: the losses work on
  logits).
* ``"conv"`` — DCGAN, Radford, Metz & Chintala 2016 ("Unsupervised Representation Learning
  with Deep Convolutional GANs", arXiv:1511.06434): G projects z to a small feature map and
  doubles it with stride-2 transposed convolutions (batch norm + ReLU, tanh output; the batch
  statistics are synchronised over replicas under a distribution strategy), D halves it
  with stride-2 convolutions and LeakyReLU(0.2), no pooling. D has no batch norm, so the
  WGAN-GP gradient penalty (which is per example) stays valid with the same critic.
  ``hidden_units`` adds a dense layer before G's projection (batch norm + ReLU) and after D's
  convolutions (LeakyReLU(0.2), dropout), as InfoGAN's MNIST networks have (Chen et al. 2016,
  "InfoGAN", arXiv:1606.03657, appendix C.1); the zoo's ``dcgan`` uses 256 in G and 1,024 in D.

* ``"resnet"`` — the residual CIFAR networks of SNGAN (Miyato et al. 2018, "Spectral
  Normalization for Generative Adversarial Networks", arXiv:1802.05957, appendix B.4; after
  Gulrajani et al. 2017's ResNet): G projects z to a 4x4 map (for 32x32; one more block per
  doubling) and doubles it with residual blocks (batch norm, ReLU, nearest-neighbour upsampling,
  two 3x3 convolutions; a 1x1 convolution on the upsampled shortcut), then batch norm, ReLU,
  a 3x3 convolution and tanh. D halves the image with residual blocks down to 8x8 (the first
  one SNGAN's "optimized" block that starts with a convolution), adds two blocks at that size,
  then ReLU, a sum over positions and one dense logit; every convolution and the dense layer
  are spectrally normalised (:class:`tf_genai.layers.SpectralNormalization`) and D has no
  batch norm. One width per network (``base_filters`` in D, ``generator_filters`` in G; SNGAN's
  CIFAR networks have 128 and 256). A conditional resnet D adds the projection of a learned
  class embedding onto its features (Miyato & Koyama 2018, "cGANs with Projection
  Discriminator", arXiv:1802.05637); the conditional G takes the label code with z, as the
  others do.

The discriminators' dropout is :class:`tf_genai.layers.FastDropout`: the same inverted dropout
as ``keras.layers.Dropout`` from half the random numbers (a ``dcgan`` step with dropout 0.3 ran
~7% faster with it on a 2-core Zen 4, 2026-11-29).

Conditional networks (``num_classes`` set; Mirza & Osindero 2014, "Conditional Generative
Adversarial Nets", arXiv:1411.1784) take ``[inputs, labels]`` with labels int32 ``(batch,)``.
The last layer of each network computes in float32 so mixed precision keeps the logits and the
images in full precision.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers

from tf_genai.errors import ConfigError
from tf_genai.layers import (
    FastDropout,
    FusedBatchNormalization,
    SpectralNormalization,
    scoped_network,
)

ARCHITECTURES = ("conv", "mlp", "resnet")
LABEL_EMBEDDING_DIM = 50  # size of the learned label code concatenated to z (and to D's features)
MLP_GENERATOR_UNITS = (256, 512, 1024)
MLP_DISCRIMINATOR_UNITS = (1024, 512, 256)


def num_upsamplings(image_shape: tuple[int, int, int]) -> int:
    """How many stride-2 stages the conv networks use: 2 up to 32 pixels, one more per doubling."""
    side = max(image_shape[0], image_shape[1])
    return max(2, math.ceil(math.log2(side / 8.0)))


def resnet_blocks(image_shape: tuple[int, int, int]) -> int:
    """The resnet generator's upsampling blocks: from 4x4 to the image, 3 for 32 pixels."""
    side = max(image_shape[0], image_shape[1])
    return max(1, math.ceil(math.log2(side / 4.0)))


class _Initializers:
    """Seeded initializers, one fresh seed per layer, so a model's config fixes its initial weights.

    ``seed=None`` falls back to Keras' global random state.
    """

    def __init__(self, seed: int | None, stream: int):
        self._rng = None if seed is None else np.random.default_rng([int(seed), stream])

    def seed(self) -> int | None:
        """A fresh seed (for a layer's initializer or a dropout layer)."""
        return None if self._rng is None else int(self._rng.integers(2**31 - 1))

    def kernel(self) -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=self.seed())  # the Keras default, seeded

    def embedding(self) -> keras.initializers.Initializer:
        return keras.initializers.RandomUniform(-0.05, 0.05, seed=self.seed())


def _crop_to(h, height: int, width: int):
    """(batch, h0 * 2^n, w0 * 2^n, C), at least H x W -> (batch, H, W, C): the generators grow
    a map by doublings, then crop its border evenly to exactly the image size."""
    extra_h, extra_w = h.shape[1] - height, h.shape[2] - width
    if extra_h or extra_w:
        crop = ((extra_h // 2, extra_h - extra_h // 2), (extra_w // 2, extra_w - extra_w // 2))
        h = layers.Cropping2D(crop, dtype="float32", name="crop")(h)
    return h


def _label_input(num_classes: int | None):
    if num_classes is None:
        return None
    return keras.Input(shape=(), dtype="int32", name="labels")


@scoped_network
def build_generator(
    image_shape: tuple[int, int, int],
    latent_dim: int,
    architecture: str = "conv",
    num_classes: int | None = None,
    base_filters: int = 32,
    seed: int | None = None,
    name: str = "generator",
    hidden_units: int = 0,
) -> keras.Model:
    """The generator ``z (batch, latent_dim) [+ labels (batch,)] -> images (batch, H, W, C)``.

    Output images lie in [-1, 1] (tanh). ``seed`` fixes the initial weights. ``hidden_units``
    (conv only; 0 = none) is the width of a dense layer between z and the projection.
    """
    init = _Initializers(seed, stream=0)
    height, width, channels = image_shape
    z_in = keras.Input(shape=(latent_dim,), name="z")
    labels_in = _label_input(num_classes)
    h = z_in
    if labels_in is not None:
        code = layers.Embedding(
            num_classes, LABEL_EMBEDDING_DIM, embeddings_initializer=init.embedding(),
            name="label_embedding",
        )(labels_in)
        h = layers.Concatenate(name="z_and_label")([h, code])  # (batch, latent + 50)

    if architecture == "mlp":
        for i, units in enumerate(MLP_GENERATOR_UNITS):
            h = layers.Dense(units, kernel_initializer=init.kernel(), name=f"dense_{i}")(h)
            h = layers.LeakyReLU(0.2, name=f"lrelu_{i}")(h)
        h = layers.Dense(
            height * width * channels, kernel_initializer=init.kernel(), name="to_pixels"
        )(h)  # (batch, H*W*C)
        h = layers.Activation("tanh", dtype="float32", name="tanh")(h)
        images = layers.Reshape(image_shape, dtype="float32", name="to_image")(h)  # (batch, H, W, C)
    elif architecture == "conv":
        n_up = num_upsamplings(image_shape)
        h0, w0 = math.ceil(height / 2**n_up), math.ceil(width / 2**n_up)
        filters = [base_filters * 2 ** (n_up - 1 - i) for i in range(n_up)]  # e.g. [128, 64]
        if hidden_units:
            h = layers.Dense(
                hidden_units, use_bias=False, kernel_initializer=init.kernel(), name="hidden"
            )(h)
            h = FusedBatchNormalization(synchronized=True, name="hidden_bn")(h)
            h = layers.ReLU(name="hidden_relu")(h)
        h = layers.Dense(
            h0 * w0 * filters[0], use_bias=False, kernel_initializer=init.kernel(), name="project"
        )(h)
        h = FusedBatchNormalization(synchronized=True, name="project_bn")(h)
        h = layers.ReLU(name="project_relu")(h)
        h = layers.Reshape((h0, w0, filters[0]), name="to_map")(h)  # (batch, h0, w0, F)
        for i, f in enumerate(filters[1:]):
            h = layers.Conv2DTranspose(
                f, 4, strides=2, padding="same", use_bias=False,
                kernel_initializer=init.kernel(), name=f"up_{i}",
            )(h)  # spatial size doubles
            h = FusedBatchNormalization(synchronized=True, name=f"up_{i}_bn")(h)
            h = layers.ReLU(name=f"up_{i}_relu")(h)
        h = layers.Conv2DTranspose(
            channels, 4, strides=2, padding="same", kernel_initializer=init.kernel(),
            name="to_channels",
        )(h)
        h = layers.Activation("tanh", dtype="float32", name="tanh")(h)
        images = _crop_to(h, height, width)  # (batch, H, W, C)
    elif architecture == "resnet":
        images = _resnet_generator(h, image_shape, base_filters, init)
    else:
        raise ConfigError(
            f"unknown GAN architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    inputs = z_in if labels_in is None else [z_in, labels_in]
    return keras.Model(inputs, images, name=name)


@scoped_network
def build_discriminator(
    image_shape: tuple[int, int, int],
    architecture: str = "conv",
    num_classes: int | None = None,
    base_filters: int = 32,
    dropout: float = 0.3,
    seed: int | None = None,
    hidden_units: int = 0,
    name: str = "discriminator",
) -> keras.Model:
    """The discriminator ``images (batch, H, W, C) [+ labels] -> logits (batch, 1)``.

    ``seed`` fixes the initial weights and the dropout masks' seed. ``hidden_units`` (conv only;
    0 = none) is the width of a dense layer between the convolutions and the logit.
    """
    init = _Initializers(seed, stream=1)
    height, width, _ = image_shape
    x_in = keras.Input(shape=tuple(image_shape), name="images")
    labels_in = _label_input(num_classes)

    if architecture == "mlp":
        h = layers.Flatten(name="flatten")(x_in)  # (batch, H*W*C)
        if labels_in is not None:
            code = layers.Embedding(
                num_classes, LABEL_EMBEDDING_DIM, embeddings_initializer=init.embedding(),
                name="label_embedding",
            )(labels_in)
            h = layers.Concatenate(name="image_and_label")([h, code])
        for i, units in enumerate(MLP_DISCRIMINATOR_UNITS):
            h = layers.Dense(units, kernel_initializer=init.kernel(), name=f"dense_{i}")(h)
            h = layers.LeakyReLU(0.2, name=f"lrelu_{i}")(h)
            if dropout:
                h = FastDropout(dropout, seed=init.seed(), name=f"dropout_{i}")(h)
    elif architecture == "conv":
        h = x_in
        if labels_in is not None:
            # The label as an extra image channel, so the first convolution sees it everywhere.
            code = layers.Embedding(
                num_classes, height * width, embeddings_initializer=init.embedding(),
                name="label_embedding",
            )(labels_in)
            code = layers.Reshape((height, width, 1), name="label_map")(code)  # (batch, H, W, 1)
            h = layers.Concatenate(name="image_and_label")([h, code])  # (batch, H, W, C+1)
        for i in range(num_upsamplings(image_shape)):
            h = layers.Conv2D(
                base_filters * 2**i, 4, strides=2, padding="same",
                kernel_initializer=init.kernel(), name=f"down_{i}",
            )(h)  # spatial size halves
            h = layers.LeakyReLU(0.2, name=f"down_{i}_lrelu")(h)
            if dropout:
                h = FastDropout(dropout, seed=init.seed(), name=f"down_{i}_dropout")(h)
        h = layers.Flatten(name="flatten")(h)
        if hidden_units:
            h = layers.Dense(hidden_units, kernel_initializer=init.kernel(), name="hidden")(h)
            h = layers.LeakyReLU(0.2, name="hidden_lrelu")(h)
            if dropout:
                h = FastDropout(dropout, seed=init.seed(), name="hidden_dropout")(h)
    elif architecture == "resnet":
        h = _resnet_discriminator(x_in, image_shape, base_filters, dropout, init)
    else:
        raise ConfigError(
            f"unknown GAN architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    # (batch, 1) logits, no sigmoid; float32 under mixed precision.
    logit_layer = layers.Dense(1, kernel_initializer=init.kernel(), dtype="float32", name="logit")
    if architecture == "resnet":
        logits = SpectralNormalization(logit_layer, seed=init.seed(), dtype="float32",
                                       name="sn_logit")(h)
        if labels_in is not None:  # the projection discriminator's <embed(y), features> term
            code = SpectralNormalization(layers.Embedding(
                num_classes, base_filters, embeddings_initializer=init.embedding(),
                name="label_embedding"), seed=init.seed(),
                name="sn_label_embedding")(labels_in)  # (batch, F)
            projection = layers.Dot(axes=1, dtype="float32", name="projection")([code, h])
            logits = layers.Add(dtype="float32", name="logit_and_projection")(
                [logits, projection])  # (batch, 1)
    else:
        logits = logit_layer(h)
    inputs = x_in if labels_in is None else [x_in, labels_in]
    return keras.Model(inputs, logits, name=name)


# ------------------------------------------------------------------ the resnet networks


def _up_block(x, filters: int, init: _Initializers, name: str):
    """SNGAN's generator block: (batch, h, w, F') -> (batch, 2h, 2w, F)."""
    shortcut = layers.UpSampling2D(2, name=f"{name}_shortcut_up")(x)
    shortcut = layers.Conv2D(filters, 1, kernel_initializer=init.kernel(),
                             name=f"{name}_shortcut")(shortcut)
    h = FusedBatchNormalization(synchronized=True, name=f"{name}_bn_0")(x)
    h = layers.ReLU(name=f"{name}_relu_0")(h)
    h = layers.UpSampling2D(2, name=f"{name}_up")(h)
    h = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                      kernel_initializer=init.kernel(), name=f"{name}_conv_0")(h)
    h = FusedBatchNormalization(synchronized=True, name=f"{name}_bn_1")(h)
    h = layers.ReLU(name=f"{name}_relu_1")(h)
    h = layers.Conv2D(filters, 3, padding="same", kernel_initializer=init.kernel(),
                      name=f"{name}_conv_1")(h)
    return layers.Add(name=f"{name}_add")([shortcut, h])


def _resnet_generator(h, image_shape, filters: int, init: _Initializers):
    """z (and label code) (batch, d) -> images (batch, H, W, C) in [-1, 1]."""
    height, width, channels = image_shape
    n_blocks = resnet_blocks(image_shape)
    h0, w0 = math.ceil(height / 2**n_blocks), math.ceil(width / 2**n_blocks)
    h = layers.Dense(h0 * w0 * filters, kernel_initializer=init.kernel(), name="project")(h)
    h = layers.Reshape((h0, w0, filters), name="to_map")(h)  # (batch, h0, w0, F)
    for i in range(n_blocks):
        h = _up_block(h, filters, init, name=f"block_{i}")  # spatial size doubles
    h = FusedBatchNormalization(synchronized=True, name="out_bn")(h)
    h = layers.ReLU(name="out_relu")(h)
    h = layers.Conv2D(channels, 3, padding="same", kernel_initializer=init.kernel(),
                      name="to_channels")(h)
    h = layers.Activation("tanh", dtype="float32", name="tanh")(h)
    return _crop_to(h, height, width)  # (batch, H, W, C)


def _sn_conv(filters: int, size: int, init: _Initializers, name: str):
    return SpectralNormalization(
        layers.Conv2D(filters, size, padding="same", kernel_initializer=init.kernel(),
                      name=name), seed=init.seed(), name=f"sn_{name}")


def _d_block(x, filters: int, init: _Initializers, name: str, *, down: bool, first: bool):
    """SNGAN's discriminator block (batch, h, w, F') -> (batch, h/2, w/2, F) if ``down``, else
    the same size. ``first``: the "optimized" block on the image (no ReLU before the first
    convolution, the shortcut pooled before its 1x1 convolution)."""
    h = x if first else layers.ReLU(name=f"{name}_relu_0")(x)
    h = _sn_conv(filters, 3, init, f"{name}_conv_0")(h)
    h = layers.ReLU(name=f"{name}_relu_1")(h)
    h = _sn_conv(filters, 3, init, f"{name}_conv_1")(h)
    shortcut = x
    if down:
        h = layers.AveragePooling2D(2, padding="same", name=f"{name}_pool")(h)
        if first:
            shortcut = layers.AveragePooling2D(2, padding="same", name=f"{name}_shortcut_pool")(x)
        shortcut = _sn_conv(filters, 1, init, f"{name}_shortcut")(shortcut)
        if not first:
            shortcut = layers.AveragePooling2D(2, padding="same",
                                               name=f"{name}_shortcut_pool")(shortcut)
    return layers.Add(name=f"{name}_add")([shortcut, h])


def _resnet_discriminator(x, image_shape, filters: int, dropout: float, init: _Initializers):
    """images (batch, H, W, C) -> features (batch, F): downsampling blocks to 8x8 (for 32
    pixels), two blocks at that size, ReLU, a sum over positions."""
    n_down = max(1, resnet_blocks(image_shape) - 1)
    kinds = [(True, i == 0) for i in range(n_down)] + [(False, False)] * 2
    h = x
    for i, (down, first) in enumerate(kinds):
        h = _d_block(h, filters, init, f"block_{i}", down=down, first=first)
        if dropout:
            h = FastDropout(dropout, seed=init.seed(), name=f"block_{i}_dropout")(h)
    h = layers.ReLU(name="out_relu")(h)
    # SNGAN sums over positions: a mean would shrink the logits by the map's area, which
    # spectrally normalised layers cannot make up for.
    positions = int(h.shape[1]) * int(h.shape[2])
    h = layers.GlobalAveragePooling2D(name="mean_pool")(h)
    return layers.Rescaling(float(positions), name="sum_pool")(h)  # (batch, F)

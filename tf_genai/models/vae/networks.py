"""Encoder and decoder networks of the VAE family, built as functional ``keras.Model``s.

Both architectures work for any image shape ``(H, W, C)`` (8x8 digits, 28x28 MNIST, 32x32x3
colour). A conditional network takes ``[images_or_z, labels]`` with int labels ``(batch,)``;
the one-hot label is concatenated into the dense part of the network.

The decoder outputs raw values once (Bernoulli logits or pre-squash Gaussian means, float32);
the model turns them into probabilities/means. There is no sigmoid inside the network, so the
Bernoulli log-likelihood is computed from logits in its stable form.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
from keras import layers, ops

from tf_genai.errors import ConfigError
from tf_genai.layers import scoped_network

ARCHITECTURES = ("conv", "mlp")


class OneHot(layers.Layer):
    """Int labels ``(batch,)`` -> float one-hot ``(batch, num_classes)``."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def call(self, labels):
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))  # (batch,)
        return ops.one_hot(labels, self.num_classes, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


class PixelShuffle(layers.Layer):
    """Depth to space by 2: ``(batch, h, w, 4c)`` -> ``(batch, 2h, 2w, c)`` (Shi et al. 2016)."""

    def call(self, x):
        _, h, w, c4 = x.shape
        c = c4 // 4
        x = ops.reshape(x, (-1, h, w, 2, 2, c))  # (batch, h, w, dy, dx, c)
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # (batch, h, dy, w, dx, c)
        return ops.reshape(x, (-1, 2 * h, 2 * w, c))

    def compute_output_shape(self, input_shape):
        b, h, w, c4 = input_shape
        return (b, 2 * h, 2 * w, c4 // 4)


def _label_input(num_classes: int | None):
    """The labels Input and its one-hot encoding, or (None, None) when unconditional."""
    if num_classes is None:
        return None, None
    labels = keras.Input(shape=(), dtype="int32", name="labels")
    return labels, OneHot(num_classes, name="label_one_hot")(labels)


def _check(image_shape: Sequence[int], architecture: str) -> tuple[int, int, int]:
    if architecture not in ARCHITECTURES:
        raise ConfigError(
            f"unknown VAE architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    if len(image_shape) != 3 or any(int(s) < 1 for s in image_shape):
        raise ConfigError(f"image_shape must be (H, W, C) with positive sizes, got {image_shape!r}")
    return tuple(int(s) for s in image_shape)  # type: ignore[return-value]


@scoped_network
def build_encoder(
    image_shape: Sequence[int],
    latent_dim: int,
    *,
    architecture: str = "conv",
    num_classes: int | None = None,
    filters: Sequence[int] = (16, 32),
    hidden_units: Sequence[int] = (256,),
    activation: str = "swish",
    name: str = "encoder",
) -> keras.Model:
    """q(z | x[, y]): images ``(batch, H, W, C)`` -> ``[mean, log_var]``, each ``(batch, latent)``.

    ``conv``: one stride-2 4x4 convolution per entry of ``filters``, flatten, then the dense
    ``hidden_units``. ``mlp``: flatten, then the dense ``hidden_units`` (``mlp_vae``: 784-512-256).
    """
    h, w, c = _check(image_shape, architecture)
    images = keras.Input(shape=(h, w, c), name="images")
    labels, one_hot = _label_input(num_classes)
    x = images
    if architecture == "conv":
        for i, f in enumerate(filters):
            # (batch, ceil(H / 2^(i+1)), ceil(W / 2^(i+1)), f)
            x = layers.Conv2D(f, 4, strides=2, padding="same", activation=activation,
                              name=f"conv_{i}")(x)
    x = layers.Flatten(name="flatten")(x)  # (batch, features)
    if one_hot is not None:
        x = layers.Concatenate(name="concat_label")([x, one_hot])
    for i, units in enumerate(hidden_units):
        x = layers.Dense(units, activation=activation, name=f"dense_{i}")(x)
    # float32 heads keep the KL and the reparameterisation exact under mixed precision.
    mean = layers.Dense(latent_dim, dtype="float32", name="z_mean")(x)  # (batch, latent)
    log_var = layers.Dense(latent_dim, dtype="float32", name="z_log_var")(x)  # (batch, latent)
    inputs = images if labels is None else [images, labels]
    return keras.Model(inputs, [mean, log_var], name=name)


@scoped_network
def build_decoder(
    image_shape: Sequence[int],
    latent_dim: int,
    *,
    architecture: str = "conv",
    num_classes: int | None = None,
    filters: Sequence[int] = (16, 32),
    hidden_units: Sequence[int] = (256,),
    activation: str = "swish",
    params_per_channel: int = 1,
    output_dtype: str | None = "float32",
    name: str = "decoder",
) -> keras.Model:
    """p(x | z[, y]): latents ``(batch, latent)`` -> raw outputs ``(batch, H, W, C * P)``,
    float32, ``P = params_per_channel`` likelihood parameters per subpixel (channel ``c * P +
    j`` is subpixel ``c``'s ``j``-th; 1 for Bernoulli logits or Gaussian means).

    ``conv``: the dense ``hidden_units`` reversed, a dense layer to a ``ceil(H/2^n) x
    ceil(W/2^n) x filters[-1]`` grid, ``n = len(filters)`` x2 sub-pixel upsamplings (channels
    ``filters`` reversed, the last one to ``C``), then a crop to exactly ``H x W``.
    ``mlp``: the dense ``hidden_units`` reversed, then a dense layer to ``H*W*C``.

    ``output_dtype`` is the compute dtype of the last convolution or dense layer, the one that
    produces the raw outputs: ``"float32"``, or None for the global policy's (bfloat16 under
    ``mixed_bfloat16``). The outputs are cast to float32 either way. On the AMX Xeon the
    float32 output convolution of the MNIST VAE ran on AVX-512 and took 13 % of a bfloat16
    training step (2026-12-05, ``benchmarks/README.md``, Findings); the VAE runs it in the
    bfloat16 for Bernoulli logits only (see ``VAE``).
    """
    h, w, c = _check(image_shape, architecture)
    c = c * int(params_per_channel)  # the output channels
    z = keras.Input(shape=(latent_dim,), name="z")
    labels, one_hot = _label_input(num_classes)
    x = z if one_hot is None else layers.Concatenate(name="concat_label")([z, one_hot])
    for i, units in enumerate(reversed(tuple(hidden_units))):
        x = layers.Dense(units, activation=activation, name=f"dense_{i}")(x)
    if architecture == "conv":
        n = len(filters)
        h0, w0 = math.ceil(h / 2**n), math.ceil(w / 2**n)
        f0 = filters[-1] if filters else c
        x = layers.Dense(h0 * w0 * f0, activation=activation, name="dense_grid")(x)
        x = layers.Reshape((h0, w0, f0), name="grid")(x)  # (batch, h0, w0, f0)
        # Mirror of the encoder: each stage doubles the grid with a sub-pixel convolution (a
        # 3x3 convolution to 4x the channels, then a pixel shuffle; Shi et al. 2016) and steps
        # down to the previous stage's channels; the last one outputs the C image channels.
        # Sub-pixel convolutions run several times faster than Conv2DTranspose on CPU, and the
        # decoder runs k times per image in the importance-sampled likelihood.
        for i in reversed(range(n)):
            last = i == 0
            out = c if last else filters[i - 1]
            x = layers.Conv2D(4 * out, 3, padding="same", dtype=output_dtype if last else None,
                              name=f"up_conv_{n - 1 - i}")(x)
            # (batch, h0 * 2^(n-i), w0 * 2^(n-i), filters[i-1] or C)
            x = PixelShuffle(dtype="float32" if last else None,
                             name="out" if last else f"up_{n - 1 - i}")(x)
            if not last:
                x = layers.Activation(activation, name=f"up_act_{n - 1 - i}")(x)
        if n == 0:
            x = layers.Conv2D(c, 3, padding="same", dtype=output_dtype, name="out")(x)
        dh, dw = h0 * 2**n - h, w0 * 2**n - w
        if dh or dw:  # the ceil-divided grid overshoots: crop back to exactly H x W
            x = layers.Cropping2D(((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)),
                                  dtype="float32", name="crop")(x)  # (batch, H, W, C)
    else:
        x = layers.Dense(h * w * c, dtype=output_dtype, name="out")(x)
        x = layers.Reshape((h, w, c), dtype="float32", name="image")(x)  # (batch, H, W, C)
    if x.dtype != "float32":  # a policy-dtype output layer with no float32 layer after it
        x = layers.Activation("linear", dtype="float32", name="to_float32")(x)
    inputs = z if labels is None else [z, labels]
    return keras.Model(inputs, x, name=name)

"""The denoising U-Net of the diffusion family, as a functional ``keras.Model``.

Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models" (arXiv:2006.11239), appendix
B: a PixelCNN++-style U-Net of residual blocks (GroupNorm + SiLU) with a sinusoidal timestep
embedding that scales and shifts every residual block's features, and self-attention at the lowest resolution; class conditioning
for classifier-free guidance (Ho & Salimans 2022, arXiv:2207.12598) adds a label embedding with
one extra row, the null class ``num_classes``.

Any ``(H, W, C)`` builds: the input is zero-padded to a multiple of ``2 ** (levels - 1)`` and
the output cropped back. Every layer name starts with the network's name, so the trained
network and its weight average (``ema_denoiser``) never share one. The last layer is float32
(mixed precision keeps the loss in full precision) and starts at zero, as in Ho et al.'s code,
so an untrained eps-network predicts no noise.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
from keras import layers, ops

from tf_genai.errors import ConfigError
from tf_genai.layers import FastDropout
from tf_genai.registry import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class SinusoidalEmbedding(keras.layers.Layer):
    """Integer timesteps ``(batch,)`` -> ``(batch, dim)`` sin/cos features (Vaswani et al. 2017
    section 3.5, as Ho et al. 2020 use them)."""

    def __init__(self, dim: int, max_period: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.max_period = float(max_period)

    def call(self, t):
        half = self.dim // 2
        freqs = np.exp(-math.log(self.max_period) * np.arange(half) / max(half, 1))
        args = ops.cast(ops.reshape(t, (-1, 1)), "float32") * ops.convert_to_tensor(
            freqs[None].astype("float32"))  # (batch, half)
        emb = ops.concatenate([ops.sin(args), ops.cos(args)], axis=-1)  # (batch, 2 half)
        if self.dim % 2:
            emb = ops.pad(emb, [[0, 0], [0, 1]])
        return ops.cast(emb, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "max_period": self.max_period}


class _Init:
    """Seeded initializers, one fresh seed per layer (as the GAN networks do)."""

    def __init__(self, seed: int | None):
        self._rng = None if seed is None else np.random.default_rng([int(seed), 7])

    def seed(self) -> int | None:
        return None if self._rng is None else int(self._rng.integers(2**31 - 1))

    def kernel(self) -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=self.seed())


def groups_for(width: int, max_groups: int = 32) -> int:
    """The number of GroupNorm groups: the largest divisor of ``width`` up to 32 (Wu & He 2018)."""
    return math.gcd(int(width), max_groups)


def _pad_amounts(size: int, factor: int) -> tuple[int, int]:
    extra = -size % factor
    return extra // 2, extra - extra // 2


def build_unet(
    image_shape: Sequence[int],
    widths: Sequence[int] = (32, 64, 64),
    blocks: int = 1,
    attention_levels: int = 1,
    num_classes: int | None = None,
    dropout: float = 0.0,
    seed: int | None = None,
    name: str = "denoiser",
    patch_size: int = 1,
    time_dtype: str = "int32",
) -> keras.Model:
    """The denoiser ``[x_t (batch, H, W, C), t (batch,)(, labels (batch,))] -> (batch, H, W, C)``.

    ``widths``: channels at each resolution (one level each, halving between levels);
    ``blocks``: residual blocks per level on the way down (one more on the way up, as in Ho et
    al.); ``attention_levels``: how many of the lowest resolutions get self-attention (the
    middle block always has one when it is > 0); ``labels`` take ids 0..num_classes, the last
    being the null class of classifier-free guidance. ``patch_size`` p > 1 makes the stem a
    p x p convolution with stride p (a patch embedding, as in ViT/DiT) and the output a p x p
    transposed convolution with stride p, so the U-Net runs at 1/p of the resolution: p = 2
    costs about a quarter of the full-resolution network's FLOPs. ``time_dtype``: ``"int32"``
    for a diffusion model's integer timesteps, ``"float32"`` for a continuous time (a flow
    model's t in [0, 1], scaled by the caller to the embedding's range).
    """
    if int(patch_size) < 1:
        raise ConfigError(f"diffusion U-Net: patch_size must be >= 1, got {patch_size}")
    patch = int(patch_size)
    widths = [int(w) for w in widths]
    if not widths or min(widths) < 1 or int(blocks) < 1:
        raise ConfigError(f"diffusion U-Net: need widths >= 1 and blocks >= 1, got {widths}, "
                          f"{blocks}")
    if not 0 <= int(attention_levels) <= len(widths):
        raise ConfigError(f"diffusion U-Net: attention_levels must lie in [0, {len(widths)}]")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"diffusion U-Net: dropout must lie in [0, 1), got {dropout}")
    init = _Init(seed)
    height, width, channels = (int(d) for d in image_shape)
    levels = len(widths)
    factor = patch * 2 ** (levels - 1)
    temb_dim = 4 * widths[0]
    counter = iter(range(10**6))

    def uid(kind: str) -> str:
        return f"{name}_{kind}_{next(counter)}"

    x_in = keras.Input(shape=(height, width, channels), name=f"{name}_x_t")
    t_in = keras.Input(shape=(), dtype=time_dtype, name=f"{name}_t")
    labels_in = None
    if num_classes is not None:
        labels_in = keras.Input(shape=(), dtype="int32", name=f"{name}_labels")

    # Timestep (and label) embedding, added to every residual block.
    temb = SinusoidalEmbedding(widths[0], name=uid("time_sin"))(t_in)  # (batch, w0)
    temb = layers.Dense(temb_dim, kernel_initializer=init.kernel(), name=uid("time_dense"))(temb)
    temb = layers.Activation("silu", name=uid("time_silu"))(temb)
    temb = layers.Dense(temb_dim, kernel_initializer=init.kernel(), name=uid("time_dense"))(temb)
    if labels_in is not None:
        code = layers.Embedding(num_classes + 1, temb_dim, name=uid("label_embedding"),
                                embeddings_initializer=keras.initializers.RandomNormal(
                                    stddev=1.0, seed=init.seed()))(labels_in)  # (batch, 4 w0)
        temb = layers.Add(name=uid("time_plus_label"))([temb, code])
    temb = layers.Activation("silu", name=uid("temb_silu"))(temb)  # (batch, 4 w0)

    def conv(h, filters, kernel=3, strides=1, kind="conv"):
        return layers.Conv2D(filters, kernel, strides=strides, padding="same",
                             kernel_initializer=init.kernel(), name=uid(kind))(h)

    def res_block(h, filters):
        skip = h
        h = layers.GroupNormalization(groups_for(h.shape[-1]), name=uid("gn"))(h)
        h = layers.Activation("silu", name=uid("silu"))(h)
        h = conv(h, filters)
        # The embedding scales and shifts the normalised features (adaptive group norm, Dhariwal
        # & Nichol 2021 section 3): a bias added before a norm with one channel per group (32
        # channels, 32 groups) would be normalised away, and the network would ignore t.
        scale = layers.Dense(filters, kernel_initializer=init.kernel(), bias_initializer="ones",
                             name=uid("temb_scale"))(temb)  # 1 + W temb, (batch, filters)
        shift = layers.Dense(filters, kernel_initializer=init.kernel(),
                             name=uid("temb_shift"))(temb)
        h = layers.GroupNormalization(groups_for(filters), name=uid("gn"))(h)
        h = layers.Multiply(name=uid("temb_mul"))(
            [h, layers.Reshape((1, 1, filters), name=uid("scale_map"))(scale)])
        h = layers.Add(name=uid("temb_add"))(
            [h, layers.Reshape((1, 1, filters), name=uid("shift_map"))(shift)])
        h = layers.Activation("silu", name=uid("silu"))(h)
        if dropout:
            h = FastDropout(dropout, seed=init.seed(), name=uid("dropout"))(h)
        h = conv(h, filters)
        if skip.shape[-1] != filters:
            skip = conv(skip, filters, kernel=1, kind="skip_proj")
        return layers.Add(name=uid("residual"))([skip, h])

    def attention(h):
        hh, ww, c = h.shape[1], h.shape[2], h.shape[-1]
        heads = 4 if c % 4 == 0 else 1
        a = layers.GroupNormalization(groups_for(c), name=uid("attn_gn"))(h)
        a = layers.Reshape((hh * ww, c), name=uid("attn_flatten"))(a)  # (batch, h w, c)
        a = layers.MultiHeadAttention(heads, c // heads, kernel_initializer=init.kernel(),
                                      name=uid("attn"))(a, a)
        a = layers.Reshape((hh, ww, c), name=uid("attn_unflatten"))(a)  # (batch, h, w, c)
        return layers.Add(name=uid("attn_residual"))([h, a])

    pad_h, pad_w = _pad_amounts(height, factor), _pad_amounts(width, factor)
    h = x_in
    if any(pad_h + pad_w):
        h = layers.ZeroPadding2D((pad_h, pad_w), name=uid("pad"))(h)  # (batch, H', W', C)
    if patch > 1:
        h = layers.Conv2D(widths[0], patch, strides=patch, kernel_initializer=init.kernel(),
                          name=uid("patch_stem"))(h)  # (batch, H'/p, W'/p, w0)
    else:
        h = conv(h, widths[0], kind="stem")
    skips = [h]
    for level, w in enumerate(widths):
        attend = level >= levels - int(attention_levels)
        for _ in range(int(blocks)):
            h = res_block(h, w)
            if attend:
                h = attention(h)
            skips.append(h)
        if level < levels - 1:
            h = conv(h, w, strides=2, kind="down")  # spatial size halves
            skips.append(h)
    h = res_block(h, widths[-1])
    if attention_levels:
        h = attention(h)
    h = res_block(h, widths[-1])
    for level in reversed(range(levels)):
        w = widths[level]
        attend = level >= levels - int(attention_levels)
        for _ in range(int(blocks) + 1):
            h = layers.Concatenate(name=uid("skip_concat"))([h, skips.pop()])
            h = res_block(h, w)
            if attend:
                h = attention(h)
        if level > 0:
            h = layers.UpSampling2D(2, name=uid("upsample"))(h)  # spatial size doubles
            h = conv(h, w, kind="up")
    h = layers.GroupNormalization(groups_for(h.shape[-1]), name=uid("out_gn"))(h)
    h = layers.Activation("silu", name=uid("out_silu"))(h)
    if patch > 1:
        out = layers.Conv2DTranspose(channels, patch, strides=patch, kernel_initializer="zeros",
                                     dtype="float32", name=f"{name}_output")(h)
    else:
        out = layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros",
                            dtype="float32", name=f"{name}_output")(h)
    # out: (batch, H', W', C) float32
    if any(pad_h + pad_w):
        out = layers.Cropping2D((pad_h, pad_w), dtype="float32", name=f"{name}_crop")(out)
    inputs = [x_in, t_in] + ([labels_in] if labels_in is not None else [])
    return keras.Model(inputs, out, name=name)

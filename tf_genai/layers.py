"""Layers of our own, where a stock Keras layer measurably costs too much.

:class:`FusedBatchNormalization` is ``keras.layers.BatchNormalization`` whose training-mode
forward and backward pass are TensorFlow's fused kernels (see its docstring).

:class:`Conv2D` and :class:`Conv2DTranspose` are Keras' layers that can take their weight
gradients in float32 under a bfloat16 compute dtype (the ``float32_weight_gradients`` training
lever: :func:`set_float32_weight_gradients`, :func:`conv2d_float32_weight_gradients`).

:class:`FastDropout` is ``keras.layers.Dropout`` (inverted dropout, Srivastava et al. 2014,
"Dropout: A Simple Way to Prevent Neural Networks from Overfitting", JMLR 15) with a cheaper
mask. ``keras.layers.Dropout`` on TensorFlow draws one float32 uniform per element
(``tf.nn.experimental.stateless_dropout``); on our 2-core CPU drawing them is most of the
layer's cost: ``python benchmarks/dropout_step.py`` (a ``dcgan`` step with discriminator
dropout 0.3, bf16, interleaved) gave 1,802 images/s with ``keras.layers.Dropout``, 1,932 with
this layer and 2,165 without dropout (2026-11-29; on the earlier 32-wide generator 2,497,
2,850 and 3,536). This layer draws 32 random bits per *two*
elements and compares each 16-bit half with an integer threshold: the same Bernoulli mask, from
half the random numbers and no float conversion, about 2x faster forward plus backward on a
(256, 14, 14, 32) bfloat16 tensor (2.7 ms against 5.6 ms).

The mask is drawn for the global batch and sliced per replica
(:func:`tf_genai.distribute.random_for_batch`), so a ``MirroredStrategy`` run drops exactly what
a one-device run drops (each replica holds the same generator state; a per-replica draw would
give every replica the same mask).

The price: the drop probability is ``round(rate * 65536) / 65536`` (0.3 -> 0.300003), and the
kept values are scaled by the exact inverse of the resulting keep probability, so the expected
output still equals the input. The mask comes from the layer's own ``SeedGenerator``, so a
model's seed fixes it, as with ``keras.layers.Dropout``; ``noise_shape`` is not supported.

**The fused_layers lever.** Both fast paths were measured on one kind of CPU. Each layer keeps
its plain variant: with ``fused_layers`` off (:func:`set_fused_layers`; the autotuner probes it,
``TF_GENAI_FUSED_LAYERS=0`` fixes it), :class:`FusedBatchNormalization` runs Keras' own batch
norm and :class:`FastDropout` draws one float32 uniform per element, as ``keras.layers.Dropout``
does (still per global batch, so replicas still drop what one device drops). Same weights,
config and inference either way; the lever is a layer attribute, not part of the config.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from typing import Any, Callable, Iterator

import keras
import tensorflow as tf

from tf_genai import distribute
from tf_genai.errors import ConfigError
from tf_genai.registry import PACKAGE

_LEVELS = 65536  # a 16-bit threshold: the resolution of the drop probability is 1 / 65536


def scoped_network(build: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
    """Decorate a network builder with a ``name`` argument: its layers are created under
    ``keras.name_scope(name)``, so every weight path starts with the network's name
    (``generator/hidden/kernel``, ``ema_generator/hidden/kernel``). Paths are then unique within
    a model, which TensorBoard's weight histograms key on (otherwise two thirds of a GAN's
    histograms overwrite each other)."""
    signature = inspect.signature(build)

    @functools.wraps(build)
    def wrapper(*args: Any, **kwargs: Any) -> keras.Model:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        with keras.name_scope(bound.arguments["name"]):
            return build(*args, **kwargs)

    return wrapper


_SEGMENTS = threading.local()  # per thread: MirroredStrategy traces each replica in its own


@contextlib.contextmanager
def batch_segments(count: int) -> Iterator[None]:
    """Inside this block, every :class:`FastDropout` input is ``count`` equal parts stacked
    along the batch axis, each part its own global batch (a GAN discriminator's
    ``concatenate([real, fake])``).

    Each part's mask is then drawn for that part's global batch and sliced per replica; a draw
    for the stacked batch as a whole would pair replica r's fakes with another replica's rows.
    """
    previous = getattr(_SEGMENTS, "count", 1)
    _SEGMENTS.count = int(count)
    try:
        yield
    finally:
        _SEGMENTS.count = previous


def batch_segments_in_force() -> int:
    """The ``count`` of the innermost :func:`batch_segments` block (1 outside any)."""
    return getattr(_SEGMENTS, "count", 1)


class _FusedVariant:
    """The mix-in of :class:`FusedBatchNormalization` and :class:`FastDropout`: ``fused``
    (default True) selects the layer's fast training-mode path, False its plain variant
    (module docstring). Set by :func:`set_fused_layers`, which ``tf_genai.training`` calls."""

    fused = True  # a training lever, not part of the layer's config


def _uniform_bits(shape, seed):
    """Full-range uint32 random integers of ``shape`` (a tuple of ints or scalar tensors)."""
    dims = tf.stack([tf.cast(d, tf.int32) for d in shape])
    return tf.random.stateless_uniform(dims, seed, minval=None, maxval=None, dtype=tf.uint32)


def _uniform_floats(shape, seed):
    """float32 uniforms in [0, 1) of ``shape``, as ``tf.nn.experimental.stateless_dropout``
    draws them."""
    dims = tf.stack([tf.cast(d, tf.int32) for d in shape])
    return tf.random.stateless_uniform(dims, seed, dtype=tf.float32)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FastDropout(_FusedVariant, keras.layers.Layer):
    """Inverted dropout from 16-bit random integers; inference mode returns the input unchanged.

    Args:
        rate: fraction of the inputs to zero in training mode, in [0, 1).
        seed: seeds the layer's random generator (``None``: a random seed).
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"FastDropout: rate must lie in [0, 1), got {rate}")
        self.threshold = int(round(rate * _LEVELS))  # drop where the 16-bit draw < threshold
        if self.threshold >= _LEVELS:
            raise ConfigError(f"FastDropout: rate {rate} rounds to 1 at a resolution of 1/65536")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.built = True

    @property
    def keep_probability(self) -> float:
        """The exact probability that an element is kept (``1 - rate`` to 1 / 65536 with
        ``fused``; ``1 - rate`` without)."""
        return (_LEVELS - self.threshold) / _LEVELS if self.fused else 1.0 - self.rate

    def call(self, inputs, training: bool = False):
        if not training or self.threshold == 0:
            return inputs
        shape = tf.shape(inputs)
        per_example = tf.reduce_prod(shape[1:])
        segments = batch_segments_in_force()
        # int32 seed of shape (2,), as Keras' own TensorFlow random ops derive it.
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)
        if self.fused:
            # 32 random bits per two elements of each example, drawn for the global batch of
            # each segment and sliced per replica, so N replicas drop what one device drops.
            bits = distribute.random_for_batch(
                _uniform_bits, (segments, shape[0] // segments, (per_example + 1) // 2),
                batch_axis=1, seed=seed,
            )  # (segments, local batch, ceil(per_example / 2)) full-range 32-bit integers
            halves = tf.reshape(tf.bitcast(bits, tf.uint16), (shape[0], -1))[:, :per_example]
            keep = tf.reshape(halves >= tf.constant(self.threshold, tf.uint16), shape)
        else:  # the plain variant: one float32 uniform per element, drawn the same way
            uniform = distribute.random_for_batch(
                _uniform_floats, (segments, shape[0] // segments, per_example),
                batch_axis=1, seed=seed)
            keep = tf.reshape(uniform >= self.rate, shape)
        scale = tf.constant(1.0 / self.keep_probability, inputs.dtype)
        return tf.where(keep, inputs * scale, tf.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FusedBatchNormalization(_FusedVariant, keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` (Ioffe & Szegedy 2015, arXiv:1502.03167) whose
    training-mode pass is one fused TensorFlow kernel.

    Keras 3's batch norm computes the batch moments and the normalisation from separate ops,
    after casting the input to float32: under ``mixed_bfloat16`` that is a cast of every
    activation each way, two reductions, and their gradients (broadcasts and tiles). On the
    ``dcgan`` generator those ops took 20 of the 95 busy ms of a bf16 training step (TensorFlow
    profiler, 2026-11-30). ``FusedBatchNormV3`` (oneDNN on CPU, cuDNN on GPU) does the same in
    one pass each way, on bfloat16/float16 inputs with float32 statistics.

    Same weights, config, inference path and moving-average update as the Keras layer: the
    moving variance follows the *biased* batch variance, as Keras 3's does (the fused kernel
    returns the unbiased one; we rescale by (n - 1) / n). ``tests/test_layers.py`` checks
    outputs, gradients and moving statistics against ``keras.layers.BatchNormalization``.

    The fused path is taken in training mode on the TensorFlow backend for a normalised last
    axis, without ``mask``, ``renorm`` or cross-replica ``synchronized`` statistics under a
    strategy with more than one replica; everything else is the Keras layer's own code (so
    ``synchronized=True`` still synchronises when there is something to synchronise with).
    Inputs of any rank >= 2 are viewed as ``(N, 1, L, C)`` for the kernel. With the
    ``fused_layers`` lever off (``fused = False``) every call is the Keras layer's own code.
    """

    def _fused_applies(self, inputs, training, mask) -> bool:
        if not (self.fused and training and self.trainable) or mask is not None or self.renorm:
            return False
        if keras.backend.backend() != "tensorflow" or len(inputs.shape) < 2:
            return False
        if self.axis not in (-1, len(inputs.shape) - 1) or inputs.shape[-1] is None:
            return False
        if self.synchronized and tf.distribute.get_replica_context() is not None:
            return tf.distribute.get_replica_context().num_replicas_in_sync == 1
        return True

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        x = tf.convert_to_tensor(inputs)
        if x.dtype not in (tf.float32, tf.float16, tf.bfloat16):
            x = tf.cast(x, "float32")
        shape = tf.shape(x)
        x4 = tf.reshape(x, [shape[0], 1, -1, channels])  # (N, 1, L, C): NHWC for the kernel
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        y, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x4, scale=gamma, offset=beta, mean=tf.zeros([0]), variance=tf.zeros([0]),
            epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC",
            is_training=True,
        )
        n = tf.cast(tf.size(x4) // channels, "float32")  # values per channel
        variance = unbiased_variance * tf.maximum(n - 1.0, 0.0) / n  # biased, as in Keras 3
        momentum = self.momentum
        self.moving_mean.assign(
            tf.cast(self.moving_mean, "float32") * momentum + mean * (1.0 - momentum)
        )
        self.moving_variance.assign(
            tf.cast(self.moving_variance, "float32") * momentum + variance * (1.0 - momentum)
        )
        return tf.cast(tf.reshape(y, shape), self.compute_dtype)


# =============================================================================================
# Convolutions whose weight gradients can be computed in float32 under mixed_bfloat16
# =============================================================================================


def _float32(t):
    return tf.cast(t, tf.float32)


def conv2d_float32_weight_gradients(x, kernel, bias=None, *, strides, padding: str,
                                    transpose: bool = False, output_shape=None):
    """A 2-D convolution (or transposed convolution) in ``x``'s dtype whose kernel and bias
    gradients are computed in float32.

    ``x``: (N, H, W, C) bfloat16/float16; ``kernel``/``bias``: the float32 variables' values
    (the kernel in Keras' layout: (kh, kw, in, out), or (kh, kw, out, in) when ``transpose``).
    The forward pass and the input gradient are the stock ops on ``x.dtype`` (the kernel cast
    as Keras' autocast casts it); the kernel gradient is ``Conv2DBackpropFilter`` on the
    float32 values of ``x`` and the output gradient, and the bias gradient their float32 sum.

    Same maths as the stock layer, with two differences: the weight gradients are not rounded
    to bfloat16 on the way to the float32 variables (so they are closer to a float32 run's:
    ``tests/test_float32_weight_gradients.py``), and they run on oneDNN's float32 kernels. The
    reason to: its bf16 backward-weights kernels ran at 3-12 % of the AMX bf16 peak at the zoo's
    layer shapes (``benchmarks/results/profile_step_xeon_amx.md``). Whether float32 ones beat
    them there is not measured; on a 2-core Zen 4 they did not (the zoo steps ran 3-6 % slower
    with the lever: ``benchmarks/results/float32_weight_gradients_zen4.md``), which is why only
    the autotuner's probe turns the lever on.
    """
    s4 = [1, int(strides[0]), int(strides[1]), 1]

    def conv(x, kernel, *maybe_bias):
        k = tf.cast(kernel, x.dtype)
        if transpose:
            y = tf.raw_ops.Conv2DBackpropInput(input_sizes=output_shape, filter=k, out_backprop=x,
                                               strides=s4, padding=padding)
        else:
            y = tf.raw_ops.Conv2D(input=x, filter=k, strides=s4, padding=padding)
        if maybe_bias:
            y = tf.nn.bias_add(y, tf.cast(maybe_bias[0], y.dtype))

        def grad(dy):
            if transpose:  # y = conv^T(x): dx = conv(dy), dk from (input dy, output grad x)
                dx = tf.raw_ops.Conv2D(input=dy, filter=k, strides=s4, padding=padding)
                dk = tf.raw_ops.Conv2DBackpropFilter(
                    input=_float32(dy), filter_sizes=tf.shape(kernel), out_backprop=_float32(x),
                    strides=s4, padding=padding)
            else:
                dx = tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=tf.shape(x), filter=k, out_backprop=dy, strides=s4,
                    padding=padding)
                dk = tf.raw_ops.Conv2DBackpropFilter(
                    input=_float32(x), filter_sizes=tf.shape(kernel), out_backprop=_float32(dy),
                    strides=s4, padding=padding)
            if maybe_bias:
                return dx, dk, tf.reduce_sum(_float32(dy), axis=[0, 1, 2])
            return dx, dk

        return y, grad

    args = (x, kernel) if bias is None else (x, kernel, bias)
    return tf.custom_gradient(conv)(*args)


def _raw_float32(variable):
    """A Keras variable's float32 value, not autocast (None where there is none to take)."""
    from keras.src.backend.common.stateless_scope import in_stateless_scope

    raw = getattr(variable, "_value", None)
    if raw is None or in_stateless_scope() or not isinstance(raw, tf.Variable):
        return None
    value = tf.convert_to_tensor(raw)
    return value if value.dtype == tf.float32 else None


class _Float32WeightGradients:
    """The mix-in of :class:`Conv2D` and :class:`Conv2DTranspose`: with
    ``float32_weight_gradients`` set (by :func:`set_float32_weight_gradients`, which
    ``GenerativeModel.compile`` calls), a training-mode call on bfloat16 or float16 inputs
    takes its weight gradients in float32 (:func:`conv2d_float32_weight_gradients`).
    Everything else -- inference, float32 models, other backends, dilated or grouped or
    channels-first convolutions -- is the Keras layer's own code."""

    float32_weight_gradients = False  # a training lever, not part of the layer's config

    def _float32_weights(self, inputs, training):
        if not (training and self.float32_weight_gradients and self.trainable):
            return None
        if keras.backend.backend() != "tensorflow":
            return None
        if self.data_format != "channels_last" or tuple(self.dilation_rate) != (1, 1):
            return None
        if getattr(self, "groups", 1) != 1 or inputs.dtype not in (tf.bfloat16, tf.float16):
            return None
        kernel = _raw_float32(self.kernel)
        bias = _raw_float32(self.bias) if self.use_bias else None
        if kernel is None or (self.use_bias and bias is None):
            return None
        return kernel, bias

    def _activate(self, outputs):
        return outputs if self.activation is None else self.activation(outputs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Conv2D(_Float32WeightGradients, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with the ``float32_weight_gradients`` lever (see the mix-in)."""

    def call(self, inputs, training=None):
        weights = self._float32_weights(inputs, training)
        if weights is None:
            return super().call(inputs)
        out = conv2d_float32_weight_gradients(
            inputs, *weights, strides=self.strides, padding=self.padding.upper())
        return self._activate(out)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Conv2DTranspose(_Float32WeightGradients, keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose`` with the ``float32_weight_gradients`` lever."""

    def call(self, inputs, training=None):
        weights = self._float32_weights(inputs, training)
        # The input gradient (a convolution of the output gradient) has the input's shape only
        # without output_padding; the output size is the layer's own rule.
        if weights is None or self.output_padding is not None:
            return super().call(inputs)
        _, height, width, _ = self.compute_output_shape(inputs.shape)
        if None in (height, width):
            return super().call(inputs)
        output_shape = tf.stack([tf.shape(inputs)[0], height, width, self.filters])
        out = conv2d_float32_weight_gradients(
            inputs, *weights, strides=self.strides, padding=self.padding.upper(),
            transpose=True, output_shape=output_shape)
        return self._activate(out)


def weight_gradient_layers(model) -> list[keras.layers.Layer]:
    """The layers of ``model`` (nested models included) the ``float32_weight_gradients`` lever
    applies to: its :class:`Conv2D` and :class:`Conv2DTranspose` layers."""
    return [layer for layer in model._flatten_layers(include_self=True, recursive=True)
            if isinstance(layer, _Float32WeightGradients)]


def set_float32_weight_gradients(model, enabled: bool) -> int:
    """Set the ``float32_weight_gradients`` lever on every :class:`Conv2D` and
    :class:`Conv2DTranspose` in ``model`` (nested models included); returns how many.

    It takes effect at the next trace of the train step (``compile`` makes a new one).
    """
    layers = weight_gradient_layers(model)
    for layer in layers:
        layer.float32_weight_gradients = bool(enabled)
    return len(layers)


def fused_layers(model) -> list[keras.layers.Layer]:
    """The layers of ``model`` (nested models included) the ``fused_layers`` lever changes:
    its :class:`FusedBatchNormalization` layers and its :class:`FastDropout` layers that drop
    anything (rate > 0)."""
    return [layer for layer in model._flatten_layers(include_self=True, recursive=True)
            if isinstance(layer, _FusedVariant) and getattr(layer, "threshold", 1) != 0]


def set_fused_layers(model, enabled: bool) -> int:
    """Set the ``fused_layers`` lever on every layer :func:`fused_layers` lists; returns how
    many. It takes effect at the next trace of the train step (``compile`` makes a new one)."""
    layers = fused_layers(model)
    for layer in layers:
        layer.fused = bool(enabled)
    return len(layers)

"""Layers of our own, where a stock Keras layer measurably costs too much.

:class:`FusedBatchNormalization` is ``keras.layers.BatchNormalization`` whose training-mode
forward and backward pass are TensorFlow's fused kernels (see its docstring).

:class:`FastDropout` is ``keras.layers.Dropout`` (inverted dropout, Srivastava et al. 2014,
"Dropout: A Simple Way to Prevent Neural Networks from Overfitting", JMLR 15) with a cheaper
mask. ``keras.layers.Dropout`` on TensorFlow draws one float32 uniform per element
(``tf.nn.experimental.stateless_dropout``); on our 2-core CPU drawing them is most of the
layer's cost: a ``dcgan`` step with discriminator
dropout 0.3, bf16, interleaved, gave 1,802 images/s with ``keras.layers.Dropout``, 1,932 with
this layer and 2,165 without dropout (2026-11-29; on the earlier 32-wide generator 2,497,
2,850 and 3,536; ``benchmarks/README.md``, Findings). This layer draws 32 random bits per *two*
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

Both layers are the zoo's only implementation: on a 2-core AMD Zen 4 (2026-12-06) the ``dcgan``
trained 1.10x as fast with them as with Keras' batch norm and dropout (1,523 against 1,385
images/s, 7 interleaved rounds of ``benchmarks/throughput.py``).

:class:`SpectralNormalization` is ``keras.layers.SpectralNormalization`` computing what Miyato
et al. 2018 define (its docstring says where Keras' layer differs).
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


def _uniform_bits(shape, seed):
    """Full-range uint32 random integers of ``shape`` (a tuple of ints or scalar tensors)."""
    dims = tf.stack([tf.cast(d, tf.int32) for d in shape])
    return tf.random.stateless_uniform(dims, seed, minval=None, maxval=None, dtype=tf.uint32)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FastDropout(keras.layers.Layer):
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
        """The exact probability that an element is kept (``1 - rate`` to 1 / 65536)."""
        return (_LEVELS - self.threshold) / _LEVELS

    def call(self, inputs, training: bool = False):
        if not training or self.threshold == 0:
            return inputs
        shape = tf.shape(inputs)
        per_example = tf.reduce_prod(shape[1:])
        segments = batch_segments_in_force()
        # int32 seed of shape (2,), as Keras' own TensorFlow random ops derive it.
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)
        # 32 random bits per two elements of each example, drawn for the global batch of each
        # segment and sliced per replica, so N replicas drop what one device drops.
        bits = distribute.random_for_batch(
            _uniform_bits, (segments, shape[0] // segments, (per_example + 1) // 2),
            batch_axis=1, seed=seed,
        )  # (segments, local batch, ceil(per_example / 2)) full-range 32-bit integers
        halves = tf.reshape(tf.bitcast(bits, tf.uint16), (shape[0], -1))[:, :per_example]
        keep = tf.reshape(halves >= tf.constant(self.threshold, tf.uint16), shape)
        scale = tf.constant(1.0 / self.keep_probability, inputs.dtype)
        return tf.where(keep, inputs * scale, tf.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FusedBatchNormalization(keras.layers.BatchNormalization):
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
    Inputs of any rank >= 2 are viewed as ``(N, 1, L, C)`` for the kernel.
    """

    def _fused_applies(self, inputs, training, mask) -> bool:
        if not (training and self.trainable) or mask is not None or self.renorm:
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



@keras.saving.register_keras_serializable(package=PACKAGE)
class SpectralNormalization(keras.layers.SpectralNormalization):
    """Spectral normalisation as Miyato et al. 2018 define it ("Spectral Normalization for
    Generative Adversarial Networks", arXiv:1802.05957, Algorithm 1): the wrapped layer runs on
    ``W / sigma(W)``, sigma the largest singular value of the kernel estimated by power
    iteration, and the gradient flows through sigma.

    Keras' own layer instead writes ``W / sigma`` into the kernel variable on every
    training-mode call and runs the wrapped layer on that variable: its gradient misses
    sigma's dependence on W (the second term of the paper's eq. 12), and every training-mode
    call rewrites the weights, so a GAN's generator update (which runs the discriminator in
    training mode) would change the discriminator. Here the kernel variable keeps W, the
    wrapped layer runs on the normalised kernel inside a ``keras.StatelessScope``, and a
    training-mode call updates only the power iteration's vector ``u`` (one iteration per
    call, as in the paper). The power iteration is deterministic, so replicas holding the same
    W and u compute the same u. Same weights as the Keras layer; ``seed`` (in the config)
    fixes u's initial value, which Keras' layer draws from the global random state.
    """

    def __init__(self, layer: keras.layers.Layer, power_iterations: int = 1,
                 seed: int | None = None, **kwargs: Any):
        # The power iteration and W / sigma in the variables' float32 under a mixed policy.
        kwargs.setdefault("autocast", False)
        super().__init__(layer, power_iterations=power_iterations, **kwargs)
        self.seed = seed

    def build(self, input_shape):
        super().build(input_shape)
        # Keras' initial u (truncated normal, stddev 0.02), drawn from the layer's seed.
        start = keras.initializers.TruncatedNormal(stddev=0.02, seed=self.seed)
        self.vector_u.assign(start(self.vector_u.shape, dtype=self.vector_u.dtype))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}

    def call(self, inputs, training=False):
        vector_u, kernel = self.normalized_weights()  # (1, out); W / sigma(W), differentiable
        if training:
            self.vector_u.assign(vector_u)
        # The wrapped layer reads the normalised kernel in place of W (and casts it to its
        # compute dtype, which Layer.stateless_call, bypassing __call__, would not).
        with keras.StatelessScope(state_mapping=[(self.kernel, kernel)]):
            return self.layer(inputs)

"""Adam and AdamW whose per-variable update is TensorFlow's fused ``ApplyAdam`` kernel.

Keras 3's ``Adam.update_step`` is written in backend-neutral ops: about eight element-wise
kernels per variable (two moment updates, a square, a square root, a division, the step), each
a full pass over the variable's memory. ``tf.raw_ops.ResourceApplyAdam`` does the same update in
one pass. Measured on a 2-core AMD EPYC (Zen 4, 2026-12-06; ``benchmarks/README.md``, Findings):
one ``apply`` over the ``dcgan`` networks' 5.0 M parameters took ~12.5 ms with Keras' Adam and
~4.8 ms fused, but a whole bf16 ``dcgan`` training step gained only 1.04-1.06x (``vae``
1.01x), because TensorFlow already ran most of Keras' update kernels beside the remaining
back-propagation. On a GPU each of those kernels is a launch of its own.

The update is Kingma & Ba 2015 ("Adam: A Method for Stochastic Optimization",
arXiv:1412.6980), Algorithm 1 in the form of section 2's last paragraph, exactly as Keras'
``Adam`` computes it:

    m <- beta_1 m + (1 - beta_1) g          v <- beta_2 v + (1 - beta_2) g^2
    w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

so the weights after a step agree with ``keras.optimizers.Adam``'s to float32 round-off
(``tests/test_optimizers.py``). Everything else is Keras' own: the learning-rate schedule,
``clipnorm``/``global_clipnorm``, gradient accumulation, ``use_ema``, loss scaling by
``LossScaleOptimizer``, AdamW's decoupled weight decay (applied by the base class before the
update), ``tf.distribute`` (the update runs per replica variable), and the saved state: the
slot variables keep Keras' names and order, so a backup or a ``.keras`` file of one restores
into the other. ``amsgrad=True`` has no fused kernel and takes Keras' update; a sparse
gradient (an ``Embedding``'s ``IndexedSlices``) is densified first, as ``ApplyAdam`` needs.

The classes are subclasses of Keras' (``isinstance(opt, keras.optimizers.Adam)`` holds) and
serialize as ``tf_genai>Adam`` / ``tf_genai>AdamW``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_genai.registry import PACKAGE


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (a replica's component under
    ``tf.distribute``, which is where ``update_step`` runs)."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


class _FusedAdamUpdate:
    """``update_step`` of Adam through ``tf.raw_ops.ResourceApplyAdam`` (module docstring)."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        return tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class Adam(_FusedAdamUpdate, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with the fused update (module docstring); same arguments."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class AdamW(_FusedAdamUpdate, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` (Loshchilov & Hutter 2019) with the fused Adam update."""

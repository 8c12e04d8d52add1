"""What the families that sample by a loop of network evaluations share (diffusion, flow
matching): image-shaped noise as the latent, one traced loop per model, classifier-free
guidance over the conditional and the null pass in one batch, and the export's ``sample``
signature with its step count (and guidance).
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, ClassVar

import tensorflow as tf

from tf_genai.capabilities import Capabilities
from tf_genai.models.base import LatentModel, ServingSignature

# Traced samplers per model, outside Keras' attribute tracking (a tf.function attribute would
# be picked up by SavedModel saving of the model).
_TRACED: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()


class IterativeModel(LatentModel):
    """A latent model whose latent is image-shaped noise and whose sampler is a loop of
    evaluations of one network, the weight average ``sampling_network`` names.

    Families fill in ``_inputs(x, t, labels)`` (the network's input list, a scalar ``t`` filled
    to the batch) and their loops; conditional ones keep ``guidance`` and the null class
    ``num_classes`` of classifier-free guidance (Ho & Salimans 2022, arXiv:2207.12598).
    """

    CAPABILITIES: ClassVar[Capabilities] = Capabilities(latent=True, encodes=True,
                                                        iterative=True)
    data_range = "symmetric"
    serving_default: ClassVar[str] = "sample"
    sampling_network: ClassVar[str] = ""  # the attribute of the network the samplers evaluate
    # The export's signature of that network: its name (a method taking x_t, t, labels and
    # ema), its output's key and the dtype of t.
    network_signature: ClassVar[tuple[str, str, tf.DType]]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # TFLite converts that network; the sampling loop stays in the SavedModel.
        if "network_signature" in cls.__dict__:
            cls.tflite_signature = cls.network_signature[0]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The noise the loop starts from is image-shaped."""
        return tuple(self.image_shape)

    def _inputs(self, x, t, labels) -> list:
        """The sampling network's inputs for ``x`` at time ``t`` (a scalar or ``(batch,)``)."""
        raise NotImplementedError

    def _traced(self, key: str, fn: Callable) -> Callable:
        """``fn`` as one tf.function per model (eager calls then run one compiled loop)."""
        cache = _TRACED.setdefault(self, {})
        if key not in cache:
            cache[key] = tf.function(fn, reduce_retracing=True, autograph=False)
        return cache[key]

    def _guided_output(self, x, t, labels, guidance):
        """The sampling network's float32 output at ``x`` and scalar time ``t``, guided for a
        conditional model: ``(1 + w) out(x, y) - w out(x, null)``, both passes as one batch.
        Guiding the raw output equals guiding eps or the velocity: the maps between them are
        affine in the output with the same ``x``."""
        net = getattr(self, self.sampling_network)
        if labels is None:
            return tf.cast(net(self._inputs(x, t, None), training=False), tf.float32)
        null = tf.fill(tf.shape(labels), tf.constant(self.num_classes, tf.int32))
        out = net(self._inputs(tf.concat([x, x], 0), t, tf.concat([labels, null], 0)),
                  training=False)
        cond, uncond = tf.split(tf.cast(out, tf.float32), 2, axis=0)  # (batch, H, W, C) each
        w = tf.cast(guidance, tf.float32)
        return (1.0 + w) * cond - w * uncond

    def _sample_signature(self) -> ServingSignature:
        """``sample(num_samples, seed, steps[, guidance])``: the latents of ``model.sample``
        rendered with the config's sampler, the whole loop in the graph."""

        def sample(num_samples, seed, steps, guidance=None, labels=None):
            labels = self._serving_labels(num_samples, labels)
            x = self.latents(num_samples, seed)  # (n, H, W, C): model.sample's draw
            return {"images": tf.cast(self.render(x, labels, steps=steps, guidance=guidance),
                                      tf.float32)}

        scalar = lambda name, dtype=tf.int32: tf.TensorSpec((), dtype, name=name)  # noqa: E731
        inputs = {"num_samples": scalar("num_samples"), "seed": scalar("seed"),
                  "steps": scalar("steps")}
        if self.num_classes is not None:
            inputs["guidance"] = scalar("guidance", tf.float32)
        return ServingSignature(inputs, sample, self._images_output())

    def serving_signatures(self) -> dict[str, ServingSignature]:
        """The base's ``generate(z)`` (the config's sampler from ``z``), ``sample(num_samples,
        seed, steps[, guidance, labels])`` with the whole loop in the graph (equal to
        ``model.sample`` for the same seed), and the network's own signature
        (``network_signature``: flow's ``velocity(x_t, t)``, diffusion's ``denoise(x_t, t)``),
        evaluated with the weight average."""
        name, key, t_dtype = self.network_signature
        method = getattr(self, name)

        def network(x_t, t, labels=None):
            return {key: method(x_t, t, labels, ema=True)}

        inputs = {"x_t": self._image_spec("x_t"), "t": tf.TensorSpec((None,), t_dtype, name="t")}
        return {
            **super().serving_signatures(),
            **self._with_labels({
                "sample": self._sample_signature(),
                name: ServingSignature(inputs, network,
                                       {key: ("float32", [None, *self.image_shape])}),
            }),
        }

    def _sample_defaults(self) -> dict[str, Any]:
        """What ``export.sample_from_export`` passes for a sample input the caller leaves out."""
        defaults: dict[str, Any] = {"steps": self.sample_steps}
        if self.num_classes is not None:
            defaults["guidance"] = self.guidance
        return defaults

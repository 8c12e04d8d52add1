"""The family contract: a thin root class every generative model subclasses, and a latent layer.

Export, checkpointing, training, evaluation, devices, plotting and callbacks talk to a
:class:`GenerativeModel` and read its declared :class:`~tf_genai.capabilities.Capabilities`;
they never ask which family it is. A new family is a new subclass, never a new ``if``
elsewhere (keras-hub's ``Task`` / ``TextToImage`` play the same parts there).

:class:`GenerativeModel` owns only what every generative model has: ``sample(n, seed,
labels)`` (through the family's :meth:`~GenerativeModel.draw`), the one-optimizer
``train_step``/``test_step`` over ``loss_terms``, the optimizers a backup restores, the
weight average, the label checks, the loss weighting for replicas and mixed precision, the
metric trackers, a dict of named serving signatures (``sample`` at least) and the
capabilities. What a family fills in:

* ``draw(num_samples, seed, labels, **options)``: the sampler (graph-safe; ``sample``, the
  compiled sampler and the export's ``sample`` signature all run it).
* ``loss_terms(images, labels, training)``: a dict of float32 batch-mean scalars with at least
  ``"loss"`` — or its own ``train_step`` (the GAN's two optimizers).
* ``default_optimizers(learning_rate=None, weight_decay=0.0)``: the ``compile`` recipe.
* ``CAPABILITIES``, and the methods they promise: ``nll`` for a likelihood, ``trajectory``
  for an iterative sampler.
* Class attributes: ``family`` (a name for tables and metadata, never branched on),
  ``metric_names``, ``serving_default``, ``tflite_signature`` / ``tflite_part``,
  ``early_stopping_monitor`` (or ``None`` with ``early_stopping_refusal`` saying why).

:class:`LatentModel` sits between the root and the families with a continuous latent space:
``latent_dim`` / ``latent_shape``, ``latents(n, seed)`` (the standard normal prior),
``render(z, labels)`` and, for models that encode, ``encode`` / ``reconstruct``; its ``draw``
is ``render(latents(n, seed))`` and it adds the export's ``render`` signature.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any, Callable, ClassVar, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tf_genai import distribute, optimizers, presets, ranges
from tf_genai.capabilities import Capabilities
from tf_genai.errors import ConfigError, DataError

# Message prefix of the in-graph label check; :meth:`GenerativeModel.fit` turns the
# TensorFlow error that carries it back into a DataError.
LABEL_RANGE_MESSAGE = "tf_genai: labels must be class ids in [0, num_classes)"


def seeded_normal(shape: Sequence[Any], seed: Any) -> tf.Tensor:
    """``keras.random.normal(shape, seed=int(seed))``, as a graph op that takes a tensor seed.

    Keras' TensorFlow backend draws an int seed as ``stateless_normal(shape, [s, 0])`` with
    ``s = seed mod (2**31 - 2)``; doing the same here lets a traced function (an export's
    ``sample`` signature, the compiled sampler) take the seed as an input and still give exactly
    the numbers ``model.sample(n, seed=seed)`` draws.
    """
    folded = tf.cast(tf.math.floormod(tf.cast(seed, tf.int64), tf.int32.max - 1), tf.int32)
    return tf.random.stateless_normal(shape, seed=tf.stack([folded, tf.constant(0, tf.int32)]))


SEEDED_SAMPLE_STREAM = (
    "z = tf.random.stateless_normal((num_samples, *latent_shape), "
    "seed=[seed mod (2**31 - 2), 0]), the draw of keras.random.normal(shape, seed=seed) and of "
    "model.sample(num_samples, seed=seed)"
)


def cycle_labels(n: Any, num_classes: int) -> Any:
    """Class ids 0, 1, ..., K-1, 0, 1, ... for ``n`` samples (int32)."""
    return tf.range(n, dtype=tf.int32) % num_classes


@dataclasses.dataclass(frozen=True)
class ServingSignature:
    """One serving signature of an export: named input specs, the function, named outputs.

    ``fn(**inputs)`` returns a dict of tensors keyed like ``outputs`` (name -> (dtype, shape)).
    """

    inputs: dict[str, tf.TensorSpec]
    fn: Callable[..., dict[str, Any]]
    outputs: dict[str, tuple[str, list[int | None]]]


class GenerativeModel(keras.Model):
    """The root of every tf_genai family (module docstring: what a family fills in).

    Subclasses call :meth:`_init_contract` from ``__init__`` with the attributes every model
    has, build their networks, then :meth:`_init_trackers`.
    """

    CAPABILITIES: ClassVar[Capabilities] = Capabilities()
    family: ClassVar[str] = "model"
    data_range: str = "unit"
    binarize: bool = False
    metric_names: ClassVar[tuple[str, ...]] = ("loss",)
    serving_default: ClassVar[str] = "sample"  # what TF Serving answers when a request names none
    tflite_signature: ClassVar[str | None] = None  # the signature TFLite converts (None: none)
    tflite_part: ClassVar[str | None] = None  # the network that signature runs
    early_stopping_monitor: ClassVar[str | None] = "val_loss"
    early_stopping_refusal: ClassVar[str] = ""
    # Keyword options of sample() beyond (n, seed, labels), passed on to draw() (e.g. a
    # sampler's steps); `tf-genai sample --steps ...` reaches them through sample(**options).
    sampling_options: ClassVar[tuple[str, ...]] = ()
    # Keyword options of nll() beyond (images, labels, seed), e.g. a bound's sample count.
    nll_options: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ construction

    def _init_contract(self, *, image_shape: Sequence[int], num_classes: int | None, seed: int,
                       data_range: str | None = None) -> None:
        """Check and set the attributes every family has, and the model's own random generator."""
        shape = tuple(int(d) for d in image_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ConfigError(
                f"{self.name}: image_shape must be (H, W, C) of positive ints, got {image_shape}")
        if num_classes is not None and int(num_classes) < 2:
            raise ConfigError(f"{self.name}: num_classes must be None or >= 2, got {num_classes}")
        if data_range is not None:
            self.data_range = ranges.check(data_range, f"{self.name}: data_range")
        self.image_shape = shape
        self.num_classes = None if num_classes is None else int(num_classes)
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name=f"{self.family}_seed")

    def _init_trackers(self, names: Sequence[str] | None = None) -> None:
        """One ``keras.metrics.Mean`` per reported metric (Keras resets them every epoch)."""
        self._trackers = {n: keras.metrics.Mean(name=n) for n in (names or self.metric_names)}

    @property
    def capabilities(self) -> Capabilities:
        """What this model can do: the class's ``CAPABILITIES``, ``conditional`` from
        ``num_classes``."""
        return dataclasses.replace(self.CAPABILITIES, conditional=self.num_classes is not None)

    @property
    def conditional(self) -> bool:
        """Whether the model takes class labels."""
        return self.num_classes is not None

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return cls(**config)

    @classmethod
    def from_preset(cls, preset: str | os.PathLike, *, compile: bool = True):
        """The trained model of ``preset`` (a shipped preset's name or a preset folder), as
        :func:`tf_genai.presets.from_preset` loads it; a ConfigError if it is not a ``cls``
        (``VAE.from_preset("dcgan")``)."""
        model = presets.from_preset(preset, compile=compile)
        if not isinstance(model, cls):
            raise ConfigError(f"preset {os.fspath(preset)!r} holds a {type(model).__name__}, "
                              f"not a {cls.__name__}; load it with tf_genai.from_preset")
        return model

    def save_to_preset(self, path: str | os.PathLike, **options: Any):
        """Write this model as a preset folder: :func:`tf_genai.presets.save_to_preset`."""
        return presets.save_to_preset(self, path, **options)

    # ------------------------------------------------------------------ labels and batches

    def check_labels(self, labels: Any, n: Any = None) -> Any:
        """Labels as int32 ``(batch,)`` for a conditional model (``None`` for another one).

        Eager values are checked at once (:class:`DataError`: missing, not 1-D, not ``n`` long,
        not integers, or outside ``[0, num_classes)``); symbolic ones get an in-graph check
        whose failure names the problem (``fit`` raises it as a DataError too).
        """
        if self.num_classes is None:
            return None
        if labels is None:
            raise DataError(
                f"{self.name} is conditional (num_classes={self.num_classes}): it needs labels, "
                "int class ids; give fit a dataset of (images, labels)")
        if tf.executing_eagerly() and not isinstance(labels, keras.KerasTensor):
            values = np.asarray(labels)
            if values.ndim == 2 and values.shape[1] == 1:
                values = values[:, 0]
            if values.ndim != 1:
                raise DataError(f"{self.name}: labels must have shape (batch,), got {values.shape}")
            if isinstance(n, (int, np.integer)) and values.shape[0] != int(n):
                raise DataError(f"{self.name}: need {int(n)} labels, got {values.shape[0]}")
            if values.size and not np.all(np.equal(np.mod(values, 1), 0)):
                raise DataError(f"{self.name}: labels must be integer class ids")
            if values.size and (values.min() < 0 or values.max() >= self.num_classes):
                raise DataError(
                    f"{self.name}: labels must lie in [0, {self.num_classes}), "
                    f"got [{values.min()}, {values.max()}]")
            return tf.constant(values.astype(np.int32))
        labels = tf.cast(tf.reshape(labels, (-1,)), tf.int32)
        message = f"{LABEL_RANGE_MESSAGE} (num_classes={self.num_classes})"
        checks = [tf.debugging.assert_non_negative(labels, message=message),
                  tf.debugging.assert_less(labels, self.num_classes, message=message)]
        with tf.control_dependencies(checks):
            return tf.identity(labels)

    def unpack(self, data: Any) -> tuple[Any, Any]:
        """``images`` or ``(images, labels[, weights])`` -> (float32 images, int32 labels or None)."""
        x, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        images = ops.cast(x, "float32")  # (batch, H, W, C)
        return images, self.check_labels(labels)

    def _net_inputs(self, x: Any, labels: Any) -> Any:
        """``x`` or ``[x, labels]`` for a (conditional) sub-network."""
        if self.num_classes is None:
            return x
        return [ops.convert_to_tensor(x), self.check_labels(labels)]

    # ------------------------------------------------------------------ sampling

    def sample_labels(self, num_samples: int, labels: Any = None) -> Any:
        """The labels ``sample`` uses: checked ``labels``, or 0, 1, ..., K-1, 0, ... if None."""
        if self.num_classes is None:
            if labels is not None:
                raise DataError(f"{self.name} is unconditional: it takes no labels")
            return None
        if labels is None:
            return cycle_labels(num_samples, self.num_classes)
        return self.check_labels(labels, num_samples)

    def check_sampling_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` without the Nones, refused (ConfigError) unless in ``sampling_options``."""
        options = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(options) - set(self.sampling_options))
        if unknown:
            takes = ", ".join(self.sampling_options) or "none"
            raise ConfigError(f"{self.name} ({self.family}) has no sampling option "
                              f"{', '.join(unknown)}; its options: {takes}")
        return options

    def sample(self, num_samples: int, seed: int | None = None, labels: Any = None,
               **options: Any) -> Any:
        """``num_samples`` images ``(n, H, W, C)`` in ``data_range``.

        Args:
            seed: an int makes the draw reproducible (and equal to an export's ``sample``);
                ``None`` draws from the model's own generator.
            labels: class ids for a conditional model; ``None`` cycles 0, 1, ..., K-1, 0, ...
            options: the family's ``sampling_options`` (e.g. a diffusion model's ``steps``,
                ``eta``, ``guidance``); None means the model's default.
        """
        options = self.check_sampling_options(options)
        n = int(num_samples)
        if n < 1:
            raise ConfigError(f"{self.name}: num_samples must be >= 1, got {num_samples}")
        return self.draw(n, seed, self.sample_labels(n, labels), **options)

    def draw(self, num_samples: Any, seed: Any, labels: Any, **options: Any) -> Any:
        """The family's sampler: ``num_samples`` images in ``data_range`` for checked
        ``labels``. ``seed`` None draws from the model's own generator (it advances); an int
        or an int tensor gives the same images every time. Runs in a graph too: the compiled
        sampler and the export's ``sample`` signature trace it with tensor arguments."""
        raise NotImplementedError(f"{type(self).__name__} must define draw(num_samples, seed, "
                                  "labels, **options)")

    def trajectory(self, num_samples: int, seed: int = 0, labels: Any = None,
                   **options: Any) -> tuple[Any, Any]:
        """For iterative samplers (``capabilities.iterative``): ``(images (n, R, H, W, C),
        steps (R,))``, the images at R recorded sampler steps (the last is the sample)."""
        raise NotImplementedError(f"{type(self).__name__} does not sample iteratively")

    # ------------------------------------------------------------------ likelihood

    def nll(self, images: Any, labels: Any = None, *, seed: int = 0,
            **options: Any) -> dict[str, Any]:
        """Negative log-likelihood per image in nats, for a model with a likelihood
        (``capabilities.likelihood``: ``"exact"`` gives ``-log p(x)``, ``"bound"`` an upper
        bound on it; a conditional model's is ``-log p(x | y)``).

        Args:
            images: ``(N, H, W, C)`` uint8, or float in [0, 1] (as ``tf_genai.data.load``
                returns them); the model prepares them for its likelihood (binarises, dequantises).
            labels: int ``(N,)`` class ids for a conditional model.
            seed: seeds any sampling the estimate needs.
            options: the model's ``nll_options``.

        Returns:
            ``{"nll": (N,) float64, ...}``: further per-image figures in nats the model reports
            (a VAE's ``"elbo"``).
        """
        raise NotImplementedError(f"{type(self).__name__} has no likelihood")

    @property
    def likelihood_levels(self) -> int | None:
        """How many values a subpixel takes under the model's likelihood when it is a
        probability mass (256: 8-bit images, 2: binary), so that its NLL converts to bits/dim;
        None for a density or no likelihood at all."""
        return None

    # ------------------------------------------------------------------ training

    def loss_terms(self, images: Any, labels: Any, training: bool) -> dict[str, Any]:
        """The batch-mean float32 loss terms, ``"loss"`` among them (one-optimizer families)."""
        raise NotImplementedError(
            f"{type(self).__name__} must define loss_terms(images, labels, training) or "
            "its own train_step")

    def default_optimizers(self, learning_rate: float | None = None,
                           weight_decay: float = 0.0) -> dict[str, keras.optimizers.Optimizer]:
        """The zoo recipe as ``compile`` keyword arguments: Adam(1e-3) by default."""
        return {"optimizer": adam(1e-3 if learning_rate is None else learning_rate, weight_decay)}

    def compile(self, optimizer: Any = None, **kwargs: Any) -> None:
        """``keras.Model.compile`` with the family's optimizer when none is given; builds it.

        The networks exist from ``__init__``; building the optimizer's slots here (not inside
        the first traced ``train_step``) lets a backup be restored into it before ``fit`` and
        ``fit`` be called again after a failed first call.
        """
        if optimizer is None:
            optimizer = self.default_optimizers()["optimizer"]
        super().compile(optimizer=optimizer, **kwargs)
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Re-compile from a saved ``compile_config`` (``.keras`` loading calls this)."""
        self.compile(**keras.saving.deserialize_keras_object(config))

    def training_optimizers(self) -> list[tuple[str, Any, list[Any]]]:
        """``(name, optimizer, variables it updates)`` for every optimizer the model trains with."""
        if getattr(self, "optimizer", None) is None:
            return []
        return [("optimizer", self.optimizer, self.trainable_variables)]

    def scale_loss(self, loss: Any, optimizer: Any, batch_size: Any) -> Any:
        """A replica's batch-mean loss, ready for ``tape.gradient`` (call it inside the tape).

        Weighted by the replica's share of the global batch (the optimizer sums replicas:
        :func:`tf_genai.distribute.replica_weight`), then by the optimizer's loss scale (1 for
        a plain optimizer, the dynamic scale of a ``LossScaleOptimizer``, whose ``apply``
        unscales).
        """
        weighted = loss * ops.cast(distribute.replica_weight(batch_size), loss.dtype)
        return optimizer.scale_loss(weighted)

    def after_train_step(self) -> None:
        """Called after every optimizer step of the default ``train_step``: the weight average."""
        self.update_weight_average()

    def train_step(self, data: Any) -> dict[str, Any]:
        images, labels = self.unpack(data)
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            terms = self.loss_terms(images, labels, training=True)
            loss = self.scale_loss(terms["loss"], self.optimizer, ops.shape(images)[0])
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.after_train_step()
        return self.update_metrics(terms)

    def test_step(self, data: Any) -> dict[str, Any]:
        images, labels = self.unpack(data)
        return self.update_metrics(self.loss_terms(images, labels, training=False))

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        # Listing the trackers here lets Keras reset them at the start of every epoch.
        return list(self._trackers.values())

    def update_metrics(self, terms: dict[str, Any]) -> dict[str, Any]:
        """Add ``terms`` to their trackers; the current value of every tracker."""
        for key, value in terms.items():
            if key in self._trackers:
                self._trackers[key].update_state(value)
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def _maybe_symbolic_build(self, iterator: Any = None, data_batch: Any = None) -> None:
        # Keras' fit under a tf.distribute strategy takes the MEAN of the first distributed
        # batch only to trace a build; with an uneven split (a data set smaller than one
        # batch: 8 + 7 images on two replicas) that mean fails ("AddN ... [8,8,8,1] !=
        # [7,8,8,1]"). Every tf_genai model is built in __init__ and its optimizers in
        # compile, so there is nothing to build (pinned by tests/test_keras_adapter.py).
        if self.built and all(o.built for _, o, _ in self.training_optimizers()):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    @contextlib.contextmanager
    def _label_errors_as_data_errors(self) -> Iterator[None]:
        try:
            yield
        except tf.errors.InvalidArgumentError as err:
            if LABEL_RANGE_MESSAGE in str(err):
                raise DataError(
                    f"{self.name}: labels must be class ids in [0, {self.num_classes}); the "
                    "data holds one outside that range") from None
            raise

    def fit(self, *args: Any, **kwargs: Any):
        """``keras.Model.fit``; labels outside ``[0, num_classes)`` raise DataError."""
        with self._label_errors_as_data_errors():
            return super().fit(*args, **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any):
        """``keras.Model.evaluate``; labels outside ``[0, num_classes)`` raise DataError."""
        with self._label_errors_as_data_errors():
            return super().evaluate(*args, **kwargs)

    # ------------------------------------------------------------------ weight average

    def _init_weight_average(self, source: str, average: str, decay: float) -> None:
        """Keep ``self.<average>`` (a copy of network ``self.<source>``) as an exponential
        moving average of its weights, every weight (batch-norm statistics too).

        The decay warms up as in ``tf.train.ExponentialMovingAverage``:
        ``min(decay, (1 + t) / (10 + t))`` at update ``t`` (the saved ``ema_updates``), so a
        short run is not dominated by the initial weights. Names, not the networks, are kept
        (one network under two attributes would be saved twice).
        """
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"{self.name}: ema_decay must lie in [0, 1), got {decay}")
        self._average_pair = (source, average)
        self._average_decay = float(decay)
        averaged = getattr(self, average)
        averaged.trainable = False  # moved by update_weight_average only, never by a gradient
        for a, w in zip(averaged.weights, getattr(self, source).weights):
            a.assign(w)
        self.ema_updates = self.add_weight(shape=(), initializer="zeros", dtype="float32",
                                           trainable=False, name="ema_updates")

    def weight_average(self) -> tuple[keras.Model, keras.Model] | None:
        """``(trained, averaged)``: the network whose weights are averaged and its average,
        or None for a model without one. A preset stores the average only
        (:mod:`tf_genai.presets`)."""
        pair = getattr(self, "_average_pair", None)
        return None if pair is None else tuple(getattr(self, name) for name in pair)

    def update_weight_average(self) -> None:
        """Move every averaged weight towards the trained one: ``a <- d a + (1 - d) w``."""
        pair = getattr(self, "_average_pair", None)
        if pair is None:
            return
        source, average = (getattr(self, name) for name in pair)
        updates = self.ema_updates.value
        decay = ops.minimum(self._average_decay, (1.0 + updates) / (10.0 + updates))
        for a, w in zip(average.weights, source.weights):
            a.assign(decay * a.value + (1.0 - decay) * w.value)
        self.ema_updates.assign(updates + 1.0)

    # ------------------------------------------------------------------ serving

    def _image_spec(self, name: str = "images") -> tf.TensorSpec:
        return tf.TensorSpec((None, *self.image_shape), tf.float32, name=name)

    def _images_output(self) -> dict[str, tuple[str, list[int | None]]]:
        return {"images": ("float32", [None, *self.image_shape])}

    def serving_signatures(self) -> dict[str, ServingSignature]:
        """The export's signatures by name: ``sample(num_samples, seed)`` here.

        Conditional models take ``labels`` int32 ``(batch,)`` last in each. Families add
        theirs (``decode``, ``encode`` ...) by extending this dict.
        """
        count = tf.TensorSpec((), tf.int32, name="num_samples")
        seed = tf.TensorSpec((), tf.int32, name="seed")

        def sample(num_samples, seed, labels=None):
            return {"images": tf.cast(self.draw(num_samples, seed, self._serving_labels(
                num_samples, labels)), tf.float32)}

        return self._with_labels({
            "sample": ServingSignature({"num_samples": count, "seed": seed}, sample,
                                       self._images_output())})

    def _serving_labels(self, num_samples: Any, labels: Any) -> Any:
        """A sample signature's labels: cycled when none are given, else one per sample."""
        if labels is None:
            return self.sample_labels(num_samples)
        tf.debugging.assert_equal(tf.shape(labels)[0], num_samples,
                                  message="sample: labels must hold one class id a sample")
        return labels

    def _with_labels(self, signatures: dict[str, ServingSignature]) -> dict[str, ServingSignature]:
        """Give every signature of a conditional model a last ``labels`` input."""
        if self.num_classes is None:
            return signatures
        labels = tf.TensorSpec((None,), tf.int32, name="labels")
        return {name: dataclasses.replace(s, inputs={**s.inputs, "labels": labels})
                for name, s in signatures.items()}

    def call_input_signature(self) -> list[Any]:
        """The input of ``call`` as tensor specs: images (``[images, labels]`` if conditional)."""
        images = self._image_spec()
        return [images if self.num_classes is None else [images, tf.TensorSpec(
            (None,), tf.int32, name="labels")]]

    def export(self, filepath: Any, format: str = "tf_saved_model", verbose: Any = None,
               input_signature: Any = None, **kwargs: Any):
        """``keras.Model.export`` (Keras' ``serve`` endpoint of ``call``), with the input
        signature filled in: the models are built at construction and never called, so Keras
        cannot infer it. :func:`tf_genai.export.export_saved_model` writes the family's own
        signatures (``sample``, ``decode`` ...) instead."""
        if input_signature is None:
            input_signature = self.call_input_signature()
        return super().export(filepath, format=format, verbose=verbose,
                              input_signature=input_signature, **kwargs)

    def export_metadata(self) -> dict[str, Any]:
        """Family-specific entries for an export's ``metadata.json`` (none by default)."""
        return {}


class LatentModel(GenerativeModel):
    """A generative model with a continuous latent space and a standard normal prior.

    Families fill in ``render(z, labels, **options)`` (latents -> images) and, when
    ``CAPABILITIES.encodes``, ``encode(images, labels) -> z``; the latent layer draws
    ``latents`` from N(0, I), samples through ``render``, and adds the export's
    ``render_signature`` (``decode`` / ``generate``: ``z`` -> images).
    """

    CAPABILITIES: ClassVar[Capabilities] = Capabilities(latent=True)
    render_signature: ClassVar[str] = "generate"

    def _init_contract(self, *, latent_dim: int | None, **kwargs: Any) -> None:
        """The root's attributes, and ``latent_dim`` (None where ``latent_shape`` is set by
        the family, e.g. image-shaped)."""
        super()._init_contract(**kwargs)
        if latent_dim is not None and int(latent_dim) < 1:
            raise ConfigError(f"{self.name}: latent_dim must be >= 1, got {latent_dim}")
        self.latent_dim = None if latent_dim is None else int(latent_dim)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The shape of one latent code (``(latent_dim,)``; image-shaped for diffusion)."""
        return (int(self.latent_dim),)

    def render(self, z: Any, labels: Any = None, **options: Any) -> Any:
        """Latent codes ``(batch, *latent_shape)`` -> images ``(batch, H, W, C)`` in data_range."""
        raise NotImplementedError(f"{type(self).__name__} must define render(z, labels=None)")

    def latents(self, num_samples: Any, seed: Any = None) -> Any:
        """``num_samples`` draws from the prior N(0, I): ``(n, *latent_shape)``.

        ``seed=None`` draws from the model's own generator (it advances); an int (or an int
        tensor) draws :func:`seeded_normal`, the same numbers every time.
        """
        shape = (num_samples, *self.latent_shape)
        if seed is None:
            return keras.random.normal(shape, seed=self.seed_generator)
        return seeded_normal(tf.stack(shape) if tf.is_tensor(num_samples) else shape, seed)

    def draw(self, num_samples: Any, seed: Any, labels: Any, **options: Any) -> Any:
        """``render(latents(num_samples, seed), labels, **options)``."""
        return self.render(self.latents(num_samples, seed), labels, **options)

    def encode(self, images: Any, labels: Any = None) -> Any:
        """Images -> one latent point each ``(batch, *latent_shape)`` (``capabilities.encodes``)."""
        raise NotImplementedError(f"{type(self).__name__} does not encode images")

    def reconstruct(self, images: Any, labels: Any = None) -> Any:
        """``render(encode(images))``: images back through the latent space."""
        return self.render(self.encode(images, labels), labels)

    def serving_signatures(self) -> dict[str, ServingSignature]:
        """The root's ``sample``, and ``render_signature(z)`` -> ``{images}``."""
        z = tf.TensorSpec((None, *self.latent_shape), tf.float32, name="z")

        def render(z, labels=None):
            return {"images": tf.cast(self.render(z, labels), tf.float32)}

        return {**super().serving_signatures(), **self._with_labels({
            self.render_signature: ServingSignature({"z": z}, render, self._images_output())})}

    def call_input_signature(self) -> list[Any]:
        """The input of ``call``: ``z`` (``[z, labels]`` if conditional)."""
        z = tf.TensorSpec((None, *self.latent_shape), tf.float32, name="z")
        return [z if self.num_classes is None else [z, tf.TensorSpec((None,), tf.int32,
                                                                     name="labels")]]

    def export_metadata(self) -> dict[str, Any]:
        """The latent space's size and the signature that renders it."""
        return {"latent_dim": self.latent_dim,
                "latent_shape": [int(d) for d in self.latent_shape],
                "render_signature": self.render_signature,
                "sample_stream": SEEDED_SAMPLE_STREAM}


def adam(learning_rate: float, weight_decay: float = 0.0, **kwargs: Any):
    """Adam, or AdamW with decoupled weight decay (Loshchilov & Hutter 2019) when it is > 0:
    Keras' optimizers with TensorFlow's fused update kernel (:mod:`tf_genai.optimizers`)."""
    if weight_decay:
        return optimizers.AdamW(learning_rate, weight_decay=weight_decay, **kwargs)
    return optimizers.Adam(learning_rate, **kwargs)

"""The GAN model: two networks, two optimizers, one ``train_step`` that updates each in turn.

Goodfellow et al. 2014, "Generative Adversarial Nets" (arXiv:1406.2661); DCGAN (Radford et al.
2016, arXiv:1511.06434); WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein
GANs", arXiv:1704.00028); conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784).

One class serves every zoo name; the zoo entries only change constructor defaults.

Differentiable augmentation (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient
GAN Training", arXiv:2006.10738). With an ``augment`` policy, every image the discriminator
sees in training is augmented first (:mod:`tf_genai.augment`): the real and the fake batch of
each discriminator update, and the fakes of the generator update, whose gradient flows back
through the augmentation. Each batch's random parameters are drawn for the global batch from
the model's seed generator and sliced per replica. ``test_step`` and sampling never augment.
``tf_genai.training`` turns the published policy on for small data sets.

Training step. ``train_step`` runs ``n_critic`` discriminator updates (:meth:`GAN._d_step`) and
then one generator update (:meth:`GAN._g_update`). The ``n_critic`` critic updates are an unrolled
Python loop inside the one traced step and all reuse the step's real batch, each with fresh noise
and a fresh interpolation weight alpha (as the Keras WGAN-GP example does): a ``fit`` step is
one generator update and an epoch sees every real image ``n_critic`` times. Splitting the batch
into ``n_critic`` chunks would have given the critic batches of 12 at our batch size of 64.

One generator forward pass per step. The last critic update and the generator update share
one batch of fakes: ``train_step`` runs the generator once (training mode) under the generator's
gradient tape, the discriminator updates on those fakes with the gradient stopped, and then the
generator update scores the *same* fakes with the *updated* discriminator and differentiates
through the recorded generator pass. The updates stay alternating (the generator step sees the
new discriminator, as in Goodfellow et al.'s Algorithm 1); what differs from the Algorithm is
that the generator step reuses the critic step's noise instead of drawing a fresh batch, as
PyTorch's reference DCGAN (``examples/dcgan``) does. The generator's weights do not change
between the two uses, so the gradient is exactly that of a fresh forward pass on that noise
(``tests/models/test_gan.py`` checks it against one). It saves one of the two generator forward
passes per step: a ``dcgan`` step ran 1.2x faster (``benchmarks/throughput.py``).

Each update changes its own network only. Critic updates before the last one (``n_critic`` > 1)
draw their own fakes from the generator in training mode through ``stateless_call``, so the
generator's batch-norm moving statistics follow the shared pass only and a discriminator update
leaves every generator weight untouched. The discriminators have no batch norm, so running the
discriminator in the generator update changes no discriminator weight either (only its dropout
RNG state and a spectrally normalised discriminator's power-iteration vectors advance).

Generator weight averaging. With ``ema_decay`` > 0 (the default, 0.999) the model keeps a second
generator, ``ema_generator``, whose every weight (batch-norm statistics included) is an
exponential moving average of the trained generator's, updated after each generator step
(Yazici et al. 2019, "The Unusual Effectiveness of Averaging in GAN Training",
arXiv:1806.04498; Karras et al. 2018, arXiv:1710.10196). The decay warms up as in
``tf.train.ExponentialMovingAverage``: ``min(ema_decay, (1 + t) / (10 + t))`` at update ``t``,
so a short run is not dominated by the initial weights. ``generate``, ``sample``, ``call`` in
inference mode and every export use the averaged generator; training and ``test_step`` use the
trained one. ``ema_decay=0`` turns it off.

Distribution and mixed precision. Noise, alpha and the dropout masks are drawn for the global
batch and sliced per replica (:func:`tf_genai.distribute.random_for_batch`), and the
generator's batch norm is synchronised over replicas, so N replicas see what one device sees.
Each batch-mean loss goes through the family contract's ``scale_loss`` inside the tape (the
replica's share of the global batch, then the optimizer's loss scale). Losses are float32 (the
networks' last layers are float32 and the loss functions cast). Metrics get the unscaled
values.

Early stopping is refused: no GAN loss measures sample quality (``val_g_loss`` is lowest when
the discriminator is weakest), so it would keep an arbitrary epoch. Train for a fixed number
of epochs or a time budget and score samples (``tf-genai evaluate``).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops

from tf_genai import augment as augment_lib
from tf_genai import distribute
from tf_genai import losses as gan_loss_lib
from tf_genai.capabilities import Capabilities
from tf_genai.errors import ConfigError
from tf_genai.layers import batch_segments
from tf_genai.models.base import LatentModel, adam
from tf_genai.models.gan.networks import ARCHITECTURES, build_discriminator, build_generator
from tf_genai.registry import serializable


def default_optimizer(gradient_penalty: bool = False, learning_rate: float | None = None,
                      weight_decay: float = 0.0) -> keras.optimizers.Optimizer:
    """The papers' optimizer for one network.

    DCGAN (Radford et al. 2016, section 4): Adam(2e-4, beta_1=0.5). With a gradient penalty,
    WGAN-GP's Algorithm 1 (Gulrajani et al. 2017): Adam(1e-4, beta_1=0, beta_2=0.9).
    ``learning_rate`` replaces the paper's rate; ``weight_decay`` > 0 makes it AdamW.
    """
    if gradient_penalty:
        lr = 1e-4 if learning_rate is None else learning_rate
        return adam(lr, weight_decay, beta_1=0.0, beta_2=0.9)
    return adam(2e-4 if learning_rate is None else learning_rate, weight_decay, beta_1=0.5)


# The zoo names and defaults of this class are rows of tf_genai/zoo.py.
@serializable
class GAN(LatentModel):
    """A generative adversarial network with its own two-optimizer ``train_step``.

    Args:
        image_shape: (H, W, C) of the images; any size builds.
        latent_dim: size of the Gaussian noise z.
        architecture: ``"conv"`` (DCGAN), ``"mlp"`` (Goodfellow et al. 2014) or ``"resnet"``
            (SNGAN's residual networks with a spectrally normalised discriminator; networks.py).
        num_classes: number of label classes for a conditional GAN; ``None`` = unconditional.
        loss: a name from :data:`tf_genai.losses.GAN_LOSSES` (``"non_saturating"`` default).
        gp_weight: weight of the WGAN-GP gradient penalty; 0 disables it.
        n_critic: discriminator updates per generator update.
        label_smoothing: one-sided label smoothing of the real target (Salimans et al. 2016).
        base_filters: width of the conv discriminator (its first layer's filter count). 32,
            not DCGAN's 64: on two CPU cores a 64-wide discriminator halved the steps per
            second, and within a 10-minute budget the steps mattered more (gan_quality.py).
        generator_filters: width of the conv generator (its last hidden layer's filter count);
            ``None`` = twice ``base_filters``. A 64-wide generator cost ~3% of a step more
            than a 32-wide one here and lowered the FID at equal time.
        generator_hidden: ``conv`` only: units of a dense layer (batch norm + ReLU) between z
            and the generator's projection; 0 = none (the DCGAN paper's generator).
        discriminator_hidden: ``conv`` only: units of a dense layer (LeakyReLU, dropout) between
            the discriminator's convolutions and its logit; 0 = none.
        dropout: discriminator dropout rate (after every hidden layer, or every resnet block);
            ``None`` = 0.3 for conv and mlp, 0 for resnet (spectral normalisation regularises
            that discriminator, as in Miyato et al. 2018).
        augment: a differentiable augmentation policy applied to everything the discriminator
            sees in training (:func:`tf_genai.augment.check_policy`, e.g.
            ``"color,translation,cutout"``, DiffAugment's); ``""`` = none.
        augment_strength: the probability that each transform of the policy applies to an
            image (0 = the identity, 1 = DiffAugment as published).
        ema_decay: decay of the generator weight average that sampling uses (module docstring);
            0 samples from the trained generator itself.
        seed: seeds the initial weights, the dropout masks and the model's own random
            generator (noise, alpha, sampling).
    """

    family = "gan"
    CAPABILITIES = Capabilities(latent=True, augments=True)
    data_range = "symmetric"
    binarize = False
    metric_names = ("d_loss", "g_loss", "d_loss_real", "d_loss_fake")  # + "gp" with a penalty
    render_signature = "generate"
    serving_default = "generate"
    tflite_signature = "generate"
    tflite_part = "generator"
    early_stopping_monitor = None
    early_stopping_refusal = (
        "no GAN loss measures sample quality (val_g_loss is lowest at the weakest "
        "discriminator's epoch), so early stopping would keep an arbitrary epoch; train a fixed "
        "number of epochs or a time budget and score the samples with tf-genai evaluate")

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (28, 28, 1),
        latent_dim: int = 100,
        architecture: str = "conv",
        num_classes: int | None = None,
        loss: str = "non_saturating",
        gp_weight: float = 0.0,
        n_critic: int = 1,
        label_smoothing: float = 0.0,
        base_filters: int = 32,
        generator_filters: int | None = None,
        generator_hidden: int = 0,
        discriminator_hidden: int = 0,
        dropout: float | None = None,
        ema_decay: float = 0.999,
        augment: str = "",
        augment_strength: float = 1.0,
        seed: int = 0,
        name: str = "gan",
    ):
        super().__init__(name=name)
        if architecture not in ARCHITECTURES:
            raise ConfigError(
                f"GAN: unknown architecture {architecture!r}; "
                f"choose one of {', '.join(ARCHITECTURES)}"
            )
        if gp_weight < 0 or int(n_critic) < 1:
            raise ConfigError(
                f"GAN: need gp_weight >= 0 and n_critic >= 1, got {gp_weight}, {n_critic}"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"GAN: label_smoothing must lie in [0, 1), got {label_smoothing}")
        if dropout is None:
            dropout = 0.0 if architecture == "resnet" else 0.3
        if not 0.0 <= dropout < 1.0 or int(base_filters) < 1:
            raise ConfigError(
                f"GAN: need 0 <= dropout < 1 and base_filters >= 1, got {dropout}, {base_filters}"
            )
        if not 0.0 <= ema_decay < 1.0:
            raise ConfigError(f"GAN: ema_decay must lie in [0, 1), got {ema_decay}")
        self._init_contract(image_shape=image_shape, latent_dim=latent_dim,
                            num_classes=num_classes, seed=seed)
        image_shape = self.image_shape
        self._d_loss_fn, self._g_loss_fn = gan_loss_lib.gan_losses(loss)  # ConfigError if unknown

        self.architecture = architecture
        self.loss_name = loss
        self.gp_weight = float(gp_weight)
        self.n_critic = int(n_critic)
        self.label_smoothing = float(label_smoothing)
        self.base_filters = int(base_filters)
        self.generator_filters = (
            2 * self.base_filters if generator_filters is None else int(generator_filters)
        )
        if self.generator_filters < 1:
            raise ConfigError(f"GAN: generator_filters must be >= 1, got {generator_filters}")
        self.generator_hidden = int(generator_hidden)
        self.discriminator_hidden = int(discriminator_hidden)
        if min(self.generator_hidden, self.discriminator_hidden) < 0:
            raise ConfigError(
                "GAN: generator_hidden and discriminator_hidden must be >= 0 (0 = no dense "
                f"layer), got {generator_hidden}, {discriminator_hidden}"
            )
        if architecture != "conv" and (self.generator_hidden or self.discriminator_hidden):
            raise ConfigError(
                "GAN: generator_hidden / discriminator_hidden add a dense layer to the conv "
                f"networks; the {architecture} networks have none (leave them 0)"
            )
        self.dropout = float(dropout)
        self.ema_decay = float(ema_decay)
        self.augment = augment_lib.check_policy(augment)  # ConfigError for an unknown policy
        self.augment_strength = augment_lib.check_strength(augment_strength)

        self.generator = build_generator(
            image_shape, self.latent_dim, architecture, self.num_classes, self.generator_filters,
            seed=self.seed, hidden_units=self.generator_hidden,
        )
        self.discriminator = build_discriminator(
            image_shape, architecture, self.num_classes, self.base_filters, self.dropout,
            seed=self.seed, hidden_units=self.discriminator_hidden,
        )
        self.ema_generator = None
        if self.ema_decay > 0:
            self.ema_generator = build_generator(
                image_shape, self.latent_dim, architecture, self.num_classes,
                self.generator_filters, seed=self.seed, name="ema_generator",
                hidden_units=self.generator_hidden,
            )
            # The family contract's weight average (base.GenerativeModel._init_weight_average).
            self._init_weight_average("generator", "ema_generator", self.ema_decay)
        self.d_optimizer = None
        self.g_optimizer = None

        self._init_trackers([*self.metric_names, *(["gp"] if self.gp_weight > 0 else [])])
        self.built = True

    # ---------------------------------------------------------------- config and compile

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, exactly."""
        return {
            "image_shape": list(self.image_shape),
            "latent_dim": self.latent_dim,
            "architecture": self.architecture,
            "num_classes": self.num_classes,
            "loss": self.loss_name,
            "gp_weight": self.gp_weight,
            "n_critic": self.n_critic,
            "label_smoothing": self.label_smoothing,
            "base_filters": self.base_filters,
            "generator_filters": self.generator_filters,
            "generator_hidden": self.generator_hidden,
            "discriminator_hidden": self.discriminator_hidden,
            "dropout": self.dropout,
            "ema_decay": self.ema_decay,
            "augment": self.augment,
            "augment_strength": self.augment_strength,
            "seed": self.seed,
            "name": self.name,
        }

    def compile(
        self,
        d_optimizer: keras.optimizers.Optimizer | None = None,
        g_optimizer: keras.optimizers.Optimizer | None = None,
        loss: str | None = None,
        run_eagerly: bool = False,
        jit_compile: bool | str = "auto",
        **kwargs: Any,
    ) -> None:
        """Set the two optimizers (default :func:`default_optimizer` each) and optionally the loss.

        A ``loss`` given here replaces the constructor's and is stored in the config, so a saved
        model keeps it. Under the ``mixed_float16`` policy each optimizer is wrapped in a
        ``LossScaleOptimizer``.
        """
        if loss is not None:
            self._d_loss_fn, self._g_loss_fn = gan_loss_lib.gan_losses(loss)
            self.loss_name = loss
        # Keras' own compile, with no model.optimizer: the two optimizers are attributes.
        keras.Model.compile(self, optimizer=None, run_eagerly=run_eagerly,
                            jit_compile=jit_compile, **kwargs)
        defaults = self.default_optimizers()
        d_optimizer = keras.optimizers.get(d_optimizer) or defaults["d_optimizer"]
        g_optimizer = keras.optimizers.get(g_optimizer) or defaults["g_optimizer"]
        # The model's own policy, not the global one: a model built under mixed_float16 and
        # compiled (or reloaded) after the global policy changed still needs loss scaling.
        if self.generator.dtype_policy.name == "mixed_float16":
            scaled = keras.optimizers.LossScaleOptimizer
            if not isinstance(d_optimizer, scaled):
                d_optimizer = scaled(d_optimizer, name="d_loss_scale_optimizer")
            if not isinstance(g_optimizer, scaled):
                g_optimizer = scaled(g_optimizer, name="g_loss_scale_optimizer")
        # Attributes that are optimizers are saved by Keras 3's .keras format (both restored).
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        # Built now, not in the first traced step: a backup or a .keras file can then restore
        # their slots, and fit needs no symbolic build (base.GenerativeModel).
        for _, optimizer, variables in self.training_optimizers():
            if not optimizer.built:
                optimizer.build(variables)

    def default_optimizers(self, learning_rate=None, weight_decay=0.0) -> dict[str, Any]:
        """One :func:`default_optimizer` per network (the WGAN-GP one with a penalty)."""
        make = lambda: default_optimizer(self.gp_weight > 0, learning_rate, weight_decay)  # noqa: E731
        return {"d_optimizer": make(), "g_optimizer": make()}

    def training_optimizers(self) -> list[tuple[str, Any, list[Any]]]:
        """Each optimizer with the network it updates (what a backup saves and restores)."""
        if self.d_optimizer is None:
            return []
        return [("d_optimizer", self.d_optimizer, self.discriminator.trainable_variables),
                ("g_optimizer", self.g_optimizer, self.generator.trainable_variables)]

    def get_compile_config(self) -> dict[str, Any]:
        if not self.compiled or self.d_optimizer is None:
            return {}
        return {
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "loss": self.loss_name,
        }

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Recompile on load and build both optimizers so their saved state can be restored."""
        if not config:
            return
        self.compile(
            d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
            g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
            loss=config.get("loss"),
        )

    # ---------------------------------------------------------------- sampling

    def _gen_inputs(self, z, labels):
        # Labels reaching here are checked (unpack, generate); no second in-graph check.
        return z if self.num_classes is None else [z, labels]

    _disc_inputs = _gen_inputs

    @property
    def sampling_generator(self) -> keras.Model:
        """The network that draws samples: the weight average, or the generator without one."""
        return self.generator if self.ema_generator is None else self.ema_generator

    def call(self, inputs, training: bool = False):
        """``z`` or ``[z, labels]`` -> images in [-1, 1]: the trained generator in training
        mode, the sampling generator (the weight average) in inference mode."""
        if training:
            return self.generator(inputs, training=True)
        return self.sampling_generator(inputs, training=False)

    def generate(self, z, labels=None):
        """Images in [-1, 1] for noise ``z`` (batch, latent_dim): the sampling generator
        (:attr:`sampling_generator`) in inference mode."""
        z = ops.convert_to_tensor(z, "float32")  # (batch, latent)
        labels = self.check_labels(labels, ops.shape(z)[0])
        return self.sampling_generator(self._gen_inputs(z, labels), training=False)

    def render(self, z, labels=None):
        """The family contract's latent -> image map: :meth:`generate`."""
        return self.generate(z, labels)

    # ---------------------------------------------------------------- training

    def _noise(self, batch_size):
        """z ~ N(0, I) (batch, latent): drawn for the global batch, so each replica gets its own."""
        return distribute.random_for_batch(
            keras.random.normal, (batch_size, self.latent_dim), seed=self.seed_generator
        )

    def _fakes_for_d_step(self, batch_size, labels):
        """Generator output in training mode whose state updates (BN statistics) are dropped.

        :meth:`_d_step` stops the gradient into any fakes it trains on, these included.
        """
        z = self._noise(batch_size)  # (batch, latent)
        fake, _ = self.generator.stateless_call(
            [v.value for v in self.generator.trainable_variables],
            [v.value for v in self.generator.non_trainable_variables],
            self._gen_inputs(z, labels),
            training=True,
        )
        return fake  # (batch, H, W, C)

    def _augment(self, images):
        """The ``augment`` policy on one batch (batch, H, W, C) before the discriminator: its
        own random parameters, drawn for the global batch (identity without a policy)."""
        if not self.augment or self.augment_strength == 0.0:
            return images
        uniforms = distribute.random_for_batch(  # (batch, K) U[0, 1)
            keras.random.uniform, (ops.shape(images)[0], augment_lib.num_uniforms(self.augment)),
            seed=self.seed_generator,
        )
        return augment_lib.apply(images, uniforms, self.augment, self.augment_strength)

    def _d_losses(self, real, fake, labels, training: bool) -> dict[str, Any]:
        """Discriminator loss terms (float32 scalars) on a real and a fake batch (each
        augmented in training)."""
        batch_size = ops.shape(real)[0]
        if training:  # each half its own draw: a draw for both would mix replicas' rows
            real, fake = self._augment(real), self._augment(fake)
        both = ops.concatenate([real, ops.cast(fake, real.dtype)], axis=0)  # (2 batch, H, W, C)
        both_labels = None if labels is None else ops.concatenate([labels, labels], axis=0)
        with batch_segments(2):  # dropout masks per part, so replicas drop what one device does
            logits = self.discriminator(self._disc_inputs(both, both_labels), training=training)
        real_logits, fake_logits = logits[:batch_size], logits[batch_size:]  # (batch, 1) each
        d_real, d_fake = self._d_loss_fn(
            real_logits, fake_logits, self.label_smoothing, return_parts=True
        )
        terms = {"d_loss_real": d_real, "d_loss_fake": d_fake, "d_loss": d_real + d_fake}
        if self.gp_weight > 0:
            alpha = distribute.random_for_batch(  # one interpolation weight per example, U[0, 1]
                keras.random.uniform, (batch_size, 1, 1, 1), seed=self.seed_generator
            )
            terms["gp"] = gan_loss_lib.gradient_penalty(
                lambda x: self.discriminator(self._disc_inputs(x, labels), training=training),
                real,
                fake,
                alpha,
            )
            terms["d_loss"] = terms["d_loss"] + self.gp_weight * terms["gp"]
        return terms

    def _g_losses(self, fake, labels, training: bool) -> dict[str, Any]:
        """Generator loss on a batch of fakes (augmented in training, differentiably)."""
        if training:
            fake = self._augment(fake)
        fake_logits = self.discriminator(self._disc_inputs(fake, labels), training=training)
        return {"g_loss": self._g_loss_fn(fake_logits)}

    def _d_step(self, real, labels=None, fake=None) -> dict[str, Any]:
        """One discriminator update on a real batch; returns the unscaled loss terms.

        ``fake``: the fakes to train on (no gradient flows into them); ``None`` draws a fresh
        batch without touching any generator weight (:meth:`_fakes_for_d_step`).
        """
        self._require_compiled()
        if fake is None:
            fake = self._fakes_for_d_step(ops.shape(real)[0], labels)
        fake = ops.stop_gradient(fake)  # (batch, H, W, C)
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            terms = self._d_losses(real, fake, labels, training=True)
            scaled = self.scale_loss(terms["d_loss"], self.d_optimizer, ops.shape(real)[0])
        self.d_optimizer.apply(tape.gradient(scaled, variables), variables)
        return terms

    def _generate_on_tape(self, batch_size, labels=None):
        """Fresh fakes from the generator in training mode, recorded on a new gradient tape.

        Returns ``(tape, fake)``; :meth:`_g_update` re-enters the tape to finish the update.
        """
        z = self._noise(batch_size)  # (batch, latent)
        with tf.GradientTape() as tape:
            fake = self.generator(self._gen_inputs(z, labels), training=True)  # (batch, H, W, C)
        return tape, fake

    def _g_update(self, tape, fake, labels=None) -> dict[str, Any]:
        """The generator update on fakes whose generator pass ``tape`` recorded.

        The discriminator runs now, with its current (possibly just updated) weights, and the
        gradient flows back through the recorded pass; returns the unscaled loss.
        """
        variables = self.generator.trainable_variables
        with tape:  # re-entered: the discriminator pass and the loss join the generator pass
            terms = self._g_losses(fake, labels, training=True)
            scaled = self.scale_loss(terms["g_loss"], self.g_optimizer, ops.shape(fake)[0])
        self.g_optimizer.apply(tape.gradient(scaled, variables), variables)
        self.update_weight_average()
        return terms

    def _require_compiled(self) -> None:
        if self.d_optimizer is None or self.g_optimizer is None:
            raise ConfigError(f"{self.name}: call compile() before training")

    def train_step(self, data):
        """``n_critic`` discriminator updates, then one generator update (see module docstring)."""
        self._require_compiled()
        real, labels = self.unpack(data)
        for _ in range(self.n_critic - 1):  # unrolled at trace time; n_critic is a small int
            self.update_metrics(self._d_step(real, labels))
        # The last critic update and the generator update share one generator pass.
        tape, fake = self._generate_on_tape(ops.shape(real)[0], labels)
        self.update_metrics(self._d_step(real, labels, fake=fake))
        return self.update_metrics(self._g_update(tape, fake, labels))

    def test_step(self, data):
        """The same loss terms as ``train_step`` with both networks in inference mode."""
        real, labels = self.unpack(data)
        z = self._noise(ops.shape(real)[0])
        fake = self.generator(self._gen_inputs(z, labels), training=False)
        self.update_metrics(self._d_losses(real, fake, labels, training=False))
        return self.update_metrics(self._g_losses(fake, labels, training=False))

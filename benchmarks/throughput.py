"""Training throughput of tf_genai against the keras-io pattern and a plain PyTorch loop.

Every configuration runs in its own worker subprocess (so each has its own peak resident
memory), kept alive for the whole run; the parent interleaves the timed rounds A, B, C, A, B,
C, ... so machine load drifts hit every implementation alike, and prints medians, ratios
(of the medians, and "paired": the median of the per-round ratios, which a slow spell of the
machine spanning a round cancels out of; on this VM single-process speed jumps between two
levels from round to round, so both are printed and 10+ rounds are worth the minutes),
achieved GFLOP/s against a measured matmul peak, and peak RSS as markdown tables.

Groups (one network each; every implementation trains the same data, batch 128, Adam with
float32 weights: Keras' in the keras-io rows, ``tf_genai.optimizers``' fused one in the tf_genai
and kerasio+opts rows):

* ``vae_kerasio`` — the keras-io conv VAE (encoder 3x3 conv 32-64 stride 2 ReLU, dense 16,
  latent 2; decoder dense 7*7*64, 3x3 conv-transpose 64-32 stride 2, 1-channel sigmoid).
  ``keras-io``: the keras-io example's ``VAE`` class and ``train_step``, NumPy arrays into
  ``fit``, ``compile(optimizer=Adam())`` defaults. ``torch``: the same network, a PyTorch loop.
  ``tf_genai``: the zoo VAE at the keras-io sizes (``filters=(32, 64), hidden_units=(16,),
  latent_dim=2``; its own layers: 4x4 swish convs, sub-pixel decoder, logits, dynamic
  binarization) trained the tf_genai way (``devices.training_options()`` + ``make_dataset``).
  ``kerasio+opts``: the exact keras-io network and ``train_step`` under the tf_genai options
  (policy, steps_per_execution, ``make_dataset``), which isolates the training levers.
* ``vae`` / ``dcgan`` — the zoo defaults. ``tf_genai``: ``create(name)`` + training options.
  ``keras-io``: the keras-io ``train_step`` (VAE; DCGAN's ``dcgan_overriding_train_step``)
  over the same zoo networks built in float32, NumPy arrays into ``fit``. ``torch``: the same
  networks rebuilt layer by layer in PyTorch (:func:`torch_from_spec`), in training mode.
  ``keras-io+training`` (DCGAN): the keras-io step with ``training=True`` on every network
  call. The example omits it, so in Keras 3 its step runs the generator's batch norm on frozen
  moving statistics (and any dropout off): less work than a correct step
  (:func:`kerasio_gan_class`). Both rows are printed; the ratios say which they divide by.
* ``gan_kerasio`` — the keras-io MNIST GAN networks (``conditional_gan.py`` without labels:
  D conv 64-128 stride 2 + global max pool; G dense 7*7*128, conv-transpose 128-128, 7x7 conv
  sigmoid), the DCGAN example's ``train_step``; ``kerasio+opts`` as above. The DCGAN example's
  own 64x64 CelebA networks are ~20 GFLOP per image step, too slow for 2 CPU cores.

PyTorch rows: each group runs every configuration in :data:`TORCH_IMPLS` -- plain fp32
eager, ``channels_last``, bf16 autocast (only on a CPU with bf16 units), ``torch.compile``, and
all three together -- and the fastest by median is the peer ("best torch" columns; the line
under the table names it). A torch worker never imports TensorFlow: a Keras subprocess
(:func:`torch_problem_worker`) describes the networks (:func:`keras_network_spec`) and writes
the images, and the worker reports ``tensorflow_loaded`` (the benchmark fails a torch row that
has it). PyPI's torch 2.14 imports ``torch._dynamo``/triton from ``torch.optim`` and crashed
in a process that had loaded TensorFlow; this split is what makes the rows run on a fresh
``pip install -e ".[bench]"``.

FLOPs are counted analytically from the Keras layers (2 x multiply-adds of Dense, Conv2D and
Conv2DTranspose; elementwise ops ignored) and a training step is taken as 3x the forward pass
(forward + two backward products). A GAN step per real image: D sees 2 images (3x), G's fakes
are made twice (1x for the D step, 3x in the G step) and D is differentiated once more (3x):
``4 G + 9 D``. tf_genai's step makes its fakes once and both updates use them (the D update
first, then the G update against the updated D; :mod:`tf_genai.models.gan.model`): ``3 G + 9 D``.
The PyTorch ``dcgan`` row does the same, as PyTorch's own DCGAN example does (``fake.detach()``
for D, then ``netD(fake)`` for G), so it is the equivalent loop; the keras-io rows draw fresh
noise for the G step as the keras-io example does.

Last, the time to draw 256 samples from the default ``vae`` and ``dcgan``: eager
``model.sample`` against :func:`tf_genai.devices.compiled_sampler`.

Usage (from the repository root; PyTorch rows need the ``bench`` extra: ``pip install torch``)::

    python benchmarks/throughput.py                       # all groups, 15 rounds
    python benchmarks/throughput.py --groups vae_kerasio vae --rounds 3
    python benchmarks/throughput.py --quick               # 1 round, small epochs: a smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "mnist"
BATCH = 128
MARK = "@@bench "  # prefix of protocol lines on a worker's stdout

# group -> (images per timed round, implementations in interleaving order)
GROUPS: dict[str, tuple[int, list[str]]] = {
    "vae_kerasio": (8000, ["tf_genai", "kerasio+opts", "keras-io", "torch*"]),
    "vae": (8000, ["tf_genai", "keras-io", "torch*"]),
    "dcgan": (2048, ["tf_genai", "keras-io", "keras-io+training", "torch*"]),
    "gan_kerasio": (512, ["kerasio+opts", "keras-io", "torch*"]),
}  # "torch*": every configuration in TORCH_IMPLS


# =============================================================================================
# Networks: keras-io architectures
# =============================================================================================


def kerasio_vae_networks(latent_dim: int = 2, sampling: bool = True):
    """The keras-io ``vae.py`` encoder and decoder (the decoder's sigmoid output in float32)."""
    import keras
    from keras import layers, ops

    class Sampling(layers.Layer):
        """z = mean + exp(log_var / 2) * eps, as in keras-io."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            eps = keras.random.normal(ops.shape(z_mean), dtype=z_mean.dtype,
                                      seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * eps

    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(inputs)
    x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(16, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    outputs = [z_mean, z_log_var]
    if sampling:
        outputs.append(Sampling()([z_mean, z_log_var]))
    encoder = keras.Model(inputs, outputs, name="encoder")

    latent = keras.Input(shape=(latent_dim,))
    x = layers.Dense(7 * 7 * 64, activation="relu")(latent)
    x = layers.Reshape((7, 7, 64))(x)
    x = layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
    out = layers.Conv2DTranspose(1, 3, activation="sigmoid", padding="same", dtype="float32")(x)
    decoder = keras.Model(latent, out, name="decoder")
    return encoder, decoder


def kerasio_gan_networks(latent_dim: int = 128):
    """keras-io ``conditional_gan.py``'s MNIST networks without the label channels."""
    import keras
    from keras import layers

    discriminator = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(64, 3, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(128, 3, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.GlobalMaxPooling2D(),
        layers.Dense(1, dtype="float32"),
    ], name="discriminator")
    generator = keras.Sequential([
        keras.Input(shape=(latent_dim,)),
        layers.Dense(7 * 7 * 128),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Reshape((7, 7, 128)),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(1, 7, padding="same", activation="sigmoid", dtype="float32"),
    ], name="generator")
    return generator, discriminator


# =============================================================================================
# keras-io training steps (the examples' train_step, losses cast to float32 for mixed precision)
# =============================================================================================


def kerasio_vae_class():
    """The keras-io ``VAE`` model: ``train_step`` under ``GradientTape``, three Mean trackers."""
    import keras
    import tensorflow as tf
    from keras import ops

    class KerasIOVAE(keras.Model):
        def __init__(self, encoder, decoder, latent_dim, from_logits=False, **kwargs):
            super().__init__(**kwargs)
            self.encoder, self.decoder = encoder, decoder
            self.latent_dim, self.from_logits = latent_dim, from_logits
            self.seed_generator = keras.random.SeedGenerator(1337)
            self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
            self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
            self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

        @property
        def metrics(self):
            return [self.total_loss_tracker, self.reconstruction_loss_tracker,
                    self.kl_loss_tracker]

        def train_step(self, data):
            with tf.GradientTape() as tape:
                outs = self.encoder(data)
                z_mean, z_log_var = ops.cast(outs[0], "float32"), ops.cast(outs[1], "float32")
                if len(outs) == 3:  # the keras-io encoder samples z itself
                    z = outs[2]
                else:  # a zoo encoder returns (mean, log_var): sample as keras-io's Sampling
                    eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
                    z = z_mean + ops.exp(0.5 * z_log_var) * eps
                reconstruction = ops.cast(self.decoder(z), "float32")
                reconstruction_loss = ops.mean(ops.sum(keras.losses.binary_crossentropy(
                    data, reconstruction, from_logits=self.from_logits), axis=(1, 2)))
                kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
                kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
                total_loss = reconstruction_loss + kl_loss
            grads = tape.gradient(total_loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
            self.total_loss_tracker.update_state(total_loss)
            self.reconstruction_loss_tracker.update_state(reconstruction_loss)
            self.kl_loss_tracker.update_state(kl_loss)
            return {m.name: m.result() for m in self.metrics}

    return KerasIOVAE


def kerasio_gan_class(training: bool | None = None):
    """keras-io ``dcgan_overriding_train_step``'s ``GAN``: D on fakes+reals, then G.

    The example calls ``self.generator(z)`` and ``self.discriminator(x)`` without ``training``,
    which in Keras 3 runs dropout and batch norm in *inference* mode inside ``train_step``
    (dropout off, batch norm on its moving statistics, which then never move). On the zoo
    networks, which have both, that is less work than a correct step. ``training=True`` gives
    the ``keras-io+training`` row: the same step with the layers in training mode.
    """
    import keras
    import tensorflow as tf
    from keras import ops

    class KerasIOGAN(keras.Model):
        def __init__(self, discriminator, generator, latent_dim):
            super().__init__()
            self.discriminator, self.generator = discriminator, generator
            self.latent_dim = latent_dim
            self.seed_generator = keras.random.SeedGenerator(1337)

        def compile(self, d_optimizer, g_optimizer, loss_fn, **kwargs):
            super().compile(**kwargs)
            self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn
            self.d_loss_metric = keras.metrics.Mean(name="d_loss")
            self.g_loss_metric = keras.metrics.Mean(name="g_loss")

        @property
        def metrics(self):
            return [self.d_loss_metric, self.g_loss_metric]

        def train_step(self, real_images):
            batch_size = ops.shape(real_images)[0]
            z = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
            generated = ops.cast(self.generator(z, training=training), real_images.dtype)
            combined = ops.concatenate([generated, real_images], axis=0)
            labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], 0)
            labels += 0.05 * tf.random.uniform(tf.shape(labels))  # keras-io's label noise
            with tf.GradientTape() as tape:
                predictions = ops.cast(self.discriminator(combined, training=training), "float32")
                d_loss = self.loss_fn(labels, predictions)
            grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
            z = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
            misleading_labels = ops.zeros((batch_size, 1))
            with tf.GradientTape() as tape:
                fakes = self.generator(z, training=training)
                predictions = ops.cast(self.discriminator(fakes, training=training), "float32")
                g_loss = self.loss_fn(misleading_labels, predictions)
            grads = tape.gradient(g_loss, self.generator.trainable_weights)
            self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
            self.d_loss_metric.update_state(d_loss)
            self.g_loss_metric.update_state(g_loss)
            return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}

    return KerasIOGAN


# =============================================================================================
# FLOP counting
# =============================================================================================


def forward_flops(model) -> int:
    """FLOPs of one image through a Keras functional/Sequential model (2 x multiply-adds)."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)):
            kh, kw = layer.kernel_size
            in_shape, out_shape = layer.input.shape, layer.output.shape
            if isinstance(layer, layers.Conv2DTranspose):  # each input pixel scatters a kernel
                total += 2 * in_shape[1] * in_shape[2] * in_shape[3] * kh * kw * out_shape[3]
            else:
                total += 2 * out_shape[1] * out_shape[2] * out_shape[3] * kh * kw * in_shape[3]
        elif isinstance(layer, layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def vae_step_flops(encoder, decoder) -> int:
    """Forward + backward FLOPs per image of a VAE step: 3 x (encoder + decoder)."""
    return 3 * (forward_flops(encoder) + forward_flops(decoder))


def gan_step_flops(generator, discriminator, shared_pass: bool = False) -> int:
    """FLOPs per real image of one D step + one G step: ``4 G + 9 D``, or ``3 G + 9 D`` when
    both updates share one generator pass (module docstring)."""
    g_passes = 3 if shared_pass else 4
    return g_passes * forward_flops(generator) + 9 * forward_flops(discriminator)


# =============================================================================================
# PyTorch: the same networks, described in the Keras process, built in a torch-only process
# =============================================================================================

# A PyTorch configuration is "torch" plus "+"-joined options; each is one lever a PyTorch user
# on a CPU would reach for. The strongest one measured is the peer the ratios divide by.
TORCH_OPTIONS = {
    "cl": "channels_last memory format (images and conv weights)",
    "bf16": "torch.autocast('cpu', dtype=torch.bfloat16) around forward and loss",
    "compile": "torch.compile (inductor) of each network",
}
TORCH_IMPLS = ["torch", "torch+cl", "torch+bf16", "torch+compile", "torch+compile+bf16+cl"]


def keras_network_spec(model) -> dict:
    """A JSON-able description of a Keras network for :func:`torch_from_spec`.

    Walks the graph by tensor (multi-output networks such as an encoder's mean and
    log-variance heads work). Runs in a process with Keras; the torch process never imports
    TensorFlow (PyTorch 2.14's optimizer imports ``torch._dynamo`` and triton, which crash in a
    process that has loaded TensorFlow).
    """
    from keras import layers

    from tf_genai.layers import FastDropout

    def act(a):
        return a if isinstance(a, str) else getattr(a, "__name__", "linear")

    def describe(layer) -> dict:
        in_shape = layer.input.shape
        if isinstance(layer, (layers.Conv2DTranspose, layers.Conv2D)):
            op = "conv_transpose" if isinstance(layer, layers.Conv2DTranspose) else "conv"
            return {"op": op, "in": in_shape[-1], "out": layer.filters,
                    "k": layer.kernel_size[0], "s": layer.strides[0], "bias": layer.use_bias,
                    "act": act(layer.activation)}
        if isinstance(layer, layers.Dense):
            return {"op": "dense", "in": in_shape[-1], "out": layer.units,
                    "bias": layer.use_bias, "act": act(layer.activation)}
        if isinstance(layer, layers.BatchNormalization):
            return {"op": "batch_norm", "dims": len(in_shape), "c": in_shape[-1],
                    "eps": layer.epsilon, "momentum": 1 - layer.momentum}
        if isinstance(layer, layers.LeakyReLU):
            return {"op": "leaky_relu", "slope": float(layer.negative_slope)}
        if isinstance(layer, layers.ReLU):
            return {"op": "act", "act": "relu"}
        if isinstance(layer, layers.Activation):
            return {"op": "act", "act": act(layer.activation)}
        if isinstance(layer, (layers.Dropout, FastDropout)):
            return {"op": "dropout", "rate": layer.rate}
        if isinstance(layer, layers.Flatten):
            return {"op": "flatten"}
        if isinstance(layer, layers.GlobalMaxPooling2D):
            return {"op": "global_max_pool"}
        if isinstance(layer, layers.Reshape):
            return {"op": "reshape", "hwc": list(layer.target_shape)}
        if isinstance(layer, layers.Cropping2D):
            return {"op": "crop", "cropping": [list(c) for c in layer.cropping]}
        if type(layer).__name__ == "PixelShuffle":
            return {"op": "pixel_shuffle"}
        raise NotImplementedError(f"no PyTorch equivalent for {type(layer).__name__}")

    index: dict[int, int] = {}  # id(Keras tensor) -> its number in the spec

    def number(tensor) -> int:
        return index.setdefault(id(tensor), len(index))

    inputs = [number(t) for t in model.inputs]
    steps = [{"src": number(layer.input), "dst": number(layer.output), **describe(layer)}
             for layer in model.layers if type(layer).__name__ != "InputLayer"]
    return {"inputs": inputs, "outputs": [number(t) for t in model.outputs], "steps": steps}


def torch_from_spec(spec: dict):
    """A ``torch.nn.Module`` (NCHW) with the layers and shapes :func:`keras_network_spec` saw."""
    import torch
    from torch import nn

    def act(name):
        return {"relu": nn.ReLU(), "swish": nn.SiLU(), "silu": nn.SiLU(), "sigmoid": nn.Sigmoid(),
                "tanh": nn.Tanh(), "linear": nn.Identity(),
                "leaky_relu": nn.LeakyReLU(0.2)}[name]

    class Lambda(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    def build(d: dict) -> nn.Module:
        op = d["op"]
        if op == "conv_transpose":
            k, s = d["k"], d["s"]
            p = (k - 1) // 2
            return nn.Sequential(nn.ConvTranspose2d(d["in"], d["out"], k, s, p,
                                                    output_padding=s - k + 2 * p,
                                                    bias=d["bias"]), act(d["act"]))
        if op == "conv":
            k = d["k"]
            return nn.Sequential(nn.Conv2d(d["in"], d["out"], k, d["s"], (k - 1) // 2,
                                           bias=d["bias"]), act(d["act"]))
        if op == "dense":
            return nn.Sequential(nn.Linear(d["in"], d["out"], bias=d["bias"]), act(d["act"]))
        if op == "batch_norm":
            bn = nn.BatchNorm2d if d["dims"] == 4 else nn.BatchNorm1d
            return bn(d["c"], eps=d["eps"], momentum=d["momentum"])
        if op == "leaky_relu":
            return nn.LeakyReLU(d["slope"])
        if op == "act":
            return act(d["act"])
        if op == "dropout":
            return nn.Dropout(d["rate"])
        if op == "flatten":
            return nn.Flatten()
        if op == "global_max_pool":
            return nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())
        if op == "reshape":
            h, w, c = d["hwc"]
            return Lambda(lambda x: x.reshape(-1, c, h, w))
        if op == "crop":
            (t, b), (le, r) = d["cropping"]
            return Lambda(lambda x: x[:, :, t:x.shape[2] - b, le:x.shape[3] - r])
        if op == "pixel_shuffle":
            return nn.PixelShuffle(2)
        raise NotImplementedError(op)

    class Converted(nn.Module):
        def __init__(self):
            super().__init__()
            self.steps = []  # (input tensor number, output tensor number, module name)
            for i, d in enumerate(spec["steps"]):
                self.add_module(f"l{i}", build(d))
                self.steps.append((d["src"], d["dst"], f"l{i}"))
            self.input_id = spec["inputs"][0]
            self.output_ids = spec["outputs"]

        def forward(self, x):
            values = {self.input_id: x}
            for src, dst, name in self.steps:
                values[dst] = getattr(self, name)(values[src])
            outs = [values[i] for i in self.output_ids]
            return outs[0] if len(outs) == 1 else outs

    torch.manual_seed(0)
    return Converted()


def _bf16_units() -> bool:
    """Whether this CPU multiplies bfloat16 natively (the flags ``tf_genai.devices`` reads)."""
    from tf_genai import devices

    return bool(devices.cpu_flags() & devices.BF16_CPU_FLAGS)


def torch_problem_worker(group: str, data: str, n: int, out: str) -> None:
    """In a Keras process: the group's networks as specs, its images and FLOPs, to ``out``
    (a JSON file) for the torch-only worker."""
    sys.path.insert(0, str(REPO_ROOT))
    import numpy as np

    import tf_genai

    images = _unit_float(_load_images(data, n))
    problem: dict[str, Any] = {"group": group, "bf16_units": _bf16_units()}
    if group == "vae_kerasio":
        enc_k, dec_k = kerasio_vae_networks(sampling=False)
        problem["from_logits"] = False
    elif group == "vae":
        zoo = tf_genai.create("vae")
        enc_k, dec_k = zoo.encoder, zoo.decoder
        problem["from_logits"] = True
    elif group == "dcgan":
        zoo = tf_genai.create("dcgan")
        gen_k, disc_k = zoo.generator, zoo.discriminator
        images = images * 2 - 1
    elif group == "gan_kerasio":
        gen_k, disc_k = kerasio_gan_networks()
    else:
        raise SystemExit(f"unknown configuration {group}/torch")
    if group.startswith("vae"):
        problem["flops_per_image"] = vae_step_flops(enc_k, dec_k)
        problem["networks"] = {"enc": keras_network_spec(enc_k), "dec": keras_network_spec(dec_k)}
    else:
        # dcgan: the loop of PyTorch's DCGAN example, one generator pass for both updates
        # (tf_genai's algorithm); gan_kerasio: the keras-io step, fresh noise for G.
        problem["shared_pass"] = group == "dcgan"
        problem["flops_per_image"] = gan_step_flops(gen_k, disc_k, problem["shared_pass"])
        problem["latent_dim"] = int(gen_k.inputs[0].shape[-1])
        problem["networks"] = {"gen": keras_network_spec(gen_k),
                               "disc": keras_network_spec(disc_k)}
    np.save(out + ".npy", np.ascontiguousarray(images, dtype=np.float32))
    Path(out).write_text(json.dumps(problem))


# =============================================================================================
# Workers
# =============================================================================================


def _load_images(data: str, n: int):
    """The first ``n`` MNIST train-split images, uint8 (n, 28, 28, 1)."""
    from tf_genai.data import load

    images, _ = load(data, split="train")
    if len(images) < n:
        raise SystemExit(f"{data}: the train split has {len(images)} images, need {n}")
    return images[:n]


def _unit_float(images):
    import numpy as np

    return images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)


class _Trainer:
    """A worker's training job: ``round()`` trains one epoch and returns images/s."""

    flops_per_image: int = 0

    def round(self) -> float:
        raise NotImplementedError


class _KerasTrainer(_Trainer):
    def __init__(self, model, fit_kwargs, n_images):
        import keras

        self.model, self.fit_kwargs, self.n = model, fit_kwargs, n_images

        class EpochTimer(keras.callbacks.Callback):
            """Times the epoch itself (not fit's set-up), the same for every Keras row."""

            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds = time.perf_counter() - self.start

        self.timer = EpochTimer()
        self.round()  # warm-up: traces the step, fills tf.data caches, creates oneDNN kernels

    def round(self) -> float:
        self.model.fit(epochs=1, verbose=0, callbacks=[self.timer], **self.fit_kwargs)
        return self.n / self.timer.seconds


def build_keras_worker(group: str, impl: str, data: str, n: int) -> _Trainer:
    """The Keras-side trainer for one (group, implementation)."""
    import keras

    import tf_genai
    from tf_genai import devices
    from tf_genai.data import make_dataset

    images = _load_images(data, n)
    kerasio = impl in ("keras-io", "keras-io+training")
    opts = {"steps_per_execution": 1, "jit_compile": "auto", "mixed_precision_policy":
            "float32"} if kerasio else devices.training_options()
    compile_kwargs = {k: opts[k] for k in ("steps_per_execution", "jit_compile")}
    if kerasio:
        compile_kwargs = {}  # keras-io: default compile options
    is_gan = group in ("dcgan", "gan_kerasio")
    symmetric = group == "dcgan"  # the zoo GAN's tanh range; keras-io's MNIST GAN is sigmoid
    if kerasio:
        x = _unit_float(images) * 2 - 1 if symmetric else _unit_float(images)
        fit_kwargs = {"x": x, "batch_size": BATCH}
    else:
        ds = make_dataset(images, batch_size=BATCH, scale="symmetric" if symmetric else "unit")
        fit_kwargs = {"x": ds}

    with devices.mixed_precision(opts["mixed_precision_policy"]):
        if group == "vae_kerasio" and impl == "tf_genai":
            model = tf_genai.create("vae", filters=(32, 64), hidden_units=(16,), latent_dim=2)
            flops = vae_step_flops(model.encoder, model.decoder)
        elif group == "vae" and impl == "tf_genai":
            model = tf_genai.create("vae")
            flops = vae_step_flops(model.encoder, model.decoder)
        elif group == "dcgan" and impl == "tf_genai":
            model = tf_genai.create("dcgan")
            flops = gan_step_flops(model.generator, model.discriminator, shared_pass=True)
        elif group == "vae_kerasio":
            encoder, decoder = kerasio_vae_networks()
            model = kerasio_vae_class()(encoder, decoder, latent_dim=2)
            flops = vae_step_flops(encoder, decoder)
        elif group == "vae":  # keras-io train_step over the zoo's default networks
            zoo = tf_genai.create("vae")
            model = kerasio_vae_class()(zoo.encoder, zoo.decoder, zoo.latent_dim,
                                        from_logits=True)
            flops = vae_step_flops(zoo.encoder, zoo.decoder)
        elif group == "dcgan":  # keras-io DCGAN train_step over the zoo's default networks
            zoo = tf_genai.create("dcgan")
            training = True if impl == "keras-io+training" else None
            model = kerasio_gan_class(training)(zoo.discriminator, zoo.generator, zoo.latent_dim)
            flops = gan_step_flops(zoo.generator, zoo.discriminator)
        elif group == "gan_kerasio":
            generator, discriminator = kerasio_gan_networks()
            model = kerasio_gan_class()(discriminator, generator, 128)
            flops = gan_step_flops(generator, discriminator)
        else:
            raise SystemExit(f"unknown configuration {group}/{impl}")

    # tf_genai rows: the zoo recipe (tf_genai.optimizers' fused Adam). keras-io rows: Keras'
    # Adam; kerasio+opts: the fused one, a tf_genai option.
    from tf_genai import optimizers
    from tf_genai.training import compile_model

    adam = keras.optimizers.Adam if kerasio else optimizers.Adam
    if impl == "tf_genai":
        compile_model(model, **compile_kwargs)
    elif is_gan:
        model.compile(d_optimizer=adam(2e-4, beta_1=0.5), g_optimizer=adam(2e-4, beta_1=0.5),
                      loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
                      **compile_kwargs)
    else:
        model.compile(optimizer=adam(), **compile_kwargs)
    trainer = _KerasTrainer(model, fit_kwargs, n)
    trainer.flops_per_image = flops
    return trainer


class _TorchTrainer(_Trainer):
    """A PyTorch CPU loop (forward, backward, Adam step) in a process without TensorFlow.

    ``impl`` is ``torch`` plus options from :data:`TORCH_OPTIONS` (``torch+compile+bf16``).
    The networks, images and FLOPs come from a Keras subprocess (:func:`torch_problem_worker`).
    """

    def __init__(self, group: str, impl: str, data: str, n: int):
        options = impl.split("+")[1:]
        unknown = [o for o in options if o not in TORCH_OPTIONS]
        if impl.split("+")[0] != "torch" or unknown:
            raise SystemExit(f"unknown PyTorch configuration {impl!r}; options: "
                             f"{', '.join(TORCH_OPTIONS)}")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "problem.json")
            subprocess.run([sys.executable, __file__, "--torch-problem", group, "--data", data,
                            "--images", str(n), "--problem-out", out], check=True,
                           stdout=subprocess.DEVNULL, cwd=REPO_ROOT)
            problem = json.loads(Path(out).read_text())
            if "bf16" in options and not problem["bf16_units"]:
                raise SystemExit("bf16 autocast needs a CPU with bf16 units (avx512_bf16/amx_bf16)")
            import numpy as np

            images = np.load(out + ".npy")
        import torch

        self.n, self.group = n, group
        self.channels_last = "cl" in options
        self.autocast = "bf16" in options
        self.flops_per_image = problem["flops_per_image"]
        self.x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
        if self.channels_last:
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        nets = {k: torch_from_spec(v) for k, v in problem["networks"].items()}
        if self.channels_last:
            nets = {k: v.to(memory_format=torch.channels_last) for k, v in nets.items()}
        params = {k: list(v.parameters()) for k, v in nets.items()}
        if "compile" in options:
            nets = {k: torch.compile(v) for k, v in nets.items()}
        if group.startswith("vae"):
            self.from_logits = problem["from_logits"]
            self.enc, self.dec = nets["enc"], nets["dec"]
            self.opt = torch.optim.Adam([*params["enc"], *params["dec"]], lr=1e-3)
        else:
            self.shared_pass = problem["shared_pass"]
            self.latent_dim = problem["latent_dim"]
            self.gen, self.disc = nets["gen"], nets["disc"]
            self.g_opt = torch.optim.Adam(params["gen"], lr=2e-4, betas=(0.5, 0.999))
            self.d_opt = torch.optim.Adam(params["disc"], lr=2e-4, betas=(0.5, 0.999))
        self.round()  # warm-up (and torch.compile's compilation)

    def _ctx(self):
        import contextlib

        import torch

        if self.autocast:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _vae_step(self, xb):
        import torch
        import torch.nn.functional as F

        with self._ctx():
            mean, log_var = self.enc(xb)
            mean, log_var = mean.float(), log_var.float()  # float32 KL and sampling
            z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)  # (batch, latent)
            out = self.dec(z).float()
        bce = (F.binary_cross_entropy_with_logits if self.from_logits
               else F.binary_cross_entropy)(out, xb, reduction="none")
        rec = bce.sum(dim=(1, 2, 3)).mean()
        kl = (-0.5 * (1 + log_var - mean.square() - log_var.exp())).sum(dim=1).mean()
        self.opt.zero_grad(set_to_none=True)
        (rec + kl).backward()
        self.opt.step()

    def _gan_step(self, real):
        import torch
        import torch.nn.functional as F

        b = real.shape[0]
        with self._ctx():
            if self.shared_pass:  # PyTorch's DCGAN example: one G pass, detached for D
                fake = self.gen(torch.randn(b, self.latent_dim))
            else:
                with torch.no_grad():
                    fake = self.gen(torch.randn(b, self.latent_dim))
            logits = self.disc(torch.cat([fake.detach().to(real.dtype), real])).float()
        labels = torch.cat([torch.ones(b, 1), torch.zeros(b, 1)])
        labels += 0.05 * torch.rand_like(labels)
        d_loss = F.binary_cross_entropy_with_logits(logits, labels)
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        with self._ctx():
            if not self.shared_pass:
                fake = self.gen(torch.randn(b, self.latent_dim))
            g_logits = self.disc(fake).float()
        g_loss = F.binary_cross_entropy_with_logits(g_logits, torch.zeros(b, 1))
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()

    def round(self) -> float:
        import torch

        start = time.perf_counter()
        order = torch.randperm(self.n)
        step = self._vae_step if self.group.startswith("vae") else self._gan_step
        for i in range(0, self.n - BATCH + 1, BATCH):  # full batches: one compiled shape
            step(self.x[order[i:i + BATCH]])
        return (self.n // BATCH) * BATCH / (time.perf_counter() - start)


def _emit(**payload: Any) -> None:
    print(MARK + json.dumps(payload), flush=True)


def worker(config: str, data: str, n: int) -> None:
    """Serve timed rounds on stdin commands ``run`` / ``quit`` (see the module docstring)."""
    sys.path.insert(0, str(REPO_ROOT))
    group, impl = config.split("/", 1)
    if impl.startswith("torch"):
        trainer: _Trainer = _TorchTrainer(group, impl, data, n)
    else:
        trainer = build_keras_worker(group, impl, data, n)
    _emit(ready=True, flops_per_image=trainer.flops_per_image,
          tensorflow_loaded="tensorflow" in sys.modules)
    for line in sys.stdin:
        command = line.strip()
        if command == "run":
            _emit(images_per_s=trainer.round())
        elif command == "quit":
            break
    _emit(maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def matmul_peak_worker() -> None:
    """Best GFLOP/s of a large float32 and bfloat16 ``tf.linalg.matmul`` on this machine, and
    whether its CPU has bf16 units (``bf16_units``)."""
    sys.path.insert(0, str(REPO_ROOT))
    import tensorflow as tf

    size, repeats = 2048, 6
    result = {}
    for dtype in ("float32", "bfloat16"):
        a = tf.random.normal((size, size), dtype=tf.float32)
        a = tf.cast(a, dtype)
        b = tf.cast(tf.random.normal((size, size)), dtype)
        mm = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b)[0, :1],
                                                            tf.float32)))
        mm(a, b).numpy()  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            mm(a, b).numpy()
            best = min(best, time.perf_counter() - start)
        result[dtype] = 2 * size**3 / best / 1e9
    from tf_genai import devices

    _emit(bf16_units=_bf16_units(), machine=devices.describe("cpu").summary(), **result)


def sampling_worker() -> None:
    """Median seconds to draw 256 samples: eager ``model.sample`` vs ``devices.compiled_sampler``."""
    sys.path.insert(0, str(REPO_ROOT))
    import tf_genai
    from tf_genai import devices

    opts = devices.training_options()
    result = {}
    for name in ("vae", "dcgan"):
        with devices.mixed_precision(opts["mixed_precision_policy"]):
            model = tf_genai.create(name)
        compiled = devices.compiled_sampler(model)
        for label, fn in (("eager", lambda: model.sample(256, seed=1)),
                          ("compiled", lambda: compiled(256, seed=1))):
            fn()  # warm-up (traces the compiled sampler)
            times = []
            for _ in range(7):
                start = time.perf_counter()
                _ = fn().numpy()
                times.append(time.perf_counter() - start)
            result[f"{name}/{label}"] = statistics.median(times)
    _emit(**result)


# =============================================================================================
# Parent: spawn workers, interleave rounds, print tables
# =============================================================================================


class Worker:
    """One configuration's subprocess."""

    def __init__(self, name: str, args: argparse.Namespace, n: int):
        self.name = name
        self.log = tempfile.NamedTemporaryFile("w+", prefix="throughput_", suffix=".log",
                                               delete=False)
        cmd = [sys.executable, __file__, "--worker", name, "--data", args.data,
               "--images", str(n)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, cwd=REPO_ROOT)
        self.rates: list[float] = []
        self.flops_per_image = 0
        self.maxrss_kib = 0
        self.error = ""

    def read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
        self.log.seek(0)
        tail = self.log.read()[-1500:]
        raise RuntimeError(f"worker {self.name} died:\n{tail}")

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()


def measure_peak(flag: str = "--peak") -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, flag], capture_output=True, text=True,
                         cwd=REPO_ROOT, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith(MARK))
    return json.loads(line[len(MARK):])


def run_group(group: str, args: argparse.Namespace, bf16_units: bool) -> list[Worker]:
    n, impls = GROUPS[group]
    if args.quick:
        n = min(n, 1024)
    impls = [x for i in impls for x in (TORCH_IMPLS if i == "torch*" else [i])]
    if not bf16_units:
        skipped = [i for i in impls if "bf16" in i.split("+")]
        if skipped:
            print(f"  {group}: no bf16 units on this CPU: skipping {', '.join(skipped)}",
                  file=sys.stderr)
        impls = [i for i in impls if i not in skipped]
    impls = [i for i in impls if args.impls is None or i in args.impls]
    names = [f"{group}/{i}" for i in impls]
    workers = []
    for name in names:  # start one at a time: set-up (tracing) is CPU-heavy
        w = Worker(name, args, n)
        try:
            ready = w.read()
            w.flops_per_image = ready["flops_per_image"]
            if name.split("/", 1)[1].startswith("torch") and ready.get("tensorflow_loaded"):
                raise RuntimeError("TensorFlow was loaded in the torch worker")
            workers.append(w)
        except RuntimeError as err:
            w.error = str(err).splitlines()[-1] if str(err) else "died"
            print(f"  {name}: {err}", file=sys.stderr)
            workers.append(w)
        print(f"  {name}: ready", file=sys.stderr)
    live = [w for w in workers if not w.error]
    for r in range(args.rounds):
        for w in live:  # A, B, C, A, B, C, ...
            w.send("run")
            w.rates.append(w.read()["images_per_s"])
        print(f"  round {r + 1}: " + ", ".join(f"{w.name.split('/', 1)[1]} {w.rates[-1]:.0f}"
                                                for w in live), file=sys.stderr)
    for w in live:
        w.send("quit")
        w.maxrss_kib = w.read()["maxrss_kib"]
        w.proc.wait(timeout=60)
    return workers


def print_tables(results: dict[str, list[Worker]], peak: dict[str, float], load: str) -> None:
    best_torch: dict[str, str] = {}
    print(f"\nload average before: {load}; matmul peak (2048^3, best of 6): "
          f"float32 {peak['float32']:.0f} GFLOP/s, bfloat16 {peak['bfloat16']:.0f} GFLOP/s\n")
    print("| group | implementation | images/s (median) | rounds | vs keras-io "
          "| vs keras-io+training | vs best torch | paired vs keras-io "
          "| paired vs best torch "
          "| MFLOP/img | GFLOP/s | % fp32 peak | % bf16 peak | peak RSS MiB |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
          "| ---: | ---: |")
    for group, workers in results.items():
        rates = {w.name.split("/", 1)[1]: w.rates for w in workers if w.rates}
        med = {impl: statistics.median(r) for impl, r in rates.items()}
        torch_meds = {impl: m for impl, m in med.items() if impl.startswith("torch")}
        if torch_meds:  # the strongest PyTorch configuration measured is the peer
            best = max(torch_meds, key=torch_meds.get)
            rates["torch (best)"], med["torch (best)"] = rates[best], med[best]
            best_torch[group] = best
        for w in workers:
            impl = w.name.split("/", 1)[1]
            if w.error:
                print(f"| {group} | {impl} | failed: {w.error} | | | | | | | | | | | |")
                continue
            m = med[impl]
            gflops = m * w.flops_per_image / 1e9
            ratio = lambda ref: f"{m / med[ref]:.2f}x" if ref in med else "-"  # noqa: E731

            def paired(ref):
                """Median over rounds of this round's rate / the reference's in the same round:
                each round runs every implementation back to back, so a slow spell of the
                machine that spans a round cancels out of its ratio."""
                if ref not in rates:
                    return "-"
                return f"{statistics.median(a / b for a, b in zip(w.rates, rates[ref])):.2f}x"

            print(f"| {group} | {impl} | {m:.0f} | {' '.join(f'{r:.0f}' for r in w.rates)} | "
                  f"{ratio('keras-io')} | {ratio('keras-io+training')} | {ratio('torch (best)')} | "
                  f"{paired('keras-io')} | {paired('torch (best)')} | "
                  f"{w.flops_per_image / 1e6:.1f} | "
                  f"{gflops:.1f} | {100 * gflops / peak['float32']:.0f}% | "
                  f"{100 * gflops / peak['bfloat16']:.0f}% | {w.maxrss_kib / 1024:.0f} |")
    if best_torch:
        print("\nbest PyTorch configuration (the peer of the 'best torch' columns): "
              + "; ".join(f"{g}: {b}" for g, b in best_torch.items())
              + ". Options: " + "; ".join(f"{k} = {v}" for k, v in TORCH_OPTIONS.items()))


SECTION_BEGIN, SECTION_END = "<!-- cpu kind: {} -->", "<!-- end cpu kind -->"


def update_results(path: Path, machine: str, command: str, table: str) -> None:
    """Put ``table`` into ``path`` as the section of CPU kind ``machine`` (its name, cores,
    SIMD/bf16/AMX flags), replacing that kind's earlier section and keeping the others'."""
    begin = SECTION_BEGIN.format(machine)
    text = path.read_text() if path.exists() else (
        "# benchmarks/throughput.py, one section per CPU kind\n\nEach section is the latest "
        "run on that kind of CPU (written by `--results`); compare the ratio columns across "
        "sections to see how they travel.\n")
    section = (f"{begin}\n## {machine}\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
               f": `{command}`\n\n```text\n{table.strip()}\n```\n{SECTION_END}\n")
    if begin in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(SECTION_END + "\n")
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", choices=list(GROUPS), default=list(GROUPS))
    parser.add_argument("--impls", nargs="+", default=None,
                        help="only these implementations (e.g. tf_genai keras-io)")
    parser.add_argument("--rounds", type=int, default=15,
                        help="timed rounds per implementation (vae_kerasio + dcgan: about "
                             "10 minutes for 15)")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--quick", action="store_true", help="1 round of <= 1024 images")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--peak", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torch-problem", help=argparse.SUPPRESS)
    parser.add_argument("--problem-out", help=argparse.SUPPRESS)
    parser.add_argument("--sampling-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-sampling", action="store_true",
                        help="skip the eager vs compiled sampling timing")
    parser.add_argument("--results", default=None, metavar="FILE.md",
                        help="keep the table in FILE.md, one section per CPU kind: this run "
                             "replaces its own CPU kind's section and leaves the others")
    args = parser.parse_args(argv)

    if args.peak:
        matmul_peak_worker()
        return 0
    if args.torch_problem:
        torch_problem_worker(args.torch_problem, args.data, args.images, args.problem_out)
        return 0
    if args.sampling_worker:
        sampling_worker()
        return 0
    if args.worker:
        worker(args.worker, args.data, args.images)
        return 0
    if args.quick:
        args.rounds = 1
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    peak = measure_peak()
    print(f"machine: {peak['machine']}", file=sys.stderr)
    results = {}
    for group in args.groups:
        print(f"{group}:", file=sys.stderr)
        results[group] = run_group(group, args, peak["bf16_units"])
    after = measure_peak()
    machine = peak["machine"]
    peak = {k: max(peak[k], after[k]) for k in ("float32", "bfloat16")}
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        print(f"machine: {machine}")
        print_tables(results, peak, load)
    print(table.getvalue(), end="")
    if args.results:
        command = "python benchmarks/throughput.py " + " ".join(argv or sys.argv[1:])
        update_results(Path(args.results), machine, command, table.getvalue())
    if not args.no_sampling:
        t = measure_peak("--sampling-worker")
        print("\n| sampling 256 images | eager model.sample | devices.compiled_sampler | speed-up |")
        print("| --- | ---: | ---: | ---: |")
        for name in ("vae", "dcgan"):
            eager, compiled = t[f"{name}/eager"], t[f"{name}/compiled"]
            print(f"| {name} | {1e3 * eager:.1f} ms | {1e3 * compiled:.1f} ms | "
                  f"{eager / compiled:.2f}x |")
    print(f"\nload average after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

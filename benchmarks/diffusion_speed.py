"""Diffusion training and sampling speed: tf_genai ddpm vs the keras-io DDIM pattern vs diffusers.

Training throughput (images/s) of the zoo ``ddpm`` against (a) the keras-io DDIM
example's training-step pattern on the same U-Net and (b) PyTorch diffusers' ``UNet2DModel`` +
``DDPMScheduler`` at matched size and FLOPs (target: >= 1.3x both); sampling images/s at 50
DDIM steps against diffusers' ``DDIMPipeline`` on the matched network; achieved FLOP/s against
the machine's measured matmul peak.

Protocol (``benchmarks/throughput.py``'s): every implementation runs in its own long-lived
worker subprocess; the parent interleaves timed rounds A, B, C, A, B, C, ... and prints medians,
ratios of the medians and "paired" ratios (the median over rounds of the per-round ratio, which
a slow spell of the machine spanning a round cancels out of), achieved GFLOP/s as a share of the
float32 ``tf.linalg.matmul`` peak (``throughput.matmul_peak_worker``, best of before and after
the run), and peak RSS. Data: the MNIST train split (``tf_genai.data.load(--data,
split="train")``, 28x28x1 uint8), scaled to [-1, 1], loaded once by a set-up subprocess and
handed to the workers as a ``.npy`` file; every row trains float32 Adam(1e-3), batch 128, with
an EMA (decay 0.999) of the weights updated after every step.

Training rows (each times ``--images`` images a round; one untimed warm-up round first):

* ``tf_genai``: ``tf_genai.create("ddpm", image_shape=(28, 28, 1))`` (zoo defaults: U-Net widths
  (32, 64), one block a level, attention at 7x7, 2x2 patch stem, cosine schedule, T = 1000,
  v-prediction with Min-SNR-5 weights), built under ``devices.training_options()``'s policy
  (float32 without bf16 units; ``TF_GENAI_POLICY=float32`` forces it elsewhere), compiled with its
  ``steps_per_execution`` and ``jit_compile``, trained by ``fit`` on
  ``tf_genai.data.make_dataset(scale="symmetric")``: the family ``train_step`` over
  ``Diffusion.loss_terms`` (integer t ~ U[0, T), ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps``,
  Min-SNR-weighted MSE on v -- the other rows take the plain MSE on eps; the difference is
  elementwise work on (b, 28, 28, 1) tensors, not counted in the FLOPs) and the base's weight
  average (``update_weight_average``, decay warm-up ``min(0.999, (1 + k) / (10 + k))``).
* ``keras-io``: the training half of the keras-io example "Denoising Diffusion Implicit
  Models" (examples/generative/ddim.py, Andras Beres), written from its description: a
  ``keras.Model`` holding ``network`` and ``ema_network`` (``keras.models.clone_model``);
  ``train_step`` draws noise and uniform continuous diffusion times, takes the example's
  rates ``diffusion_schedule`` (angles between ``arccos(0.95)`` and ``arccos(0.02)``: signal
  rate ``cos``, noise rate ``sin``), ``noisy = signal_rates * images + noise_rates * noises``,
  runs ``network([noisy, t], training=True)`` under ``GradientTape``, the compiled loss (MSE)
  on the noise (and, tracked only, on the implied image), ``optimizer.apply_gradients``, then
  the Python-loop EMA ``ema_w.assign(0.999 * ema_w + 0.001 * w)`` over ``network.weights``.
  The network is the zoo ddpm's own U-Net (``build_unet`` with the zoo constructor arguments),
  whose second input is an integer timestep, so the example's continuous time enters it as
  ``t = int(time * (T - 1))`` (the rates stay the keras-io schedule's). NumPy arrays into
  ``fit(batch_size=128)``, ``compile(optimizer=Adam(1e-3), loss=mean_squared_error)`` with the
  Keras defaults otherwise (no steps_per_execution; ``jit_compile="auto"``, off on CPU). The
  example's ``Normalization`` layer is left out (the data is already in [-1, 1]).
* ``diffusers``: ``diffusers.UNet2DModel`` (config :data:`DIFFUSERS_UNET`) trained as diffusers'
  ``train_unconditional.py`` does, in a plain loop: ``DDPMScheduler(num_train_timesteps=1000,
  beta_schedule="squaredcos_cap_v2")``, integer t ~ U[0, T), ``add_noise``, MSE on the noise,
  ``torch.optim.Adam(lr=1e-3)``, ``diffusers.training_utils.EMAModel(decay=0.999,
  foreach=True)`` (its default warm-up, ``min(decay, (1 + k) / (10 + k))``, is the zoo's),
  float32, ``torch.set_num_threads(os.cpu_count())`` (``--torch-threads``); no gradient
  clipping (the zoo has none).
  The worker never imports TensorFlow, Keras or tf_genai (a TF + torch process segfaults on
  this project's machines). The matched network: diffusers' U-Net has a 3x3
  full-resolution stem where the zoo's has a 2x2 stride-2 patch stem, so the images go in
  space-to-depth, ``pixel_unshuffle(2)``: 28x28x1 -> 14x14x4 (a fixed permutation of pixels,
  so Gaussian noising commutes with it), and a UNet2DModel of the zoo's widths (32, 64), one
  ResNet block a level down (two up), scale-shift time conditioning, attention (4 heads of 16)
  at 7x7 and in the middle block runs at 14x14 as the zoo's does. It has the zoo U-Net's layer
  sequence, within 0.3% of its parameters and 1% of its FLOPs (the tables print both).

Sampling rows (``--no-sampling`` skips them): images/s drawing ``--sample-n`` images at
``--sample-steps`` (50) deterministic DDIM steps from the (EMA) network; the first call warms up
untimed. ``tf_genai``: ``model.sample(n, seed=0, steps=50)`` (one traced ``tf.while_loop``).
``diffusers``: ``DDIMPipeline(unet, DDIMScheduler.from_config(<the DDPMScheduler's config>))(
batch_size=n, num_inference_steps=50, output_type="np")`` on the matched UNet2DModel (holding
the EMA weights), its 14x14x4 output put back to 28x28x1 (``depth-to-space``).

FLOPs: 2 x multiply-adds of the matmul-like ops, elementwise work (normalisation, activations,
the schedule) ignored; a training step is 3 x the forward pass (forward + two backward
products), a DDIM step 1 x. Ours: ``throughput.forward_flops`` on ``model.denoiser`` (Conv2D,
Conv2DTranspose, Dense), plus the attention layers it does not see (the q/k/v/output
projections and the two attention products), counted analytically (:func:`unet_flops`).
diffusers: ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass at batch 1 under
the MATH attention backend (the counter has no formula for the fused CPU attention kernel; the
math path's ``bmm`` products are counted).

Run it on an otherwise idle machine: beside another busy process torch's OpenMP threads wait on
each other (measured: DDIM sampling 15-30x slower with 2 threads than with 1 on 2 shared cores),
which says nothing about either library.

Usage (from the repository root; the diffusers rows need ``pip install torch diffusers``; without
them those rows are skipped)::

    python benchmarks/diffusion_speed.py                        # 5 rounds of 1024 images + sampling
    python benchmarks/diffusion_speed.py --rounds 10 \\
        --out benchmarks/results/diffusion_speed_zen4_YYYY-MM-DD.md
    python benchmarks/diffusion_speed.py --no-sampling --impls tf_genai keras-io
    python benchmarks/diffusion_speed.py --quick                # 1 small round: a smoke test
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
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

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

# throughput.py imports only the standard library at module level (TensorFlow and torch load
# inside its functions), so the diffusers worker can use it too.
from throughput import (  # noqa: E402
    DEFAULT_DATA,
    MARK,
    REPO_ROOT,
    Worker,
    _emit,
    _KerasTrainer,
    forward_flops,
    matmul_peak_worker,
    measure_peak,
)

IMPLS = ("tf_genai", "keras-io", "diffusers")
SAMPLERS = ("tf_genai", "diffusers")  # the keras-io example's sampler is not timed
TIMESTEPS = 1000
EMA_DECAY = 0.999
LEARNING_RATE = 1e-3
PATCH = 2  # the zoo ddpm's patch_size, matched on the diffusers side by pixel_unshuffle
# The diffusers U-Net matched to the zoo ddpm's (networks.build_unet with the zoo defaults) on
# 14x14x4 space-to-depth images (module docstring).
DIFFUSERS_UNET: dict[str, Any] = dict(
    sample_size=28 // PATCH,
    in_channels=PATCH * PATCH,
    out_channels=PATCH * PATCH,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=32,  # the zoo's groups_for(32) = groups_for(64) = 32
    attention_head_dim=16,  # 64 channels: 4 heads of 16, as the zoo's MultiHeadAttention
    resnet_time_scale_shift="scale_shift",  # the zoo's adaptive group norm
)


# =============================================================================================
# FLOP counting
# =============================================================================================


def unet_flops(net) -> dict[str, int]:
    """Forward FLOPs of one image through the zoo U-Net: ``conv_dense`` (throughput.py's
    :func:`forward_flops`), ``attention`` (what it does not see) and their ``total``."""
    from keras import layers

    attention = 0
    for layer in net.layers:
        if isinstance(layer, layers.MultiHeadAttention):
            length, channels = layer.input[0].shape[1], layer.input[0].shape[-1]  # (b, L, c)
            h, dk, dv = layer.num_heads, layer.key_dim, layer.value_dim or layer.key_dim
            projections = 2 * length * channels * h * (2 * dk + dv) + 2 * length * h * dv * channels
            products = 2 * length * length * h * (dk + dv)  # q k^T and softmax(.) v
            attention += projections + products
    conv_dense = forward_flops(net)
    return {"conv_dense": conv_dense, "attention": attention, "total": conv_dense + attention}


# =============================================================================================
# Keras workers: tf_genai and the keras-io pattern
# =============================================================================================


def kerasio_ddim_class():
    """The keras-io DDIM example's ``DiffusionModel``, its training half (module docstring)."""
    import keras
    import tensorflow as tf
    from keras import ops

    class KerasIODiffusion(keras.Model):
        def __init__(self, network, timesteps: int, ema: float = EMA_DECAY,
                     min_signal_rate: float = 0.02, max_signal_rate: float = 0.95, **kwargs):
            super().__init__(**kwargs)
            self.network = network
            self.ema_network = keras.models.clone_model(network)
            self.ema_network.set_weights(network.get_weights())
            self.timesteps, self.ema = int(timesteps), float(ema)
            self.min_signal_rate, self.max_signal_rate = min_signal_rate, max_signal_rate
            self.seed_generator = keras.random.SeedGenerator(1337)

        def compile(self, **kwargs):
            super().compile(**kwargs)
            self.noise_loss_tracker = keras.metrics.Mean(name="n_loss")
            self.image_loss_tracker = keras.metrics.Mean(name="i_loss")

        @property
        def metrics(self):
            return [self.noise_loss_tracker, self.image_loss_tracker]

        def diffusion_schedule(self, diffusion_times):
            """keras-io's cosine schedule: (noise rates, signal rates) for times in [0, 1]."""
            start_angle = ops.arccos(self.max_signal_rate)
            end_angle = ops.arccos(self.min_signal_rate)
            angles = start_angle + diffusion_times * (end_angle - start_angle)
            return ops.sin(angles), ops.cos(angles)

        def denoise(self, noisy_images, diffusion_times, noise_rates, signal_rates, training):
            network = self.network if training else self.ema_network
            # The zoo U-Net embeds an integer timestep, not keras-io's noise variance.
            t = ops.cast(ops.reshape(diffusion_times, (-1,)) * (self.timesteps - 1), "int32")
            pred_noises = network([noisy_images, t], training=training)
            pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates
            return pred_noises, pred_images

        def train_step(self, images):
            batch = ops.shape(images)[0]
            noises = keras.random.normal(ops.shape(images), seed=self.seed_generator)
            diffusion_times = keras.random.uniform((batch, 1, 1, 1), minval=0.0, maxval=1.0,
                                                   seed=self.seed_generator)
            noise_rates, signal_rates = self.diffusion_schedule(diffusion_times)
            noisy_images = signal_rates * images + noise_rates * noises
            with tf.GradientTape() as tape:
                pred_noises, pred_images = self.denoise(noisy_images, diffusion_times,
                                                        noise_rates, signal_rates, training=True)
                noise_loss = ops.mean(self.loss(noises, pred_noises))  # the training loss
                image_loss = ops.mean(self.loss(images, pred_images))  # tracked only
            gradients = tape.gradient(noise_loss, self.network.trainable_weights)
            self.optimizer.apply_gradients(zip(gradients, self.network.trainable_weights))
            self.noise_loss_tracker.update_state(noise_loss)
            self.image_loss_tracker.update_state(image_loss)
            for weight, ema_weight in zip(self.network.weights, self.ema_network.weights):
                ema_weight.assign(self.ema * ema_weight + (1 - self.ema) * weight)
            return {m.name: m.result() for m in self.metrics}

    return KerasIODiffusion


class _KerasDiffusionWorker:
    """One Keras row: ``round()`` trains ``n`` images, ``sample()`` draws ``sample_n``."""

    def __init__(self, impl: str, images, batch: int, sample_n: int, sample_steps: int):
        import keras
        import numpy as np

        import tf_genai
        from tf_genai import devices
        from tf_genai.data import make_dataset
        from tf_genai.models.diffusion.networks import build_unet

        n = len(images)
        self.sample_n, self.sample_steps, self.sampler_warm = sample_n, sample_steps, False
        if impl == "tf_genai":
            opts = devices.training_options()
            with devices.mixed_precision(opts["mixed_precision_policy"]):
                self.model = tf_genai.create("ddpm", image_shape=(28, 28, 1))
            self.model.compile(steps_per_execution=opts["steps_per_execution"],
                               jit_compile=opts["jit_compile"])
            fit_kwargs = {"x": make_dataset(images, batch_size=batch, scale="symmetric")}
            net, self.policy = self.model.denoiser, opts["mixed_precision_policy"]
            self.compile_note = (f"spe {opts['steps_per_execution']}, "
                                 f"jit {opts['jit_compile']}, {self.policy}")
        elif impl == "keras-io":
            zoo = tf_genai.create("ddpm", image_shape=(28, 28, 1))  # only for its arguments
            net = build_unet(zoo.image_shape, widths=zoo.widths, blocks=zoo.blocks,
                             attention_levels=zoo.attention_levels, num_classes=None,
                             dropout=zoo.dropout, seed=zoo.seed, patch_size=zoo.patch_size,
                             name="network")
            del zoo
            self.model = kerasio_ddim_class()(net, TIMESTEPS)
            self.model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                               loss=keras.losses.mean_squared_error)
            x = images.astype(np.float32) / 127.5 - 1.0  # [-1, 1]
            fit_kwargs = {"x": x, "batch_size": batch}
            self.policy, self.compile_note = "float32", "Keras defaults"
        else:
            raise SystemExit(f"unknown Keras implementation {impl}")
        flops = unet_flops(net)
        self.info = {"flops_forward": flops["total"], "flops_conv_dense": flops["conv_dense"],
                     "flops_attention": flops["attention"], "params": int(net.count_params()),
                     "policy": self.policy, "compile": self.compile_note,
                     "tensorflow": __import__("tensorflow").__version__,
                     "keras": keras.__version__}
        self.trainer = _KerasTrainer(self.model, fit_kwargs, n)  # runs the warm-up round

    def round(self) -> float:
        return self.trainer.round()

    def sample(self) -> float:
        draw = lambda: self.model.sample(self.sample_n, seed=0,  # noqa: E731
                                         steps=self.sample_steps).numpy()
        if not self.sampler_warm:  # the first call traces the DDIM loop
            draw()
            self.sampler_warm = True
        start = time.perf_counter()
        draw()
        return self.sample_n / (time.perf_counter() - start)


# =============================================================================================
# diffusers worker (never imports TensorFlow, Keras or tf_genai)
# =============================================================================================


class _DiffusersWorker:
    """diffusers' UNet2DModel + DDPMScheduler in a plain PyTorch loop (module docstring)."""

    def __init__(self, images, batch: int, sample_n: int, sample_steps: int, threads: int = 0):
        import diffusers
        import numpy as np
        import torch
        import torch.nn.functional as F
        from diffusers import DDIMPipeline, DDIMScheduler, DDPMScheduler, UNet2DModel
        from diffusers.training_utils import EMAModel
        from torch.nn.attention import SDPBackend, sdpa_kernel
        from torch.utils.flop_counter import FlopCounterMode

        torch.set_num_threads(threads or os.cpu_count() or 1)
        torch.manual_seed(0)
        x = torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)
        self.x = F.pixel_unshuffle(x, PATCH).contiguous()  # (N, 4, 14, 14)
        self.n, self.batch = len(images), batch
        self.sample_n, self.sample_steps, self.sampler_warm = sample_n, sample_steps, False
        self.unet = UNet2DModel(**DIFFUSERS_UNET)
        self.unet.train()
        self.scheduler = DDPMScheduler(num_train_timesteps=TIMESTEPS,
                                       beta_schedule="squaredcos_cap_v2")
        self.opt = torch.optim.Adam(self.unet.parameters(), lr=LEARNING_RATE)
        self.ema = EMAModel(self.unet.parameters(), decay=EMA_DECAY, foreach=True)
        # The sampler's network: the same config, holding the EMA weights (copied untimed).
        self.sampler_unet = UNet2DModel(**DIFFUSERS_UNET).eval()
        self.pipe = DDIMPipeline(unet=self.sampler_unet,
                                 scheduler=DDIMScheduler.from_config(self.scheduler.config))
        self.pipe.set_progress_bar_config(disable=True)

        probe = self.x[:1]
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            self.unet(probe, torch.zeros(1, dtype=torch.long))
        counts = {str(k): int(v) for k, v in counter.get_flop_counts()["Global"].items()}
        self.info = {"flops_forward": int(counter.get_total_flops()), "flop_ops": counts,
                     "params": sum(p.numel() for p in self.unet.parameters()),
                     "policy": "float32", "compile": f"eager, {torch.get_num_threads()} threads",
                     "torch": torch.__version__, "diffusers": diffusers.__version__,
                     "torch_matmul_gflops": self._matmul_peak(),
                     "config": {k: list(v) if isinstance(v, tuple) else v
                                for k, v in DIFFUSERS_UNET.items()}}
        if "tensorflow" in sys.modules:  # torch and TF must not share a process
            raise SystemExit("the diffusers worker imported tensorflow")
        self.round()  # warm-up

    @staticmethod
    def _matmul_peak(size: int = 2048, repeats: int = 6) -> float:
        """Best float32 GFLOP/s of a ``size``^3 ``torch.mm`` (throughput.py's TF probe in torch)."""
        import torch

        a, b = torch.randn(size, size), torch.randn(size, size)
        torch.mm(a, b)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
        return 2 * size**3 / best / 1e9

    def _step(self, clean) -> None:
        import torch
        import torch.nn.functional as F

        noise = torch.randn_like(clean)
        t = torch.randint(0, TIMESTEPS, (clean.shape[0],), dtype=torch.long)
        noisy = self.scheduler.add_noise(clean, noise, t)
        pred = self.unet(noisy, t, return_dict=False)[0]
        loss = F.mse_loss(pred, noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.ema.step(self.unet.parameters())

    def round(self) -> float:
        import torch

        start = time.perf_counter()
        order = torch.randperm(self.n)
        for i in range(0, self.n, self.batch):
            self._step(self.x[order[i:i + self.batch]])
        return self.n / (time.perf_counter() - start)

    def sample(self) -> float:
        import torch
        import torch.nn.functional as F

        self.ema.copy_to(self.sampler_unet.parameters())

        def draw():
            out = self.pipe(batch_size=self.sample_n, num_inference_steps=self.sample_steps,
                            generator=torch.Generator().manual_seed(0), output_type="np").images
            # (n, 14, 14, 4) -> (n, 28, 28, 1): depth-to-space, pixel_unshuffle's inverse
            return F.pixel_shuffle(torch.from_numpy(out).permute(0, 3, 1, 2), PATCH).numpy()

        if not self.sampler_warm:
            draw()
            self.sampler_warm = True
        start = time.perf_counter()
        draw()
        return self.sample_n / (time.perf_counter() - start)


# =============================================================================================
# Subprocess entry points
# =============================================================================================


def prepare(data: str, npy: str) -> None:
    """Set-up: the train split as a ``.npy`` for the workers, the CPU, and the matmul peak."""
    import numpy as np

    from quality import cpu_model  # noqa: E402  (quality.py's CPU + bf16/AMX description)

    from tf_genai.data import load

    images, _ = load(data, split="train")
    np.save(npy, np.ascontiguousarray(images))
    import keras
    import tensorflow as tf

    _emit(images=int(len(images)), shape=list(images.shape[1:]), dtype=str(images.dtype),
          cpu=cpu_model(), cpus=os.cpu_count(), tensorflow=tf.__version__,
          keras=keras.__version__)
    matmul_peak_worker()


def worker(impl: str, args: argparse.Namespace) -> None:
    """Serve ``run`` (a training round), ``sample`` (a sampling round) and ``quit`` on stdin."""
    import numpy as np

    images = np.load(args.npy)
    if len(images) < args.images:
        raise SystemExit(f"{args.data}: the train split has {len(images)} images, "
                         f"need {args.images}")
    images = images[:args.images]
    if impl == "diffusers":
        job: Any = _DiffusersWorker(images, args.batch, args.sample_n, args.sample_steps,
                                    args.torch_threads)
    else:
        sys.path.insert(0, str(REPO_ROOT))
        job = _KerasDiffusionWorker(impl, images, args.batch, args.sample_n, args.sample_steps)
    _emit(ready=True, **job.info)
    for line in sys.stdin:
        command = line.strip()
        if command == "run":
            _emit(images_per_s=job.round())
        elif command == "sample":
            _emit(images_per_s=job.sample())
        elif command == "quit":
            break
    _emit(maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# =============================================================================================
# Parent: spawn workers, interleave rounds, print tables (imports neither TF nor torch)
# =============================================================================================


class DiffusionWorker(Worker):
    """One implementation's subprocess (throughput.Worker's ``read``/``send`` protocol)."""

    def __init__(self, impl: str, args: argparse.Namespace, npy: str):  # noqa: D107
        # Not Worker.__init__: that starts throughput.py's own worker.
        self.name = impl
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"diffusion_speed_{impl}_",
                                               suffix=".log", delete=False)
        cmd = [sys.executable, __file__, "--worker", impl, "--npy", npy, "--data", args.data,
               "--images", str(args.images), "--batch", str(args.batch),
               "--sample-n", str(args.sample_n), "--sample-steps", str(args.sample_steps),
               "--torch-threads", str(args.torch_threads)]
        env = dict(os.environ)
        if impl == "diffusers":
            env.update(USE_TF="0", USE_TORCH="1", USE_FLAX="0")  # diffusers: torch only
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, cwd=REPO_ROOT, env=env)
        self.rates: list[float] = []
        self.sample_rates: list[float] = []
        self.info: dict[str, Any] = {}
        self.flops_per_image = 0
        self.maxrss_kib = 0
        self.error = ""

    def request(self, command: str) -> float | None:
        """One timed round; None (and ``error`` set) if the worker died."""
        try:
            self.send(command)
            return self.read()["images_per_s"]
        except (RuntimeError, BrokenPipeError, OSError) as err:
            self.error = (str(err).strip().splitlines() or ["died"])[-1]
            print(f"  {self.name}: {err}", file=sys.stderr)
            return None


def _marks(stdout: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(MARK):
            out.update(json.loads(line[len(MARK):]))
    return out


def run_prepare(args: argparse.Namespace, npy: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--prepare", npy, "--data", args.data],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    if proc.returncode:
        raise SystemExit(f"set-up failed:\n{proc.stderr[-2000:]}")
    return _marks(proc.stdout)


def interleave(workers: list[DiffusionWorker], rounds: int, command: str, label: str) -> None:
    for r in range(rounds):
        for w in workers:  # A, B, C, A, B, C, ...
            if w.error:
                continue
            rate = w.request(command)
            if rate is not None:
                (w.rates if command == "run" else w.sample_rates).append(rate)
        print(f"  {label} round {r + 1}: " + ", ".join(
            f"{w.name} {(w.rates if command == 'run' else w.sample_rates)[-1]:.1f}"
            for w in workers if not w.error), file=sys.stderr)


def _ratio(a: list[float], b: list[float] | None) -> tuple[str, str]:
    """(ratio of medians, paired ratio: the median over rounds of a_i / b_i)."""
    if not a or not b:
        return "-", "-"
    med = statistics.median(a) / statistics.median(b)
    paired = statistics.median(x / y for x, y in zip(a, b))
    return f"{med:.2f}x", f"{paired:.2f}x"


def render(workers: list[DiffusionWorker], setup: dict[str, Any], peak: dict[str, float],
           args: argparse.Namespace, load: tuple[str, str], skipped: str) -> tuple[str, dict]:
    """The markdown report and its JSON twin."""
    by = {w.name: w for w in workers}
    f32 = peak["float32"]
    versions = [f"TensorFlow {setup.get('tensorflow', '?')}", f"Keras {setup.get('keras', '?')}"]
    torch_info = by["diffusers"].info if "diffusers" in by else {}
    if torch_info:
        versions += [f"torch {torch_info['torch']}", f"diffusers {torch_info['diffusers']}"]
    lines = [
        "# Diffusion training and sampling speed",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; CPU: "
        f"{setup.get('cpu', '?')}, {setup.get('cpus', os.cpu_count())} CPUs; "
        + ", ".join(versions),
        f"- {args.rounds} interleaved round(s) of {args.images} MNIST images (batch "
        f"{args.batch}, float32 unless the set-up column says otherwise); load average before "
        f"{load[0]}, after {load[1]}",
        f"- matmul peak (2048^3, best of 6, before/after the run): TF float32 {f32:.0f} GFLOP/s, "
        f"bfloat16 {peak.get('bfloat16', 0):.0f} GFLOP/s"
        + (f"; torch float32 {torch_info['torch_matmul_gflops']:.0f} GFLOP/s" if torch_info
           else ""),
    ]
    if skipped:
        lines.append(f"- {skipped}")
    if "tf_genai" in by and by["tf_genai"].info:
        i = by["tf_genai"].info
        lines.append(f"- zoo ddpm U-Net forward: {i['flops_conv_dense'] / 1e6:.1f} MFLOP "
                     f"(throughput.forward_flops: conv + dense) + {i['flops_attention'] / 1e6:.1f}"
                     f" MFLOP attention = {i['flops_forward'] / 1e6:.1f} MFLOP a 28x28 image, "
                     f"{i['params']:,} parameters")
    if torch_info:
        lines.append(f"- diffusers UNet2DModel {json.dumps(torch_info['config'])} on "
                     f"pixel_unshuffle(2) images: {torch_info['flops_forward'] / 1e6:.1f} MFLOP "
                     f"forward (FlopCounterMode: {torch_info['flop_ops']}), "
                     f"{torch_info['params']:,} parameters")
    lines += [
        "",
        "Training (images/s; GFLOP/s = images/s x 3 x forward FLOPs):",
        "",
        "| implementation | images/s (median) | rounds | vs keras-io | vs diffusers "
        "| paired vs keras-io | paired vs diffusers | fwd MFLOP/img | params | GFLOP/s "
        "| % fp32 peak | set-up | peak RSS MiB |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]

    def ref(name: str, kind: str) -> list[float] | None:
        """The reference row's training or sampling rates (None: not run)."""
        if name not in by:
            return None
        return by[name].rates if kind == "train" else by[name].sample_rates

    for w in workers:
        if not w.rates:
            lines.append(f"| {w.name} | failed: {w.error or 'no rounds'} |" + " |" * 11)
            continue
        m = statistics.median(w.rates)
        ki, kp = _ratio(w.rates, ref("keras-io", "train")) if w.name != "keras-io" else ("-", "-")
        di, dp = _ratio(w.rates, ref("diffusers", "train")) if w.name != "diffusers" else ("-", "-")
        gflops = m * 3 * w.info["flops_forward"] / 1e9
        lines.append(f"| {w.name} | {m:.1f} | {' '.join(f'{r:.1f}' for r in w.rates)} | {ki} | "
                     f"{di} | {kp} | {dp} | {w.info['flops_forward'] / 1e6:.1f} | "
                     f"{w.info['params']:,} | {gflops:.1f} | {100 * gflops / f32:.0f}% | "
                     f"{w.info['compile']} | {w.maxrss_kib / 1024:.0f} |")
    verdict = {}
    if "tf_genai" in by and by["tf_genai"].rates:
        for other in ("keras-io", "diffusers"):
            if other in by and by[other].rates:
                med, paired = _ratio(by["tf_genai"].rates, by[other].rates)
                verdict[other] = {"median_ratio": med, "paired_ratio": paired}
        if verdict:
            ok = all(float(v[k][:-1]) >= 1.3 for v in verdict.values() for k in v)
            lines += ["", "Training target (tf_genai >= 1.3x each, median and paired): "
                      + ", ".join(f"vs {k} {v['median_ratio']} / {v['paired_ratio']}"
                                  for k, v in verdict.items())
                      + (" -> met" if ok else " -> not met")]
    samplers = [w for w in workers if w.name in SAMPLERS and (w.sample_rates or w.error)]
    if not args.no_sampling and samplers:
        lines += [
            "",
            f"Sampling {args.sample_n} images at {args.sample_steps} DDIM steps (images/s; "
            f"GFLOP/s = images/s x {args.sample_steps} x forward FLOPs):",
            "",
            "| implementation | images/s (median) | rounds | vs diffusers | paired vs diffusers "
            "| s a call | GFLOP/s | % fp32 peak |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for w in samplers:
            if not w.sample_rates:
                lines.append(f"| {w.name} | failed: {w.error} |" + " |" * 6)
                continue
            m = statistics.median(w.sample_rates)
            di, dp = (_ratio(w.sample_rates, ref("diffusers", "sample"))
                      if w.name != "diffusers" else ("-", "-"))
            gflops = m * args.sample_steps * w.info["flops_forward"] / 1e9
            lines.append(f"| {w.name} | {m:.1f} | {' '.join(f'{r:.1f}' for r in w.sample_rates)}"
                         f" | {di} | {dp} | {args.sample_n / m:.2f} | {gflops:.1f} | "
                         f"{100 * gflops / f32:.0f}% |")
    record = {
        "setup": setup, "peak": peak, "load": load, "skipped": skipped, "verdict": verdict,
        "args": {k: v for k, v in vars(args).items() if k not in ("worker", "npy", "prepare")},
        "workers": {w.name: {"train_images_per_s": w.rates, "sample_images_per_s": w.sample_rates,
                             "maxrss_kib": w.maxrss_kib, "error": w.error, **w.info}
                    for w in workers},
    }
    return "\n".join(lines) + "\n", record


def missing_torch() -> str:
    """Why the diffusers rows cannot run here, or '' when they can."""
    absent = [m for m in ("torch", "diffusers") if importlib.util.find_spec(m) is None]
    if absent:
        return (f"diffusers rows skipped: {' and '.join(absent)} not installed "
                "(pip install torch diffusers)")
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per implementation")
    parser.add_argument("--images", type=int, default=1024, help="training images per round")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    parser.add_argument("--sampling", dest="no_sampling", action="store_false",
                        help="time DDIM sampling too (the default)")
    parser.add_argument("--no-sampling", dest="no_sampling", action="store_true",
                        help="skip the sampling rows")
    parser.set_defaults(no_sampling=False)
    parser.add_argument("--sample-n", type=int, default=256, help="images a sampling call")
    parser.add_argument("--sample-steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch.set_num_threads for the diffusers worker (0: all CPUs). "
                             "On a CPU shared with another busy process, torch's OpenMP "
                             "threads wait on each other: 1 thread then ran DDIM sampling "
                             "15-30x faster than 2 (2 cores, 2026-12-02)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 round of 128 images, 8 samples")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--out", type=Path, default=None,
                        help="write the report here (markdown) and its .json beside it")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--npy", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", metavar="NPY", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.prepare:
        sys.path.insert(0, str(REPO_ROOT))
        prepare(args.data, args.prepare)
        return 0
    if args.worker:
        worker(args.worker, args)
        return 0
    if args.quick:
        args.rounds, args.images, args.sample_n = 1, min(args.images, 128), min(args.sample_n, 8)

    skipped = missing_torch() if "diffusers" in args.impls else ""
    if skipped:
        print(skipped, file=sys.stderr)
    impls = [i for i in args.impls if not (skipped and i == "diffusers")]
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with tempfile.TemporaryDirectory(prefix="diffusion_speed_") as tmp:
        npy = str(Path(tmp) / "train.npy")
        print("set-up: data, CPU, matmul peak", file=sys.stderr)
        setup = run_prepare(args, npy)
        peak = {k: setup.pop(k) for k in ("float32", "bfloat16")}
        if setup["images"] < args.images:
            raise SystemExit(f"{args.data}: the train split has {setup['images']} images, "
                             f"need --images {args.images}")
        workers = []
        for impl in impls:  # one at a time: set-up (tracing) is CPU-heavy
            w = DiffusionWorker(impl, args, npy)
            try:
                w.info = w.read()
                print(f"  {impl}: ready", file=sys.stderr)
            except RuntimeError as err:
                w.error = (str(err).strip().splitlines() or ["died"])[-1]
                print(f"  {impl}: {err}", file=sys.stderr)
            workers.append(w)
        interleave(workers, args.rounds, "run", "training")
        if not args.no_sampling:
            interleave([w for w in workers if w.name in SAMPLERS], args.rounds, "sample",
                       "sampling")
        for w in workers:
            if not w.error:
                try:
                    w.send("quit")
                    w.maxrss_kib = w.read()["maxrss_kib"]
                except (RuntimeError, OSError):
                    pass
            w.proc.wait(timeout=60)
            w.log.close()
            if w.error:
                print(f"  {w.name}: its log is {w.log.name}", file=sys.stderr)
            else:
                os.unlink(w.log.name)
    if not args.quick:  # the better of the peaks before and after, as throughput.py takes it
        after = measure_peak()
        peak = {k: max(peak[k], after[k]) for k in peak}
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text, record = render(workers, setup, peak, args, (load_before, load_after), skipped)
    print("\n" + text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(record, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

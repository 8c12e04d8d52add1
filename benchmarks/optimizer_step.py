"""Keras' ``Adam`` against ``tf_genai.optimizers.Adam`` (one fused ``ResourceApplyAdam`` per
variable): the update alone and whole training epochs.

Two measurements, each interleaved round by round in one process:

1. one ``optimizer.apply`` over a zoo model's trainable variables, in a ``tf.function``, with
   the largest weight difference after the timed steps (same gradients, same start);
2. whole training epochs of the zoo model (``devices.training_options()``, ``make_dataset``,
   batch 128, the first 2,048 MNIST train images when ``../shared/data/mnist`` exists, else
   digits), timed from epoch begin to epoch end, paired per round.

On a 2-core AMD EPYC Zen 4 (2026-12-06) the update alone was 2.2-2.7x faster (dcgan: ~12.5 ms
against ~4.8 ms for 5.0 M parameters), while a whole ``dcgan`` step gained only 1.04-1.06x
(three runs) and a ``vae`` step 1.01x: inside the step TensorFlow's executor runs each
variable's update as soon as its gradient exists, beside the remaining back-propagation, whose
small oneDNN kernels leave a core idle part of the time, so most of the saving was hidden
already. ::

    python benchmarks/optimizer_step.py                     # dcgan and vae, 7 rounds
    python benchmarks/optimizer_step.py --models dcgan --rounds 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_genai  # noqa: E402
from tf_genai import devices, optimizers  # noqa: E402
from tf_genai.data import load, make_dataset  # noqa: E402

MNIST = REPO.parent / "shared" / "data" / "mnist"


OPTIMIZERS = {"keras": keras.optimizers.Adam, "fused": optimizers.Adam}


def _apply_timer(cls, values, grads):
    """A round function timing ``apply`` (ms per call) and the variables it updates."""
    variables = [keras.Variable(v) for v in values]
    optimizer = cls(learning_rate=2e-4, beta_1=0.5)
    optimizer.build(variables)
    apply = tf.function(lambda: optimizer.apply(grads, variables))
    apply()  # trace

    def round_(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            apply()
        return (time.perf_counter() - start) / steps * 1e3

    return round_, variables


class _EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def _epoch_timer(name: str, cls, images):
    """A round function training one epoch of zoo model ``name`` (images/s)."""
    options = devices.training_options()
    with devices.mixed_precision(options["mixed_precision_policy"]):
        model = tf_genai.create(name, image_shape=images.shape[1:], seed=0)
    recipe = model.default_optimizers()  # the zoo's hyper-parameters, in the chosen class
    model.compile(**{k: cls.from_config(v.get_config()) for k, v in recipe.items()},
                  steps_per_execution=options["steps_per_execution"])
    ds = make_dataset(images, batch_size=128, scale=model.data_range, seed=0)
    timer = _EpochTimer()

    def round_() -> float:
        model.fit(ds, epochs=1, verbose=0, callbacks=[timer])
        return len(images) / timer.seconds

    round_()  # trace, fill the cache
    return round_


def _paired(a, b) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dcgan", "vae"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20, help="applies per round")
    args = parser.parse_args(argv)

    data = str(MNIST) if MNIST.exists() else "digits"
    images = load(data, split="train")[0][:2048]
    print(f"machine: {devices.describe().summary()}; data: {data} ({len(images)} images)")
    print("| model | parameters | Keras Adam ms/apply | fused ms/apply | apply speed-up (paired) "
          "| max weight difference | Keras Adam images/s | fused images/s | step speed-up "
          "(paired) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.models:
        values = [v.numpy() for v in tf_genai.create(
            name, image_shape=images.shape[1:]).trainable_variables]
        rng = np.random.default_rng(0)
        grads = [tf.constant(rng.normal(size=v.shape).astype("float32")) for v in values]
        appliers = {k: _apply_timer(cls, values, grads) for k, cls in OPTIMIZERS.items()}
        epochs = {k: _epoch_timer(name, cls, images) for k, cls in OPTIMIZERS.items()}
        ms = {k: [] for k in OPTIMIZERS}
        speed = {k: [] for k in OPTIMIZERS}
        for _ in range(args.rounds):
            for k in OPTIMIZERS:
                ms[k].append(appliers[k][0](args.steps))
                speed[k].append(epochs[k]())
        diff = max(float(np.max(np.abs(a.numpy() - b.numpy())))
                   for a, b in zip(appliers["keras"][1], appliers["fused"][1]))
        med = {k: statistics.median(v) for k, v in {**{f"ms_{k}": ms[k] for k in ms},
                                                    **{f"ips_{k}": speed[k] for k in speed}}.items()}
        print(f"| {name} | {sum(v.size for v in values):,} | {med['ms_keras']:.2f} | "
              f"{med['ms_fused']:.2f} | {_paired(ms['keras'], ms['fused']):.2f}x | {diff:.1e} | "
              f"{med['ips_keras']:.0f} | {med['ips_fused']:.0f} | "
              f"{_paired(speed['fused'], speed['keras']):.3f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

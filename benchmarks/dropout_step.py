"""What the discriminator's dropout costs a GAN training step: keras.layers.Dropout vs FastDropout.

Builds three ``dcgan`` models with discriminator dropout 0.3 in one process — one with
``keras.layers.Dropout``, one with :class:`tf_genai.layers.FastDropout` (the zoo's), one with
no dropout — under the device's mixed-precision policy, and times compiled calls of 8
``train_step``s on one fixed batch of 128, the three interleaved round after round so machine
load hits each alike. Prints the median images/s of each.

Usage (from the repository root)::

    python benchmarks/dropout_step.py --rounds 25
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tf_genai import devices, registry  # noqa: E402
from tf_genai.models.gan import networks  # noqa: E402

STEPS = 8  # train steps per timed call
BATCH = 128


def build(dropout_layer, dropout: float) -> keras.Model:
    """A compiled dcgan whose discriminator uses ``dropout_layer`` at rate ``dropout``."""
    zoo_layer = networks.FastDropout
    networks.FastDropout = dropout_layer  # the networks module builds with this name
    try:
        model = registry.create("dcgan", dropout=dropout)
    finally:
        networks.FastDropout = zoo_layer
    model.compile()
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args(argv)
    policy = devices.training_options()["mixed_precision_policy"]
    real = tf.constant(
        np.random.default_rng(0).uniform(-1, 1, (BATCH, 28, 28, 1)).astype("float32"))
    with devices.mixed_precision(policy):
        models = {
            "keras.layers.Dropout(0.3)": build(keras.layers.Dropout, 0.3),
            "FastDropout(0.3)": build(networks.FastDropout, 0.3),
            "no dropout": build(networks.FastDropout, 0.0),
        }
    runs = {}
    for label, model in models.items():
        @tf.function
        def run(model=model):
            for _ in tf.range(STEPS):
                model.train_step(real)
        run()  # trace
        run()
        runs[label] = run
    seconds = {label: [] for label in runs}
    for _ in range(args.rounds):
        for label, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[label].append(time.perf_counter() - start)
    print(f"policy {policy}; {args.rounds} interleaved rounds of {STEPS} steps, batch {BATCH}")
    print("| discriminator dropout | images/s (median) | p25 | p75 |")
    print("| --- | ---: | ---: | ---: |")
    for label, s in seconds.items():
        rate = BATCH * STEPS / np.asarray(s)
        print(f"| {label} | {np.median(rate):.0f} | {np.percentile(rate, 25):.0f} | "
              f"{np.percentile(rate, 75):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

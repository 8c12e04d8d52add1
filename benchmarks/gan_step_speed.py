"""Training-step speed of GAN configurations on 32x32 colour images, timed in interleaved rounds.

Each configuration (a zoo name plus constructor arguments, e.g. ``sngan`` at several widths,
with and without differentiable augmentation, or ``kerasio_dcgan``, the keras-io DCGAN pattern
of ``benchmarks/kerasio_dcgan.py``) is built and compiled once, under the machine's
training options (:func:`tf_genai.devices.training_options`: precision policy, steps per
execution), and warmed up (tracing); then the rounds time ``--steps`` training steps of each
configuration in turn, A, B, C, A, B, C, ..., so load drifts on a shared machine hit every
configuration alike. Printed: the median images/s of each, and its median per-round ratio to
the first configuration (the paired ratio, which a slow spell spanning a round cancels out of) with
its range over the rounds.

    python benchmarks/gan_step_speed.py --rounds 5 \\
        --configs kerasio_dcgan dcgan 'sngan {"base_filters": 32, "generator_filters": 32}' sngan \\
        'sngan {"base_filters": 64, "generator_filters": 128}' \\
        'dcgan {"augment": "color,translation,cutout"}' \\
        'sngan {"augment": "color,translation,cutout"}'
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from tf_genai import data as data_lib  # noqa: E402
from tf_genai import devices, registry  # noqa: E402
from tf_genai.training import compile_model, largest_divisor  # noqa: E402

import kerasio_dcgan  # noqa: E402

CIFAR = REPO / ".." / "shared" / "data" / "cifar10" / "cifar10_subset.npz"


def parse_config(text: str) -> tuple[str, dict]:
    """``'name'`` or ``'name {json kwargs}'``."""
    name, _, kwargs = text.partition(" ")
    return name, json.loads(kwargs) if kwargs.strip() else {}


def build(name: str, kwargs: dict, image_shape: tuple, steps_per_execution: int, levers: dict):
    """The configuration's model, compiled with the machine's steps per execution: a zoo model
    under the machine's precision policy with its family's optimizers; the keras-io pattern as
    its example runs, in float32 (its step does not cast, so a mixed policy fails) with its
    example's optimizers."""
    if name == kerasio_dcgan.NAME:
        with devices.mixed_precision("float32"):
            model = kerasio_dcgan.KerasIODCGAN(image_shape, name=name, **kwargs)
            model.compile(steps_per_execution=steps_per_execution,
                          jit_compile=levers["jit_compile"])
        return model
    with devices.mixed_precision(levers["mixed_precision_policy"]):
        model = registry.create(name, image_shape=image_shape, **kwargs)
        compile_model(model, steps_per_execution=steps_per_execution,
                      jit_compile=levers["jit_compile"])
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["dcgan", "sngan"],
                        help="zoo name, optionally followed by JSON constructor arguments")
    parser.add_argument("--data", default=str(CIFAR))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    images, _ = data_lib.load(args.data, split="train")
    levers = devices.training_options()
    steps_per_execution = largest_divisor(args.steps, levers["steps_per_execution"])
    models = []
    for text in args.configs:
        name, kwargs = parse_config(text)
        model = build(name, kwargs, tuple(images.shape[1:]), steps_per_execution, levers)
        ds = data_lib.make_dataset(images, batch_size=args.batch_size, scale=model.data_range,
                                   seed=0, repeat=True, drop_remainder=True)
        # The first fit traces the step: a warm-up, untimed.
        model.fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0, shuffle=False)
        models.append((text, model, ds))

    seconds = {text: [] for text, _, _ in models}
    for _ in range(args.rounds):
        for text, model, ds in models:
            start = time.perf_counter()
            model.fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0, shuffle=False)
            seconds[text].append(time.perf_counter() - start)

    first = args.configs[0]
    now = datetime.datetime.now(datetime.timezone.utc)
    command = shlex.join(["python", "benchmarks/gan_step_speed.py", *sys.argv[1:]])
    print(f"# GAN training-step speed, {'x'.join(map(str, images.shape[1:]))}, batch "
          f"{args.batch_size}\n\n- date: {now:%Y-%m-%d %H:%M} UTC; CPU: "
          f"{devices.describe().name}, {os.cpu_count()} cores; levers: "
          f"{levers['mixed_precision_policy']}, steps_per_execution {steps_per_execution}\n"
          f"- {args.rounds} interleaved rounds of {args.steps} steps; command: {command}\n")
    print(f"| configuration | G params | D params | images/s (median) | paired ratio to "
          f"{first} (median, range over rounds) |\n| --- | --- | --- | --- | --- |")
    for text, model, _ in models:
        rate = args.steps * args.batch_size / statistics.median(seconds[text])
        ratios = [a / b for a, b in zip(seconds[first], seconds[text])]
        print(f"| {text} | {model.generator.count_params():,} | "
              f"{model.discriminator.count_params():,} | {rate:.0f} | "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time the training levers on this machine: precision policy, steps per execution, XLA.

Builds the zoo model as ``tf-genai train`` does (``registry.create`` under the precision policy,
``training.compile_model``, ``training.epoch_dataset`` over the train split less its 10 %
validation part) once for every lever choice:

- precision policy: float32; mixed_bfloat16 on a CPU whose flags have avx512_bf16 or amx_bf16;
  mixed_float16 on a GPU with tensor cores;
- steps per execution: 1, 4, 16, each capped as ``tf-genai train`` caps it (the largest divisor
  of the epoch's steps: an execution never runs into the next epoch);
- XLA (``jit_compile``): off, on.

Each choice first runs one untimed round (its first execution traces, and XLA compiles, the
step); then the timed rounds are interleaved (every choice runs round 1, then round 2, ...) so a
slow spell of the machine hits all alike. A round is ``fit`` over whole epochs of at least 8,192
images. Prints the device, the flag choice (``devices.training_options()`` without the
environment's overrides), a table of images/s, and the ``TF_GENAI_*`` overrides that make a run
faster than the flag choice here: the fastest choice whose slowest round beats the flag
choice's fastest (faster by more than the rounds' spread), or that the flags' choice is the
fastest within noise.

    python benchmarks/levers.py --model vae --data digits --rounds 2
    python benchmarks/levers.py --model dcgan --data ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tf_genai import data as data_lib  # noqa: E402
from tf_genai import devices, registry, training  # noqa: E402

STEPS_PER_EXECUTION = (1, 4, 16)
ROUND_IMAGES = 8192


def flag_choice() -> dict:
    """``devices.training_options()`` as the flags alone set it (the overrides put aside)."""
    saved = {var: os.environ.pop(var) for var in devices.ENV_OVERRIDES.values()
             if var in os.environ}
    try:
        return devices.training_options()
    finally:
        os.environ.update(saved)


def policies(info: devices.DeviceInfo) -> list[str]:
    """float32 and the 16-bit policy this device has units for."""
    if info.kind == "gpu":
        return ["float32"] + (["mixed_float16"] if info.fp16 else [])
    return ["float32"] + (["mixed_bfloat16"] if info.bf16 else [])


class Choice:
    """One setting of the three levers: its compiled model and the images/s of its rounds."""

    def __init__(self, name: str, kwargs: dict, images, labels, batch_size: int,
                 policy: str, spe: int, jit: bool):
        self.key = (policy, spe, jit)
        with devices.mixed_precision(policy):
            self.model = registry.create(name, **kwargs)
        training.compile_model(self.model, steps_per_execution=spe, jit_compile=jit)
        self.epochs = math.ceil(ROUND_IMAGES / len(images))
        self.images = self.epochs * len(images)
        self.dataset, self.steps = training.epoch_dataset(
            images, labels if self.model.num_classes is not None else None,
            batch_size=batch_size, scale=self.model.data_range, seed=0, epochs=self.epochs)
        self.round()  # untimed: traces (and with XLA compiles) the train step
        self.rates: list[float] = []

    def round(self) -> float:
        start = time.perf_counter()
        self.model.fit(self.dataset, epochs=self.epochs, steps_per_epoch=self.steps, verbose=0)
        return self.images / (time.perf_counter() - start)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def overrides(key: tuple) -> str:
    """The environment that makes ``tf-genai train`` use the levers of ``key``."""
    policy, spe, jit = key
    var = devices.ENV_OVERRIDES
    return (f"{var['mixed_precision_policy']}={policy} {var['steps_per_execution']}={spe} "
            f"{var['jit_compile']}={int(jit)}")


def report(choices: list[Choice], flags: tuple) -> None:
    base = next(c for c in choices if c.key == flags)
    print("\n| policy | steps per execution | XLA | images/s (median) | rounds | vs flags |")
    print("| --- | ---: | --- | ---: | --- | ---: |")
    for c in sorted(choices, key=lambda c: -c.median):
        policy, spe, jit = c.key
        mark = " (flags)" if c is base else ""
        print(f"| {policy}{mark} | {spe} | {'on' if jit else 'off'} | {c.median:.0f} | "
              f"{' '.join(f'{r:.0f}' for r in c.rates)} | {c.median / base.median:.2f}x |")
    faster = [c for c in choices if min(c.rates) > max(base.rates)]
    if not faster:
        print("\nThe flags' choice is the fastest within the rounds' spread: no override.")
        return
    best = max(faster, key=lambda c: c.median)
    print(f"\nFaster than the flags' choice in every round ({best.median / base.median:.2f}x "
          f"the median): {overrides(best.key)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a zoo name (tf-genai models)")
    parser.add_argument("--data", required=True,
                        help="what tf-genai train --data takes: digits, an MNIST folder, ...")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    info, flags = devices.describe(), flag_choice()
    images, labels = data_lib.load(args.data, split="train")
    (images, labels), _ = data_lib.train_validation_split(images, labels, fraction=0.1, seed=0)
    kwargs = {"image_shape": tuple(images.shape[1:]), "seed": 0}
    if registry.entry(args.model).defaults.get("num_classes") is not None:
        if labels is None:
            raise SystemExit(f"{args.model} is conditional: --data needs labels")
        kwargs["num_classes"] = int(labels.max()) + 1
    steps = math.ceil(len(images) / args.batch_size)
    spes = sorted({training.largest_divisor(steps, s) for s in STEPS_PER_EXECUTION})
    flag_key = (flags["mixed_precision_policy"],
                training.largest_divisor(steps, flags["steps_per_execution"]),
                bool(flags["jit_compile"]))
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {info.summary()}\n"
          f"{args.model} on {args.data}: {len(images)} training images, "
          f"{steps} steps of {args.batch_size} an epoch (steps per execution "
          f"{'/'.join(map(str, STEPS_PER_EXECUTION))} run as "
          f"{'/'.join(str(training.largest_divisor(steps, s)) for s in STEPS_PER_EXECUTION)})\n"
          f"flags' choice: {overrides(flag_key)}", flush=True)

    choices = []
    for policy, spe, jit in itertools.product(policies(info), spes, (False, True)):
        print(f"  tracing {policy}, steps per execution {spe}, XLA {jit}", file=sys.stderr)
        choices.append(Choice(args.model, kwargs, images, labels, args.batch_size,
                              policy, spe, jit))
    for r in range(args.rounds):
        for c in choices:
            c.rates.append(c.round())
        print(f"  round {r + 1} done", file=sys.stderr, flush=True)
    report(choices, flag_key)
    return 0


if __name__ == "__main__":
    sys.exit(main())

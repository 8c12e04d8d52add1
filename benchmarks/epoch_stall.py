"""The first step of an epoch under ``keras.Model.fit``: how long it stalls, and when it does not.

Found while measuring issue 17's training speed (2026-12-03, 2-core AMD EPYC, AVX2 only,
TensorFlow 2.21, Keras 3.15.1): with a finite ``tf.data.Dataset``, ``fit`` makes a new
iterator at the end of every epoch, and the first step after it sometimes takes seconds instead
of its usual time -- 7-9 s for the zoo ``ddpm`` (steps of ~0.8 s at batch 128) in 2-3 of 5
epochs, ~5 s for ``dcgan`` (steps of ~0.3 s). The same happens with a bare
``Dataset.from_tensor_slices(x).batch(128)`` (no cache, shuffle, map or prefetch), so it is not
``tf_genai.data.make_dataset``; Python's garbage collector is not it either (no collection over
0.35 s during the run, ``gc.callbacks``); ``faulthandler`` shows the main thread inside Keras'
``for ... in epoch_iterator`` (C++ below it). With ``repeat=True`` and ``steps_per_epoch`` (one
iterator for the whole fit) no epoch stalled. For a 1,024-image round or a 16-step epoch that is
up to half the wall time; for MNIST's 125-step epochs at batch 64 about a tenth.

The cause (found 2026-12-06, 2-core AMD EPYC Zen 4): tf.data's autotuning. Ending an
iterator waits for the autotuning model thread's next wake-up, and that thread sleeps on a
schedule that doubles from 10 ms, so an epoch ends at the next 10 ms x (2^k - 1) after its
iterator started: a 1.4 s ``dcgan`` epoch (steps_per_execution 16) at 2.55 s, a 0.3 s ``vae``
epoch at 0.63 s, and a 6 s ``ddpm`` epoch (16 steps) at 10.2 s, a 4-5 s stall; the 7-9 s
above came from slower steps. With ``tf.data.Options().autotune.enabled = False`` no epoch
stalled, so ``make_dataset``, the streaming pipeline and ``training.epoch_dataset`` set it since
then (``tf_genai.data.pipeline.pipeline_options``).

Rows: ``autotune`` (``make_dataset`` with autotuning switched back on: the old pipeline),
``finite`` (``make_dataset`` now, a new iterator every epoch) and ``repeated`` (one iterator,
``steps_per_epoch``). Each prints the first three step times (seconds) of every epoch::

    python benchmarks/epoch_stall.py                     # ddpm
    python benchmarks/epoch_stall.py --model dcgan --epochs 8
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

import tf_genai  # noqa: E402
from tf_genai import data as data_lib  # noqa: E402

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


class StepTimes(keras.callbacks.Callback):
    """Seconds from epoch start to the first step's end, then between step ends."""

    def __init__(self, label: str):
        super().__init__()
        self.label, self.epochs = label, []

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.times = time.perf_counter(), []

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.times.append(now - self.start)
        self.start = now

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(self.times)
        print(f"{self.label:>9} epoch {epoch}: first steps "
              + " ".join(f"{t:.2f}" for t in self.times[:3])
              + f"  (median step {np.median(self.times[1:]):.2f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ddpm")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--data", default=str(MNIST))
    args = parser.parse_args(argv)

    x, _ = data_lib.load(args.data, split="train")
    x = x[: args.images]
    steps = int(np.ceil(len(x) / args.batch))
    scale = "symmetric" if args.model not in ("vae", "mlp_vae", "iwae") else "unit"
    for label, repeat, autotune in (("autotune", False, True), ("finite", False, False),
                                    ("repeated", True, False)):
        keras.utils.set_random_seed(0)
        model = tf_genai.create(args.model, image_shape=x.shape[1:], seed=0)
        model.compile(steps_per_execution=1)
        ds = data_lib.make_dataset(x, batch_size=args.batch, scale=scale, seed=0, repeat=repeat)
        if autotune:  # make_dataset before 2026-12-06: tf.data's autotuning model thread on
            options = tf.data.Options()
            options.autotune.enabled = True
            ds = ds.with_options(options)
        cb = StepTimes(label)
        model.fit(ds, epochs=args.epochs, steps_per_epoch=steps if repeat else None,
                  callbacks=[cb], verbose=0)
        later = [e[0] for e in cb.epochs[1:]]  # epoch 0's first step traces the function
        typical = float(np.median([t for e in cb.epochs for t in e[1:]]))
        stalled = sum(t > 3 * typical for t in later)
        print(f"{label}: {stalled} of {len(later)} later epochs stalled (first step > 3x the "
              f"median step {typical:.2f} s); worst {max(later):.2f} s; later epochs "
              f"{sum(map(sum, cb.epochs[1:])):.1f} s in all", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

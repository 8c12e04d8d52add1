"""Is the input pipeline fast enough? Images/s it delivers vs. images/s a conv VAE step consumes.

For MNIST-shaped data (28x28x1 uint8, batch 128) this times ``tf_genai.data.make_dataset``
over a few epochs after a warm-up epoch that fills the cache, plain and with dynamic
binarization, then the default conv VAE (``tf_genai.create("vae")``) training with ``fit`` on
the same pipeline (after a warm-up fit that traces the train step). The pipeline should deliver
at least 50x what training consumes, so it never is the bottleneck.

Usage (from the repository root)::

    python benchmarks/input_pipeline.py [--data ../shared/data/mnist] [--epochs 5]
        [--vae-steps 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script without installing the package

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_genai  # noqa: E402
from tf_genai.data import load, make_dataset  # noqa: E402

GOAL = 50.0


def pipeline_images_per_second(
    images: np.ndarray, *, batch_size: int, epochs: int, binarize: bool
) -> float:
    """Images/s the pipeline yields to a Python loop, after one warm-up epoch fills the cache."""
    ds = make_dataset(images, batch_size=batch_size, binarize=binarize, seed=0)
    for _ in ds:  # warm-up: fill the cache, start the prefetch threads
        pass
    count = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in ds:
            count += int(batch.shape[0])
    return count / (time.perf_counter() - start)


def vae_images_per_second(images: np.ndarray, *, batch_size: int, steps: int) -> float:
    """Images/s the default conv VAE trains on with ``fit``, after a warm-up that traces it."""
    model = tf_genai.create("vae", image_shape=images.shape[1:])
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    # The model binarizes inside its train step when model.binarize is set, so the pipeline
    # only scales here.
    ds = make_dataset(images, batch_size=batch_size, scale=model.data_range, repeat=True,
                      drop_remainder=True)
    model.fit(ds, epochs=1, steps_per_epoch=5, verbose=0, shuffle=False)  # trace the step
    start = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return steps * batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print images/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO_ROOT / ".." / "shared" / "data" / "mnist"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--vae-steps", type=int, default=40)
    args = parser.parse_args(argv)

    images, _ = load(args.data, split="all")  # (10000, 28, 28, 1) uint8 for the shared MNIST
    print(f"data: {args.data} -> {images.shape} {images.dtype}; batch {args.batch_size}")
    plain = pipeline_images_per_second(images, batch_size=args.batch_size, epochs=args.epochs,
                                       binarize=False)
    binarized = pipeline_images_per_second(images, batch_size=args.batch_size,
                                           epochs=args.epochs, binarize=True)
    vae = vae_images_per_second(images, batch_size=args.batch_size, steps=args.vae_steps)
    slowest = min(plain, binarized)
    print(f"pipeline, scaled:             {plain:12,.0f} images/s")
    print(f"pipeline, dynamic binarized:  {binarized:12,.0f} images/s")
    print(f"conv VAE training step (fit): {vae:12,.0f} images/s")
    ratio = slowest / vae
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(f"ratio (slower pipeline / VAE): {ratio:.1f}x  (goal >= {GOAL:.0f}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

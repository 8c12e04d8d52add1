"""Time a 30x30 latent manifold: one batched decode vs one ``predict()`` call per cell.

The keras-io VAE example ("plot_latent_space") decodes its grid with
``vae.decoder.predict(z_sample)`` inside a double loop: 900 calls for 30x30, each paying
Keras' per-call overhead. ``tf_genai.plotting.plot_latent_manifold`` decodes the whole grid in
one ``vae.decode(z)`` call of shape (900, 2). Both paths include their own image composition;
the tf_genai path also builds the matplotlib Figure. Both are warmed up first (graph tracing
is not counted).

Usage: ``python benchmarks/manifold.py [--n 30] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def keras_io_manifold(vae, n: int, scale: float = 1.0) -> np.ndarray:
    """The keras-io loop: one ``decoder.predict`` per grid cell (Bernoulli logits -> sigmoid)."""
    digit_size = vae.image_shape[0]
    figure = np.zeros((digit_size * n, digit_size * n))
    grid_x = np.linspace(-scale, scale, n)
    grid_y = np.linspace(-scale, scale, n)[::-1]
    for i, yi in enumerate(grid_y):
        for j, xi in enumerate(grid_x):
            z_sample = np.array([[xi, yi]], dtype=np.float32)
            x_decoded = vae.decoder.predict(z_sample, verbose=0)  # one call per cell
            digit = 1.0 / (1.0 + np.exp(-x_decoded[0, ..., 0]))
            figure[i * digit_size:(i + 1) * digit_size, j * digit_size:(j + 1) * digit_size] = digit
    return figure


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="grid side (n x n cells)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the fast path")
    args = parser.parse_args()

    import tf_genai
    from tf_genai import plotting

    vae = tf_genai.create("vae", image_shape=(28, 28, 1), latent_dim=2)
    n = args.n
    # warm-up: trace the decoder for both call paths
    plotting.plot_latent_manifold(vae, n, grid="range", extent=1.0)
    vae.decoder.predict(np.zeros((1, 2), np.float32), verbose=0)

    batched = best_of(lambda: plotting.plot_latent_manifold(vae, n, grid="range", extent=1.0),
                      args.repeats)
    start = time.perf_counter()
    reference = keras_io_manifold(vae, n)
    per_cell = time.perf_counter() - start

    # same grid, same pixels: the speed-up is not bought with a different computation
    fig = plotting.plot_latent_manifold(vae, n, grid="range", extent=1.0)
    ours = np.asarray(fig.axes[0].images[0].get_array())
    max_diff = float(np.abs(ours - reference).max())

    print(f"manifold {n}x{n} ({n * n} cells), vae latent_dim=2, 28x28, CPU")
    print(f"  plot_latent_manifold (1 batched decode + Figure): {batched:8.3f} s (best of "
          f"{args.repeats})")
    print(f"  keras-io loop ({n * n} decoder.predict calls):     {per_cell:8.3f} s")
    print(f"  speed-up: {per_cell / batched:.0f}x   max |pixel difference|: {max_diff:.2e}")


if __name__ == "__main__":
    main()

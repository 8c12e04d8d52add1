"""A/B of diffusion training levers at a short, equal wall-clock budget on MNIST.

Trains one zoo diffusion model (``ddpm`` unless the kwargs say ``"model": "cddpm"``) for
``budget`` seconds after its first step (``benchmarks/quality.train``), samples 500 images at 20
DDIM steps with eta 0 and eta 1 from the weight average, and scores FID, the smallest class
share and the mean top-class confidence in the digit classifier's feature space against the
2,000 held-out images. One JSON line per run is appended to ``--results``.

    python benchmarks/diffusion_levers.py base 240 '{"prediction": "eps", "min_snr_gamma": null}'
    python benchmarks/diffusion_levers.py v_minsnr5 240 '{}'       # the zoo defaults
    python benchmarks/diffusion_levers.py p1w16 240 '{"prediction": "eps", "min_snr_gamma": null,
        "patch_size": 1, "widths": [16, 32]}'

Keys ``batch_size`` (64) and ``lr`` (the family recipe) are taken out of the kwargs; the rest go
to the model's constructor. Results of the runs that chose the defaults:
``benchmarks/results/ddpm_levers_240s.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import quality  # noqa: E402
from tf_genai import data as data_lib  # noqa: E402
from tf_genai import ranges  # noqa: E402
from tf_genai.evaluation import features  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tag")
    parser.add_argument("budget", type=float, help="training seconds after the first step")
    parser.add_argument("kwargs", nargs="?", default="{}", help="JSON constructor arguments")
    parser.add_argument("--num-generated", type=int, default=500)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--results", type=Path, default=Path("runs/diffusion_levers.jsonl"))
    args = parser.parse_args(argv)
    kw = json.loads(args.kwargs)
    name = kw.pop("model", "ddpm")
    batch_size, lr = int(kw.pop("batch_size", 64)), kw.pop("lr", None)
    train_x, train_y = data_lib.load(str(quality.MNIST), split="train")
    heldout_x, _ = data_lib.load(str(quality.MNIST), split="heldout")
    extractor = features.get_classifier(train_x, train_y)
    real = extractor.features(features.prepare_images(heldout_x))
    model, run = quality.train(name, train_x, train_y, args.budget, 0, batch_size, lr, **kw)
    result = {"tag": args.tag, "model": name, "kwargs": kw, "batch_size": batch_size, "lr": lr,
              "cpu": quality.cpu_model(), **run}
    n = args.num_generated
    labels = None if model.num_classes is None else np.resize(
        np.arange(model.num_classes, dtype=np.int32), n)
    for eta in (0.0, 1.0):
        start = time.perf_counter()
        x = ranges.to_unit(model.sample(n, seed=1, steps=args.steps, eta=eta, labels=labels),
                           model.data_range)
        seconds = time.perf_counter() - start
        s = quality.score(extractor, real, x, 0, labels)
        result[f"eta{eta:g}"] = {"fid": round(s["fid"], 2),
                                 "min_class": round(s["class_min_fraction"], 3),
                                 "confidence": round(s["class_confidence"], 3),
                                 "sample_s": round(seconds, 1)}
    print(json.dumps(result), flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("a") as f:
        f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

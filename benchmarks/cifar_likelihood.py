"""Held-out likelihood of the VAEs and flow models on CIFAR-10 colour images, in bits/dim,
beside lossless codecs.

The compression anchor: a VAE's held-out NLL on the CIFAR held-out split, in bits per
subpixel, against the size of the same 932 images as lossless files -- PNG (Pillow,
``optimize=True``) and WebP (Pillow, ``lossless=True, method=6``), file bytes x 8 / (932 x 32 x
32 x 3) -- measured in the same run. A model whose NLL is below a codec's bits/dim would
compress these images better than that codec (with an entropy coder run on its likelihood, e.g.
bits-back coding); 8 bits/dim is the uniform guess.

Each model trains ``--budget`` seconds (after its first, tracing step) on the 3,728 train images
by ``fit`` (``quality.train``: a repeated ``make_dataset`` with ``steps_per_epoch``, float32), then
``importance_sampled_nll`` scores the 932 held-out images with k = ``--nll-k`` importance samples
(Burda et al. 2016). The VAEs' colour default is the discretized logistic likelihood
(``likelihood="auto"``): a probability mass over the 256 values of each subpixel, so the NLL is a
code length. Data: ``../shared/data/cifar10/cifar10_subset.npz`` (its README: the fixed split).

Usage (from the repository root)::

    python benchmarks/cifar_likelihood.py --budget 600 \\
        --out benchmarks/results/cifar_bits_zen4_YYYY-MM-DD.md
    python benchmarks/cifar_likelihood.py --models vae --model-args '{"vae": [{"logistic_components": 1},
        {"logistic_components": 5}]}' --budget 300      # one row per constructor setting
    python benchmarks/cifar_likelihood.py --models colour_vae vae --budget 600 --model-args \
        '{"vae": {"latent_dim": 256, "filters": [32, 64], "hidden_units": []}}'  # README's table
    python benchmarks/cifar_likelihood.py --codecs-only   # just the PNG / WebP anchors
    python benchmarks/cifar_likelihood.py --data ../shared/data/mnist --nll-images 500 --codecs-only
    python benchmarks/cifar_likelihood.py --models flow --budget 600   # the flow page's row
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

CIFAR = REPO / ".." / "shared" / "data" / "cifar10" / "cifar10_subset.npz"


def codec_bits_per_dim(images: np.ndarray, codec: str) -> float:
    """Total lossless file size of ``images`` (uint8 (N, H, W, C), C = 1 or 3) in bits per
    subpixel (grey images are stored as grey files)."""
    from PIL import Image

    grey = images.shape[-1] == 1
    total = 0
    for image in images:
        picture = Image.fromarray(image[..., 0] if grey else image)
        buffer = io.BytesIO()
        if codec == "png":
            picture.save(buffer, format="PNG", optimize=True)
        elif codec == "webp":
            picture.save(buffer, format="WEBP", lossless=True, method=6)
        else:
            raise ValueError(codec)
        if codec == "webp":  # lossless must mean lossless: check the round trip once per image
            back = Image.open(io.BytesIO(buffer.getvalue())).convert("L" if grey else "RGB")
            if not np.array_equal(np.asarray(back).reshape(image.shape), image):
                raise SystemExit("WebP lossless round trip changed an image")
        total += buffer.getbuffer().nbytes
    return 8.0 * total / images.size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(CIFAR),
                        help="the CIFAR subset .npz (the default), or another data source "
                             "(with --codecs-only: the codecs' figures for its held-out images)")
    parser.add_argument("--models", nargs="+", default=["vae"],
                        help="zoo models with a likelihood (VAEs, flow)")
    parser.add_argument("--budget", type=float, default=600.0, help="training seconds a row")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--nll-k", type=int, default=1000, help="importance samples (VAEs)")
    parser.add_argument("--nll-steps", type=int, default=32,
                        help="ODE steps of a flow model's likelihood (Hutchinson)")
    parser.add_argument("--nll-images", type=int, default=932, help="held-out images scored")
    parser.add_argument("--model-args", default="{}",
                        help="JSON: zoo name -> constructor kwargs (a dict, or a list: a row each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--codecs-only", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="markdown table (+ .json)")
    args = parser.parse_args(argv)
    if not Path(args.data).exists():
        raise SystemExit(f"{args.data}: not found (../shared/data/cifar10, see its README)")

    from tf_genai import data as data_lib

    train_x, train_y = data_lib.load(args.data, split="train")
    test_x, test_y = data_lib.load(args.data, split="heldout")
    test_x, test_y = test_x[: args.nll_images], test_y[: args.nll_images]
    if test_x.dtype != np.uint8:
        raise SystemExit(f"{args.data}: expected uint8 images, got {test_x.dtype}")
    dims = int(np.prod(test_x.shape[1:]))
    codecs = {c: codec_bits_per_dim(test_x, c) for c in ("png", "webp")}
    print(f"held-out {len(test_x)} images: PNG {codecs['png']:.3f}, WebP lossless "
          f"{codecs['webp']:.3f} bits/dim", file=sys.stderr)

    rows = []
    if not args.codecs_only:
        from quality import sample_variants, train

        from tf_genai import losses
        from tf_genai.evaluation.likelihood import nll_summary

        spec = json.loads(args.model_args)
        for name in args.models:
            for kwargs in sample_variants(spec.get(name), "--model-args"):
                model, info = next(train(name, train_x, train_y, [args.budget], args.seed,
                                         batch_size=args.batch_size, **kwargs))
                if not model.capabilities.likelihood:
                    raise SystemExit(f"{name}: has no likelihood (this benchmark scores them)")
                # cvae and other conditional models: -log p(x | y)
                scored = nll_summary(model, test_x, test_y, seed=args.seed,
                                     num_samples=args.nll_k, steps=args.nll_steps)
                prefix = "conditional_" if model.capabilities.conditional else ""
                elbo = scored.get(f"{prefix}elbo")
                config = model.get_config()
                rows.append({"model": name, "kwargs": kwargs,
                             "likelihood": config.get("likelihood", model.family),
                             "components": config.get("logistic_components"),
                             "coupling": config.get("logistic_coupling"),
                             "bound": scored["likelihood"], **info,
                             "nll_nats": scored[f"{prefix}nll"],
                             "bits_per_dim": scored[f"{prefix}nll_bits_per_dim"],
                             "elbo_bits_per_dim": None if elbo is None else
                             losses.bits_per_dim(-elbo, dims)})
                print(f"{name} {kwargs}: {rows[-1]['bits_per_dim']} bits/dim "
                      f"({info['steps']} steps)", file=sys.stderr)
                # each row kept as soon as it is scored
                write(args, codecs, rows, len(test_x), test_x.shape[1:])
    write(args, codecs, rows, len(test_x), test_x.shape[1:])
    return 0


def write(args, codecs: dict, rows: list[dict], n_test: int, shape: tuple) -> None:
    from quality import cpu_model

    dims = int(np.prod(shape))
    lines = [
        f"# {Path(args.data).name}: held-out NLL in bits/dim against lossless codecs",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; CPU: "
        f"{cpu_model()}, {os.cpu_count()} CPUs; float32",
        f"- data: {args.data}: {n_test} held-out images, trained on its train split, "
        f"{args.budget:.0f} s a row after the first step, batch "
        f"{args.batch_size}; VAE NLL importance-sampled with k = {args.nll_k} (a bound); "
        f"flow NLL by the ODE's change of variables ({args.nll_steps} Heun steps, Hutchinson), "
        "dequantised (a bound)",
        f"- bits/dim = nats / ({' x '.join(map(str, shape))} x ln 2); codecs: file bytes x 8 / "
        f"(images x {dims:,})",
        "",
        "| row | likelihood | steps | epochs | train s | NLL nats/image | **bits/dim** ↓ "
        "| ELBO bits/dim |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| uniform over 256 values | — | — | — | — | "
        f"{8 * dims * math.log(2):.0f} | 8.000 | — |",
        f"| PNG (Pillow, optimize=True) | lossless | — | — | — | — | {codecs['png']:.3f} | — |",
        f"| WebP (Pillow, lossless, method 6) | lossless | — | — | — | — | {codecs['webp']:.3f} "
        "| — |",
    ]
    for r in rows:
        like = r["likelihood"] + (f" ×{r['components']}" if r["likelihood"] == "logistic" else "")
        if r.get("coupling") and r["likelihood"] == "logistic":
            like += ", channel-coupled"
        label = r["model"] + (f" {json.dumps(r['kwargs'])}" if r["kwargs"] else "")
        elbo = "—" if r["elbo_bits_per_dim"] is None else f"{r['elbo_bits_per_dim']:.3f}"
        lines.append(f"| `{label}` | {like} | {r['steps']} | {r['epochs']:.1f} | "
                     f"{r['seconds']:.0f} | {r['nll_nats']:.1f} | {r['bits_per_dim']:.3f} | "
                     f"{elbo} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(
            {"codecs_bits_per_dim": codecs, "rows": rows, "args": vars(args)}, indent=2,
            default=str))


if __name__ == "__main__":
    sys.exit(main())

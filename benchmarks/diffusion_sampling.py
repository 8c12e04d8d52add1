"""Steps vs quality (and guidance vs quality) of one trained diffusion model, as in Song et al.
2021, Table 1: FID at DDIM steps S for eta = 0 and eta = 1, from a saved ``.keras`` file.

The model is loaded once; for every (S, eta, guidance) it draws ``--num-generated`` samples
from the same seed and scores them against the 2,000 held-out MNIST images (8,000-9,999) in
the feature space of the cached digit classifier (``tf_genai.evaluation.features``, as
``benchmarks/quality.py`` does): FID, KID, class coverage, mean top-class confidence and, for a
conditional model (samples cycle through the classes), the share the classifier assigns to the
requested class. S = T with eta = 1 is DDPM's ancestral sampler (the tests show the two equal).
Each row is written to ``--out`` (markdown) and its ``.json`` as soon as it is scored; a plot of
FID against S goes beside them (``.png``).

    python benchmarks/diffusion_sampling.py runs/quality/ddpm.keras --steps 10 20 50 100 \\
        --etas 0 1 --num-generated 1000 --out benchmarks/results/ddpm_steps_zen4_YYYY-MM-DD.md
    python benchmarks/diffusion_sampling.py runs/quality/cddpm.keras --steps 50 \\
        --guidance 0 1 2 3 5 --out benchmarks/results/cddpm_guidance_zen4_YYYY-MM-DD.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from quality import cpu_model, fmt, score  # noqa: E402

from tf_genai import data as data_lib  # noqa: E402
from tf_genai import ranges  # noqa: E402
from tf_genai.errors import ConfigError  # noqa: E402
from tf_genai.evaluation import features  # noqa: E402
from tf_genai.export import load_model  # noqa: E402

MNIST = REPO / ".." / "shared" / "data" / "mnist"
COLUMNS = [("steps S", "steps", 0), ("eta", "eta", 1), ("guidance", "guidance", 1),
           ("FID ↓", "fid", 2), ("KID ↓", "kid", 4), ("classes hit", "classes_hit", None),
           ("min class frac", "class_min_fraction", 3), ("confidence", "class_confidence", 3),
           ("requested class", "label_accuracy", 3), ("sample s", "seconds", 0),
           ("images/s", "images_per_s", 1)]


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(c[0] for c in COLUMNS) + " |",
             "|" + "|".join(" ---: " for _ in COLUMNS) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(k), 3 if d is None else d)
                                       for _, k, d in COLUMNS) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
    for key in sorted({(r["eta"], r["guidance"]) for r in rows}, key=str):
        line = sorted((r for r in rows if (r["eta"], r["guidance"]) == key),
                      key=lambda r: r["steps"])
        name = f"eta = {key[0]:g}" + ("" if key[1] is None else f", w = {key[1]:g}")
        ax.plot([r["steps"] for r in line], [r["fid"] for r in line], "o-", label=name)
    ax.set(xscale="log", xlabel="DDIM steps S", ylabel="FID (digit-classifier features)",
           title=title)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a saved diffusion model (.keras)")
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 20, 50, 100])
    parser.add_argument("--etas", nargs="+", type=float, default=[0.0, 1.0])
    parser.add_argument("--guidance", nargs="+", type=float, default=None,
                        help="guidance scales w (conditional models only)")
    parser.add_argument("--num-generated", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    model = load_model(args.model)
    if not getattr(model, "samples_iteratively", False):
        raise ConfigError(f"{args.model} is a {model.family} model; this benchmark needs a "
                          "diffusion model")
    conditional = model.num_classes is not None
    if args.guidance is not None and not conditional:
        raise ConfigError("--guidance needs a conditional model (cddpm)")
    bad = [s for s in args.steps if not 1 <= s <= model.timesteps]
    if bad:
        raise ConfigError(f"--steps must lie in [1, T = {model.timesteps}], got {bad}")
    guidances = args.guidance if args.guidance is not None else [None]

    train_x, train_y = data_lib.load(args.data, split="train")
    heldout_x, _ = data_lib.load(args.data, split="heldout")
    extractor = features.get_classifier(train_x, train_y, cache_dir=args.cache_dir)
    real_feats = extractor.features(features.prepare_images(heldout_x))
    labels = (np.resize(np.arange(model.num_classes, dtype=np.int32), args.num_generated)
              if conditional else None)

    header = "\n".join([
        f"# DDIM steps vs quality: {args.model.name}",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"CPU: {cpu_model()}, {os.cpu_count()} CPUs, Keras {keras.__version__}",
        f"- model: {model.name}, T = {model.timesteps}, schedule {model.schedule}, "
        f"prediction {model.prediction}, widths {list(model.widths)}, trained "
        f"{int(model.training_optimizers()[-1][1].iterations.numpy())} steps",
        f"- {args.num_generated} samples per row (seed {args.seed}; the same x_T in every row) "
        "vs the 2,000 held-out images in the digit classifier's features; S = T with eta = 1 "
        "is DDPM ancestral sampling",
        "",
    ])
    rows: list[dict] = []
    for guidance in guidances:
        for eta in args.etas:
            for steps in args.steps:
                options = dict(steps=steps, eta=eta)
                if guidance is not None:
                    options["guidance"] = guidance
                start = time.perf_counter()
                images = model.sample(args.num_generated, seed=args.seed, labels=labels,
                                      **options)
                images = ranges.to_unit(images, model.data_range)
                seconds = time.perf_counter() - start
                row = dict(steps=steps, eta=eta, guidance=guidance, seconds=seconds,
                           images_per_s=args.num_generated / seconds,
                           **score(extractor, real_feats, images, args.seed, labels))
                rows.append(row)
                print(f"S={steps} eta={eta:g} w={guidance}: FID {row['fid']:.2f} "
                      f"({seconds:.0f} s)", flush=True)
                if args.out:
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(header + "\n" + table(rows) + "\n")
                    args.out.with_suffix(".json").write_text(
                        json.dumps(rows, indent=2, default=str))
                    plot(rows, args.out.with_suffix(".png"),
                         f"{model.name}: FID vs DDIM steps ({args.num_generated} samples)")
    print("\n" + header + "\n" + table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""DCGAN against the fully connected GAN on MNIST, each with the same wall-clock budget.

Trains ``dcgan`` and ``gan`` on the MNIST train split (images 0-7,999 of ``../shared/data/mnist``)
for at most ``--budget`` seconds each, draws 2,000 samples from each and scores them with the
project's digit classifier (``tf_genai.evaluation.features``), trained on the same train split:

* FID: Fréchet distance between the samples' and the held-out split's classifier features
  (Heusel et al. 2017, computed in the digit classifier's feature space, not Inception's);
* class fractions: the share of samples the classifier assigns to each digit (the quality bar
  wants every class >= 5%) and the mean top-class confidence (bar: >= 0.9).

Usage (from the repository root)::

    python benchmarks/gan_quality.py --budget 600 --out runs/gan_quality

Conditional models (``cgan``) train on the labels and draw their samples for the ten classes in
turn; they are scored the same way plus ``requested_class``: the share of samples the classifier
assigns to the class they were drawn for (bar: >= 0.95). Each model is scored as soon as it has
trained and ``results.json`` is rewritten then, so a later failure keeps the finished results.

Samples are written to ``--out`` as ``<model>_samples.npz`` (in [0, 1]) next to ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tf_genai import data as data_lib  # noqa: E402
from tf_genai import devices  # noqa: E402
from tf_genai import registry  # noqa: E402
from tf_genai.callbacks import TimeBudget  # noqa: E402
from tf_genai.training import largest_divisor  # noqa: E402

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"

# The training recipe both models get (only the architecture differs): Adam(LR, beta_1=0.5) for
# each network, batches of 64. 1e-3 rather than DCGAN's 2e-4: with a budget of minutes the faster
# rate wins. The plain DCGAN (before the dense layers) at 300 s on one core (FID / confidence):
# 2e-4 17.3 / 0.839, 5e-4 12.4 / 0.859, 1e-3 9.8 / 0.870, 2e-3 9.7 / 0.862; batch 32 at 1e-3:
# 10.6 / 0.866.
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
# Per-model learning rates where the shared one fails: at 1e-3 (bf16) the MLP gan collapsed onto
# one digit (FID 212, 2026-11-29 22:31 run); at 5e-4 it trained well (FID 6.1 and 8.0 in the
# 21:30 and 23:09 runs). --lr overrides.
MODEL_LEARNING_RATES = {"gan": 5e-4}
MAX_EPOCHS = 1000  # the wall-clock budget is what stops training


def train_one(
    name: str, images: np.ndarray, labels: np.ndarray, budget: float, seed: int,
    lr: float = LEARNING_RATE,
    batch_size: int = BATCH_SIZE, float32: bool = False, **model_kwargs,
) -> tuple[keras.Model, dict]:
    """Train zoo model ``name`` for ``budget`` seconds; returns the model and its run figures.

    The model trains the way ``tf-genai train`` trains it: under the device's training options
    (:func:`tf_genai.devices.training_options`: ``mixed_bfloat16`` on CPUs with bf16 units and
    ``steps_per_execution``), unless ``float32`` is set (float32, one step per execution).
    """
    keras.utils.set_random_seed(seed)
    options = devices.training_options()
    policy = "float32" if float32 else options["mixed_precision_policy"]
    steps_per_epoch = int(np.ceil(len(images) / batch_size))
    # As tf-genai train does: the largest steps_per_execution that divides the epoch.
    spe = 1 if float32 else largest_divisor(steps_per_epoch, options["steps_per_execution"])
    conditional = registry.entry(name).defaults.get("num_classes") is not None
    if conditional:
        model_kwargs = {"num_classes": int(labels.max()) + 1, **model_kwargs}
    with devices.mixed_precision(policy):
        model = registry.create(name, image_shape=images.shape[1:], seed=seed, **model_kwargs)
    model.compile(
        d_optimizer=keras.optimizers.Adam(lr, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(lr, beta_1=0.5),
        steps_per_execution=spe,
    )
    ds = data_lib.make_dataset(images, labels if conditional else None, batch_size=batch_size,
                               scale="symmetric", seed=seed)
    clock = TimeBudget(budget, at="step")  # the clock starts with fit, compilation included
    history = model.fit(ds, epochs=MAX_EPOCHS, callbacks=[clock], verbose=0)
    steps = int(model.g_optimizer.iterations)  # generator updates = training steps
    run = {
        "model": name,
        "steps": steps,
        "epochs": steps / steps_per_epoch,
        "seconds": clock.elapsed,
        "lr": lr,
        "batch_size": batch_size,
        "policy": policy,
        "steps_per_execution": spe,
        "model_kwargs": model_kwargs,
        "final_d_loss": float(history.history["d_loss"][-1]),
        "final_g_loss": float(history.history["g_loss"][-1]),
    }
    return model, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600.0, help="training seconds per model")
    parser.add_argument("--models", nargs="+", default=["dcgan", "gan"])
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--data", default=str(MNIST), help="MNIST IDX folder")
    parser.add_argument("--out", default="runs/gan_quality", help="folder for samples + results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=None,
                        help=f"learning rate of every model (default {LEARNING_RATE}, "
                             f"per model {MODEL_LEARNING_RATES})")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--float32", action="store_true",
                        help="float32 and one step per execution instead of the device options")
    parser.add_argument("--model-args", default="{}",
                        help='JSON constructor arguments for every model, e.g. {"dropout": 0.2}')
    parser.add_argument(
        "--classifier-cache", default=None, help="digit classifier cache (default: the shared one)"
    )
    args = parser.parse_args(argv)

    train_x, train_y = data_lib.load(args.data, split="train")  # images 0-7,999, uint8
    heldout_x, _ = data_lib.load(args.data, split="heldout")  # images 8,000-9,999
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from tf_genai.evaluation import features, metrics

    # The feature space first: every model is scored the moment it has trained.
    clf = features.get_classifier(train_x, train_y, cache_dir=args.classifier_cache)
    real_feats = np.asarray(clf.features(heldout_x.astype(np.float32) / 255.0))

    runs = []
    for name in args.models:
        lr = args.lr if args.lr is not None else MODEL_LEARNING_RATES.get(name, LEARNING_RATE)
        model, run = train_one(name, train_x, train_y, args.budget, args.seed, lr,
                               args.batch_size, args.float32, **json.loads(args.model_args))
        print(f"trained {name}: {run['steps']} steps, {run['seconds']:.0f} s", flush=True)
        z = keras.random.normal((args.num_samples, model.latent_dim), seed=args.seed + 1)
        wanted = None
        if model.num_classes is not None:  # the classes in turn
            wanted = np.resize(np.arange(model.num_classes, dtype=np.int32), args.num_samples)
        # The model's own samples (its generator weight average), and, as a reference row
        # "<name>/trained", the same noise through the trained generator without the average.
        drawn = {name: model.generate(z, wanted)}  # (n, 28, 28, 1) in [-1, 1]
        if getattr(model, "ema_generator", None) is not None:
            gen_inputs = model._gen_inputs(z, model.check_labels(wanted, args.num_samples))
            drawn[f"{name}/trained"] = model.generator(gen_inputs, training=False)
        for label, images in drawn.items():
            s = np.clip((np.asarray(images) + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)
            np.savez_compressed(out / f"{label.replace('/', '_')}_samples.npz", images=s)
            feats, probs = clf.features_and_proba(s)  # (n, d), (n, 10)
            fractions = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]) / len(probs)
            row = {**run, "model": label,
                   "fid": float(metrics.frechet_distance(feats, real_feats)),
                   "class_fraction_min": float(fractions.min()),
                   "class_fractions": [round(float(f), 4) for f in fractions],
                   "mean_confidence": float(probs.max(axis=1).mean()),
                   "coverage": metrics.class_coverage(probs),
                   "requested_class": (None if wanted is None else
                                       float(np.mean(probs.argmax(axis=1) == wanted)))}
            runs.append(row)
            (out / "results.json").write_text(json.dumps(runs, indent=2, default=str))
            print(f"scored {label}: FID {row['fid']:.3f}, smallest class "
                  f"{row['class_fraction_min']:.3f}, confidence {row['mean_confidence']:.3f}"
                  + ("" if wanted is None else f", requested class {row['requested_class']:.3f}"),
                  flush=True)

    header = ("model", "epochs", "seconds", "FID", "class min", "mean conf", "requested")
    print("\n{:14} {:>7} {:>8} {:>9} {:>10} {:>10} {:>10}".format(*header))
    for r in runs:
        requested = "-" if r["requested_class"] is None else f"{r['requested_class']:.3f}"
        print(
            f"{r['model']:14} {r['epochs']:7.1f} {r['seconds']:8.0f} {r['fid']:9.3f} "
            f"{r['class_fraction_min']:10.3f} {r['mean_confidence']:10.3f} {requested:>10}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

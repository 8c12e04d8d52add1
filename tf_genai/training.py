"""Build data, model and callbacks, run ``model.fit``, and write what a run produces.

This is the function the CLI's ``train`` calls and a notebook can call too::

    from tf_genai.training import train
    result = train("vae", data="digits", out_dir="runs/vae", epochs=20)

A run's whole surface is one :class:`TrainConfig` (validated in one place; ``run.json`` is its
serialisation; the CLI builds it from its flags): ``train("vae", epochs=20)`` makes one from
keywords, ``train(config)`` takes one as it is.

A run directory holds ``model.keras`` (the trained model, with its optimizer state),
``history.json`` (per-epoch metrics), ``run.json`` (the config and what the run did),
``samples.png`` and the figures the model's capabilities allow (:func:`write_plots`). An
existing non-empty directory is never written into unless ``overwrite=True`` (or
``resume=True``, which continues the run there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_genai import checkpointing, devices, distribute, outputs, plotting, ranges, registry
from tf_genai import data as data_lib
from tf_genai.callbacks import TimeBudget
from tf_genai.data import channels as channels_lib
from tf_genai.data import streaming
from tf_genai.errors import ConfigError, DataError

RUN_FILES = ("model.keras", "history.json", "samples.png", "run.json")
# The speed levers a run trained with, kept in its backup folder for --resume.
LEVERS_FILE = "training_options.json"
# What runs written before the levers file kept them in (with levers no longer offered).
LEGACY_LEVERS_FILE = "autotune.json"
SPLITS = ("train", "heldout", "all")
STRATEGIES = ("default", "mirrored", "multiworker")


def _positive_int(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _number(name: str, value: Any, *, positive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        bound = "a positive number" if positive else "a number >= 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


@dataclasses.dataclass
class TrainConfig:
    """Everything :func:`train` needs to know about a run; checked when it is made.

    Attributes:
        model: a zoo name (``tf-genai models`` lists them).
        data: any source ``tf_genai.data.load`` accepts (``"digits"``, a path, arrays, ...).
        out_dir: the run directory; ``None`` writes nothing.
        epochs: ``None`` picks :func:`auto_epochs` (about 2,500 optimizer steps).
        batch_size, seed: the batch size; the seed of the data order, the initial weights and
            the model's random draws.
        split: ``"train"``, ``"heldout"`` or ``"all"`` of ``data``.
        latent_dim: overrides the model's latent size.
        learning_rate: replaces the zoo recipe's rate; ``weight_decay`` > 0 makes Adam AdamW.
        image_size: resize image-folder data to this size (an int for a square, or (H, W)).
        channels: 1 (grey) or 3 (RGB) for every image; None decides from the data (RGB if it
            holds any colour image, else grey; transparency composited on white:
            :mod:`tf_genai.data.channels`). The decision is printed and kept in ``run.json``.
        validation_fraction: the share of the training split held back for ``val_*`` metrics and
            early stopping (never the held-out split). 0 disables validation.
        early_stopping: patience in epochs on the model's ``early_stopping_monitor`` (a VAE's
            ``val_loss``, the true -ELBO); refused for models without one (GANs).
        time_budget: seconds; training stops at the end of the epoch that crosses it
            (:class:`tf_genai.callbacks.TimeBudget`), the run directory is written as usual,
            and ``resume=True`` continues it.
        model_kwargs: constructor arguments of the model (its hyper-parameters).
        overwrite: replace the run files in ``out_dir``.
        resume: continue an interrupted run in ``out_dir`` from its last backup, with the
            speed levers it started with.
        strategy: ``None``/``"default"``, ``"mirrored"`` or ``"multiworker"`` (tf.distribute).
        deterministic: TensorFlow's deterministic ops (bit-identical reruns and resumes).
        plots: write the figures.
        verbose: Keras' ``fit`` verbosity (0 also silences the run's own lines).
        stream: read ``data`` (a folder of images, or TFRecord shards) from the files every
            epoch through ``tf.data`` instead of loading it into memory
            (:mod:`tf_genai.data.streaming`): for data larger than memory. The split, the
            validation part and the per-(seed, epoch) order follow the same rules.
        check_files: how a streamed run checks its images before training: ``"verify"``
            (Pillow's integrity check; it does not decode JPEG data), ``"decode"`` (every
            image decoded once; corrupt ones stop the run, named) or ``"skip"`` (the same,
            corrupt images left out and named in a warning). An image that fails while
            training is a DataError naming it, and a resumed run checks it first
            (:mod:`tf_genai.data.streaming`; docs/reliability.md).
    """

    model: str = "vae"
    data: Any = "digits"
    out_dir: str | os.PathLike | None = None
    epochs: int | None = None
    batch_size: int = 128
    seed: int = 0
    split: str = "train"
    latent_dim: int | None = None
    learning_rate: float | None = None
    weight_decay: float = 0.0
    image_size: int | None = None
    channels: int | None = None
    validation_fraction: float = 0.1
    early_stopping: int | None = None
    time_budget: float | None = None
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    overwrite: bool = False
    resume: bool = False
    strategy: str | None = None
    deterministic: bool = False
    plots: bool = True
    verbose: int | str = "auto"
    stream: bool = False
    check_files: str = "verify"

    def __post_init__(self) -> None:
        _positive_int("epochs", self.epochs, allow_none=True)
        _positive_int("batch_size", self.batch_size)
        _positive_int("latent_dim", self.latent_dim, allow_none=True)
        if self.image_size is not None:  # one int for a square, or (H, W)
            for side in np.atleast_1d(np.asarray(self.image_size, dtype=object)):
                _positive_int("image_size", side)
        _positive_int("early_stopping", self.early_stopping, allow_none=True)
        channels_lib.check_choice(self.channels)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        if self.learning_rate is not None:
            _number("learning_rate", self.learning_rate, positive=True)
        _number("weight_decay", self.weight_decay, positive=False)
        if self.time_budget is not None:
            _number("time_budget", self.time_budget, positive=True)
        if not (isinstance(self.validation_fraction, (int, float))
                and 0.0 <= self.validation_fraction < 1.0):
            raise ConfigError(f"validation_fraction must be in [0, 1), got "
                              f"{self.validation_fraction!r}")
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.strategy not in (None, *STRATEGIES):
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)} or None, got "
                              f"{self.strategy!r}")
        if not isinstance(self.model_kwargs, dict):
            raise ConfigError(f"model_kwargs must be a dict, got {type(self.model_kwargs)}")
        entry = registry.entry(self.model)  # ConfigError naming the zoo for an unknown name
        if self.early_stopping and entry.cls.early_stopping_monitor is None:
            raise ConfigError(f"model {self.model!r} cannot stop early: "
                              f"{entry.cls.early_stopping_refusal}")
        streaming.check_option(self.check_files, self.stream)
        if self.stream and not isinstance(self.data, (str, os.PathLike)):
            raise ConfigError(f"stream=True reads files: data must be a folder of images or "
                              f"TFRecord shards, got {type(self.data).__name__}")

    @classmethod
    def make(cls, model: Any = "vae", data: Any = None, **options: Any) -> "TrainConfig":
        """A config from a zoo name (or a config to change) and keyword options; an unknown
        option is a ConfigError that lists the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown train option {', '.join(map(repr, unknown))}; the "
                              f"options: {', '.join(sorted(known - {'model', 'data'}))}")
        if data is not None:
            options["data"] = data
        if isinstance(model, cls):
            return dataclasses.replace(model, **options)
        return cls(model=model, **options)

    def to_json(self) -> dict[str, Any]:
        """The config as ``run.json`` records it (data and paths as strings)."""
        out = dataclasses.asdict(self)
        out["data"] = os.fspath(self.data) if isinstance(self.data, (str, os.PathLike)) \
            else str(self.data)
        out["out_dir"] = None if self.out_dir is None else os.fspath(self.out_dir)
        out["model_kwargs"] = _jsonable(self.model_kwargs)
        return out


def _jsonable(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the trained model, its history and the files written."""

    model: Any
    history: dict[str, list[float]]
    out_dir: Path | None
    files: dict[str, Path]


def prepare_out_dir(out_dir: str | os.PathLike | None, *, overwrite: bool, resume: bool,
                    create: bool = True) -> Path | None:
    """Check ``out_dir`` (refusing a non-empty one unless asked to) and, if ``create``, make it."""
    if out_dir is None:
        return None
    path = outputs.check_dir(out_dir, overwrite, resume=resume, what="run")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def _json_history(history: dict[str, Sequence[Any]]) -> dict[str, list[float]]:
    return {k: [float(v) for v in vals] for k, vals in history.items()}


def compile_model(model, *, learning_rate: float | None = None, weight_decay: float = 0.0,
                  **compile_kwargs: Any) -> None:
    """Compile ``model`` with its family's recipe (``model.default_optimizers``).

    ``learning_rate`` replaces the recipe's rate; ``weight_decay`` > 0 makes each Adam an AdamW.
    """
    model.compile(**model.default_optimizers(learning_rate=learning_rate,
                                             weight_decay=weight_decay), **compile_kwargs)


def train(config: TrainConfig | str = "vae", data: Any = None, *,
          callbacks: Sequence[Any] = (), **options: Any) -> TrainResult:
    """Train a zoo model with ``model.fit`` and write the run's files.

    The steps, each a function below: check the config, load the data, build the model
    (under the device's precision policy and the strategy), make the epoch datasets, compile,
    make the callbacks, ``fit``, write the run directory.

    Args:
        config: a :class:`TrainConfig`, or a zoo name to make one from ``data`` and
            ``options`` (the config's fields: ``epochs``, ``out_dir``, ``batch_size`` ...).
        data: the data source (``TrainConfig.data``; default ``"digits"``).
        callbacks: Keras callbacks to add to ``fit``'s.

    The speed levers (precision policy, steps per execution, XLA) are
    :func:`tf_genai.devices.training_options`' choice for the machine (or the environment's
    ``TF_GENAI_*`` overrides); a resumed run keeps the levers it started with.

    Returns:
        A :class:`TrainResult`.
    """
    config = TrainConfig.make(config, data, **options)
    # Checked now, created only after the data and the model have passed their checks, so a
    # bad --data or model argument leaves no empty run directory behind.
    path = prepare_out_dir(config.out_dir, overwrite=config.overwrite, resume=config.resume,
                           create=False)
    if config.stream:
        # A resumed run first decodes again the images that stopped it (their record).
        recheck = None if not (config.resume and path) else (
            path / "backup" / streaming.UNREADABLE_RECORD)
        files = streaming.scan(config.data, config.split, image_size=config.image_size,
                               channels=config.channels, check=config.check_files,
                               recheck=recheck)
        images, labels, image_shape = None, files.labels, files.image_shape
        channels = files.channels
    else:
        files = None
        loaded = data_lib.load(config.data, split=config.split, image_size=config.image_size,
                               channels=config.channels)
        (images, labels), channels = loaded, loaded.channels
        image_shape = tuple(int(d) for d in images.shape[1:])
    if config.verbose != 0:
        print(channels.description, flush=True)
    kwargs = _model_kwargs(config, image_shape, labels)
    backup_dir = None if path is None else path / "backup"
    dist = distribute.get_strategy(config.strategy)
    levers = _levers(backup_dir if config.resume else None, verbose=config.verbose)
    if config.deterministic:
        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()
    net = _build(config.model, kwargs, dist, levers["mixed_precision_policy"])

    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
    if backup_dir is not None and not config.resume and backup_dir.exists():
        shutil.rmtree(backup_dir)  # overwrite=True: a stale backup must not leak into a new run
    # One backup, chosen once: the data starts at its epoch, the callback restores it.
    resume_from = checkpointing.newest_backup(backup_dir) if config.resume and backup_dir else None
    initial_epoch = resume_from.epoch if resume_from else 0
    train_ds, steps_per_epoch, val_ds, epochs = (_stream_datasets if config.stream else _datasets)(
        net, files if config.stream else images, labels, config, initial_epoch=initial_epoch)
    steps_per_execution = _compile(net, dist, levers, steps_per_epoch, config)
    if backup_dir is not None:
        outputs.write_json(backup_dir / LEVERS_FILE, {"options": levers})
    if config.verbose != 0:
        print(f"training options: {_levers_text(levers)} ({devices.describe().summary()})",
              flush=True)
    cbs, backup, budget = _callbacks(net, callbacks, backup_dir, config, val_ds, resume_from)

    with _naming_unreadable(files, backup_dir):  # a streamed image that fails is named
        fit = net.fit(train_ds, validation_data=val_ds, epochs=epochs,
                      steps_per_epoch=steps_per_epoch, callbacks=cbs, verbose=config.verbose,
                      shuffle=False)  # the data is shuffled per epoch
    # The backup's history covers the epochs before a resume too.
    history = _json_history(backup.history if backup is not None else fit.history)

    if path is None:
        return TrainResult(net, history, path, {})
    run_config = {
        **config.to_json(),
        "epochs": epochs,
        "channels_used": channels.description,
        "stopped_by_time_budget": bool(budget is not None and budget.spent),
        "epochs_done": len(next(iter(history.values()), [])),
        "training_options": {**levers, "strategy": config.strategy or "default",
                             "deterministic": config.deterministic,
                             "steps_per_execution_used": steps_per_execution,
                             "device": devices.describe().summary()},
        "model_kwargs": _jsonable(kwargs),
    }
    if config.stream and config.plots and net.capabilities.encodes:
        images, labels = streaming.read_images(files, 2000)  # a few for the latent plots
    written = write_run(net, history, path, images=images, labels=labels, seed=config.seed,
                        plots=config.plots, run_config=run_config)
    return TrainResult(net, history, path, written)


# ------------------------------------------------------------------ the steps of train()


def _naming_unreadable(files, backup_dir: Path | None):
    """For streamed ``files``: a read or decode failure in ``fit`` becomes a DataError naming
    the images, recorded in the backup folder for a resumed run (nothing for arrays)."""
    if files is None:
        return contextlib.nullcontext()
    record = None if backup_dir is None else backup_dir / streaming.UNREADABLE_RECORD
    return streaming.naming_unreadable(files, record)


def _model_kwargs(config: TrainConfig, image_shape, labels) -> dict:
    """The constructor arguments: the config's, the data's image shape, the seed, the classes."""
    name = config.model
    kwargs = dict(config.model_kwargs)
    kwargs.setdefault("image_shape", tuple(int(d) for d in image_shape))
    kwargs.setdefault("seed", config.seed)
    if config.latent_dim is not None:
        kwargs["latent_dim"] = config.latent_dim
    if registry.entry(name).defaults.get("num_classes") is not None or kwargs.get("num_classes"):
        if labels is None:
            raise ConfigError(
                f"model {name!r} is conditional and needs labels, but data source "
                f"{config.data!r} has none")
        needed = int(np.max(labels)) + 1
        given = kwargs.get("num_classes")
        if given and int(given) < needed:
            raise DataError(
                f"the data's labels go up to {needed - 1}, but model {name!r} was given "
                f"num_classes={given}; labels must lie in [0, num_classes)")
        kwargs["num_classes"] = int(given or needed)
    return kwargs


def _levers(resume_dir: Path | None, *, verbose: Any = "auto") -> dict[str, Any]:
    """The run's speed levers: :func:`tf_genai.devices.training_options` (flags and the
    environment's overrides), or for a resumed run the levers it started with (its backup's
    ``training_options.json``; runs written before it kept them in ``autotune.json``, with
    two levers tf_genai no longer has, which are named when the run had them on)."""
    flags = devices.training_options()
    for name in (LEVERS_FILE, LEGACY_LEVERS_FILE):
        path = None if resume_dir is None else resume_dir / name
        if path is None or not path.is_file():
            continue
        try:
            saved = json.loads(path.read_text()).get("options", {})
            levers = {k: saved[k] for k in flags}
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            continue  # unreadable: the flags' choice, as for a run that never saved one
        dropped = [text for key, on, text in (
            ("float32_weight_gradients", True, "float32 weight gradients"),
            ("fused_layers", False, "the unfused batch norm and dropout"))
            if saved.get(key, not on) == on]
        if dropped and verbose != 0:
            print(f"note: this run started with {' and '.join(dropped)}, which tf_genai no "
                  "longer has; it continues with Keras' convolution gradients and the fused "
                  "batch norm and dropout (same weights, same results up to round-off)",
                  flush=True)
        devices.check_policy(levers["mixed_precision_policy"], str(path))
        return levers
    return flags


def _levers_text(levers: dict[str, Any]) -> str:
    return (f"{levers['mixed_precision_policy']}, steps_per_execution "
            f"{levers['steps_per_execution']}, XLA {'on' if levers['jit_compile'] else 'off'}")


def _build(name: str, kwargs: dict, dist, policy: str):
    """The model, built under the strategy's scope and the precision policy ``policy``."""
    # The policy is needed only while the layers are built (each keeps its own); the caller's
    # global policy is back in force after this block.
    with dist.scope(), devices.mixed_precision(policy):
        return registry.create(name, **kwargs)


def _datasets(net, images, labels, config: TrainConfig, *, initial_epoch: int):
    """The training epochs (from ``initial_epoch``) and the validation batches.

    Dynamic binarization is the model's own (a fresh draw in every train_step, from its seed
    generator, whose state a backup restores), so the pipeline does not draw a second time.
    Validation images are binarized once, with the run's seed, so ``val_*`` metrics and early
    stopping compare like with like from epoch to epoch (the MNIST protocol's held-out rule).
    """
    seed = config.seed
    use_labels = labels is not None and net.num_classes is not None
    train_x, train_y, val_x, val_y = images, labels, None, None
    if config.validation_fraction > 0 and len(images) >= 20:
        (train_x, train_y), (val_x, val_y) = data_lib.train_validation_split(
            images, labels, fraction=config.validation_fraction, seed=seed)
    ds_kwargs = dict(scale=net.data_range, batch_size=config.batch_size, seed=seed)
    epochs = config.epochs or auto_epochs(len(train_x), config.batch_size)
    # A resumed run continues after the last backed-up epoch; each epoch's batches depend only
    # on (seed, epoch), so the resumed epochs see exactly the uninterrupted run's batches.
    train_ds, steps_per_epoch = epoch_dataset(
        train_x, train_y if use_labels else None, epochs=epochs, initial_epoch=initial_epoch,
        **ds_kwargs)
    val_ds = None
    if val_x is not None:
        if net.binarize:
            val_x = data_lib.binarize_once(val_x, seed=seed)
        val_ds = data_lib.make_dataset(val_x, val_y if use_labels else None, shuffle=False,
                                       **ds_kwargs)
    return train_ds, steps_per_epoch, val_ds, epochs


def _stream_datasets(net, files, labels, config: TrainConfig, *, initial_epoch: int):
    """:func:`_datasets` for streamed files: the same validation rule (a seeded share of the
    training split, binarized once for Bernoulli models) and per-(seed, epoch) order."""
    seed = config.seed
    use_labels = labels is not None and net.num_classes is not None
    train_files, val_files = files, None
    if config.validation_fraction > 0 and files.num_images >= 20:
        (train_pos, _), (val_pos, _) = data_lib.train_validation_split(
            np.arange(files.num_images), labels, fraction=config.validation_fraction, seed=seed)
        train_files = streaming.subset(files, train_pos, f"{files.split}_train")
        val_files = streaming.subset(files, val_pos, f"{files.split}_validation")
    epochs = config.epochs or auto_epochs(train_files.num_images, config.batch_size)
    train_ds, steps_per_epoch = streaming.stream_epochs(
        train_files, batch_size=config.batch_size, scale=net.data_range, seed=seed,
        epochs=epochs, initial_epoch=initial_epoch, labels=use_labels)
    val_ds = None
    if val_files is not None:
        val_ds = streaming.stream_dataset(
            val_files, batch_size=config.batch_size, scale=net.data_range, seed=seed,
            shuffle=False, labels=use_labels, binarize_fixed=bool(net.binarize))
    return train_ds, steps_per_epoch, val_ds, epochs


def _compile(net, dist, levers: dict[str, Any], steps_per_epoch: int,
             config: TrainConfig) -> int:
    """Compile ``net`` with the run's optimizers and levers; returns the steps per execution."""
    multiworker = distribute.is_multiworker(dist)
    # One execution must not run past an epoch's last batch into the next epoch's. Multi-worker
    # runs take one step per execution: Keras' multi-step loop fails to run under them
    # ("You must feed a value for placeholder tensor 'while/cond/Placeholder'").
    steps_per_execution = 1 if multiworker else largest_divisor(
        steps_per_epoch, levers["steps_per_execution"])
    with dist.scope():
        compile_model(net, learning_rate=config.learning_rate, weight_decay=config.weight_decay,
                      steps_per_execution=steps_per_execution,
                      jit_compile=levers["jit_compile"])
    if multiworker:
        distribute.scalar_logs_for_multiworker(net)
    return steps_per_execution


def _callbacks(net, user_callbacks, backup_dir, config: TrainConfig, val_ds,
               resume_from=None):
    """The user's callbacks, then the budget, backup, early stopping and NaN guard."""
    cbs = list(user_callbacks)
    budget = None if config.time_budget is None else TimeBudget(config.time_budget, at="epoch")
    if budget is not None:
        cbs.append(budget)
    backup = None if backup_dir is None else checkpointing.BackupAndResume(backup_dir,
                                                                           resume_from)
    if backup is not None:
        cbs.append(backup)
    if config.early_stopping and val_ds is not None:
        cbs.append(keras.callbacks.EarlyStopping(
            monitor=net.early_stopping_monitor, patience=config.early_stopping,
            restore_best_weights=True))
    # Last: it raises TrainingError from on_train_end, after the others have finished.
    cbs.append(checkpointing.TerminateOnNaN(backup_dir))
    return cbs, backup, budget


AUTO_STEPS = 2500


def auto_epochs(num_images: int, batch_size: int, *, steps: int = AUTO_STEPS) -> int:
    """Epochs for about ``steps`` optimizer steps, at least 10 and at most 300.

    A fixed epoch count means 220 steps on the 1,438 training digits (a blurry VAE) but 1,100 on
    MNIST; a step budget gives every data set a comparable amount of training.
    """
    per_epoch = max(1, math.ceil(num_images / batch_size))
    return int(min(300, max(10, math.ceil(steps / per_epoch))))


def largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of ``n`` that is at most ``at_most`` (at least 1)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


def epoch_dataset(
    images: Any,
    labels: Any = None,
    *,
    batch_size: int,
    scale: str,
    seed: int,
    epochs: int,
    initial_epoch: int = 0,
) -> tuple[Any, int]:
    """The training batches of epochs ``initial_epoch .. epochs-1`` as one dataset.

    Epoch ``e`` is a stateless shuffle seeded by ``(seed, e)``, so its batches depend
    on nothing else: not on how many iterators were created before in this process (a
    ``reshuffle_each_iteration`` shuffle advances with each one, and ``fit`` under a
    ``tf.distribute`` strategy creates an extra one), nor on whether the run was resumed.
    Give ``fit`` the returned ``steps_per_epoch``. Dynamic binarization is not done here: the
    VAE draws it in its own ``train_step``.

    Returns:
        ``(dataset, steps_per_epoch)``.
    """
    n = len(images)
    steps_per_epoch = math.ceil(n / batch_size)
    # The data layer validates and scales; one unshuffled batch of everything, kept in memory.
    everything = data_lib.make_dataset(
        images, labels, batch_size=n, scale=scale, binarize=False, shuffle=False, cache=False
    )
    everything = next(iter(everything))  # (N, H, W, C) float32, or (images, labels)

    def one_epoch(epoch):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])  # (2,) stateless seed
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), epoch_seed)
        ds = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

        def gather(indices):
            return tf.nest.map_structure(lambda t: tf.gather(t, indices), everything)

        return ds.map(gather)

    # A resumed run may have finished already: keep one epoch so fit can start (and stop).
    first = min(int(initial_epoch), int(epochs) - 1)
    dataset = tf.data.Dataset.range(first, int(epochs)).flat_map(one_epoch)
    options = data_lib.pipeline.pipeline_options()
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options), steps_per_epoch


def write_run(model, history, path: Path, *, images=None, labels=None, seed: int = 0,
              plots: bool = True, run_config: dict | None = None) -> dict[str, Path]:
    """Write ``model.keras``, ``history.json``, ``run.json`` and the plots into ``path``, each
    whole or not at all (:mod:`tf_genai.outputs`: a failed write keeps the previous file)."""
    files = {"model": path / "model.keras", "history": path / "history.json"}
    outputs.write_with(files["model"], model.save)
    outputs.write_json(files["history"], history)
    if run_config is not None:
        files["run"] = path / "run.json"
        outputs.write_json(files["run"], run_config, default=str)
    if plots:
        files.update(write_plots(model, path, images=images, labels=labels, seed=seed))
    return files


def write_plots(model, path: Path, *, images=None, labels=None, seed: int = 0) -> dict[str, Path]:
    """The figures the model's capabilities allow: samples (one class a row for conditional
    models); for an iterative sampler the trajectory; for a model that encodes (given
    ``images``) reconstructions and, for flat latents, the latent scatter; for a 2-D latent
    space the manifold."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    caps = model.capabilities
    files: dict[str, Path] = {}
    sample_labels = None
    if caps.conditional:
        per_class = 8
        sample_labels = np.repeat(np.arange(model.num_classes), per_class).astype("int32")
    files["samples"] = path / "samples.png"
    plotting.plot_samples(model, n=64 if sample_labels is None else len(sample_labels), seed=seed,
                          labels=sample_labels, path=files["samples"])
    if caps.iterative:
        files["trajectory"] = path / "trajectory.png"
        plotting.plot_trajectory(model, n=model.num_classes if caps.conditional else 4,
                                 seed=seed, path=files["trajectory"])
    if caps.encodes and images is not None:
        n = min(len(images), 2000)
        x = ranges.for_model(images[:n], model.data_range)  # load() gives uint8 or [0, 1]
        y = None if labels is None or not caps.conditional else labels[:n]
        if len(model.latent_shape) == 1:  # flat codes (not image-shaped ones) have a scatter
            files["latent_scatter"] = path / "latent_scatter.png"
            plotting.plot_latent_scatter(model, x, labels=None if labels is None else labels[:n],
                                         path=files["latent_scatter"])
        files["reconstructions"] = path / "reconstructions.png"
        plotting.plot_reconstructions(model, x[:10], labels=None if y is None else y[:10],
                                      path=files["reconstructions"])
    if caps.latent and model.latent_dim == 2 and not caps.conditional:
        files["latent_manifold"] = path / "latent_manifold.png"
        plotting.plot_latent_manifold(model, n=20, path=files["latent_manifold"])
    return files

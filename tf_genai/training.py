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
import shutil
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_genai import augment as augment_lib
from tf_genai import checkpointing, devices, distribute, outputs, plotting, presets, ranges
from tf_genai import registry
from tf_genai import data as data_lib
from tf_genai.callbacks import RunProgress, TimeBudget
from tf_genai.data import streaming
from tf_genai.errors import ConfigError, DataError, TrainingInterrupted
from tf_genai.train_config import BACKUP_DIR, START_RECORD, TrainConfig, jsonable_kwargs

# Every file write_run may write: a new run that replaces an old one removes them all.
RUN_FILES = ("model.keras", "history.json", "run.json", "samples.png", "trajectory.png",
             "latent_scatter.png", "reconstructions.png", "latent_manifold.png")
# The speed levers a run trained with, kept in its backup folder for --resume.
LEVERS_FILE = "training_options.json"
# What runs written before the levers file kept them in (with levers no longer offered).
LEGACY_LEVERS_FILE = "autotune.json"
# Auto augmentation (TrainConfig.augment None) below this many training images: ADA (Karras et
# al. 2020) finds CIFAR-10's 50,000 images "a limited data benchmark", DiffAugment (Zhao et al.
# 2020) improves GANs on it, and ADA's gains vanish at FFHQ's 140,000 (x-flipped) images.
AUGMENT_BELOW = 100_000


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the trained model, its history, the files written, and how
    the run ended.

    Attributes:
        stopped_by: ``"epochs"`` (all of them trained), ``"time_budget"`` or
            ``"early_stopping"``.
        epochs: the epochs the run was set to train (its total, a resumed run's included).
        config: the run's :class:`TrainConfig`.
    """

    model: Any
    history: dict[str, list[float]]
    out_dir: Path | None
    files: dict[str, Path]
    stopped_by: str = "epochs"
    epochs: int | None = None
    config: TrainConfig | None = None

    def summary(self) -> list[str]:
        """How the run ended, in a few lines: why it stopped, the final losses, where the model
        and the samples are (what ``tf-genai train`` prints last). Arguments are named as
        :class:`TrainConfig` names them."""
        done = len(next(iter(self.history.values()), []))
        why = {
            "epochs": f"trained all {done} epochs",
            "time_budget": f"stopped after epoch {done} of {self.epochs}: time_budget="
                           f"{getattr(self.config, 'time_budget', None)} (seconds) was spent; "
                           f"resume=True continues the run",
            "early_stopping": f"stopped early after epoch {done} of {self.epochs}: the validation "
                              f"loss did not improve for early_stopping="
                              f"{getattr(self.config, 'early_stopping', None)} epochs; the best "
                              f"epoch's weights are kept",
        }[self.stopped_by]
        lines = [why]
        final = [f"{key} {self.history[key][-1]:.4g}" for base in checkpointing.LOSS_KEYS
                 for key in (base, f"val_{base}") if self.history.get(key)]
        if final:
            lines.append("final " + ", ".join(final))
        for kind in ("model", "samples"):
            if kind in self.files:
                lines.append(f"{kind}: {self.files[kind]}")
        return lines


class RunDirectory:
    """The run directory while :func:`train` runs, kept in order whatever happens.

    A resumed run backs up into ``out/backup``. A new run backs up into a staging folder beside
    it (``out/.backup.tmp-*``) until its first epoch is saved; then :meth:`land` makes that
    folder ``out/backup`` and removes the files of the run it replaces (``overwrite=True``).
    So a new run that fails or is interrupted before its first saved epoch leaves the directory
    as it was (:meth:`abandon`: the staging folder goes, and the directory itself if this run
    made it); after that, the directory holds the new run's backup, which ``resume=True``
    continues, and none of the old run's files, which would otherwise pass for the new run's.
    """

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = path
        self.final = path / BACKUP_DIR
        self.made = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        self.staging = None if resume else outputs.staging_dir(self.final)
        self.epochs: int | None = None
        self.followers: list[Any] = []  # callbacks whose ``directory`` is the backup folder

    @property
    def backup_dir(self) -> Path:
        """Where the run backs up now: the staging folder until :meth:`land`."""
        return self.final if self.staging is None else self.staging

    def land(self) -> None:
        """Make the staged backup the run's (``out/backup``), replacing the old run's files."""
        if self.staging is None:
            return
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        outputs.move_into_place(self.staging, self.final)
        self.staging = None
        for callback in self.followers:
            callback.directory = self.final
        # Staging folders of killed runs (removed only now: at the start of a run, one could
        # be a concurrent multi-worker process's, which removes its own in finish()).
        for stray in self.path.glob(f".{BACKUP_DIR}.tmp-*"):
            shutil.rmtree(stray, ignore_errors=True)

    def finish(self) -> None:
        """After ``fit``: a staged backup still waiting lands if it holds an epoch; one that
        holds none (a multi-worker run's other workers, which write no backup) goes, so it
        cannot replace the backup the chief landed."""
        if self.staging is not None and checkpointing.backup_epoch(self.staging):
            self.land()
        elif self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None

    def abandon(self) -> None:
        """After a failure: remove what this run added that no later call can use."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            if self.made and not any(self.path.iterdir()):
                self.path.rmdir()
        else:  # a backup cut short while it was being written
            shutil.rmtree(self.final / checkpointing.TMP, ignore_errors=True)

    def interrupted(self) -> TrainingInterrupted:
        """The exception for Ctrl-C, once :meth:`abandon` has run."""
        done = 0 if self.staging is not None else checkpointing.backup_epoch(self.final)
        if done:
            message = (f"training interrupted after epoch {done}"
                       f"{'' if self.epochs is None else f' of {self.epochs}'}; its backup "
                       f"{str(self.final)!r} is kept: resume=True continues the run")
        else:
            message = (f"training interrupted before its first epoch was saved; "
                       f"{str(self.path)!r} is as it was")
        return TrainingInterrupted(message, epochs_done=done, epochs=self.epochs,
                                   backup=str(self.final) if done else None)


class _LandAtFirstBackup(keras.callbacks.Callback):
    """Lands a new run's staged backup (:meth:`RunDirectory.land`) once it holds an epoch.
    Placed right after the backup callback, whose ``directory`` then follows."""

    def __init__(self, run: RunDirectory) -> None:
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.run.staging is not None and checkpointing.backup_epoch(self.run.staging):
            self.run.land()


@contextlib.contextmanager
def _kept_in_order(run: RunDirectory | None):
    """On any failure put ``run`` in order (:meth:`RunDirectory.abandon`); Ctrl-C becomes
    :class:`TrainingInterrupted`, saying what the backup holds."""
    try:
        yield
    except BaseException as err:
        if run is None:
            raise
        run.abandon()
        if isinstance(err, KeyboardInterrupt) and not isinstance(err, TrainingInterrupted):
            raise run.interrupted() from None
        raise


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
    # Checked now (the CLI checks it too, before it loads TensorFlow); created only after the
    # data and the model have passed their checks, so a bad --data or model argument leaves no
    # empty run directory behind.
    path = config.check_out_dir()
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
    say = print if config.verbose != 0 else (lambda *args, **kwargs: None)
    say(channels.description, flush=True)
    num_images = files.num_images if config.stream else len(images)
    kwargs = _model_kwargs(config, image_shape, labels, num_images)
    dist = distribute.get_strategy(config.strategy)
    levers = _levers(path / BACKUP_DIR if config.resume else None, verbose=config.verbose)
    if config.deterministic:
        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()
    net = _build(config.model, kwargs, dist, levers["mixed_precision_policy"])
    say(_augmentation_text(kwargs.get("augment"), config, net, num_images), flush=True)
    if config.from_preset is not None:  # a fresh optimizer: compiled below as any run's
        presets.load_weights(net, config.from_preset)

    run = None if path is None else RunDirectory(path, resume=config.resume)
    with _kept_in_order(run):
        backup_dir = None if run is None else run.backup_dir
        # One backup, chosen once: the data starts at its epoch, the callback restores it.
        resume_from = checkpointing.newest_backup(backup_dir) if config.resume and run else None
        initial_epoch = resume_from.epoch if resume_from else 0
        train_ds, steps_per_epoch, val_ds, epochs = (
            _stream_datasets if config.stream else _datasets)(
            net, files if config.stream else images, labels, config, initial_epoch=initial_epoch)
        steps_per_execution = _compile(net, dist, levers, steps_per_epoch, config)
        if run is not None:
            run.epochs = epochs
            outputs.write_json(backup_dir / LEVERS_FILE, {"options": levers})
            if not (backup_dir / START_RECORD).exists():  # resume=True compares with it
                outputs.write_json(backup_dir / START_RECORD, config.to_json(), default=str)
        say(f"training options: {_levers_text(levers)} ({devices.describe().summary()})",
            flush=True)
        cbs, backup, budget, early = _callbacks(net, callbacks, run, config, val_ds, epochs,
                                                resume_from)

        with _naming_unreadable(files, backup_dir):  # a streamed image that fails is named
            fit = net.fit(train_ds, validation_data=val_ds, epochs=epochs,
                          steps_per_epoch=steps_per_epoch, callbacks=cbs,
                          verbose=config.verbose, shuffle=False)  # the data is shuffled per epoch
        # The backup's history covers the epochs before a resume too.
        history = _json_history(backup.history if backup is not None else fit.history)
        stopped_by = ("time_budget" if budget is not None and budget.spent else
                      "early_stopping" if early is not None and early.stopped_epoch else "epochs")
        if run is None:
            return TrainResult(net, history, path, {}, stopped_by, epochs, config)
        run.finish()
        run_config = {
            **config.to_json(),
            "epochs": epochs,
            "channels_used": channels.description,
            "stopped_by": stopped_by,
            "stopped_by_time_budget": stopped_by == "time_budget",
            "epochs_done": len(next(iter(history.values()), [])),
            "training_options": {**levers, "strategy": config.strategy or "default",
                                 "deterministic": config.deterministic,
                                 "steps_per_execution_used": steps_per_execution,
                                 "device": devices.describe().summary()},
            "model_kwargs": jsonable_kwargs(kwargs),
            "augment_used": kwargs.get("augment"),
            "flip_used": flips(config.flip, net.capabilities, net.image_shape[-1]),
        }
        if config.stream and config.plots and net.capabilities.encodes:
            images, labels = streaming.read_images(files, 2000)  # a few for the latent plots
        # Saving and drawing take seconds (a diffusion model samples its 64 images step by step).
        say(f"writing model.keras{', samples.png and the figures' if config.plots else ''} "
            f"into {str(path)!r}", flush=True)
        written = write_run(net, history, path, images=images, labels=labels, seed=config.seed,
                            plots=config.plots, run_config=run_config)
    return TrainResult(net, history, path, written, stopped_by, epochs, config)


# ------------------------------------------------------------------ the steps of train()


def _naming_unreadable(files, backup_dir: Path | None):
    """For streamed ``files``: a read or decode failure in ``fit`` becomes a DataError naming
    the images, recorded in the backup folder for a resumed run (nothing for arrays)."""
    if files is None:
        return contextlib.nullcontext()
    record = None if backup_dir is None else backup_dir / streaming.UNREADABLE_RECORD
    return streaming.naming_unreadable(files, record)


def augment_policy(choice: str | None, capabilities, num_images: int) -> str | None:
    """The augmentation policy a run gives its model: None for a model that does not augment
    (``capabilities.augments``); else ``choice``, or for ``choice=None`` DiffAugment's policy
    when the training data has fewer than :data:`AUGMENT_BELOW` images and none otherwise."""
    if not capabilities.augments:
        return None
    if choice is not None:
        return choice
    return augment_lib.DIFF_AUGMENT if num_images < AUGMENT_BELOW else ""


def flips(choice: bool | None, capabilities, channels: int) -> bool:
    """Whether a run mirrors its training images (``TrainConfig.flip``): ``choice``, or for
    None a model without a likelihood trained on colour images."""
    if choice is not None:
        return bool(choice)
    return capabilities.likelihood is None and channels == 3


def _augmentation_text(policy: str | None, config: TrainConfig, net, num_images: int) -> str:
    """The line a run prints about its augmentation and flips, and why (auto or given)."""
    if policy is None:
        augmented = "none (the model does not augment)"
    else:
        why = ("given" if config.augment is not None or "augment" in config.model_kwargs else
               f"auto: {num_images:,} images {'<' if policy else '>='} {AUGMENT_BELOW:,}")
        augmented = f"{policy or 'none'} ({why})"
    flip = flips(config.flip, net.capabilities, net.image_shape[-1])
    how = "given" if config.flip is not None else "auto"
    return f"augmentation: {augmented}; horizontal flips: {'on' if flip else 'off'} ({how})"


def _model_kwargs(config: TrainConfig, image_shape, labels, num_images: int) -> dict:
    """The constructor arguments: the config's, the data's image shape, the seed, the classes,
    the augmentation (:func:`augment_policy`)."""
    name = config.model
    kwargs = _preset_kwargs(config, image_shape) if config.from_preset else dict(
        config.model_kwargs)
    kwargs.setdefault("image_shape", tuple(int(d) for d in image_shape))
    kwargs.setdefault("seed", config.seed)
    policy = augment_policy(config.augment, registry.entry(name).cls.CAPABILITIES, num_images)
    if policy is not None:
        kwargs.setdefault("augment", policy)
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


def _preset_kwargs(config: TrainConfig, image_shape) -> dict:
    """The constructor arguments of ``config.from_preset``'s model, with the run's seed; a
    DataError unless the data has the preset's image shape."""
    kwargs = dict(presets.check(config.from_preset).config["config"])
    kwargs.pop("name", None)  # the run's model is named after its zoo name, as any run's
    kwargs["seed"] = config.seed
    shape = tuple(int(d) for d in image_shape)
    if tuple(kwargs["image_shape"]) != shape:
        raise DataError(
            f"from_preset={config.from_preset!r} takes {'x'.join(map(str, kwargs['image_shape']))}"
            f" images, but the data's are {'x'.join(map(str, shape))}; read it at that size "
            f"(image_size, channels)")
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
        flip=flips(config.flip, net.capabilities, net.image_shape[-1]), **ds_kwargs)
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
        epochs=epochs, initial_epoch=initial_epoch, labels=use_labels,
        flip=flips(config.flip, net.capabilities, net.image_shape[-1]))
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


def _callbacks(net, user_callbacks, run: RunDirectory | None, config: TrainConfig, val_ds,
               epochs: int, resume_from=None):
    """The user's callbacks, then the budget, backup (and the landing of a new run's), early
    stopping, the whole-run progress line and the NaN guard."""
    cbs = list(user_callbacks)
    budget = None if config.time_budget is None else TimeBudget(config.time_budget, at="epoch")
    if budget is not None:
        cbs.append(budget)
    backup = None if run is None else checkpointing.BackupAndResume(run.backup_dir,
                                                                    resume_from)
    if backup is not None:
        cbs += [backup, _LandAtFirstBackup(run)]
    early = None
    if config.early_stopping and val_ds is not None:
        early = keras.callbacks.EarlyStopping(
            monitor=net.early_stopping_monitor, patience=config.early_stopping,
            restore_best_weights=True)
        cbs.append(early)
    if config.verbose != 0:
        cbs.append(RunProgress(epochs, time_budget=config.time_budget))
    # Last: it raises TrainingError from on_train_end, after the others have finished.
    nan_guard = checkpointing.TerminateOnNaN(None if run is None else run.backup_dir)
    cbs.append(nan_guard)
    if run is not None:
        run.followers += [backup, nan_guard]
    return cbs, backup, budget, early


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
    flip: bool = False,
) -> tuple[Any, int]:
    """The training batches of epochs ``initial_epoch .. epochs-1`` as one dataset.

    Epoch ``e`` is a stateless shuffle seeded by ``(seed, e)``, so its batches depend
    on nothing else: not on how many iterators were created before in this process (a
    ``reshuffle_each_iteration`` shuffle advances with each one, and ``fit`` under a
    ``tf.distribute`` strategy creates an extra one), nor on whether the run was resumed.
    Give ``fit`` the returned ``steps_per_epoch``. Dynamic binarization is not done here: the
    VAE draws it in its own ``train_step``. ``flip`` mirrors each image left-right with
    probability 1/2, also drawn from ``(seed, e)`` (:func:`tf_genai.data.pipeline.flip_batches`).

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

        ds = ds.map(gather)
        return data_lib.pipeline.flip_batches(ds, epoch_seed) if flip else ds

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

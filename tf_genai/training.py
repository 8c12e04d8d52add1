"""Build data, model and callbacks, run ``model.fit``, and write what a run produces.

This is the function the CLI's ``train`` calls and a notebook can call too::

    from tf_genai.training import train
    result = train("vae", data="digits", out_dir="runs/vae", epochs=20)

A run directory holds ``model.keras`` (the trained model, with its optimizer state),
``history.json`` (per-epoch metrics), ``samples.png`` and, for VAEs, ``latent_scatter.png``
(and ``latent_manifold.png`` when the latent space is 2-D). An existing non-empty directory is
never written into unless ``overwrite=True`` (or ``resume=True``, which continues the run there).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tf_genai import checkpointing, outputs, ranges
from tf_genai.errors import ConfigError, DataError

RUN_FILES = ("model.keras", "history.json", "samples.png", "run.json")


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the trained model, its history and the files written."""

    model: Any
    history: dict[str, list[float]]
    out_dir: Path | None
    files: dict[str, Path]


def _check_positive(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _check_number(name: str, value: Any, *, positive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        bound = "a positive number" if positive else "a number >= 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


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


def train(
    model: str = "vae",
    data: Any = "digits",
    *,
    out_dir: str | os.PathLike | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    split: str = "train",
    latent_dim: int | None = None,
    learning_rate: float | None = None,
    weight_decay: float = 0.0,
    image_size: int | None = None,
    validation_fraction: float = 0.1,
    early_stopping: int | None = None,
    time_budget: float | None = None,
    model_kwargs: dict[str, Any] | None = None,
    callbacks: Sequence[Any] = (),
    overwrite: bool = False,
    resume: bool = False,
    strategy: str | None = None,
    deterministic: bool = False,
    plots: bool = True,
    verbose: int | str = "auto",
    stream: bool = False,
    autotune: str | None = None,
    check_files: str = "verify",
) -> TrainResult:
    """Train the zoo model ``model`` on ``data`` with ``model.fit`` and write the run's files.

    The steps, each a function below: check every argument, load the data, build the model
    (under the device's precision policy and the strategy), make the epoch datasets, compile,
    make the callbacks, ``fit``, write the run directory.

    Args:
        model: a zoo name (``tf-genai models`` lists them).
        data: any source ``tf_genai.data.load`` accepts (``"digits"``, a path, arrays, ...).
        out_dir: the run directory; ``None`` writes nothing.
        validation_fraction: the share of the training split held back for ``val_*`` metrics and
            early stopping (never the held-out split). 0 disables validation.
        epochs: ``None`` picks :func:`auto_epochs` (about 2,500 optimizer steps).
        early_stopping: patience in epochs on the model's ``early_stopping_monitor`` (a VAE's
            ``val_loss``, the true -ELBO); refused for models without one (GANs).
        time_budget: seconds; training stops at the end of the epoch that crosses it
            (:class:`tf_genai.callbacks.TimeBudget`), the run directory is written as usual,
            and ``resume=True`` continues it.
        resume: continue an interrupted run in ``out_dir`` from its last backup.
        strategy: ``None``/``"default"``, ``"mirrored"`` or ``"multiworker"`` (tf.distribute).
        deterministic: turn on TensorFlow's deterministic ops (bit-identical reruns). The
            speed levers are then never probed: this machine's cached choice for the config,
            else the flag choice.
        autotune: how the speed levers (precision policy, steps per execution, XLA) are
            chosen (:mod:`tf_genai.autotune`): ``"auto"`` (a cached or a short timed probe,
            within 3 % of the run's training; levers a cached probe's budget left pending are
            probed from its choice), ``"off"`` (the flag choice of
            :func:`tf_genai.devices.training_options`), ``"retune"`` (probe again, cache it);
            None reads ``TF_GENAI_AUTOTUNE``, else auto. The choice is printed in one line
            (unless ``verbose=0``), kept in ``run.json`` and reused by ``resume=True``.
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

    Returns:
        A :class:`TrainResult`.
    """
    from tf_genai import registry

    # --- everything that can be wrong is checked before any training starts -----------------
    _check_positive("epochs", epochs, allow_none=True)
    _check_positive("batch_size", batch_size)
    _check_positive("latent_dim", latent_dim, allow_none=True)
    if learning_rate is not None:
        _check_number("learning_rate", learning_rate, positive=True)
    _check_number("weight_decay", weight_decay, positive=False)
    if time_budget is not None:
        _check_number("time_budget", time_budget, positive=True)
    if not 0.0 <= validation_fraction < 1.0:
        raise ConfigError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    entry = registry.entry(model)  # ConfigError naming the zoo for an unknown name
    if early_stopping and entry.cls.early_stopping_monitor is None:
        raise ConfigError(f"model {model!r} cannot stop early: {entry.cls.early_stopping_refusal}")
    # Checked now, created only after the data and the model have passed their checks, so a
    # bad --data or model argument leaves no empty run directory behind.
    path = prepare_out_dir(out_dir, overwrite=overwrite, resume=resume, create=False)

    from tf_genai.data import streaming

    streaming.check_option(check_files, stream)
    if stream:
        files = _scan(data, split, image_size, check_files,
                      path / "backup" if resume and path is not None else None)
        images, labels, image_shape = None, files.labels, files.image_shape
    else:
        files = None
        images, labels = _load(data, split, image_size)
        image_shape = tuple(int(d) for d in images.shape[1:])
    kwargs = _model_kwargs(model, entry, image_shape, labels, data, seed, latent_dim,
                           model_kwargs)
    backup_dir = None if path is None else path / "backup"
    from tf_genai import distribute

    dist = distribute.get_strategy(strategy)
    tuner = _tuner(model, kwargs, batch_size, strategy, dist, autotune, deterministic,
                   backup_dir if resume else None)
    if deterministic:
        _make_deterministic(seed)
    net = _build(model, kwargs, dist, tuner.policy)

    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
    if backup_dir is not None and not resume and backup_dir.exists():
        shutil.rmtree(backup_dir)  # overwrite=True: a stale backup must not leak into a new run
    # One backup, chosen once: the data starts at its epoch, the callback restores it.
    resume_from = checkpointing.newest_backup(backup_dir) if resume and backup_dir else None
    initial_epoch = resume_from.epoch if resume_from else 0
    train_ds, steps_per_epoch, val_ds, epochs = (_stream_datasets if stream else _datasets)(
        net, files if stream else images, labels, batch_size=batch_size, seed=seed,
        epochs=epochs, initial_epoch=initial_epoch, validation_fraction=validation_fraction)
    net, options, tuning = tuner.settle(
        net, build=lambda policy: _build(model, kwargs, dist, policy),
        compile=lambda n, opts, spe=None: _compile(n, dist, opts, steps_per_epoch,
                                                   learning_rate, weight_decay, spe=spe),
        train_ds=train_ds, steps_per_epoch=steps_per_epoch,
        remaining_steps=steps_per_epoch * max(0, epochs - initial_epoch),
        time_budget=time_budget)
    if verbose != 0:
        print(tuning.summary(), flush=True)
    if backup_dir is not None:
        from tf_genai import autotune as autotune_lib

        autotune_lib.write_resume_file(backup_dir / autotune_lib.RESUME_FILE, tuning)
    cbs, backup, budget = _callbacks(net, callbacks, backup_dir, early_stopping, val_ds,
                                     time_budget, resume_from)

    with _naming_unreadable(files, backup_dir):  # a streamed image that fails is named
        fit = net.fit(train_ds, validation_data=val_ds, epochs=epochs,
                      steps_per_epoch=steps_per_epoch, callbacks=cbs, verbose=verbose,
                      shuffle=False)  # the data is shuffled per epoch
    # The backup's history covers the epochs before a resume too.
    history = _json_history(backup.history if backup is not None else fit.history)

    if path is not None:
        run_config = dict(
            model=model, data=_describe_data(data), epochs=epochs, batch_size=batch_size,
            seed=seed, split=split, stream=stream, time_budget=time_budget,
            stopped_by_time_budget=bool(budget is not None and budget.spent),
            epochs_done=len(next(iter(history.values()), [])),
            training_options={**options, "strategy": strategy or "default",
                              "deterministic": deterministic,
                              "steps_per_execution_used": int(net.steps_per_execution),
                              "autotune": tuning.to_json()},
            model_kwargs={k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()})
        if stream and plots and net.encodes:  # a few images for the latent plots, not all
            from tf_genai.data import streaming

            images, labels = streaming.read_images(files, 2000)
        written = write_run(net, history, path, images=images, labels=labels, seed=seed,
                            plots=plots, run_config=run_config)
    else:
        written = {}
    return TrainResult(net, history, path, written)


# ------------------------------------------------------------------ the steps of train()


def _load(data: Any, split: str, image_size: int | None):
    from tf_genai import data as data_lib

    return data_lib.load(data, split=split, image_size=image_size)


def _scan(data: Any, split: str, image_size: int | None, check: str = "verify",
          resume_backup: Path | None = None):
    from tf_genai.data import streaming

    if not isinstance(data, (str, os.PathLike)):
        raise ConfigError(f"stream=True reads files: data must be a folder of images or "
                          f"TFRecord shards, got {type(data).__name__}")
    recheck = None if resume_backup is None else resume_backup / streaming.UNREADABLE_RECORD
    return streaming.scan(data, split, image_size=image_size, check=check, recheck=recheck)


def _naming_unreadable(files, backup_dir: Path | None):
    """For streamed ``files``: a read or decode failure in ``fit`` becomes a DataError naming
    the images, recorded in the backup folder for a resumed run (nothing for arrays)."""
    import contextlib

    from tf_genai.data import streaming

    if files is None:
        return contextlib.nullcontext()
    record = None if backup_dir is None else backup_dir / streaming.UNREADABLE_RECORD
    return streaming.naming_unreadable(files, record)


def _describe_data(data: Any) -> str:
    return os.fspath(data) if isinstance(data, (str, os.PathLike)) else str(data)


def _model_kwargs(name, entry, image_shape, labels, data, seed, latent_dim,
                  model_kwargs) -> dict:
    """The constructor arguments: the caller's, the data's image shape, the seed, the classes."""
    kwargs = dict(model_kwargs or {})
    kwargs.setdefault("image_shape", tuple(int(d) for d in image_shape))
    kwargs.setdefault("seed", seed)
    if latent_dim is not None:
        kwargs["latent_dim"] = latent_dim
    if entry.defaults.get("num_classes") is not None or kwargs.get("num_classes"):
        if labels is None:
            raise ConfigError(
                f"model {name!r} is conditional and needs labels, but data source {data!r} "
                "has none")
        needed = int(np.max(labels)) + 1
        given = kwargs.get("num_classes")
        if given and int(given) < needed:
            raise DataError(
                f"the data's labels go up to {needed - 1}, but model {name!r} was given "
                f"num_classes={given}; labels must lie in [0, num_classes)")
        kwargs["num_classes"] = int(given or needed)
    return kwargs


def _make_deterministic(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _tuner(name, kwargs, batch_size, strategy, dist, mode, deterministic, resume_dir):
    """The :class:`tf_genai.autotune.Tuner` of this run's config (checks its mode and the
    environment's lever overrides before anything is built)."""
    from tf_genai import autotune, distribute

    config = {"model": name, "kwargs": kwargs, "batch_size": batch_size,
              "strategy": strategy or "default", "replicas": dist.num_replicas_in_sync}
    return autotune.Tuner(
        config, mode=mode, deterministic=deterministic,
        multiworker=distribute.is_multiworker(dist),
        resume_file=None if resume_dir is None else resume_dir / autotune.RESUME_FILE)


def _build(name: str, kwargs: dict, dist, policy: str):
    """The model, built under the strategy's scope and the precision policy ``policy``."""
    from tf_genai import devices, registry

    # The policy is needed only while the layers are built (each keeps its own); the caller's
    # global policy is back in force after this block.
    with dist.scope(), devices.mixed_precision(policy):
        return registry.create(name, **kwargs)


def _datasets(net, images, labels, *, batch_size, seed, epochs, initial_epoch,
              validation_fraction):
    """The training epochs (from ``initial_epoch``) and the validation batches.

    Dynamic binarization is the model's own (a fresh draw in every train_step, from its seed
    generator, whose state a backup restores), so the pipeline does not draw a second time.
    Validation images are binarized once, with the run's seed, so ``val_*`` metrics and early
    stopping compare like with like from epoch to epoch (the MNIST protocol's held-out rule).
    """
    from tf_genai import data as data_lib

    use_labels = labels is not None and net.num_classes is not None
    train_x, train_y, val_x, val_y = images, labels, None, None
    if validation_fraction > 0 and len(images) >= 20:
        (train_x, train_y), (val_x, val_y) = data_lib.train_validation_split(
            images, labels, fraction=validation_fraction, seed=seed)
    ds_kwargs = dict(scale=net.data_range, batch_size=batch_size, seed=seed)
    if epochs is None:
        epochs = auto_epochs(len(train_x), batch_size)
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


def _stream_datasets(net, files, labels, *, batch_size, seed, epochs, initial_epoch,
                     validation_fraction):
    """:func:`_datasets` for streamed files: the same validation rule (a seeded share of the
    training split, binarized once for Bernoulli models) and per-(seed, epoch) order."""
    from tf_genai import data as data_lib
    from tf_genai.data import streaming

    use_labels = labels is not None and net.num_classes is not None
    train_files, val_files = files, None
    if validation_fraction > 0 and files.num_images >= 20:
        (train_pos, _), (val_pos, _) = data_lib.train_validation_split(
            np.arange(files.num_images), labels, fraction=validation_fraction, seed=seed)
        train_files = streaming.subset(files, train_pos, f"{files.split}_train")
        val_files = streaming.subset(files, val_pos, f"{files.split}_validation")
    if epochs is None:
        epochs = auto_epochs(train_files.num_images, batch_size)
    train_ds, steps_per_epoch = streaming.stream_epochs(
        train_files, batch_size=batch_size, scale=net.data_range, seed=seed, epochs=epochs,
        initial_epoch=initial_epoch, labels=use_labels)
    val_ds = None
    if val_files is not None:
        val_ds = streaming.stream_dataset(
            val_files, batch_size=batch_size, scale=net.data_range, seed=seed, shuffle=False,
            labels=use_labels, binarize_fixed=bool(net.binarize))
    return train_ds, steps_per_epoch, val_ds, epochs


def _compile(net, dist, options, steps_per_epoch, learning_rate, weight_decay,
             spe: int | None = None) -> int:
    """Compile ``net`` with the run's optimizers and ``options``; returns the steps per
    execution used (``spe`` when given: the autotuner's probes)."""
    from tf_genai import distribute
    from tf_genai.layers import set_float32_weight_gradients, set_fused_layers

    multiworker = distribute.is_multiworker(dist)
    # One execution must not run past an epoch's last batch into the next epoch's. Multi-worker
    # runs take one step per execution: Keras' multi-step loop fails to run under them
    # ("You must feed a value for placeholder tensor 'while/cond/Placeholder'").
    steps_per_execution = 1 if multiworker else spe or largest_divisor(
        steps_per_epoch, options.get("steps_per_execution", 1))
    with dist.scope():
        compile_model(net, learning_rate=learning_rate, weight_decay=weight_decay,
                      steps_per_execution=steps_per_execution,
                      jit_compile=options.get("jit_compile", False))
    set_float32_weight_gradients(net, options.get("float32_weight_gradients", False))
    set_fused_layers(net, options.get("fused_layers", True))
    if multiworker:
        distribute.scalar_logs_for_multiworker(net)
    return steps_per_execution


def _callbacks(net, user_callbacks, backup_dir, early_stopping, val_ds, time_budget,
               resume_from=None):
    """The user's callbacks, then the budget, backup, early stopping and NaN guard."""
    import keras

    from tf_genai.callbacks import TimeBudget

    cbs = list(user_callbacks)
    budget = None if time_budget is None else TimeBudget(time_budget, at="epoch")
    if budget is not None:
        cbs.append(budget)
    backup = None if backup_dir is None else checkpointing.BackupAndResume(backup_dir,
                                                                           resume_from)
    if backup is not None:
        cbs.append(backup)
    if early_stopping and val_ds is not None:
        cbs.append(keras.callbacks.EarlyStopping(
            monitor=net.early_stopping_monitor, patience=early_stopping,
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
    import tensorflow as tf

    from tf_genai import data as data_lib

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
    # The probe (tf_genai.autotune) ends an iterator per fit call: autotuning's thread off.
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
    """The figures that fit ``model``: samples (one class a row for conditional models); for
    iterative samplers (``model.samples_iteratively``) the denoising trajectory; for models
    that encode (``model.encodes``) the latent scatter, reconstructions and, for a 2-D latent
    space, the manifold."""
    from tf_genai import plotting

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    sample_labels = None
    if model.num_classes is not None:
        per_class = 8
        sample_labels = np.repeat(np.arange(model.num_classes), per_class).astype("int32")
    files["samples"] = path / "samples.png"
    plotting.plot_samples(model, n=64 if sample_labels is None else len(sample_labels), seed=seed,
                          labels=sample_labels, path=files["samples"])
    if model.samples_iteratively:
        files["trajectory"] = path / "trajectory.png"
        plotting.plot_trajectory(model, n=4 if model.num_classes is None else model.num_classes,
                                 seed=seed, path=files["trajectory"])
    if model.encodes and images is not None:  # a latent space to show (VAEs)
        n = min(len(images), 2000)
        x = ranges.for_model(images[:n], model.data_range)  # load() gives uint8 or [0, 1]
        y = None if labels is None or model.num_classes is None else labels[:n]
        files["latent_scatter"] = path / "latent_scatter.png"
        plotting.plot_latent_scatter(model, x, labels=None if labels is None else labels[:n],
                                     path=files["latent_scatter"])
        files["reconstructions"] = path / "reconstructions.png"
        plotting.plot_reconstructions(model, x[:10], labels=None if y is None else y[:10],
                                      path=files["reconstructions"])
        if model.latent_dim == 2 and model.num_classes is None:
            files["latent_manifold"] = path / "latent_manifold.png"
            plotting.plot_latent_manifold(model, n=20, path=files["latent_manifold"])
    return files

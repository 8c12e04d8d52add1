"""Resume a killed run where it stopped; stop a diverging run but keep its last good state.

:class:`BackupAndResume` extends Keras' own ``keras.callbacks.BackupAndRestore`` (which restores
the weights, ``model.optimizer`` and the epoch) with what our models need on top:

* Every optimizer the model trains with, whatever the family: the family contract lists them
  (``model.training_optimizers()``: a GAN's ``d_optimizer`` and ``g_optimizer``). Keras' weights
  file holds their slots, but an optimizer that is not built yet silently skips loading them (a
  warning, not an error), so each is built before the backup is loaded.
* The model-owned ``keras.random.SeedGenerator`` states (and those of layers such as Dropout) are
  *not* in a Keras weights file; they are saved next to it (``rng_state.npz``), so the resumed
  run draws the same noise the uninterrupted one would have.
* A backup is written into a fresh folder that then replaces the last one by a rename, so a run
  killed while saving still finds a complete backup (the previous one). Its metadata, written
  last, records the SHA-256 of every other file; a backup whose files do not match is damaged.
* Resuming chooses ONE backup, the newest complete one (``latest``, else ``previous``:
  :func:`newest_backup`), and takes everything from it: the weights, optimizer and random
  generator states, the history and the epoch, which is also where ``train(resume=True)``
  starts the data (the per-(seed, epoch) order). Falling back to ``previous`` is announced.
* A backup with non-finite losses or weights is never written: after a NaN the directory still
  holds the last good epoch (:class:`TerminateOnNaN` then stops the run).
* It keeps the backup when training ends (``delete_checkpoint=False``): it is the run's last good
  state, and ``train(resume=True)`` on a finished run then simply has nothing left to do.
* It saves the per-epoch history, so a resumed run's history covers every epoch.

Only epoch boundaries are backed up: a run killed mid-epoch repeats that epoch. For the repeat to
give the same result, the data order of an epoch must depend only on (seed, epoch) — see
``training.epoch_dataset``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tf_genai import outputs
from tf_genai.errors import ModelFileError, TrainingError
from tf_genai.keras_adapter import seed_generator_states, start_fit_at_epoch

LATEST, PREVIOUS, TMP = "latest", "previous", ".incoming"
WEIGHTS_FILE = "model.weights.h5"
RNG_FILE = "rng_state.npz"
META_FILE = "training_metadata.json"
HISTORY_FILE = "history.json"
LOSS_KEYS = ("loss", "d_loss", "g_loss")


def _finite_logs(logs: dict[str, Any] | None) -> tuple[bool, str | None, float | None]:
    """Whether every loss in ``logs`` is finite; else the first non-finite key and its value."""
    for key, value in (logs or {}).items():
        if key in LOSS_KEYS or key.endswith("_loss"):
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(number):
                return False, key, number
    return True, None, None


def model_optimizers(model: keras.Model) -> list[tuple[Any, list[Any]]]:
    """``(optimizer, variables it updates)`` for every optimizer the model trains with.

    Asked of the model (the family contract's ``training_optimizers``); a plain Keras model's
    ``model.optimizer`` updates its trainable variables.
    """
    if hasattr(model, "training_optimizers"):
        return [(optimizer, variables) for _, optimizer, variables in model.training_optimizers()]
    if isinstance(getattr(model, "optimizer", None), keras.optimizers.Optimizer):
        return [(model.optimizer, model.trainable_variables)]
    return []


@dataclasses.dataclass(frozen=True)
class Backup:
    """A complete backup: its folder and the number of epochs it has completed."""

    folder: Path
    epoch: int


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ValueError if the file is not one."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return data


def check_backup(folder: str | os.PathLike) -> int:
    """The epochs the backup in ``folder`` has completed; ValueError/OSError naming the first
    missing or damaged file (a hash that differs from the one recorded, a malformed file)."""
    folder = Path(folder)
    meta = _json_object(folder / META_FILE)
    epoch = meta.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"{META_FILE} holds no epoch count")
    recorded = meta.get("sha256", {})  # absent in backups written before hashes were recorded
    for name in (WEIGHTS_FILE, RNG_FILE, HISTORY_FILE):
        if not (folder / name).is_file():
            raise ValueError(f"{name} is missing")
        if name in recorded and outputs.file_digest(folder / name) != recorded[name]:
            raise ValueError(f"{name} is damaged (its SHA-256 differs from the one recorded)")
    history = _json_object(folder / HISTORY_FILE)
    if not all(isinstance(v, list) for v in history.values()):
        raise ValueError(f"{HISTORY_FILE} is not a history of per-epoch lists")
    return epoch


def newest_backup(directory: str | os.PathLike) -> Backup | None:
    """The newest complete backup in ``directory`` (``latest``, else ``previous``), or None when
    there is none. Falling back to ``previous`` warns, naming what is wrong with ``latest``.

    Raises:
        ModelFileError: backups exist but none is complete.
    """
    problems = []
    for name in (LATEST, PREVIOUS):
        folder = Path(directory) / name
        if not folder.exists():
            continue
        try:
            backup = Backup(folder, check_backup(folder))
        except (OSError, ValueError) as err:  # truncated, damaged, malformed or missing files
            problems.append(f"{folder}: {err}")
            continue
        if problems:
            warnings.warn(f"{problems[0]}; resuming from {folder} (epoch {backup.epoch})",
                          stacklevel=2)
        return backup
    if problems:
        raise ModelFileError("cannot resume: no complete backup; " + "; ".join(problems))
    return None


def backup_epoch(directory: str | os.PathLike) -> int:
    """The number of epochs the newest complete backup in ``directory`` has completed (0 when
    there is none, or none is complete)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            backup = newest_backup(directory)
    except ModelFileError:
        return 0
    return 0 if backup is None else backup.epoch


def _is_chief(model: keras.Model) -> bool:
    # Under MultiWorkerMirroredStrategy only the chief writes; every worker reads the same backup.
    return bool(getattr(model.distribute_strategy.extended, "should_checkpoint", True))


class BackupAndResume(keras.callbacks.BackupAndRestore):
    """Back up the full training state at every epoch end and restore it when ``fit`` restarts.

    The state is the weights, every optimizer's slots and step count, the model's random
    generator states and the epoch. Restarting ``fit`` (in a new process, after a crash or a
    SIGKILL) with the same model, compile arguments and callback continues at the epoch after
    the last backup.

    Args:
        directory: the backup folder (one per run; it holds ``latest/`` and ``previous/``).
        resume_from: the backup to restore, as :func:`newest_backup` chose it for whoever also
            set up the data from its epoch (``train(resume=True)``); None: choose it when
            ``fit`` starts.
    """

    def __init__(self, directory: str | os.PathLike, resume_from: Backup | None = None) -> None:
        super().__init__(os.fspath(directory), save_freq="epoch", delete_checkpoint=False)
        self.directory = Path(directory)
        self.resume_from = resume_from
        self.history: dict[str, list[float]] = {}

    # --- restore -------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Restore the chosen backup (else the newest complete one), if any.

        There is no second choice: the epoch, the data order and the random states all come
        from this one backup, so one that cannot be restored into the model is an error.
        """
        self.history = {}
        # Used once: a later fit with this callback resumes from the backups it wrote since.
        backup, self.resume_from = self.resume_from or newest_backup(self.directory), None
        if backup is None:
            return
        try:
            self._restore(backup.folder, backup.epoch)
        except (OSError, ValueError, KeyError) as err:  # a backup of another model
            raise ModelFileError(f"cannot resume from {backup.folder}: {err}") from err

    def _restore(self, folder: Path, epoch: int) -> None:
        model = self.model
        with model.distribute_strategy.scope():
            # An unbuilt optimizer skips its saved slots with only a warning: build them first.
            for optimizer, variables in model_optimizers(model):
                if not optimizer.built:
                    optimizer.build(variables)
            model.load_weights(folder / WEIGHTS_FILE)
            states = seed_generator_states(model)
            with np.load(folder / RNG_FILE) as saved:
                if len(saved.files) != len(states):
                    raise ValueError(
                        f"{folder / RNG_FILE} holds {len(saved.files)} random generator states, "
                        f"the model has {len(states)}: not a backup of this model"
                    )
                for i, state in enumerate(states):
                    state.assign(saved[f"state_{i}"])
        self.history = _json_object(folder / HISTORY_FILE)
        start_fit_at_epoch(model, epoch)

    # --- save ----------------------------------------------------------------------------
    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Back up the state after ``epoch`` unless a loss or a weight is NaN/Inf."""
        self._current_epoch = epoch + 1
        finite, _, _ = _finite_logs(logs)
        if finite:
            finite = all(
                np.all(np.isfinite(keras.ops.convert_to_numpy(v)))
                for v in self.model.trainable_variables
            )
        if not finite:
            return  # keep the last good backup: never overwrite it with a diverged state
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if _is_chief(self.model):
            self._save(epoch + 1)

    def _save(self, epochs_done: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        incoming = self.directory / TMP
        if incoming.exists():
            shutil.rmtree(incoming)
        incoming.mkdir()
        self.model.save_weights(incoming / WEIGHTS_FILE, overwrite=True)
        states = {f"state_{i}": keras.ops.convert_to_numpy(state)
                  for i, state in enumerate(seed_generator_states(self.model))}
        np.savez(incoming / RNG_FILE, **states)
        (incoming / HISTORY_FILE).write_text(json.dumps(self.history))
        # Written last, with the hash of every other file: a folder whose files match it is
        # complete and undamaged.
        digests = {name: outputs.file_digest(incoming / name)
                   for name in (WEIGHTS_FILE, RNG_FILE, HISTORY_FILE)}
        (incoming / META_FILE).write_text(json.dumps({"epoch": epochs_done, "sha256": digests}))
        # Flushed, then renamed: a kill leaves `latest` or `previous`, whole.
        outputs.rotate_into_place(incoming, self.directory / LATEST, self.directory / PREVIOUS)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Nothing: backups are written at epoch ends only."""

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Keep the backup: it is the run's last good state."""


class TerminateOnNaN(keras.callbacks.Callback):
    """Stop training when ``loss``, ``d_loss`` or ``g_loss`` becomes NaN/Inf, then raise.

    The batch that produced the NaN stops the run (``model.stop_training``), the other callbacks
    finish (a :class:`BackupAndResume` skips the diverged epoch, so its directory keeps the last
    good backup), and then ``fit`` raises :class:`~tf_genai.errors.TrainingError` naming the
    loss, the epoch and batch, and the backup to resume from. Put it last in the callback list:
    callbacks after it get no ``on_train_end``.

    Args:
        directory: the :class:`BackupAndResume` folder of the run, named in the error; or None.
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.directory = None if directory is None else Path(directory)
        self.message: str | None = None
        self._epoch = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Forget an earlier run's NaN."""
        self.message = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Remember the epoch for the message."""
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Stop at the first non-finite loss."""
        finite, key, value = _finite_logs(logs)
        if not finite and self.message is None:
            self.message = f"{key} became {value} at epoch {self._epoch + 1}, batch {batch + 1}"
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Raise :class:`TrainingError` if the run stopped on a NaN."""
        if self.message is None:
            return
        where = "no backup was written"
        if self.directory is not None:
            done = backup_epoch(self.directory)
            if done:
                where = (f"the last good backup (after epoch {done}) is kept in "
                         f"{str(self.directory)!r}")
        raise TrainingError(
            f"training diverged: {self.message}; {where}. Try a smaller learning rate, or check "
            "the data for NaN/Inf values"
        )

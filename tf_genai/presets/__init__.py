"""Presets: trained models shipped inside the package, or saved by a user, as folders.

A preset is a folder in keras-hub's local layout, which :func:`from_preset` reads whether it
is one shipped in the package (``tf_genai/presets/<name>/``, :func:`available`) or a path:

- ``config.json``: the model's class (its Keras registered name), its zoo name and
  ``get_config()``, which rebuilds it;
- ``model.weights.h5``: its weights (Keras' weights file), stored in float16 or float32
  (``save_to_preset(..., dtype=...)``) and restored to the model's float32 variables;
- ``metadata.json``: the storage dtype, the weight file's SHA-256 (checked before it is
  loaded), the versions and date that wrote it, and whatever the writer adds: the presets
  shipped here record their data and its licence, the training command, steps, wall time and
  CPU, and the figures measured with the commands that measured them (docs/presets.md).

A preset holds what sampling and fine-tuning need, not a checkpoint: no optimizer state
(:func:`from_preset` compiles a fresh one with the family's recipe), and of a network with a
weight average only the average, which sampling uses; the trained network starts from it
again when the model is trained further. ``.keras`` files and backups keep a run exactly.

Reading a preset's description (:func:`check`, :func:`describe`) imports no TensorFlow, so
``tf-genai models --presets`` lists them at once and every command refuses a broken preset
before it loads TensorFlow. Depends on :mod:`tf_genai.registry`, :mod:`tf_genai.outputs`,
:mod:`tf_genai.capabilities` and :mod:`tf_genai.errors` only: the models call it (``GenerativeModel.from_preset``), it never
imports them (a preset's class is found in Keras' registry, which ``import tf_genai`` fills).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tf_genai import capabilities, outputs, registry
from tf_genai.errors import ConfigError, ModelFileError

SHIPPED = Path(__file__).resolve().parent
"""The folder of the presets shipped in the package: one sub-folder per preset."""
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
FORMAT = "tf_genai.preset"
"""The ``format`` field of a preset's ``config.json`` and ``metadata.json``."""
FORMAT_VERSION = 1
STORAGE_DTYPES = ("float16", "float32")
PREFIX = "preset:"
"""How a command-line MODEL argument names a preset: ``preset:NAME`` or ``preset:PATH``."""
_FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclasses.dataclass(frozen=True)
class PresetFolder:
    """A preset folder whose files were checked: its path, ``config.json`` and
    ``metadata.json``."""

    path: Path
    config: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def zoo_name(self) -> str | None:
        """The zoo name the model was created as (None for a class outside the zoo's table)."""
        return self.config.get("zoo_name")

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS_FILE


# ---------------------------------------------------------------------------- finding presets


def available() -> list[str]:
    """The names of the presets shipped in the package, sorted (reads no weights)."""
    return sorted(p.name for p in SHIPPED.iterdir() if (p / CONFIG_FILE).is_file())


def reference(model_argument: str | os.PathLike) -> str | None:
    """The preset a command-line MODEL argument names, or None when it names something else.

    ``preset:NAME`` (or ``preset:PATH``) names a preset; so does a folder that holds a
    ``config.json`` and no ``saved_model.pb`` (a SavedModel export is a folder too).
    """
    text = os.fspath(model_argument)
    if text.startswith(PREFIX):
        return text[len(PREFIX):]
    path = Path(text)
    if (path / CONFIG_FILE).is_file() and not (path / "saved_model.pb").exists():
        return text
    return None


def locate(preset: str | os.PathLike) -> Path:
    """The folder of ``preset``: a shipped preset's name (any case), else a path.

    A bare name is a shipped preset first; write ``./name`` for a folder that has a shipped
    preset's name.

    Raises:
        ConfigError: a bare name that is neither a shipped preset nor a folder; the message
            suggests the nearest shipped name and lists them all.
        ModelFileError: a path that is not a folder.
    """
    text = os.fspath(preset)
    is_path = isinstance(preset, os.PathLike) or os.sep in text or (
        os.altsep is not None and os.altsep in text) or text.startswith(".")
    if not is_path:
        shipped = registry.match(text, available())
        if shipped is not None:
            return SHIPPED / shipped
        if not Path(text).is_dir():
            names = available()
            listed = ", ".join(names) if names else "none yet"
            raise ConfigError(f"unknown preset {text!r}; {registry.did_you_mean(text, names)}"
                              f"the shipped presets: {listed} (or give a preset folder's path; "
                              "`tf-genai models --presets` lists them)")
    path = Path(text)
    if not path.exists():
        raise ModelFileError(f"preset folder {text!r} does not exist")
    if not path.is_dir():
        raise ModelFileError(f"preset {text!r} is a file; a preset is a folder holding "
                             f"{CONFIG_FILE}, {WEIGHTS_FILE} and {METADATA_FILE}")
    return path


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ModelFileError(f"preset {str(path.parent)!r} has no {path.name} ({what})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelFileError(f"{what} {str(path)!r} is unreadable: {err}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFileError(f"{str(path)!r} is not a tf_genai preset's {path.name} "
                             f"(no \"format\": \"{FORMAT}\")")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(f"{str(path)!r} was written by a newer tf_genai (preset format "
                             f"{data.get('format_version')}; this one reads {FORMAT_VERSION})")
    return data


def check(preset: str | os.PathLike, *, verify: bool = True) -> PresetFolder:
    """The preset's folder with its two JSON files read and its weight file checked, without
    TensorFlow (the command line runs it before importing it).

    Args:
        verify: compare the weight file's SHA-256 with the one ``metadata.json`` records (about
            10 ms a megabyte); False checks only that it is there.

    Raises:
        ConfigError: an unknown preset name (:func:`locate`).
        ModelFileError: a missing folder or file, unreadable JSON, a class that is not
            tf_genai's, or a weight file that is empty or not the one the preset was saved with.
    """
    path = locate(preset)
    config = _read_json(path / CONFIG_FILE, "model config")
    metadata = _read_json(path / METADATA_FILE, "metadata")
    registered = str(config.get("registered_name") or "")
    if not registered.startswith(f"{registry.PACKAGE}>") or not isinstance(
            config.get("config"), dict):
        raise ModelFileError(f"{str(path / CONFIG_FILE)!r} does not describe a tf_genai model "
                             f"(registered_name {registered!r})")
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFileError(f"preset {str(path)!r} has no weight file: {str(weights)!r} is "
                             "missing")
    if weights.stat().st_size == 0:
        raise ModelFileError(f"weight file {str(weights)!r} is empty")
    expected = metadata.get("weights", {}).get("sha256")
    if verify and expected and outputs.file_digest(weights) != expected:
        raise ModelFileError(f"weight file {str(weights)!r} is corrupt: its SHA-256 differs "
                             f"from the one {METADATA_FILE} records (a damaged or replaced file)")
    return PresetFolder(path, config, metadata)


def describe(preset: str | os.PathLike) -> dict[str, str]:
    """One line's worth of a preset for listings: ``name``, ``model`` (zoo name), ``data``,
    ``figure`` (the headline quality figure its metadata records, ``-`` without one). Reads
    the JSON files only."""
    folder = check(preset, verify=False)
    meta = folder.metadata
    data = meta.get("data", {})
    return {"name": folder.name,
            "model": folder.zoo_name or str(folder.config.get("class_name")),
            "data": str(data.get("name", "-")) if isinstance(data, dict) else str(data),
            "figure": str(meta.get("headline", "-"))}


# ---------------------------------------------------------------------------- loading


def from_preset(preset: str | os.PathLike, *, compile: bool = True):
    """The trained model a preset holds, ready to ``sample``, plot, evaluate, export and
    ``fit`` further.

    Args:
        preset: a shipped preset's name (:func:`available`; ``tf-genai models --presets``) or
            the path of a preset folder (:func:`save_to_preset` writes one).
        compile: compile with the family's recipe (``model.default_optimizers()``: a fresh
            optimizer, no state carried over), as ``tf-genai train`` would.

    Raises:
        ConfigError: an unknown preset name (the nearest shipped name suggested).
        ModelFileError: a missing, corrupt or mismatched file, named.
    """
    folder = check(preset)
    model = build(folder)
    load_weights(model, folder)
    if compile:
        model.compile(**model.default_optimizers())
    return model


def build(folder: PresetFolder):
    """The preset's model with fresh weights, rebuilt from its ``config.json``."""
    # Keras (~10 s on 2 cores) only once a model is built (module docstring); importing it
    # registers the zoo's classes (tf_genai/__init__.py).
    import keras

    registered = folder.config["registered_name"]
    cls = keras.saving.get_registered_object(registered)
    if cls is None:
        raise ModelFileError(f"preset {str(folder.path)!r} holds a {registered!r}, a class "
                             "this tf_genai does not have")
    try:
        return cls.from_config(folder.config["config"])
    except Exception as err:  # a constructor refuses the config: the file is what is wrong
        raise ModelFileError(f"{str(folder.path / CONFIG_FILE)!r} does not build a "
                             f"{registered!r}: {type(err).__name__}: {err}") from err


def load_weights(model, preset: str | os.PathLike | PresetFolder) -> None:
    """Set ``model``'s weights from a preset's weight file (restored to float32), and a
    weight-averaged network from its average, which is all a preset stores of it.

    Raises:
        ModelFileError: a weight file that is damaged or holds another model's weights.
    """
    folder = preset if isinstance(preset, PresetFolder) else check(preset)
    pair = model.weight_average()
    average_only = bool(folder.metadata.get("weights", {}).get("average_only"))
    skip = [pair[0]] if average_only and pair is not None else []
    try:
        # Float16 arrays are cast to each variable's float32 as they are assigned.
        model.load_weights(folder.weights, objects_to_skip=skip)
    except Exception as err:  # h5py's OSError for a damaged file, Keras' ValueError for a
        # file of another model: either way it is the weight file that is wrong
        raise ModelFileError(f"weight file {str(folder.weights)!r} could not be loaded into "
                             f"{type(model).__name__} {model.name!r}: {type(err).__name__}: "
                             f"{err}") from err
    if skip:
        trained, averaged = pair
        for t, a in zip(trained.weights, averaged.weights):
            t.assign(a)


# ---------------------------------------------------------------------------- saving


def save_to_preset(model, path: str | os.PathLike, *, dtype: str = "float16",
                   metadata: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``model`` as a preset folder that :func:`from_preset` loads.

    The folder is written beside ``path`` under a temporary name and moved into place once
    complete (:func:`tf_genai.outputs.move_into_place`), so a failure leaves nothing, and
    ``overwrite=True`` keeps the old preset until the new one is whole.

    Args:
        model: a tf_genai model.
        path: the preset folder to create (its name is the preset's name).
        dtype: how the weights are stored: ``"float16"`` (half the size; every array is
            rounded to float16, scalars such as counters stay float32) or ``"float32"``
            (exact). They are restored to float32 on load either way.
        metadata: more entries for ``metadata.json`` (JSON-serialisable): the data, the
            training, figures measured on it. ``headline`` (a short text) and ``data``
            (with a ``name``) are what ``tf-genai models --presets`` shows.
        overwrite: replace an existing non-empty folder.

    Returns:
        The preset folder.

    Raises:
        ConfigError: an unknown ``dtype``, a model that is not tf_genai's, or weights beyond
            float16's range (store them as float32).
        OutputExistsError: ``path`` is a file, or a non-empty folder without ``overwrite``.
    """
    import keras

    if dtype not in STORAGE_DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(STORAGE_DTYPES)}, got {dtype!r}")
    registered = keras.saving.get_registered_name(type(model))
    if not registered.startswith(f"{registry.PACKAGE}>") or capabilities.of(model) is None:
        raise ConfigError(f"cannot save {type(model).__name__} as a preset: not a tf_genai model")
    target = outputs.check_dir(path, overwrite, what="preset folder")
    outputs.check_writable(target, what="preset folder")
    config = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "zoo_name": registry.zoo_name(model), "class_name": type(model).__name__,
              "registered_name": registered,
              "config": json.loads(json.dumps(model.get_config()))}
    staged = outputs.staging_dir(target)
    try:
        pair = model.weight_average()
        skip = [optimizer for _, optimizer, _ in model.training_optimizers()]
        skip += [model.optimizer] if getattr(model, "optimizer", None) is not None else []
        skip += [pair[0]] if pair is not None else []
        full = staged / f".float32{WEIGHTS_FILE}"
        keras.saving.save_weights(model, full, objects_to_skip=skip)
        weights = staged / WEIGHTS_FILE
        _store(full, weights, dtype)
        full.unlink()
        stored = {"file": WEIGHTS_FILE, "dtype": dtype, "sha256": outputs.file_digest(weights),
                  "bytes": weights.stat().st_size, "average_only": pair is not None}
        record = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "tf_genai_version": _version(), "keras_version": keras.__version__,
            "date_saved": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "zoo_name": config["zoo_name"], "class_name": config["class_name"],
            "parameter_count": int(model.count_params()),
            **(metadata or {}),
            "weights": stored,
        }
        outputs.write_json(staged / CONFIG_FILE, config)
        outputs.write_json(staged / METADATA_FILE, record, default=str)
        outputs.move_into_place(staged, target)
    except BaseException:
        if staged.exists():
            import shutil

            shutil.rmtree(staged, ignore_errors=True)
        raise
    return target


def _store(source: Path, target: Path, dtype: str) -> None:
    """Copy Keras' weight file ``source`` to ``target`` with its float arrays in ``dtype``."""
    import h5py

    def copy(src, dst) -> None:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for key, item in src.items():
            if isinstance(item, h5py.Group):
                copy(item, dst.create_group(key))
                continue
            data = item[()]
            if dtype != "float32" and data.dtype == np.float32 and data.ndim > 0:
                if not np.all(np.abs(data[np.isfinite(data)]) <= _FLOAT16_MAX):
                    raise ConfigError(f"cannot store the weights in float16: {item.name} holds "
                                      f"values beyond {_FLOAT16_MAX:g}; pass dtype='float32'")
                data = data.astype(dtype)
            out = dst.create_dataset(key, data=data)
            for k, v in item.attrs.items():
                out.attrs[k] = v

    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        copy(src, dst)


def _version() -> str:
    from tf_genai import __version__

    return __version__

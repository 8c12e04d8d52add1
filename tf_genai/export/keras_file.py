"""Loading ``.keras`` files safely: every broken file gets a :class:`ModelFileError` naming it.

``keras.saving.load_model`` works on tf_genai files too (``import tf_genai`` registers the
zoo classes); this loader adds the checks a user needs before Keras sees the file: missing,
a directory (perhaps a SavedModel export), empty, truncated, corrupt, or another library's model.

It also never deserialises the file's ``compile_config``. That part of a ``.keras`` file names
optimizers (any registered class, in a crafted file any callable Keras lets through: before
3.9 and 3.11 ``safe_mode`` let such configs run arbitrary code), and a tf_genai model needs
none of it: it is compiled with its own recipe (``model.default_optimizers()``), and the
optimizer state (step count, learning rate, moments) is then loaded from the file's weights,
which are plain arrays. Only the weight decay is read from the compile config, as a number.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

from tf_genai.errors import ModelFileError

_KERAS_PACKAGE_PREFIX = "tf_genai>"


def _keras_config(path: Path) -> dict[str, Any]:
    """Check that ``path`` is a complete `.keras` archive and return its ``config.json``."""
    if not zipfile.is_zipfile(path):
        size = path.stat().st_size
        problem = "is empty" if size == 0 else (
            f"is not a .keras zip archive ({size} bytes, no zip directory: truncated, corrupt "
            "or a different kind of file)"
        )
        raise ModelFileError(f"model file {str(path)!r} {problem}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {"config.json", "model.weights.h5"} - names
            if missing:
                raise ModelFileError(
                    f"model file {str(path)!r} is a zip archive but not a complete .keras file "
                    f"(missing {', '.join(sorted(missing))})"
                )
            # testzip reads every member and checks its CRC: catches a file damaged in place.
            damaged = archive.testzip()
            if damaged is not None:
                raise ModelFileError(f"model file {str(path)!r} is corrupt ({damaged} fails CRC)")
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, UnicodeDecodeError) as err:
        if isinstance(err, ModelFileError):
            raise
        raise ModelFileError(f"model file {str(path)!r} is unreadable: {err}") from err
    if not isinstance(config, dict):
        raise ModelFileError(f"model file {str(path)!r} has a config.json that is not an object")
    return config


def _saved_weight_decay(compile_config: Any) -> float:
    """The decoupled weight decay of the file's optimizers (AdamW), read as a plain number
    from the JSON (nothing in it is deserialised); 0.0 for none."""
    found = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            value = node.get("weight_decay")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                    math.isfinite(value) and value > 0):
                found.append(float(value))
            for child in node.values():
                visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    visit(compile_config)
    return max(found, default=0.0)


def _compile_with_saved_state(model: Any, path: Path, compile_config: Any) -> None:
    """Compile ``model`` with its own recipe and load the optimizer state saved in ``path``.

    The optimizers are built first: an unbuilt one skips its saved variables. Loading the
    archive's weights file again restores every optimizer's variables (Keras' weight loading
    walks the compiled model's optimizers), without reading the file's config.
    """
    model.compile(**model.default_optimizers(weight_decay=_saved_weight_decay(compile_config)))
    for _, optimizer, variables in model.training_optimizers():
        if not optimizer.built:
            optimizer.build(variables)
    model.load_weights(path)


def check_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of the tf_genai `.keras` file ``path``, read without Keras or
    TensorFlow (the command line checks a model file with it before loading TensorFlow).

    Raises:
        ModelFileError: the file is missing, a directory, empty, truncated, corrupt, not a
            `.keras` archive, or the `.keras` file of a model that is not tf_genai's.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    if path.is_dir():
        hint = (
            " (it is a SavedModel export: load it with tf.saved_model.load or "
            "tf_genai.export.sample_from_export)" if (path / "saved_model.pb").exists() else ""
        )
        raise ModelFileError(f"model file {str(path)!r} is a directory, not a .keras file{hint}")
    if path.suffix != ".keras":
        raise ModelFileError(f"model file {str(path)!r} must end in .keras (Keras 3 format)")
    config = _keras_config(path)
    registered = str(config.get("registered_name") or "")
    if not registered.startswith(_KERAS_PACKAGE_PREFIX):
        name = registered or config.get("class_name", "unknown")
        raise ModelFileError(
            f"model file {str(path)!r} holds a Keras {name!r} model, not a tf_genai model"
        )
    return config


def load_model(path: str | os.PathLike) -> Any:
    """Load a tf_genai model (with its optimizer state) from a `.keras` file.

    The file's compile config is never deserialised (module docstring): a model saved compiled
    comes back compiled with its family's recipe (``model.default_optimizers``, with the saved
    weight decay), and the optimizer state of the file (step count, learning rate, moments).
    A file saved with another optimizer than the recipe's loads with a fresh optimizer state
    (Keras warns that it skipped the saved one).

    Args:
        path: a file written by ``model.save("....keras")`` (``tf-genai train`` writes
            ``model.keras`` in the run directory).

    Returns:
        The ``keras.Model``, compiled when it was saved compiled, ready to ``fit`` further.

    Raises:
        ModelFileError: what :func:`check_model_file` refuses, or a file Keras cannot rebuild.
    """
    path = Path(path)
    config = check_model_file(path)
    registered = str(config.get("registered_name"))

    import keras

    import tf_genai.models  # noqa: F401  (the real classes, not the registry stand-ins)

    try:
        model = keras.saving.load_model(path, compile=False)  # safe_mode=True, the default
        if config.get("compile_config"):
            _compile_with_saved_state(model, path, config["compile_config"])
    except Exception as err:  # Keras raises many types here; the file is what failed
        raise ModelFileError(
            f"model file {str(path)!r} could not be rebuilt as {registered!r}: "
            f"{type(err).__name__}: {err}"
        ) from err
    return model

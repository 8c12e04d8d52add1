"""Loading ``.keras`` files safely: every broken file gets a :class:`ModelFileError` naming it.

``keras.saving.load_model`` works on tf_genai files too (``import tf_genai`` registers the
zoo classes); this loader adds the checks a user needs before Keras sees the file: missing,
a directory (perhaps a SavedModel export), empty, truncated, corrupt, or another library's model.
"""

from __future__ import annotations

import json
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

    Args:
        path: a file written by ``model.save("....keras")`` (``tf-genai train`` writes
            ``model.keras`` in the run directory).

    Returns:
        The ``keras.Model``, compiled when it was saved compiled, ready to ``fit`` further.

    Raises:
        ModelFileError: what :func:`check_model_file` refuses, or a file Keras cannot rebuild.
    """
    path = Path(path)
    registered = str(check_model_file(path).get("registered_name"))

    import keras

    import tf_genai.models  # noqa: F401  (the real classes, not the registry stand-ins)

    try:
        model = keras.saving.load_model(path)
    except Exception as err:  # Keras raises many types here; the file is what failed
        raise ModelFileError(
            f"model file {str(path)!r} could not be rebuilt as {registered!r}: "
            f"{type(err).__name__}: {err}"
        ) from err
    return model

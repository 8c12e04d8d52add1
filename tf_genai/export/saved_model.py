"""SavedModel export with serving signatures and ``metadata.json``; sampling from an export.

A tf_genai export is a TensorFlow SavedModel that needs only TensorFlow to load (no tf_genai,
no Keras model code). The signatures are the model's own
(:meth:`tf_genai.models.base.GenerativeModel.serving_signatures`): images float32
``(batch, H, W, C)`` in the model's ``data_range`` (``"unit"`` = [0, 1], ``"symmetric"`` =
[-1, 1]), a dynamic batch size, and for conditional models a last ``labels`` input (int32
``(batch,)``):

- every model: ``sample(num_samples, seed)`` -> ``{images}``, the model's own sampler
  (``model.draw``) in the graph, equal to ``model.sample(n, seed=seed)``;
- a model with a latent space (``capabilities.latent``) also its map from latent codes to
  images (VAE ``decode(z)``, GAN and diffusion ``generate(z)``) -> ``{images}``;
- families add theirs: a VAE ``encode(images)`` -> ``{mean, log_var}`` and
  ``reconstruct(images)`` -> ``{reconstruction}`` (the decoded posterior mean,
  deterministic), a diffusion model ``denoise(x_t, t)``;
- ``serving_default``: the model's ``serving_default`` signature (``decode``, ``generate`` or
  ``sample``), what TensorFlow Serving's REST API answers when a request names none.

``sample`` is deterministic given its int32 ``seed``: a latent model draws its codes with
``tf.random.stateless_normal(shape, seed=[seed mod (2**31 - 2), 0])``, which is exactly what
``model.sample(n, seed=seed)`` draws (one function, :func:`tf_genai.models.base.seeded_normal`),
so both give the same images (tested). ONNX and TensorFlow.js have no stateless random ops:
their converters cannot take ``sample``; feed ``decode``/``generate`` your own noise there.

``metadata.json`` in the export directory records the family, class, zoo name, capabilities,
image shape, classes, data range, the signatures with their dtypes and shapes, and what the
family adds (a latent model's ``latent_dim`` / ``latent_shape``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tf_genai import __version__, outputs, ranges
from tf_genai.errors import ConfigError, ModelFileError
from tf_genai.models.base import GenerativeModel
from tf_genai.registry import zoo_name

METADATA_FILE = "metadata.json"
"""The export's description, beside the SavedModel: family, config, shapes, signatures."""
EXPORT_FORMAT = "tf_genai.saved_model"
"""The ``format`` field of ``metadata.json`` that marks a folder as a tf_genai export."""
EXPORT_FORMAT_VERSION = 1


def check_model(model: Any) -> None:
    """ConfigError unless ``model`` follows the family contract."""
    if not isinstance(model, GenerativeModel):
        raise ConfigError(
            f"cannot export {type(model).__name__}: not a tf_genai model "
            "(a tf_genai.models.base.GenerativeModel)")


def build_module(model: Any, names: tuple[str, ...] | None = None) -> Any:
    """A ``tf.Module`` with one traced ``tf.function`` per serving signature (or per ``names``).

    The module tracks the ``tf.Variable``\\ s the signatures read, not the Keras model: the
    export holds no training state or tf_genai class, and the TFLite converter can freeze them
    (it reads Keras variable wrappers as garbage, so they must be the underlying tf.Variables).
    """
    signatures = model.serving_signatures()
    if names is not None:
        signatures = {name: signatures[name] for name in names}
    module = tf.Module(name=f"tf_genai_{model.family}")
    used: dict[int, Any] = {}
    for name, signature in signatures.items():
        traced = tf.function(_positional(signature.fn, list(signature.inputs)),
                             input_signature=list(signature.inputs.values()), autograph=False)
        setattr(module, name, traced)
        for v in traced.get_concrete_function().variables:
            used.setdefault(id(v), v)
    module.serving_variables = list(used.values())
    return module


def _positional(fn: Any, keys: list[str]) -> Any:
    """``fn(**inputs)`` as a function of the inputs in signature order (what tf.function traces)."""

    def call(*args):
        return fn(**dict(zip(keys, args)))

    return call


def _spec_json(spec: Any) -> dict[str, Any]:
    return {"dtype": spec.dtype.name, "shape": [None if d is None else int(d) for d in spec.shape]}


def export_metadata(model: Any) -> dict[str, Any]:
    """The ``metadata.json`` content that describes ``model``'s export."""
    signatures = {
        name: {"inputs": {k: _spec_json(v) for k, v in s.inputs.items()},
               "outputs": {k: {"dtype": d, "shape": shape} for k, (d, shape) in s.outputs.items()}}
        for name, s in model.serving_signatures().items()
    }
    config = json.loads(json.dumps(model.get_config(), default=str))
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "tf_genai_version": __version__,
        "family": model.family,
        "class": f"{type(model).__module__}.{type(model).__name__}",
        "zoo_name": zoo_name(model),
        "config": config,
        "capabilities": dataclasses.asdict(model.capabilities),
        "image_shape": [int(d) for d in model.image_shape],
        "num_classes": None if not model.num_classes else int(model.num_classes),
        "data_range": model.data_range,
        "value_range": list(ranges.VALUE_RANGES[model.data_range]),
        "serving_default": model.serving_default,
        "signatures": signatures,
        **model.export_metadata(),
    }


def export_saved_model(
    model: Any, export_dir: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write ``model`` as a TensorFlow SavedModel with serving signatures and metadata.json.

    The export is written to a temporary directory beside ``export_dir`` and moved into place
    only once complete, so a failed export leaves nothing behind and ``overwrite=True`` keeps
    the old export until the new one is ready. The directory gets the usual permissions
    (0755 under a 022 umask), so a model server running as another user can read it.

    Args:
        model: a tf_genai model (see the module docstring for the signatures).
        export_dir: the directory to create.
        overwrite: replace an existing non-empty ``export_dir``.

    Returns:
        The export directory.

    Raises:
        OutputExistsError: ``export_dir`` exists, is not empty, and ``overwrite`` is False.
        ConfigError: ``model`` is not a tf_genai model.
    """
    check_model(model)
    target = outputs.check_dir(export_dir, overwrite, what="export directory")
    staged = outputs.staging_dir(target)
    try:
        module = build_module(model)
        signatures = {name: getattr(module, name).get_concrete_function()
                      for name in model.serving_signatures()}
        signatures["serving_default"] = signatures[model.serving_default]
        tf.saved_model.save(module, str(staged), signatures=signatures)
        (staged / METADATA_FILE).write_text(json.dumps(export_metadata(model), indent=2) + "\n")
        outputs.move_into_place(staged, target)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    return target


def read_metadata(export_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata.json`` of a tf_genai export directory.

    Raises:
        ModelFileError: ``export_dir`` is missing or not a tf_genai SavedModel export.
    """
    path = Path(export_dir)
    if not path.is_dir():
        raise ModelFileError(f"export directory {str(path)!r} does not exist")
    meta_path = path / METADATA_FILE
    if not (path / "saved_model.pb").is_file() or not meta_path.is_file():
        raise ModelFileError(
            f"export directory {str(path)!r} is not a tf_genai export "
            f"(needs saved_model.pb and {METADATA_FILE})"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise ModelFileError(f"{str(meta_path)!r} is unreadable: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise ModelFileError(f"{str(meta_path)!r} is not tf_genai export metadata")
    return meta


def sample_from_export(
    export_dir: str | os.PathLike,
    num_samples: int,
    seed: int = 0,
    labels: Any = None,
    **options: Any,
) -> np.ndarray:
    """Draw ``num_samples`` images from an export's ``sample`` signature (TensorFlow only).

    Args:
        export_dir: a directory written by :func:`export_saved_model`.
        num_samples: how many images.
        seed: the int32 seed; the same seed gives the same images.
        labels: class ids ``(num_samples,)`` for a conditional model; None cycles through the
            classes (0, 1, ..., num_classes - 1, 0, ...). Must be None for unconditional ones.
        options: further inputs of the signature (a diffusion export's ``steps``,
            ``guidance``); one left out or None takes the export's ``sample_defaults``.

    Returns:
        float32 ``(num_samples, H, W, C)`` in the export's ``data_range``.

    Raises:
        ModelFileError: not a tf_genai export. ConfigError: bad ``num_samples`` or labels.
    """
    meta = read_metadata(export_dir)
    num_samples = int(num_samples)
    if num_samples < 1:
        raise ConfigError(f"num_samples must be at least 1, got {num_samples}")
    num_classes = meta.get("num_classes")
    inputs = {"num_samples": tf.constant(num_samples, tf.int32),
              "seed": tf.constant(int(seed), tf.int32)}
    if num_classes:
        if labels is None:
            labels = np.arange(num_samples) % num_classes
        labels = np.asarray(labels).reshape(-1)
        if labels.shape != (num_samples,):
            raise ConfigError(f"labels: need {num_samples} class ids, got {labels.shape[0]}")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ConfigError(f"labels must lie in [0, {num_classes}), got {labels.min()}.."
                              f"{labels.max()}")
        inputs["labels"] = tf.constant(labels, tf.int32)
    elif labels is not None:
        raise ConfigError(f"export {str(export_dir)!r} is unconditional; it takes no labels")
    spec = meta.get("signatures", {}).get("sample", {}).get("inputs", {})
    extra = [name for name in spec if name not in inputs and name != "labels"]
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(extra))
    if unknown:
        raise ConfigError(
            f"export {str(export_dir)!r}: its sample signature has no input "
            f"{', '.join(unknown)} (its options: {', '.join(extra) or 'none'}); sample from the "
            ".keras model for the model's other sampling options")
    defaults = meta.get("sample_defaults", {})
    for name in extra:
        value = options.get(name, defaults.get(name))
        if value is None:
            raise ModelFileError(f"export {str(export_dir)!r}: no value for the sample input "
                                 f"{name!r} and no default in its metadata")
        inputs[name] = tf.constant(value, spec[name]["dtype"])
    try:
        loaded = tf.saved_model.load(str(export_dir))
        fn = loaded.signatures["sample"]
    except (OSError, KeyError, ValueError, tf.errors.OpError) as err:
        raise ModelFileError(f"export {str(export_dir)!r} could not be loaded: {err}") from err
    try:
        return fn(**inputs)["images"].numpy()
    except tf.errors.InvalidArgumentError as err:  # the graph's own checks (e.g. steps range)
        found = re.search(r"assertion failed: \[([^\]]*)\]", err.message)
        raise ConfigError(f"export {str(export_dir)!r}: "
                          f"{found.group(1) if found else err.message.splitlines()[0]}") from err

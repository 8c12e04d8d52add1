"""Load `.keras` files safely, export SavedModels with serving signatures, convert to TFLite.

A tf_genai export is a TensorFlow SavedModel that needs only TensorFlow to load (no tf_genai,
no Keras model code). Its serving signatures, all float32 images of shape
``(batch, H, W, C)`` in the model's ``data_range`` (``"unit"`` = [0, 1], ``"symmetric"`` =
[-1, 1]) and a dynamic batch size:

- VAE: ``encode(images)`` -> ``{mean, log_var}``, ``decode(z)`` -> ``{images}``,
  ``reconstruct(images)`` -> ``{images}`` (the decoded posterior mean: deterministic, unlike
  ``model.reconstruct``, which decodes one posterior draw), ``sample(num_samples, seed)`` ->
  ``{images}``.
- GAN: ``generate(z)`` -> ``{images}``, ``sample(num_samples, seed)`` -> ``{images}``.
- Conditional models take ``labels`` (int32 ``(batch,)``) as well.

``sample`` is deterministic given its int32 ``seed``: it draws ``z`` with
``tf.random.stateless_normal((num_samples, latent_dim), seed=[seed, 0])``, which is exactly
what ``keras.random.normal(..., seed=seed)`` and a fresh ``SeedGenerator(seed)`` draw first, so
it gives the same images as ``model.sample(n, seed=seed)`` (tested); it is independent of the
model's own ``SeedGenerator`` stream (``model.sample(n)`` with ``seed=None``).

``metadata.json`` in the export directory records the family, class, zoo name, image shape,
latent size, classes, data range and the signatures with their dtypes and shapes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tf_genai.errors import ConfigError, ModelFileError, OutputExistsError

METADATA_FILE = "metadata.json"
EXPORT_FORMAT = "tf_genai.saved_model"
EXPORT_FORMAT_VERSION = 1
_KERAS_PACKAGE_PREFIX = "tf_genai>"
# How `sample` draws its latent codes; written into metadata.json so a reader of the export
# knows the stream without reading this file.
SAMPLE_STREAM = (
    "z = tf.random.stateless_normal((num_samples, latent_dim), seed=[seed mod (2**31 - 2), 0]), "
    "the draw of keras.random.normal((num_samples, latent_dim), seed=seed) and of "
    "model.sample(num_samples, seed=seed)"
)


# --------------------------------------------------------------------------------------------
# Loading .keras files


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


def load_model(path: str | os.PathLike) -> Any:
    """Load a tf_genai model (with its optimizer state) from a `.keras` file.

    Args:
        path: a file written by ``model.save("....keras")`` (``tf-genai train`` writes
            ``model.keras`` in the run directory).

    Returns:
        The ``keras.Model``, compiled when it was saved compiled, ready to ``fit`` further.

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

    import keras

    import tf_genai.models  # noqa: F401  (registers the zoo classes with Keras serialization)

    try:
        model = keras.saving.load_model(path)
    except Exception as err:  # Keras raises many types here; the file is what failed
        raise ModelFileError(
            f"model file {str(path)!r} could not be rebuilt as {registered!r}: "
            f"{type(err).__name__}: {err}"
        ) from err
    return model


# --------------------------------------------------------------------------------------------
# SavedModel export


def _check_model(model: Any) -> None:
    family = getattr(model, "family", None)
    if family not in ("vae", "gan"):
        raise ConfigError(
            f"cannot export {type(model).__name__}: not a tf_genai VAE or GAN "
            f"(family={family!r})"
        )


def zoo_name(model: Any) -> str | None:
    """The zoo name ``model`` was most likely created as, or None if no entry fits.

    Several zoo names share one class (``vae`` and ``mlp_vae``): the entry whose defaults all
    match the model's config, with the most defaults, wins.
    """
    from tf_genai import registry

    config = model.get_config()
    best, best_size = None, -1
    for name in registry.available():
        entry = registry.entry(name)
        if entry.cls is not type(model):
            continue
        if all(_same(config.get(k), v) for k, v in entry.defaults.items()):
            if len(entry.defaults) > best_size:
                best, best_size = name, len(entry.defaults)
    return best


def _same(a: Any, b: Any) -> bool:
    # Configs hold lists where registry defaults hold tuples.
    def norm(v: Any) -> Any:
        return list(v) if isinstance(v, (tuple, list)) else v

    return norm(a) == norm(b)


def _signature_specs(model: Any) -> dict[str, dict[str, Any]]:
    """The input specs of every serving signature, by signature name."""
    import tensorflow as tf

    h, w, c = (int(d) for d in model.image_shape)
    images = tf.TensorSpec((None, h, w, c), tf.float32, name="images")
    z = tf.TensorSpec((None, int(model.latent_dim)), tf.float32, name="z")
    labels = tf.TensorSpec((None,), tf.int32, name="labels")
    sample = {
        "num_samples": tf.TensorSpec((), tf.int32, name="num_samples"),
        "seed": tf.TensorSpec((), tf.int32, name="seed"),
    }
    if model.family == "vae":
        specs = {"encode": {"images": images}, "decode": {"z": z},
                 "reconstruct": {"images": images}, "sample": sample}
    else:
        specs = {"generate": {"z": z}, "sample": sample}
    if model.num_classes:
        specs = {name: {**inputs, "labels": labels} for name, inputs in specs.items()}
    return specs


def _build_module(model: Any, names: tuple[str, ...] | None = None) -> Any:
    """A ``tf.Module`` with one ``tf.function`` per signature (or per one of ``names``)."""
    import tensorflow as tf

    specs = _signature_specs(model)
    if names is not None:
        specs = {name: specs[name] for name in names}
    conditional = bool(model.num_classes)
    latent_dim = int(model.latent_dim)

    def images_out(x: Any) -> dict[str, Any]:
        return {"images": tf.cast(x, tf.float32)}

    def to_images(z: Any, labels: Any) -> Any:
        # (batch, latent) -> (batch, H, W, C) in data_range
        if model.family == "vae":
            return model.decode(z, labels=labels)
        return model.generate(z, labels=labels)

    def sample(num_samples: Any, seed: Any, labels: Any = None) -> dict[str, Any]:
        if labels is not None:
            tf.debugging.assert_equal(
                tf.shape(labels)[0], num_samples,
                message="sample: labels must hold one class id per sample",
            )
        # The draw of keras.random.normal((n, latent), seed=int(seed)) on TensorFlow, which
        # folds the seed into [0, 2**31 - 2) the same way (keras' _cast_seed).
        folded = tf.cast(tf.math.floormod(tf.cast(seed, tf.int64), tf.int32.max - 1), tf.int32)
        z = tf.random.stateless_normal(
            tf.stack([num_samples, latent_dim]), seed=tf.stack([folded, tf.constant(0)])
        )  # (n, latent)
        return images_out(to_images(z, labels))

    def encode(images: Any, labels: Any = None) -> dict[str, Any]:
        mean, log_var = model.encode(images, labels=labels)
        return {"mean": tf.cast(mean, tf.float32), "log_var": tf.cast(log_var, tf.float32)}

    def decode(z: Any, labels: Any = None) -> dict[str, Any]:
        return images_out(model.decode(z, labels=labels))

    def reconstruct(images: Any, labels: Any = None) -> dict[str, Any]:
        # The posterior mean, not one posterior draw as model.reconstruct: a serving signature
        # should answer the same image for the same input.
        mean, _ = model.encode(images, labels=labels)  # (batch, latent)
        return images_out(model.decode(mean, labels=labels))

    def generate(z: Any, labels: Any = None) -> dict[str, Any]:
        return images_out(model.generate(z, labels=labels))

    impl = {"sample": sample, "encode": encode, "decode": decode,
            "reconstruct": reconstruct, "generate": generate}

    module = tf.Module(name=f"tf_genai_{model.family}")
    used: dict[int, Any] = {}
    for name, inputs in specs.items():
        fn = impl[name]
        if conditional:  # labels is the last input of every conditional signature
            fn = (lambda f: lambda *args: f(*args[:-1], labels=args[-1]))(fn)
        traced = tf.function(fn, input_signature=list(inputs.values()), autograph=False)
        setattr(module, name, traced)
        for v in traced.get_concrete_function().variables:
            used.setdefault(id(v), v)
    # Track the tf.Variables the signatures read (not the Keras model): the export holds no
    # training state or tf_genai class, and the TFLite converter can freeze them (it reads
    # Keras variable wrappers as garbage, so they must be the underlying tf.Variables).
    module.serving_variables = list(used.values())
    return module


def _spec_json(spec: Any) -> dict[str, Any]:
    return {"dtype": spec.dtype.name, "shape": [None if d is None else int(d) for d in spec.shape]}


def export_metadata(model: Any) -> dict[str, Any]:
    """The ``metadata.json`` content that describes ``model``'s export."""
    from tf_genai import __version__

    outputs = {"encode": {"mean": ["float32", [None, int(model.latent_dim)]],
                          "log_var": ["float32", [None, int(model.latent_dim)]]}}
    images_out = {"images": ["float32", [None, *(int(d) for d in model.image_shape)]]}
    signatures = {}
    for name, inputs in _signature_specs(model).items():
        outs = outputs.get(name, images_out)
        signatures[name] = {
            "inputs": {k: _spec_json(v) for k, v in inputs.items()},
            "outputs": {k: {"dtype": d, "shape": s} for k, (d, s) in outs.items()},
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
        "image_shape": [int(d) for d in model.image_shape],
        "latent_dim": int(model.latent_dim),
        "num_classes": None if not model.num_classes else int(model.num_classes),
        "data_range": model.data_range,
        "value_range": [0.0, 1.0] if model.data_range == "unit" else [-1.0, 1.0],
        "sample_stream": SAMPLE_STREAM,
        "signatures": signatures,
    }


def _check_output_dir(path: Path, overwrite: bool) -> None:
    if not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    if not overwrite:
        kind = "is not empty" if path.is_dir() else "is a file"
        raise OutputExistsError(
            f"export directory {str(path)!r} {kind}; pass overwrite=True (--overwrite) to "
            "replace it"
        )


def _move_into_place(staged: Path, target: Path) -> None:
    """Replace ``target`` by ``staged``; the old ``target`` survives until the move succeeds."""
    backup = None
    if target.exists() or target.is_symlink():
        backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        backup.rmdir()
        os.replace(target, backup)
    try:
        os.replace(staged, target)
    except BaseException:
        if backup is not None:
            os.replace(backup, target)
        raise
    if backup is not None:
        if backup.is_dir():
            shutil.rmtree(backup, ignore_errors=True)
        else:
            backup.unlink()


def export_saved_model(
    model: Any, export_dir: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write ``model`` as a TensorFlow SavedModel with serving signatures and metadata.json.

    The export is written to a temporary directory beside ``export_dir`` and moved into place
    only once complete, so a failed export leaves nothing behind and ``overwrite=True`` keeps
    the old export until the new one is ready.

    Args:
        model: a tf_genai VAE or GAN (see the module docstring for the signatures).
        export_dir: the directory to create.
        overwrite: replace an existing non-empty ``export_dir``.

    Returns:
        The export directory.

    Raises:
        OutputExistsError: ``export_dir`` exists, is not empty, and ``overwrite`` is False.
        ConfigError: ``model`` is not a tf_genai VAE or GAN.
    """
    import tensorflow as tf

    _check_model(model)
    target = Path(export_dir)
    _check_output_dir(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        module = _build_module(model)
        signatures = {name: getattr(module, name).get_concrete_function()
                      for name in _signature_specs(model)}
        tf.saved_model.save(module, str(staged), signatures=signatures)
        (staged / METADATA_FILE).write_text(json.dumps(export_metadata(model), indent=2) + "\n")
        _move_into_place(staged, target)
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
) -> np.ndarray:
    """Draw ``num_samples`` images from an export's ``sample`` signature (TensorFlow only).

    Args:
        export_dir: a directory written by :func:`export_saved_model`.
        num_samples: how many images.
        seed: the int32 seed; the same seed gives the same images.
        labels: class ids ``(num_samples,)`` for a conditional model; None cycles through the
            classes (0, 1, ..., num_classes - 1, 0, ...). Must be None for unconditional ones.

    Returns:
        float32 ``(num_samples, H, W, C)`` in the export's ``data_range``.

    Raises:
        ModelFileError: not a tf_genai export. ConfigError: bad ``num_samples`` or labels.
    """
    import tensorflow as tf

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
    try:
        loaded = tf.saved_model.load(str(export_dir))
        fn = loaded.signatures["sample"]
    except (OSError, KeyError, ValueError, tf.errors.OpError) as err:
        raise ModelFileError(f"export {str(export_dir)!r} could not be loaded: {err}") from err
    return fn(**inputs)["images"].numpy()


# --------------------------------------------------------------------------------------------
# TensorFlow Lite


def _tflite_function(model: Any, part: str) -> tuple[Any, Any]:
    """A concrete ``z (, labels) -> images`` function of the decoder/generator, and its owner."""
    import tensorflow as tf

    expected = "decoder" if model.family == "vae" else "generator"
    if part == "auto":
        part = expected
    if part not in ("decoder", "generator"):
        raise ConfigError(f"part must be 'decoder', 'generator' or 'auto', got {part!r}")
    if part != expected:
        raise ConfigError(f"a {model.family.upper()} has a {expected}, not a {part}")
    signature = "decode" if model.family == "vae" else "generate"
    module = _build_module(model, (signature,))
    return getattr(module, signature).get_concrete_function(), module


def convert_to_tflite(
    model: Any,
    path: str | os.PathLike | None = None,
    *,
    part: str = "auto",
    overwrite: bool = False,
) -> bytes:
    """Convert the decoder (VAE) or generator (GAN) to a TensorFlow Lite flatbuffer.

    The TFLite model maps ``z`` float32 ``(batch, latent_dim)`` (and ``labels`` int32
    ``(batch,)`` for conditional models) to ``images`` float32 ``(batch, H, W, C)`` in the
    model's data range, as the SavedModel's ``decode``/``generate`` signature does. The batch
    dimension is dynamic: ``Interpreter.get_signature_runner()`` resizes it per call (or call
    ``resize_tensor_input`` then ``allocate_tensors``).

    Args:
        model: a tf_genai VAE or GAN.
        path: where to write the ``.tflite`` file, if anywhere.
        part: ``"decoder"``, ``"generator"`` or ``"auto"`` (the family's one).
        overwrite: replace an existing ``path``.

    Returns:
        The flatbuffer bytes.
    """
    import tensorflow as tf

    _check_model(model)
    if path is not None and Path(path).exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    concrete, module = _tflite_function(model, part)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    flatbuffer = converter.convert()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(flatbuffer)
        os.replace(tmp, path)
    return flatbuffer

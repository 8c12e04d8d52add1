"""TensorFlow Lite: the model's main latent -> image network as one flatbuffer."""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf

from tf_genai import outputs
from tf_genai.errors import ConfigError
from tf_genai.export.saved_model import build_module, check_model


def _tflite_function(model: Any, part: str) -> tuple[Any, Any]:
    """The concrete function of ``model.tflite_signature`` (the network ``model.tflite_part``
    runs), and its owner."""
    if model.tflite_signature is None:
        raise ConfigError(f"{type(model).__name__} has no network to convert to TFLite")
    if part not in ("auto", model.tflite_part):
        raise ConfigError(
            f"part must be 'auto' or {model.tflite_part!r} for {type(model).__name__}, "
            f"got {part!r}")
    signature = model.tflite_signature
    module = build_module(model, (signature,))
    return getattr(module, signature).get_concrete_function(), module


def convert_to_tflite(
    model: Any,
    path: str | os.PathLike | None = None,
    *,
    part: str = "auto",
    overwrite: bool = False,
) -> bytes:
    """Convert the model's network to a TensorFlow Lite flatbuffer: the decoder (VAE), the
    generator (GAN) or the denoiser (diffusion: its ``denoise(x_t, t)`` signature; the
    sampling loop stays in the SavedModel).

    For a VAE or GAN the TFLite model maps ``z`` float32 ``(batch, *latent_shape)`` (and
    ``labels`` int32 ``(batch,)`` for conditional models) to ``images`` float32
    ``(batch, H, W, C)`` in the model's data range, as the SavedModel's ``decode``/``generate``
    signature does. The batch
    dimension is dynamic: ``Interpreter.get_signature_runner()`` resizes it per call (or call
    ``resize_tensor_input`` then ``allocate_tensors``).

    Args:
        model: a tf_genai model.
        path: where to write the ``.tflite`` file, if anywhere.
        part: ``"auto"`` or the model's ``tflite_part`` (``"decoder"``, ``"generator"``,
            ``"denoiser"``).
        overwrite: replace an existing ``path``.

    Returns:
        The flatbuffer bytes.
    """
    check_model(model)
    if path is not None:
        outputs.check_file(path, overwrite)
    concrete, module = _tflite_function(model, part)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    flatbuffer = converter.convert()
    if path is not None:
        outputs.write_bytes(path, flatbuffer)
    return flatbuffer

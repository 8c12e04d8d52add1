"""tf_genai: correct, fast, plotted and exportable VAEs and GANs for Keras 3 on TensorFlow.

``import tf_genai`` is cheap; the zoo fills (and registers with Keras serialization) the first
time a model is asked for — ``tf_genai.create``, ``tf_genai.available``, ``tf_genai.models`` or
``tf_genai.export.load_model`` — so that ``keras.saving.load_model`` can rebuild any saved
tf_genai model and its ``train_step`` once ``tf_genai.models`` is imported.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "callbacks", "checkpointing", "cli", "data", "devices", "distribute", "errors", "evaluation",
    "export", "losses", "models", "plotting", "registry", "training",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"tf_genai.{name}")
    if name in {"create", "available"}:
        return getattr(importlib.import_module("tf_genai.registry"), name)
    raise AttributeError(f"module 'tf_genai' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES | {"create", "available"})

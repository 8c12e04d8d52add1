"""tf_genai: correct, fast, plotted and exportable generative models for Keras 3 on TensorFlow.

``import tf_genai`` is cheap (it does not import TensorFlow) and is all that
``keras.saving.load_model`` needs to rebuild a saved tf_genai model with its ``train_step``:
as soon as Keras is imported — at once if it already is, otherwise right after ``import keras``
finishes (a one-shot import hook) — every zoo class is made known to Keras by a stand-in that
imports the real class when a file needs it (:func:`tf_genai.registry.register_with_keras_lazily`;
no model module is imported then, so nothing can import in a circle).
``tf_genai.create``, ``tf_genai.available``, ``tf_genai.from_preset`` (a trained model shipped in
the package, or a preset folder) and the submodules load on first use.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

from tf_genai import lazy

__version__ = "0.1.0"

_SUBMODULES = {
    "callbacks", "checkpointing", "cli", "data", "devices", "distribute", "errors", "evaluation",
    "export", "keras_adapter", "lazy", "losses", "models", "outputs", "plotting", "presets",
    "progress", "quiet", "ranges", "registry", "train_config", "training", "zoo",
}
__getattr__, __dir__ = lazy.exports(
    __name__, {**{name: () for name in _SUBMODULES}, "registry": ("create", "available"),
               "presets": ("from_preset", "save_to_preset")})


def _register_zoo() -> None:
    """Make every zoo class known to Keras serialization (stand-ins, no model import)."""
    try:
        importlib.import_module("tf_genai.registry").register_with_keras_lazily()
    except Exception as err:  # noqa: BLE001  never break the user's `import keras`
        warnings.warn(f"tf_genai could not register its models with Keras: {err!r}",
                      stacklevel=2)


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of ``keras`` so the zoo registers once it ran.

    It leaves ``sys.meta_path`` when ``keras`` runs, not when it is found: TensorFlow asks
    ``importlib.util.find_spec("keras")`` before it imports Keras, and drops that spec.
    """

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        others = [f for f in sys.meta_path if f is not self and hasattr(f, "find_spec")]
        spec = next((s for s in (f.find_spec(fullname, path, target) for f in others)
                     if s is not None), None)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_keras = spec.loader.exec_module

        def exec_module(module):
            sys.meta_path[:] = [f for f in sys.meta_path if f is not self]  # one shot
            run_keras(module)
            _register_zoo()

        spec.loader.exec_module = exec_module
        return spec


if "keras" in sys.modules:
    _register_zoo()
elif not any(isinstance(f, _RegisterAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())

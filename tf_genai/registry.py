"""The model zoo: one table that maps a zoo name to a Keras model class and its defaults.

``@register("vae", architecture="conv")`` both registers the class with Keras serialization
(``package="tf_genai"``, so ``keras.saving.load_model`` can rebuild it and its ``train_step``)
and adds it to the zoo under that name, so the CLI, ``.keras`` loading and
:func:`create` all read the same table. One class may be registered under several names with
different default constructor arguments (``vae`` and ``mlp_vae`` are the same class).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import keras

from tf_genai.errors import ConfigError

PACKAGE = "tf_genai"


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One zoo name: the class it builds and the constructor defaults it adds."""

    name: str
    cls: type
    defaults: dict[str, Any]
    description: str
    family: str


_ZOO: dict[str, ZooEntry] = {}


def register(name: str, *, description: str = "", **defaults: Any) -> Callable[[type], type]:
    """Class decorator: add ``cls`` to the zoo as ``name`` and to Keras serialization."""

    def decorator(cls: type) -> type:
        if name in _ZOO and _ZOO[name].cls is not cls:
            raise ConfigError(f"zoo name {name!r} is already taken by {_ZOO[name].cls.__name__}")
        registered = keras.saving.get_registered_object(f"{PACKAGE}>{cls.__name__}")
        if registered is not cls:
            cls = keras.saving.register_keras_serializable(package=PACKAGE)(cls)
        doc = description or next(iter((cls.__doc__ or "").strip().splitlines()), cls.__name__)
        _ZOO[name] = ZooEntry(name, cls, dict(defaults), doc, getattr(cls, "family", "model"))
        return cls

    return decorator


def unregister(name: str) -> None:
    """Remove zoo name ``name`` (a no-op if absent); the class stays known to Keras."""
    _ZOO.pop(name, None)


def _ensure_models_imported() -> None:
    # The zoo fills when tf_genai.models is imported; importing it here keeps
    # `registry` free of model imports at module level (no import loop).
    import tf_genai.models  # noqa: F401


def available() -> list[str]:
    """The zoo names, sorted."""
    _ensure_models_imported()
    return sorted(_ZOO)


def entry(name: str) -> ZooEntry:
    """The zoo entry for ``name``; a :class:`ConfigError` that lists the names if unknown."""
    _ensure_models_imported()
    try:
        return _ZOO[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; the zoo has: {', '.join(sorted(_ZOO))}"
        ) from None


def create(name: str, **kwargs: Any) -> keras.Model:
    """Build the zoo model ``name``; ``kwargs`` override the entry's defaults."""
    e = entry(name)
    params = {**e.defaults, **kwargs}
    params.setdefault("name", name)  # Keras' model name (plot titles, summaries): the zoo name
    try:
        return e.cls(**params)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        # An unknown keyword (TypeError from Python, ValueError from keras.Layer) or a value the
        # constructor rejects: name the model so the user knows which arguments to check.
        raise ConfigError(f"model {name!r}: {err}") from None

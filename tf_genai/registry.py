"""The one registry: zoo names -> classes and defaults, and the classes' Keras serialization.

The zoo's table is data (:data:`tf_genai.zoo.PRESETS`): listing it imports nothing heavy.
:func:`serializable` registers a model class with Keras (``package="tf_genai"``, so
``keras.saving.load_model`` can rebuild it and its ``train_step``); :func:`register` adds a
zoo name at run time (a plug-in family, a test's toy family). The CLI, ``.keras`` loading and
:func:`create` all read this one table. One class may serve several zoo names with different
defaults (``vae`` and ``mlp_vae`` are the same class).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import Any, Callable, Iterable

from tf_genai.errors import ConfigError
from tf_genai.zoo import PRESETS

PACKAGE = "tf_genai"


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One zoo name: the class it builds (imported on first use) and its defaults."""

    name: str
    target: str | type
    defaults: dict[str, Any]
    description: str
    family: str

    @property
    def cls(self) -> type:
        """The model class (importing its module, and so TensorFlow, the first time)."""
        return _resolve(self.target)


def _resolve(target: str | type) -> type:
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


_ZOO: dict[str, ZooEntry] = {
    name: ZooEntry(name, p.target, dict(p.defaults), p.description, p.family)
    for name, p in PRESETS.items()
}


class _Deferred:
    """Stands in Keras' registry for a zoo class whose module is not imported yet."""

    target: str

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return _resolve(cls.target).from_config(config)


def register_with_keras_lazily() -> None:
    """Tell Keras about every zoo class without importing the model modules.

    Each class name of the table gets a stand-in whose ``from_config`` imports the real class
    and delegates, so ``keras.saving.load_model`` works after ``import tf_genai`` alone; the
    real class replaces the stand-in when its module is imported (:func:`serializable`).
    """
    # Keras is imported where used, here and below: ``tf-genai models`` and ``import tf_genai``
    # read this table in ~0.1 s; importing Keras costs ~10 s on 2 cores.
    import keras

    objects = keras.saving.get_custom_objects()
    for target in {p.target for p in PRESETS.values()}:
        key = f"{PACKAGE}>{target.partition(':')[2]}"
        if key not in objects:
            objects[key] = type(f"Deferred{target.partition(':')[2]}", (_Deferred,),
                                {"target": target})


def serializable(cls: type) -> type:
    """Class decorator: register ``cls`` with Keras serialization as ``tf_genai>ClassName``."""
    import keras

    if keras.saving.get_registered_object(f"{PACKAGE}>{cls.__name__}") is not cls:
        cls = keras.saving.register_keras_serializable(package=PACKAGE)(cls)
    return cls


def register(name: str, *, description: str = "", **defaults: Any) -> Callable[[type], type]:
    """Class decorator: add ``cls`` to the zoo as ``name`` (at run time) and to Keras."""

    def decorator(cls: type) -> type:
        if name in _ZOO and _ZOO[name].cls is not cls:
            raise ConfigError(f"zoo name {name!r} is already taken by {_ZOO[name].cls.__name__}")
        cls = serializable(cls)
        doc = description or next(iter((cls.__doc__ or "").strip().splitlines()), cls.__name__)
        _ZOO[name] = ZooEntry(name, cls, dict(defaults), doc, getattr(cls, "family", "model"))
        return cls

    return decorator


def unregister(name: str) -> None:
    """Remove zoo name ``name`` (a no-op if absent); the class stays known to Keras."""
    _ZOO.pop(name, None)


def available() -> list[str]:
    """The zoo names, sorted (imports no model)."""
    return sorted(_ZOO)


def entry(name: str) -> ZooEntry:
    """The zoo entry for ``name``, matched without regard to case (``"VAE"`` is ``vae``; the
    entry's ``name`` is the zoo's spelling).

    Raises:
        ConfigError: an unknown name; the message suggests the nearest zoo name (a typo such as
            ``dcgna``) and lists them all.
    """
    if name in _ZOO:
        return _ZOO[name]
    key = match(name, _ZOO)
    if key is not None:
        return _ZOO[key]
    raise ConfigError(f"unknown model {name!r}; {did_you_mean(name, _ZOO)}the zoo has: "
                      f"{', '.join(sorted(_ZOO))}")


def match(name: str, names: Iterable[str]) -> str | None:
    """The one of ``names`` that is ``name`` without regard to case (None if none is)."""
    folded = {key.casefold(): key for key in names}
    return folded.get(str(name).casefold())


def nearest(name: str, names: Iterable[str]) -> str | None:
    """The one of ``names`` closest to ``name`` (a typo such as ``dcgna``), compared without
    regard to case; None when none is close."""
    folded = {key.casefold(): key for key in names}
    found = difflib.get_close_matches(str(name).casefold(), folded, n=1, cutoff=0.6)
    return folded[found[0]] if found else None


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the :func:`nearest` of ``names``, else ``""``: the hint an
    error about an unknown name gives before it lists the known ones."""
    close = nearest(name, names)
    return f"did you mean {close!r}? " if close else ""


def create(name: str, **kwargs: Any):
    """Build the zoo model ``name``; ``kwargs`` override the entry's defaults."""
    e = entry(name)
    params = {**e.defaults, **kwargs}
    params.setdefault("name", e.name)  # Keras' model name (plot titles, summaries): the zoo name
    try:
        return e.cls(**params)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        # An unknown keyword (TypeError from Python, ValueError from keras.Layer) or a value the
        # constructor rejects: name the model so the user knows which arguments to check.
        raise ConfigError(f"model {name!r}: {err}") from None


def zoo_name(model: Any) -> str | None:
    """The zoo name ``model`` was most likely created as, or None if no entry fits.

    Several zoo names share one class (``vae`` and ``mlp_vae``): the entry whose defaults all
    match the model's config, with the most defaults, wins.
    """
    config = model.get_config()
    best, best_size = None, -1
    for name in available():
        e = entry(name)
        if e.cls is not type(model):
            continue
        if all(_same(config.get(k), v) for k, v in e.defaults.items()):
            if len(e.defaults) > best_size:
                best, best_size = name, len(e.defaults)
    return best


def _same(a: Any, b: Any) -> bool:
    # Configs hold lists where the zoo's defaults hold tuples.
    def norm(v: Any) -> Any:
        return list(v) if isinstance(v, (tuple, list)) else v

    return norm(a) == norm(b)

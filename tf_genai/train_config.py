"""The whole surface of a training run, one :class:`TrainConfig`, checked without TensorFlow.

:func:`tf_genai.training.train` takes one; the command line's ``train`` builds one from its flags
and checks it, and the run directory, before TensorFlow is imported (5-10 s on 2 cores), so a
typo fails in a fraction of a second. ``run.json`` is its serialisation (:meth:`to_json`), and a
run records it when it starts (``backup/config.json``), so ``resume=True`` can say which
arguments differ from the run's own (:meth:`TrainConfig.check_resumes`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from tf_genai import augment as augment_lib
from tf_genai import outputs, presets, registry
from tf_genai.data import channels as channels_lib
from tf_genai.data.checks import check_option
from tf_genai.errors import ConfigError

SPLITS = ("train", "heldout", "all")
STRATEGIES = ("default", "mirrored", "multiworker")
# A run's backup folder, and the config it records there when it starts.
BACKUP_DIR = "backup"
START_RECORD = "config.json"
# What a resumed run must share with the run it continues: the data, the model and what the
# optimizer state and the per-(seed, epoch) batches were made with. epochs, time_budget,
# early_stopping, strategy, deterministic and the output options may change on a resume.
RESUMED_AS_STARTED = ("model", "data", "split", "seed", "batch_size", "latent_dim",
                      "learning_rate", "weight_decay", "image_size", "channels",
                      "validation_fraction", "model_kwargs", "stream", "augment", "flip",
                      "from_preset")


def _positive_int(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _number(name: str, value: Any, *, positive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        bound = "a positive number" if positive else "a number >= 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


@dataclasses.dataclass
class TrainConfig:
    """Everything :func:`train` needs to know about a run; checked when it is made.

    Attributes:
        model: a zoo name (``tf-genai models`` lists them).
        data: any source ``tf_genai.data.load`` accepts (``"digits"``, a path, arrays, ...).
        out_dir: the run directory; ``None`` writes nothing.
        epochs: ``None`` picks :func:`auto_epochs` (about 2,500 optimizer steps).
        batch_size, seed: the batch size; the seed of the data order, the initial weights and
            the model's random draws.
        split: ``"train"``, ``"heldout"`` or ``"all"`` of ``data``.
        latent_dim: overrides the model's latent size.
        learning_rate: replaces the zoo recipe's rate; ``weight_decay`` > 0 makes Adam AdamW.
        image_size: resize image-folder data to this size (an int for a square, or (H, W)).
        channels: 1 (grey) or 3 (RGB) for every image; None decides from the data (RGB if it
            holds any colour image, else grey; transparency composited on white:
            :mod:`tf_genai.data.channels`). The decision is printed and kept in ``run.json``.
        validation_fraction: the share of the training split held back for ``val_*`` metrics and
            early stopping (never the held-out split). 0 disables validation.
        early_stopping: patience in epochs on the model's ``early_stopping_monitor`` (a VAE's
            ``val_loss``, the true -ELBO); refused for models without one (GANs).
        time_budget: seconds; training stops at the end of the epoch that crosses it
            (:class:`tf_genai.callbacks.TimeBudget`), the run directory is written as usual,
            and ``resume=True`` continues it.
        model_kwargs: constructor arguments of the model (its hyper-parameters).
        overwrite: replace the run files in ``out_dir``.
        resume: continue an interrupted run in ``out_dir`` from its last backup, with the
            speed levers it started with.
        strategy: ``None``/``"default"``, ``"mirrored"`` or ``"multiworker"`` (tf.distribute).
        deterministic: TensorFlow's deterministic ops (bit-identical reruns and resumes).
        plots: write the figures.
        verbose: Keras' ``fit`` verbosity (0 also silences the run's own lines).
        stream: read ``data`` (a folder of images, or TFRecord shards) from the files every
            epoch through ``tf.data`` instead of loading it into memory
            (:mod:`tf_genai.data.streaming`): for data larger than memory. The split, the
            validation part and the per-(seed, epoch) order follow the same rules.
        check_files: how a streamed run checks its images before training: ``"verify"``
            (Pillow's integrity check; it does not decode JPEG data), ``"decode"`` (every
            image decoded once; corrupt ones stop the run, named) or ``"skip"`` (the same,
            corrupt images left out and named in a warning). An image that fails while
            training is a DataError naming it, and a resumed run checks it first
            (:mod:`tf_genai.data.checks`; docs/reliability.md).
        augment: the differentiable augmentation policy of a model that augments what its
            discriminator sees (``capabilities.augments``; :mod:`tf_genai.augment`): ``""``
            none, or e.g. ``"color,translation,cutout"``. None (auto): DiffAugment's policy when
            the training split has fewer than ``training.AUGMENT_BELOW`` images, else none
            (:func:`tf_genai.training.augment_policy`).
        flip: mirror each training image left-right with probability 1/2, drawn per
            (seed, epoch) so a resumed run sees the same batches. None (auto): on for models
            without a likelihood (a mirrored image is as likely a photo, and no likelihood is
            reported on the changed data) trained on colour images (mirrored digits and
            letters are not digits and letters); off otherwise (:func:`tf_genai.training.flips`).
        from_preset: fine-tune a trained preset (a shipped name or a preset folder,
            :mod:`tf_genai.presets`): the model is built from the preset's config (``model``
            must be its zoo name; ``latent_dim`` and ``model_kwargs`` may only repeat its
            values), with the run's ``seed``, and starts from its weights; the optimizer is
            fresh. The data must have the preset's image shape.
    """

    model: str = "vae"
    data: Any = "digits"
    out_dir: str | os.PathLike | None = None
    epochs: int | None = None
    batch_size: int = 128
    seed: int = 0
    split: str = "train"
    latent_dim: int | None = None
    learning_rate: float | None = None
    weight_decay: float = 0.0
    image_size: int | None = None
    channels: int | None = None
    validation_fraction: float = 0.1
    early_stopping: int | None = None
    time_budget: float | None = None
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    overwrite: bool = False
    resume: bool = False
    strategy: str | None = None
    deterministic: bool = False
    plots: bool = True
    verbose: int | str = "auto"
    stream: bool = False
    check_files: str = "verify"
    augment: str | None = None
    flip: bool | None = None
    from_preset: str | None = None

    def __post_init__(self) -> None:
        _positive_int("epochs", self.epochs, allow_none=True)
        _positive_int("batch_size", self.batch_size)
        _positive_int("latent_dim", self.latent_dim, allow_none=True)
        if self.image_size is not None:  # one int for a square, or (H, W)
            for side in np.atleast_1d(np.asarray(self.image_size, dtype=object)):
                _positive_int("image_size", side)
        _positive_int("early_stopping", self.early_stopping, allow_none=True)
        channels_lib.check_choice(self.channels)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        if self.learning_rate is not None:
            _number("learning_rate", self.learning_rate, positive=True)
        _number("weight_decay", self.weight_decay, positive=False)
        if self.time_budget is not None:
            _number("time_budget", self.time_budget, positive=True)
        if not (isinstance(self.validation_fraction, (int, float))
                and 0.0 <= self.validation_fraction < 1.0):
            raise ConfigError(f"validation_fraction must be in [0, 1), got "
                              f"{self.validation_fraction!r}")
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.strategy not in (None, *STRATEGIES):
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)} or None, got "
                              f"{self.strategy!r}")
        if not isinstance(self.model_kwargs, dict):
            raise ConfigError(f"model_kwargs must be a dict, got {type(self.model_kwargs)}")
        entry = registry.entry(self.model)  # ConfigError naming the zoo for an unknown name
        self.model = entry.name  # "VAE" is the zoo's "vae"
        if self.early_stopping and entry.cls.early_stopping_monitor is None:
            raise ConfigError(f"model {self.model!r} cannot stop early: "
                              f"{entry.cls.early_stopping_refusal}")
        check_option(self.check_files, self.stream)
        if self.augment is not None:
            self.augment = augment_lib.check_policy(self.augment)
            if "augment" in self.model_kwargs:
                raise ConfigError("augment is given twice, as an option and in model_kwargs; "
                                  "give it once")
            if self.augment and not entry.cls.CAPABILITIES.augments:
                raise ConfigError(f"model {self.model!r} does not augment (augmentation is for "
                                  "models with a discriminator, e.g. the GANs); leave augment "
                                  "unset")
        if self.flip not in (None, True, False):
            raise ConfigError(f"flip must be True, False or None (auto), got {self.flip!r}")
        if self.from_preset is not None:
            self._check_preset()
        if self.stream and not isinstance(self.data, (str, os.PathLike)):
            raise ConfigError(f"stream=True reads files: data must be a folder of images or "
                              f"TFRecord shards, got {type(self.data).__name__}")

    @classmethod
    def make(cls, model: Any = "vae", data: Any = None, **options: Any) -> "TrainConfig":
        """A config from a zoo name (or a config to change) and keyword options; an unknown
        option is a ConfigError that lists the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown train option {', '.join(map(repr, unknown))}; the "
                              f"options: {', '.join(sorted(known - {'model', 'data'}))}")
        if data is not None:
            options["data"] = data
        if isinstance(model, cls):
            return dataclasses.replace(model, **options)
        return cls(model=model, **options)

    def _check_preset(self) -> None:
        """A ConfigError unless the run's model and model arguments are the preset's."""
        self.from_preset = os.fspath(self.from_preset)
        preset = presets.check(self.from_preset)
        config = preset.config["config"]
        if preset.zoo_name != self.model:
            raise ConfigError(
                f"from_preset={self.from_preset!r} holds a {preset.zoo_name or 'non-zoo'!r} "
                f"model, but model={self.model!r}; fine-tune it as {preset.zoo_name!r}")
        given = {**self.model_kwargs, **({} if self.latent_dim is None
                                         else {"latent_dim": self.latent_dim})}
        given = json.loads(json.dumps(jsonable_kwargs(given), default=str))
        differ = sorted(k for k, v in given.items() if k not in config or config[k] != v)
        if differ:
            have = ", ".join(f"{k}={config.get(k)!r}" for k in differ)
            raise ConfigError(
                f"from_preset={self.from_preset!r} fixes the model's arguments: it has {have}; "
                f"leave {', '.join(differ)} out to fine-tune it")

    def to_json(self) -> dict[str, Any]:
        """The config as ``run.json`` records it (data and paths as strings)."""
        out = dataclasses.asdict(self)
        out["data"] = os.fspath(self.data) if isinstance(self.data, (str, os.PathLike)) \
            else str(self.data)
        out["out_dir"] = None if self.out_dir is None else os.fspath(self.out_dir)
        out["model_kwargs"] = jsonable_kwargs(self.model_kwargs)
        return out


    def check_out_dir(self) -> Path | None:
        """The run directory, checked before anything is loaded (None without one).

        Refuses a non-empty directory unless ``overwrite`` or ``resume``, a place no folder can
        be made (:func:`tf_genai.outputs.check_writable`), and a resume whose arguments differ
        from the run's (:meth:`check_resumes`). Creates nothing.
        """
        if self.out_dir is None:
            return None
        path = outputs.check_dir(self.out_dir, self.overwrite, resume=self.resume, what="run")
        outputs.check_writable(path, what="run directory")
        if self.resume:
            self.check_resumes(path / BACKUP_DIR / START_RECORD)
        return path

    def check_resumes(self, record: str | os.PathLike) -> None:
        """A ConfigError naming every argument of :data:`RESUMED_AS_STARTED` that differs from
        the config recorded in ``record`` when the run started (nothing to compare when the
        run kept no record). Data given as arrays is not compared; paths are compared as the
        files they name."""
        try:
            started = json.loads(Path(record).read_text())
        except (OSError, ValueError):
            return
        now = json.loads(json.dumps(self.to_json(), default=str))  # tuples as lists
        differ = [name for name in RESUMED_AS_STARTED
                  if name in started and not _same(name, started[name], now[name], self.data)]
        if differ:
            then = ", ".join(f"{name}={started[name]!r}" for name in differ)
            given = ", ".join(f"{name}={now[name]!r}" for name in differ)
            raise ConfigError(
                f"cannot resume the run in {os.fspath(self.out_dir)!r}: it was started with "
                f"{then}; this call has {given}. Resume with the run's arguments, or pass "
                "overwrite=True to start a new run there")


def _same(name: str, then: Any, now: Any, data: Any) -> bool:
    """Whether a recorded argument equals the one given now (data: the same source)."""
    if name != "data":
        return then == now
    if not isinstance(data, (str, os.PathLike)):
        return True  # arrays are not recorded, only described
    if then == now:
        return True
    try:
        return os.path.samefile(then, now)  # one folder named two ways (relative, absolute)
    except (OSError, TypeError):
        return False


def jsonable_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}

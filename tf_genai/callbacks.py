"""Keras callbacks for generative models: fixed-noise sample grids, TensorBoard images, KL
warm-up, and a wall-clock training budget.

They work with any model of the family contract (docs/ARCHITECTURE.md): grids are drawn by the
model's own ``sample`` with a fixed seed, the whole grid in one call.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw
from tensorflow.core.framework import summary_pb2

from tf_genai import outputs
from tf_genai.errors import ConfigError
from tf_genai.plotting import compose_grid, to_unit
from tf_genai.plotting.images import label_columns

GIF_NAME = "samples.gif"


class _FixedSamples:
    """The same samples every epoch: ``model.sample(num_samples, seed=seed, labels=...)`` with
    a fixed seed draws the same noise, so successive grids show the model change, not the
    noise. Every model samples through its own sampler (a latent decoder, an iterative loop)."""

    def __init__(self, num_samples: int, seed: int, labels: Any, owner: str):
        if num_samples < 1:
            raise ConfigError(f"{owner}: num_samples must be >= 1, got {num_samples}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.given_labels = labels
        self.owner = owner
        self.labels = None
        self.ncols = None

    def draw(self, model: Any) -> None:
        """Fix the labels to sample (a conditional model's) and the grid's columns."""
        self.labels, self.ncols = None, None
        if self.given_labels is not None:
            labels = np.asarray(self.given_labels, dtype=np.int32).reshape(-1)
            if labels.size == 1:
                labels = np.full((self.num_samples,), labels[0], dtype=np.int32)
            if labels.shape[0] != self.num_samples:
                raise ConfigError(
                    f"{self.owner}: {labels.shape[0]} labels for {self.num_samples} samples"
                )
            self.labels = labels
            self.ncols = label_columns(labels)  # classes lined up in rows or columns
        elif model.num_classes:
            # one class per column: 0 1 2 ... K-1 on every row
            self.labels = (np.arange(self.num_samples) % model.num_classes).astype(np.int32)
            self.ncols = int(model.num_classes)
        if self.ncols is None:
            self.ncols = math.ceil(math.sqrt(self.num_samples))

    def grid(self, model: Any) -> np.ndarray:
        """The samples as one float32 (H', W', C) grid in [0, 1]."""
        images = np.asarray(model.sample(self.num_samples, seed=self.seed, labels=self.labels))
        grid = compose_grid(to_unit(images, model.data_range), ncols=self.ncols)
        return grid[..., None] if grid.ndim == 2 else grid  # (H', W', C)


def _to_pil(grid: np.ndarray, min_side: int = 256):
    """A unit-range (H, W, C) grid as a PIL image, upscaled (nearest) to >= ``min_side`` px."""
    pixels = np.round(grid * 255.0).astype(np.uint8)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    scale = max(1, math.ceil(min_side / max(image.size)))
    if scale > 1:  # tiny 8x8 or 28x28 digits are unreadable at 1:1 in a viewer
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image


def _with_progress_bar(image, fraction: float, height: int = 4):
    """``image`` with a bar below it, ``fraction`` of its width long (the training progress).

    Besides showing where a GIF frame is in training, the bar makes every frame differ: Pillow
    merges identical consecutive GIF frames, which would break "one frame per saved epoch"
    for a model that has stopped changing.
    """
    framed = Image.new(image.mode, (image.width, image.height + height), 0)
    framed.paste(image, (0, 0))
    bar = max(1, round(fraction * image.width))
    ImageDraw.Draw(framed).rectangle(
        [0, image.height + 1, bar - 1, image.height + height - 1],
        fill=255 if image.mode == "L" else (255, 255, 255),
    )
    return framed


class SampleGrid(keras.callbacks.Callback):
    """Saves a grid of samples drawn with the SAME seed after every ``every`` epochs.

    A fixed seed makes the frames comparable, so ``epoch_001.png``, ``epoch_002.png``, ... show
    the generator improving, and ``samples.gif`` (written at the end of training when ``gif``)
    animates them, one frame per PNG with a progress bar under each frame.

    Args:
        directory: folder for the PNGs and the GIF (created if missing; files in it are
            overwritten).
        num_samples: points per grid.
        seed: the seed of ``model.sample``, the same every epoch.
        labels: the classes of a conditional model (one int or one per sample); by default
            0, 1, ..., K-1 along each row.
        every: save after epochs every, 2*every, ... (1-based).
        gif: also write the animated GIF.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        num_samples: int = 64,
        seed: int = 0,
        labels: Any = None,
        every: int = 1,
        gif: bool = True,
    ):
        super().__init__()
        if every < 1:
            raise ConfigError(f"SampleGrid: every must be >= 1, got {every}")
        self.directory = os.fspath(directory)
        self.every = int(every)
        self.gif = bool(gif)
        self.samples = _FixedSamples(num_samples, seed, labels, "SampleGrid")
        self.paths: list[str] = []
        self.gif_path: str | None = None
        self._frames: list = []

    def on_train_begin(self, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        self.samples.draw(self.model)
        self.paths, self._frames, self.gif_path = [], [], None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        image = _to_pil(self.samples.grid(self.model))
        path = os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png")
        outputs.write_with(path, lambda tmp: image.save(tmp, format="PNG"))
        self.paths.append(path)
        total = (self.params or {}).get("epochs") or epoch + 1
        self._frames.append(_with_progress_bar(image, (epoch + 1) / max(total, epoch + 1)))

    def on_train_end(self, logs=None):
        if not (self.gif and self._frames):
            return
        self.gif_path = os.path.join(self.directory, GIF_NAME)
        first, *rest = self._frames
        outputs.write_with(self.gif_path, lambda tmp: first.save(
            tmp, format="GIF", save_all=True, append_images=rest, duration=400, loop=0,
            optimize=False))


def write_image_summary(tag: str, image: np.ndarray, step: int) -> None:
    """Write one unit-range (H, W, C) image as a TensorBoard image summary to the default writer.

    This is the record ``tf.summary.image`` writes (a string tensor ``[width, height, png]``
    tagged for the ``images`` plugin), built with TensorFlow core only: ``tf.summary.image``
    itself lives in the ``tensorboard`` package, which TensorFlow no longer installs.
    """
    pixels = tf.convert_to_tensor(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    encoded = tf.io.encode_png(pixels)
    height, width = image.shape[:2]
    tensor = tf.stack([tf.as_string(width), tf.as_string(height), encoded])  # (3,) strings
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="images"),
    )
    tf.summary.write(tag, tensor, step=step, metadata=metadata)


class TensorBoardImages(keras.callbacks.Callback):
    """Logs a grid of samples (a fixed seed) to TensorBoard after each epoch.

    The grid is one ``tf.summary.image`` named ``samples`` per epoch (step = epoch index), in
    its own file writer under ``log_dir``, so it sits next to ``keras.callbacks.TensorBoard``'s
    scalars when both use the same folder.
    """

    def __init__(self, log_dir: str | os.PathLike, num_samples: int = 16, seed: int = 0,
                 labels: Any = None):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.samples = _FixedSamples(num_samples, seed, labels, "TensorBoardImages")
        self._writer = None

    def on_train_begin(self, logs=None):
        self.samples.draw(self.model)
        self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "images"))

    def on_epoch_end(self, epoch, logs=None):
        grid = self.samples.grid(self.model)  # (H', W', C) in [0, 1]
        with self._writer.as_default():
            write_image_summary("samples", grid, step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class KLWarmup(keras.callbacks.Callback):
    """Linear KL warm-up (Bowman et al. 2016; Sønderby et al. 2016, "Ladder VAE").

    Sets the VAE's ``kl_weight`` variable to ``target * min(epoch / warmup_epochs, 1)`` at the
    start of every epoch (epoch 0 trains with weight 0, epoch ``warmup_epochs`` and later with
    ``target``), which lets the decoder learn to use z before the KL term pulls the posterior
    onto the prior. The value used is logged as ``kl_weight`` in the epoch logs (and History).

    Args:
        warmup_epochs: epochs to reach ``target``; 0 means no warm-up.
        target: the final weight; defaults to the model's ``beta``.
    """

    def __init__(self, warmup_epochs: int, target: float | None = None):
        super().__init__()
        if int(warmup_epochs) != warmup_epochs or warmup_epochs < 0:
            raise ConfigError(f"KLWarmup: warmup_epochs must be an integer >= 0, got "
                              f"{warmup_epochs}")
        if target is not None and not (math.isfinite(target) and target >= 0):
            raise ConfigError(f"KLWarmup: target must be finite and >= 0, got {target}")
        self.warmup_epochs = int(warmup_epochs)
        self.target = target
        self._target = None
        self._value = None

    def weight(self, epoch: int) -> float:
        """The KL weight for a 0-based ``epoch``."""
        target = self._target if self._target is not None else self.target
        if self.warmup_epochs == 0:
            return float(target)
        return float(target) * min(epoch / self.warmup_epochs, 1.0)

    def on_train_begin(self, logs=None):
        if not hasattr(self.model, "kl_weight"):
            raise ConfigError(
                f"KLWarmup: {type(self.model).__name__} has no kl_weight variable (a VAE has)"
            )
        if self.target is not None:
            self._target = float(self.target)
        else:
            beta = getattr(self.model, "beta", None)
            if beta is None:
                raise ConfigError(
                    f"KLWarmup: {type(self.model).__name__} has no beta; pass target="
                )
            self._target = float(beta)

    def on_epoch_begin(self, epoch, logs=None):
        self._value = self.weight(epoch)
        self.model.kl_weight.assign(self._value)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._value is not None:
            logs["kl_weight"] = self._value


class TimeBudget(keras.callbacks.Callback):
    """Stop ``fit`` once ``seconds`` of training have passed.

    Args:
        seconds: the budget (> 0).
        at: ``"epoch"`` (default) stops at the end of the epoch that crosses the budget, so the
            model's state is that of an uninterrupted run after that many epochs and
            ``train(resume=True)`` continues it exactly; ``"step"`` stops at the end of the
            step (with ``steps_per_execution`` > 1, of the execution) that crosses it, for
            comparisons at equal time (``benchmarks/``).
        after_first_step: start the clock when the first step has finished, so the tracing
            and compilation of the train step (seconds to ~40 s on two CPU cores) is not
            charged to the model; ``elapsed`` is always the whole ``fit``.

    Attributes:
        spent: whether the budget stopped the run.
        elapsed: seconds since ``fit`` started.
    """

    def __init__(self, seconds: float, *, at: str = "epoch", after_first_step: bool = False):
        super().__init__()
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise ConfigError(f"time budget must be a positive number of seconds, got {seconds!r}")
        if at not in ("epoch", "step"):
            raise ConfigError(f"TimeBudget: at must be 'epoch' or 'step', got {at!r}")
        self.seconds = float(seconds)
        self.at = at
        self.after_first_step = bool(after_first_step)
        self.spent = False
        self._start = self._clock = 0.0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def _over(self) -> bool:
        return time.perf_counter() - self._clock > self.seconds

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._start = self._clock = time.perf_counter()
        self._first = True
        self.spent = False

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._first and self.after_first_step:
            self._clock = time.perf_counter()
        self._first = False
        if self.at == "step" and self._over():
            self.spent = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.at == "epoch" and self._over():
            self.spent = True
            self.model.stop_training = True


def duration(seconds: float) -> str:
    """``seconds`` as a person reads it: ``45 s``, ``3 min 05 s``, ``2 h 10 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class RunProgress(keras.callbacks.Callback):
    """One line between epochs about the whole run: epochs done of the total, the time so far
    and the time left, e.g. ``run: epoch 3/40, 12 s so far, about 2 min 30 s left``.

    Keras' own progress bar covers one epoch; this line says when the run will end. The time
    left is the mean epoch time (the first epoch, which traces and compiles the step, counts
    only while it is the only one) times the epochs left, capped by a time budget (the run
    then stops at the end of the epoch that crosses it). The line is printed when the next
    epoch begins and when training ends, so it never lands inside Keras' bar.

    Args:
        epochs: the run's total number of epochs.
        time_budget: the run's :class:`TimeBudget` in seconds, if any.
        print_fn: where the line goes (``print``).
    """

    def __init__(self, epochs: int, *, time_budget: float | None = None,
                 print_fn: Any = print) -> None:
        super().__init__()
        self.epochs = int(epochs)
        self.time_budget = time_budget
        self.print_fn = print_fn
        self.line: str | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._start = time.perf_counter()
        self._ends: list[float] = []  # seconds since the start at each epoch end
        self._done = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._ends.append(time.perf_counter() - self._start)
        self._done = epoch + 1
        self.line = self._line()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._say()

    def on_train_end(self, logs: dict | None = None) -> None:
        self._say()

    def _say(self) -> None:
        if self.line is not None:
            self.print_fn(self.line, flush=True)
            self.line = None

    def _line(self) -> str:
        elapsed = self._ends[-1]
        text = f"run: epoch {self._done}/{self.epochs}, {duration(elapsed)} so far"
        left_epochs = self.epochs - self._done
        if left_epochs <= 0:
            return text
        steady = np.diff(self._ends)  # the epochs after the first one of this fit
        per_epoch = float(np.mean(steady)) if len(steady) else elapsed
        left = left_epochs * per_epoch
        if self.time_budget is not None:
            # The budget stops the run at the end of the epoch that crosses it.
            to_budget = max(0.0, self.time_budget - elapsed)
            left = min(left, math.ceil(to_budget / per_epoch) * per_epoch)
        return f"{text}, about {duration(left)} left"


__all__ = ["SampleGrid", "TensorBoardImages", "KLWarmup", "TimeBudget", "RunProgress"]

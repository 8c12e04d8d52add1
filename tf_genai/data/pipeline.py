"""The tf.data input pipeline: in-memory images -> shuffled, batched, scaled float32 batches.

One chain (as in Flax's ``input_pipeline.py``)::

    from_tensor_slices (uint8 stays uint8 in memory) -> cache -> shuffle(seed) -> [repeat]
    -> batch -> map(to float32, scale or dynamic binarization) -> prefetch

Converting after batching runs one vectorized op per batch instead of one per image: on the
10,000 MNIST images with 2 busy CPU cores that measured ~80-180k images/s against ~10k images/s
for map-then-batch. Keeping uint8 until then also keeps the cached data 4x smaller.

Dynamic binarization (the MNIST protocol of Salakhutdinov & Murray, 2008, as used by Burda et
al., 2016, "Importance Weighted Autoencoders"): every training step draws a fresh Bernoulli
sample ``x_bin ~ Bernoulli(x)``. The draws use a stateless op seeded by
``tf.data.Dataset.random(seed)``, so a pipeline built with the same seed yields the same
sequence of batches, epoch after epoch. Held-out data is binarized once, with a fixed seed
(:func:`binarize_once`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tf_genai import ranges
from tf_genai.data.validation import validate_images, validate_labels
from tf_genai.errors import ConfigError

SCALES = ranges.DATA_RANGES


def make_dataset(
    images: Any,
    labels: Any = None,
    *,
    batch_size: int = 128,
    scale: str = "unit",
    binarize: bool = False,
    shuffle: bool = True,
    seed: int = 0,
    cache: bool = True,
    drop_remainder: bool = False,
    repeat: bool = False,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of float32 image batches (and int32 labels when given).

    Args:
        images: ``(N, H, W, C)`` images in any form :func:`validate_images` accepts.
        labels: class ids, one per image, or None.
        batch_size: images per batch.
        scale: ``"unit"`` yields [0, 1] (VAEs), ``"symmetric"`` yields [-1, 1] (GANs).
        binarize: draw fresh {0, 1} Bernoulli images each step (only with ``scale="unit"``).
        shuffle: reshuffle all images every epoch, seeded by ``seed``.
        seed: seeds the shuffle and the binarization draws.
        cache: cache the decoded elements after the first epoch.
        drop_remainder: drop the last, smaller batch.
        repeat: repeat forever (give ``fit`` a ``steps_per_epoch``).

    Returns:
        A dataset yielding ``images`` ``(batch, H, W, C)`` float32, or ``(images, labels)``
        with labels int32 ``(batch,)``.

    Raises:
        DataError: bad images or labels (see :mod:`tf_genai.data.validation`).
        ConfigError: a bad ``scale``, ``batch_size`` or ``binarize`` with ``"symmetric"``.
    """
    check_pipeline_args(batch_size=batch_size, scale=scale, binarize=binarize)
    x = validate_images(images, "array")
    y = validate_labels(labels, len(x), "array")
    # Labels as int32: what the conditional networks' label inputs take.
    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y.astype(np.int32)))
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    return to_model_range(ds, labelled=y is not None, dtype=x.dtype, scale=scale,
                          binarize=binarize, seed=seed)


def check_pipeline_args(*, batch_size: Any, scale: str, binarize: bool) -> None:
    """ConfigError for a bad ``scale``, ``batch_size`` or ``binarize`` with ``"symmetric"``."""
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {', '.join(SCALES)}; got {scale!r}")
    if binarize and scale != "unit":
        raise ConfigError("binarize=True yields {0, 1} images; it needs scale='unit'")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")


def to_model_range(ds: tf.data.Dataset, *, labelled: bool, dtype: Any, scale: str,
                   binarize: bool = False, seed: int = 0) -> tf.data.Dataset:
    """The pipeline's tail, shared by the in-memory and the streaming inputs: batches of stored
    pixels (uint8, or float32 in [0, 1]; ``(images, labels)`` when ``labelled``) -> float32 in
    ``scale`` (or fresh Bernoulli draws per step with ``binarize``) -> prefetch."""
    to_float = _scaler(np.dtype(dtype), scale)
    if binarize:
        # One (2,) int64 seed per step, different every epoch, reproducible from `seed`.
        step_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, step_seeds)
        if not labelled:
            ds = ds.map(
                lambda b, s: _bernoulli(to_float(b), s), num_parallel_calls=tf.data.AUTOTUNE
            )
        else:
            ds = ds.map(
                lambda b, s: (_bernoulli(to_float(b[0]), s), b[1]),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
    elif not labelled:
        ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda b, lab: (to_float(b), lab), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(pipeline_options())


FLIP_STREAM = 1  # folded into an epoch's (seed, epoch) seed, so flips draw apart from the order


def flip_batches(batches: tf.data.Dataset, epoch_seed: Any) -> tf.data.Dataset:
    """One epoch's ``batches`` (images, or ``(images, labels)``) with each image mirrored
    left-right with probability 1/2.

    Batch ``i``'s draw is stateless, seeded by ``(epoch_seed, i)``: an epoch's flips depend on
    its ``(seed, epoch)`` only, not on how many iterators came before or on a resume (the
    rule :func:`tf_genai.training.epoch_dataset` keeps for the order). The images keep their
    dtype, so this runs before or after scaling.
    """
    flip_seed = tf.random.experimental.stateless_fold_in(epoch_seed, FLIP_STREAM)

    def flip(index, batch):
        images = batch[0] if isinstance(batch, tuple) else batch  # (batch, H, W, C)
        seed = tf.random.experimental.stateless_fold_in(flip_seed, index)
        mirror = tf.random.stateless_uniform(tf.shape(images)[:1], seed) < 0.5  # (batch,)
        images = tf.where(mirror[:, None, None, None], tf.reverse(images, axis=[2]), images)
        return (images, *batch[1:]) if isinstance(batch, tuple) else images

    return batches.enumerate().map(flip)


def pipeline_options() -> tf.data.Options:
    """The ``tf.data`` options of every tf_genai input pipeline: autotuning's model thread off.

    With it on, ending an iterator (``fit`` ends one per epoch and per validation pass; a
    Python ``for`` loop one per pass) waited for that thread's next wake-up, on a schedule that
    doubles from 10 ms: a 1.4 s ``dcgan`` epoch then ended at 2.55 s (10 ms x (2^8 - 1)) in
    about half the epochs, and a 0.3 s ``vae`` epoch at 0.63 s (2-core AMD EPYC Zen 4,
    TensorFlow 2.21, 2026-12-06). Without it ``AUTOTUNE`` means the core count for the map
    and a prefetch buffer that grows while the consumer waits, which kept the pipeline far
    ahead of training (``benchmarks/input_pipeline.py``).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def _scaler(dtype: np.dtype, scale: str):
    """A function from a stored batch (uint8 or float32 in [0, 1]) to float32 in ``scale``."""
    divisor = 255.0 if dtype == np.uint8 else 1.0

    def to_float(batch: tf.Tensor) -> tf.Tensor:
        unit = tf.cast(batch, tf.float32) / divisor  # (batch, H, W, C) in [0, 1]
        return ranges.unit_to(unit, scale)

    return to_float


def _bernoulli(unit: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """One Bernoulli draw per pixel with probability equal to its intensity, as float32."""
    noise = tf.random.stateless_uniform(tf.shape(unit), seed=seed)
    return tf.cast(noise < unit, tf.float32)


def binarize_once(images: Any, seed: int = 0) -> np.ndarray:
    """A fixed binarization of ``images`` (for held-out data): float32 {0, 1}, same shape.

    Each pixel is 1 with probability equal to its intensity in [0, 1]; the same ``seed`` gives
    the same result.
    """
    x = validate_images(images, "array")
    unit = ranges.uint8_to_unit(x)
    noise = np.random.default_rng(seed).random(unit.shape, dtype=np.float32)
    return (noise < unit).astype(np.float32)

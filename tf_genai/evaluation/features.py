"""The digit classifier whose features and class probabilities the sample metrics use.

FID and its relatives are only as meaningful as the feature space they are computed in. The
usual Inception network knows nothing about digits and needs a download, so tf_genai trains a
small convolutional classifier on the training split of the data being modelled (well under a
minute on two CPU cores, about 98% held-out accuracy on MNIST) and caches it on disk, keyed by
a hash of the training images, labels, architecture version and training settings. The same
data therefore always gives the same feature space, and a second evaluation loads in a second.

A cache entry is two files: the classifier (``digit_classifier-<key>-<token>.keras``, a name of
its own for every write, never rewritten) and its record (``digit_classifier-<key>.json``: the
file's name and the SHA-256 it had when written), each written whole (:mod:`tf_genai.outputs`).
A classifier whose hash differs from its record is never loaded. Concurrent writers each
write their own file and then the record, so the record always names a complete file; any
malformed entry (a record that is not one, a missing or changed file) counts as absent: one
warning, and the classifier is trained and cached again.

:class:`FeatureExtractor` also wraps any Keras classifier a user brings; its features are the
penultimate layer's output unless another layer is named.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tf_genai import outputs, ranges
from tf_genai.errors import ConfigError, DataError

# Bump when build_classifier or the training recipe changes, so old cache entries are ignored.
ARCHITECTURE_VERSION = 2
# Small data sets (scikit-learn's 1,797 digits) get extra epochs up to this many steps: 6 epochs
# of 1,438 digits gave 96.9% held-out accuracy, 500 steps 98.9%. MNIST's 8,000 images need no
# extra (6 epochs = 750 steps, 98.75%).
MIN_TRAIN_STEPS = 500
# Names the tf_genai cache root; classifiers live in its `classifiers` folder.
CACHE_ENV_VAR = "TF_GENAI_CACHE"
FEATURE_LAYER = "features"


def cache_root() -> Path:
    """The tf_genai cache root: ``$TF_GENAI_CACHE``, else ``~/.cache/tf_genai``."""
    root = os.environ.get(CACHE_ENV_VAR)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "tf_genai"


def default_cache_dir() -> Path:
    """The classifier folder: ``cache_root() / "classifiers"``."""
    return cache_root() / "classifiers"


def prepare_images(images: Any, name: str = "images",
                   image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Images as float32 ``(n, H, W, C)`` in [0, 1]; uint8 is scaled by 1/255.

    A 3-D array ``(n, H, W)`` gets a channel axis. Floats outside [0, 1] raise a DataError (a
    GAN's [-1, 1] output must be mapped with ``(x + 1) / 2`` first).
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]  # (n, H, W, 1)
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise DataError(f"{name}: expected a non-empty image batch (n, H, W, C), got shape "
                        f"{np.shape(images)}")
    if image_shape is not None and tuple(arr.shape[1:]) != tuple(image_shape):
        raise DataError(f"{name}: images have shape {tuple(arr.shape[1:])} but the classifier "
                        f"expects {tuple(image_shape)}")
    if arr.dtype == np.uint8:
        return ranges.uint8_to_unit(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{name}: images must be uint8 or float in [0, 1], got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: images contain NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise DataError(f"{name}: float images must lie in [0, 1], got values in "
                        f"[{lo:.3g}, {hi:.3g}] (map [-1, 1] images with (x + 1) / 2)")
    return np.clip(arr, 0.0, 1.0)


def build_classifier(image_shape: tuple[int, int, int], num_classes: int,
                     seed: int = 0) -> keras.Model:
    """The small conv net: two conv/pool blocks, a 128-unit feature layer, a softmax output.

    Sized for 28x28 digits on CPU (about 0.2M parameters); smaller images (8x8) skip the second
    pooling so the feature map does not vanish.
    """
    h, w, _ = image_shape
    init = lambda k: keras.initializers.GlorotUniform(seed=seed + k)  # noqa: E731
    inputs = keras.Input(shape=tuple(image_shape), name="images")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu",
                            kernel_initializer=init(0))(inputs)
    x = keras.layers.MaxPooling2D(2)(x)  # (batch, H/2, W/2, 16)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu",
                            kernel_initializer=init(1))(x)
    if min(h, w) >= 16:
        x = keras.layers.MaxPooling2D(2)(x)  # (batch, H/4, W/4, 32)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3, seed=seed + 2)(x)
    features = keras.layers.Dense(128, activation="relu", kernel_initializer=init(3),
                                  name=FEATURE_LAYER)(x)  # (batch, 128)
    probs = keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=init(4),
                               name="probs")(features)  # (batch, num_classes)
    return keras.Model(inputs, probs, name="digit_classifier")


class FeatureExtractor:
    """Features and class probabilities of images from a Keras classifier.

    Args:
        model: a built Keras classifier with one image input and one output of class
            probabilities (or logits, which are soft-maxed).
        feature_layer: name or index of the layer whose output are the features; default the
            penultimate layer.

    Attributes:
        model, feature_layer: the classifier and the name of its feature layer.
        image_shape, num_classes: the images it takes and the classes it predicts.
        from_cache, cache_path: for classifiers from :func:`get_classifier`, whether it was
            loaded (not trained), and its file.
    """

    def __init__(self, model: keras.Model, feature_layer: str | int | None = None) -> None:
        try:
            inputs, outputs = model.inputs, model.outputs
        except (AttributeError, ValueError):
            inputs = outputs = None
        if not inputs or not outputs:
            raise ConfigError(f"FeatureExtractor: model {model.name!r} has no defined inputs "
                              "and outputs; build it with keras.Input first")
        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        if feature_layer is None:
            if len(layers) < 2:
                raise ConfigError(f"FeatureExtractor: model {model.name!r} has no penultimate "
                                  "layer to take features from")
            layer = layers[-2]
        elif isinstance(feature_layer, int):
            layer = model.layers[feature_layer]
        else:
            try:
                layer = model.get_layer(feature_layer)
            except ValueError:
                raise ConfigError(f"FeatureExtractor: model {model.name!r} has no layer "
                                  f"{feature_layer!r}") from None
        self.model = model
        self.feature_layer = layer.name
        self.image_shape = tuple(int(s) for s in inputs[0].shape[1:])
        self.num_classes = int(outputs[0].shape[-1])
        self.from_cache = False
        self.cache_path: Path | None = None
        self._both = keras.Model(inputs, [layer.output, outputs[0]])

    def features_and_proba(self, images: Any, batch_size: int = 500
                           ) -> tuple[np.ndarray, np.ndarray]:
        """Features ``(n, d)`` and class probabilities ``(n, num_classes)`` in one batched pass."""
        x = prepare_images(images, "FeatureExtractor images", self.image_shape)
        feats, out = self._both.predict(x, batch_size=batch_size, verbose=0)
        feats = np.asarray(feats, dtype=np.float64).reshape(len(x), -1)  # (n, d)
        out = np.asarray(out, dtype=np.float64)  # (n, num_classes)
        if out.min() < 0.0 or not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
            # The model outputs logits: turn them into probabilities.
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return feats, out

    def features(self, images: Any, batch_size: int = 500) -> np.ndarray:
        """Feature-layer output ``(n, d)`` of images in [0, 1] (uint8 accepted)."""
        return self.features_and_proba(images, batch_size)[0]

    def predict_proba(self, images: Any, batch_size: int = 500) -> np.ndarray:
        """Class probabilities ``(n, num_classes)`` of images in [0, 1] (uint8 accepted)."""
        return self.features_and_proba(images, batch_size)[1]

    def accuracy(self, images: Any, labels: Any, batch_size: int = 500) -> float:
        """Fraction of images whose most probable class is the label."""
        labels = np.asarray(labels).reshape(-1)
        probs = self.predict_proba(images, batch_size)
        if len(labels) != len(probs):
            raise DataError(f"accuracy: {len(probs)} images but {len(labels)} labels")
        return float(np.mean(probs.argmax(axis=1) == labels))


def _validate_labels(labels: Any, n: int) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataError(f"get_classifier: expected {n} labels as a 1-D array, got shape "
                        f"{arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"get_classifier: labels must be integers, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise DataError(f"get_classifier: labels must be >= 0, got {arr.min()}")
    return arr.astype(np.int64)


def cache_key(images: np.ndarray, labels: np.ndarray, *, epochs: int, seed: int,
              min_steps: int = MIN_TRAIN_STEPS) -> str:
    """Hex SHA-256 of the prepared training images, labels, architecture version and recipe."""
    h = hashlib.sha256()
    h.update(f"tf_genai digit classifier v{ARCHITECTURE_VERSION} epochs={epochs} seed={seed} "
             f"min_steps={min_steps} shape={images.shape}".encode())
    h.update(np.ascontiguousarray(images, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def train_classifier(images: np.ndarray, labels: np.ndarray, *, epochs: int = 6,
                     min_steps: int = MIN_TRAIN_STEPS, batch_size: int = 64,
                     seed: int = 0) -> keras.Model:
    """Train :func:`build_classifier` on prepared images ``(n, H, W, C)`` and int labels.

    Runs ``epochs`` epochs, or more when that is fewer than ``min_steps`` steps.
    """
    import tensorflow as tf  # tf.data gives a seeded shuffle without touching global seeds

    epochs = max(epochs, math.ceil(min_steps / math.ceil(len(images) / batch_size)))
    num_classes = max(int(labels.max()) + 1, 2)
    model = build_classifier(tuple(images.shape[1:]), num_classes, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ds = (tf.data.Dataset.from_tensor_slices((images, labels))
          .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
          .batch(batch_size))
    model.fit(ds, epochs=epochs, shuffle=False, verbose=0)  # the dataset shuffles, seeded
    return model


def _record_path(folder: Path, key: str) -> Path:
    return folder / f"digit_classifier-{key[:24]}.json"


def _load_cached(folder: Path, key: str) -> tuple[keras.Model, Path] | None:
    """The cached classifier of ``key`` and its file, or None when there is none or the entry
    is malformed or damaged in any way (then one warning names the entry and the problem)."""
    record_path = _record_path(folder, key)
    if not record_path.exists():
        return None
    try:
        record = json.loads(record_path.read_text())
        name = record.get("file") if isinstance(record, dict) else None
        if not (isinstance(name, str) and isinstance(record.get("sha256"), str)):
            raise ValueError("not a cache record (a JSON object with 'file' and 'sha256')")
        if Path(name).name != name:
            raise ValueError(f"it names a file outside the cache folder ({name!r})")
        path = folder / name
        if outputs.file_digest(path) != record["sha256"]:
            with contextlib.suppress(OSError):  # never rewritten under this name: damaged
                path.unlink()
            raise ValueError(f"{name} differs from the SHA-256 recorded when it was written")
        return keras.saving.load_model(path, compile=False), path
    except Exception as err:  # OSError, ValueError, Keras' many types: it is only a cache
        warnings.warn(f"get_classifier: ignoring the cache entry {record_path} ({err}); "
                      "training the classifier again", stacklevel=3)
        return None


def _store(folder: Path, key: str, model: keras.Model) -> Path:
    """Write ``model`` as the cache entry of ``key``: its own file, then the record naming it
    with its SHA-256 (a concurrent writer's record names its own complete file)."""
    path = folder / f"digit_classifier-{key[:24]}-{os.urandom(6).hex()}.keras"
    outputs.write_with(path, model.save)
    outputs.write_json(_record_path(folder, key), {"file": path.name,
                                                   "sha256": outputs.file_digest(path)})
    return path


def get_classifier(train_images: Any, train_labels: Any, *, cache_dir: str | Path | None = None,
                   epochs: int = 6, min_steps: int = MIN_TRAIN_STEPS,
                   seed: int = 0) -> FeatureExtractor:
    """The digit classifier for this training data: loaded from the cache or trained and cached.

    Args:
        train_images: ``(n, H, W, C)`` (or ``(n, H, W)``) uint8 or float in [0, 1].
        train_labels: ``(n,)`` integer class labels.
        cache_dir: where ``.keras`` files are kept; default :func:`default_cache_dir`.
        epochs: training epochs (part of the cache key).
        min_steps: small data sets get extra epochs up to this many steps (part of the key).
        seed: initialisation and shuffling seed (part of the cache key).

    Returns:
        A :class:`FeatureExtractor` whose ``from_cache`` says whether it was loaded from disk.
    """
    images = prepare_images(train_images, "get_classifier train_images")
    labels = _validate_labels(train_labels, len(images))
    if epochs < 1:
        raise ConfigError(f"get_classifier: epochs must be >= 1, got {epochs}")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = cache_key(images, labels, epochs=epochs, seed=seed, min_steps=min_steps)
    cached = _load_cached(folder, key)
    if cached is not None:
        extractor = FeatureExtractor(cached[0], FEATURE_LAYER)
        extractor.from_cache, extractor.cache_path = True, cached[1]
        return extractor
    model = train_classifier(images, labels, epochs=epochs, min_steps=min_steps, seed=seed)
    extractor = FeatureExtractor(model, FEATURE_LAYER)
    extractor.cache_path = _store(folder, key, model)
    return extractor

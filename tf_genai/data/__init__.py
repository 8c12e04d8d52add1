"""Data sources, validation and the tf.data input pipeline.

- :func:`load` reads a built-in dataset, IDX, ``.npz``/``.npy``, an image folder or arrays into
  ``(images, labels)``: images ``(N, H, W, C)`` uint8 for 8-bit sources, float32 in [0, 1]
  otherwise; labels int64 ``(N,)`` or None (the rules: ``tf_genai/data/README.md``). Channels
  are decided once per source (:mod:`tf_genai.data.channels`: colour is RGB with transparency
  composited on white, grey stays grey unless mixed with colour, or ``channels=1|3``); the
  returned pair's ``.channels.description`` says what was decided.
- :func:`make_dataset` turns them into a shuffled, batched ``tf.data.Dataset`` in the model's
  data range, with optional dynamic binarization; :func:`binarize_once` for held-out data.
- :func:`validate_images` / :func:`validate_labels` raise :class:`tf_genai.errors.DataError`.
- :mod:`tf_genai.data.streaming`: a folder of images or TFRecord shards read from the files
  every epoch (:func:`scan_folder`, :func:`scan_tfrecords`, :func:`stream_dataset`,
  :func:`write_tfrecords`), for data larger than memory.
"""

from tf_genai import lazy

# The names this package exports, by the module that defines them. They are imported on first
# use (PEP 562): reading a source's channels or checking a run's arguments (``TrainConfig``)
# needs no TensorFlow, which ``pipeline`` and ``streaming`` import (about 5-10 s on 2 cores).
_EXPORTS = {
    "channels": ("ChannelDecision",),
    "idx": ("read_idx",),
    "pipeline": ("binarize_once", "make_dataset"),
    "sources": ("BUILTIN_DATASETS", "SPLITS", "Loaded", "default_split_indices",
                "keras_cache_dir", "load", "load_for_shape", "mnist_or_digits", "resize",
                "shared_mnist_dir", "train_validation_split"),
    "streaming": ("scan_folder", "scan_tfrecords", "stream_dataset", "write_tfrecords"),
    "validation": ("validate_images", "validate_labels"),
}
__getattr__, __dir__ = lazy.exports(__name__, _EXPORTS)

__all__ = [
    "BUILTIN_DATASETS",
    "SPLITS",
    "ChannelDecision",
    "Loaded",
    "binarize_once",
    "default_split_indices",
    "keras_cache_dir",
    "load",
    "load_for_shape",
    "make_dataset",
    "mnist_or_digits",
    "read_idx",
    "resize",
    "scan_folder",
    "scan_tfrecords",
    "shared_mnist_dir",
    "stream_dataset",
    "train_validation_split",
    "validate_images",
    "validate_labels",
    "write_tfrecords",
]

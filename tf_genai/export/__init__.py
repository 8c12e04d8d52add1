"""Export: ``.keras`` loading, SavedModels with serving signatures, TensorFlow Lite.

One module per concern: :mod:`~tf_genai.export.keras_file` (load a ``.keras`` file with
checks), :mod:`~tf_genai.export.saved_model` (signatures, ``metadata.json``, sampling from an
export with TensorFlow alone) and :mod:`~tf_genai.export.tflite`. All of them talk to the family
contract (:class:`tf_genai.models.base.GenerativeModel`), never to a family.

The names are imported on first use (PEP 562): checking a model file
(:func:`~tf_genai.export.keras_file.check_model_file`) needs no TensorFlow, so the command line
can refuse a missing or broken file before it loads TensorFlow.
"""

from __future__ import annotations

from tf_genai import lazy

_EXPORTS = {
    "keras_file": ("check_model_file", "load_model"),
    "saved_model": ("EXPORT_FORMAT", "METADATA_FILE", "export_metadata", "export_saved_model",
                    "read_metadata", "sample_from_export", "zoo_name"),
    "tflite": ("convert_to_tflite",),
}
__getattr__, __dir__ = lazy.exports(__name__, _EXPORTS)

__all__ = [
    "EXPORT_FORMAT", "METADATA_FILE", "check_model_file", "convert_to_tflite", "export_metadata",
    "export_saved_model", "load_model", "read_metadata", "sample_from_export", "zoo_name",
]

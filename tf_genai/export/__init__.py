"""Export: ``.keras`` loading, SavedModels with serving signatures, TensorFlow Lite.

One module per concern: :mod:`~tf_genai.export.keras_file` (load a ``.keras`` file with
checks), :mod:`~tf_genai.export.saved_model` (signatures, ``metadata.json``, sampling from an
export with TensorFlow alone) and :mod:`~tf_genai.export.tflite`. All of them talk to the family
contract (:class:`tf_genai.models.base.GenerativeModel`), never to a family.
"""

from tf_genai.export.keras_file import load_model
from tf_genai.export.saved_model import (
    EXPORT_FORMAT,
    METADATA_FILE,
    export_metadata,
    export_saved_model,
    read_metadata,
    sample_from_export,
    zoo_name,
)
from tf_genai.export.tflite import convert_to_tflite

__all__ = [
    "EXPORT_FORMAT", "METADATA_FILE", "convert_to_tflite", "export_metadata",
    "export_saved_model", "load_model", "read_metadata", "sample_from_export", "zoo_name",
]

"""The flow-matching family (:class:`~tf_genai.models.flow.model.Flow`)."""

from tf_genai.models.flow.model import Flow

__all__ = ["Flow"]

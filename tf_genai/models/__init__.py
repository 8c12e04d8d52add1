"""The model zoo. Importing this package registers every model (see ``tf_genai.registry``)."""

from tf_genai.models import gan, vae  # noqa: F401  (registration side effect)
from tf_genai.registry import available, create, entry  # noqa: F401

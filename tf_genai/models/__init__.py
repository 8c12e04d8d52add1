"""The model zoo. Importing this package registers every model (see ``tf_genai.registry``).

Every family subclasses :class:`~tf_genai.models.base.GenerativeModel` (the family contract).
"""

from tf_genai.models import diffusion, flow, gan, vae  # noqa: F401  (registration side effect)
from tf_genai.models.base import GenerativeModel  # noqa: F401
from tf_genai.registry import available, create, entry  # noqa: F401

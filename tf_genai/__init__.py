"""tf_genai: correct, fast, plotted and exportable VAEs and GANs for Keras 3 on TensorFlow.

Importing the package fills the model zoo (``tf_genai.models``), so ``keras.saving.load_model``
can rebuild any saved tf_genai model and its ``train_step``.
"""

__version__ = "0.1.0"

from tf_genai import errors, registry  # noqa: E402,F401
from tf_genai import models  # noqa: E402,F401  (registers the zoo with Keras serialization)
from tf_genai.registry import available, create  # noqa: E402,F401

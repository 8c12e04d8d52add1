"""The project's own error types.

Every problem tf_genai detects in what a user hands it (data, arguments, model files, configs)
is raised as a subclass of :class:`TFGenAIError`, with a message that names the source and the
problem, before any training starts. They also subclass the matching built-in type so existing
``except ValueError`` code keeps working.
"""

from __future__ import annotations


class TFGenAIError(Exception):
    """Base class of every error tf_genai raises on purpose."""


class DataError(TFGenAIError, ValueError):
    """Data that cannot be trained on: missing, corrupt, empty, wrongly shaped or out of range."""


class ConfigError(TFGenAIError, ValueError):
    """A model name, hyper-parameter or command-line argument that makes no sense."""


class ModelFileError(TFGenAIError, ValueError):
    """A model or export file that is missing, truncated or not a tf_genai model."""


class OutputExistsError(TFGenAIError, FileExistsError):
    """An output directory or file exists and would be overwritten without ``overwrite=True``."""


class TrainingError(TFGenAIError, RuntimeError):
    """Training that cannot go on (for example a loss that became NaN)."""


class OutputError(TFGenAIError, OSError):
    """An output that cannot be written: a read-only or missing folder, a file in the way."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (SIGINT), after the run's files were put back in order.

    A ``KeyboardInterrupt``, so code that lets Ctrl-C through (``except Exception``) still
    does. ``epochs_done`` is the number of epochs the run's backup holds (0: none was saved,
    and the run directory is as it was before the call); ``backup`` its folder (None without
    one); ``epochs`` the run's total.
    """

    def __init__(self, message: str, *, epochs_done: int, epochs: int | None,
                 backup: str | None) -> None:
        super().__init__(message)
        self.epochs_done = epochs_done
        self.epochs = epochs
        self.backup = backup

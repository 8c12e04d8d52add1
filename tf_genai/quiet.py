"""Quiet start-up for the command line: TensorFlow's own log lines hidden unless ``--verbose``.

Depends on nothing of ours; imports TensorFlow only when asked to.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

# Python-side noise of the libraries underneath: their warnings and WARNING-level log records
# (retracing notices, deprecations) say nothing a user of the command line can act on.
_NOISY_MODULES = r"(tensorflow|keras|tf_keras|absl|google\.protobuf|ml_dtypes|h5py)(\.|$)"


def quiet_tensorflow() -> None:
    """Import TensorFlow (and Keras) without their start-up lines; quiet their later logging.

    Called by :func:`main` before any command runs, unless ``--verbose``. It only acts when it is
    the first to import TensorFlow: once TensorFlow is loaded its C++ log level is fixed and the
    start-up lines are out, and an in-process caller (a notebook, a test) owns its own logging.

    What was measured to work on TensorFlow 2.21 (CPU machine, ``tf-genai train dcgan``):

    - ``TF_CPP_MIN_LOG_LEVEL=3`` hides C++ INFO/WARNING/ERROR lines logged through TensorFlow's
      logging after start-up (measured: the CPU-feature/oneDNN notice, ``E0000 ... failed call
      to cuInit``; grappler's ``remapper`` errors are logged the same way, but did not occur
      here), but not the lines logged while TensorFlow's shared libraries load (``I0000 ...
      cudart_stub.cc] Could not find cuda drivers``, "WARNING: All log messages before
      absl::InitializeLog() is called are written to STDERR"): those come from absl's C++
      logging before anything reads the variable, and neither ``ABSL_MIN_LOG_LEVEL``,
      ``ABSL_STDERRTHRESHOLD``, ``GLOG_minloglevel`` nor ``GRPC_VERBOSITY`` silences them.
    - So file descriptor 2 goes to a temporary file while ``import tensorflow`` runs, and is
      restored right after: the program's own messages and errors still reach stderr. If the
      import fails, what it wrote is replayed to stderr before the exception propagates (not
      for Ctrl-C, which the command line reports in one line).
    """
    if "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # read by TensorFlow once, when it loads
    warnings.filterwarnings("ignore", module=_NOISY_MODULES)
    _import_with_stderr_captured()
    import absl.logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # tf.get_logger()
    absl.logging.set_verbosity(absl.logging.ERROR)


def _import_with_stderr_captured() -> None:
    """``import tensorflow, keras`` with fd 2 sent to a temporary file (replayed on failure)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr at all: nothing to hide it from
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
        return
    with tempfile.TemporaryFile() as sink:
        failed = False
        try:
            os.dup2(sink.fileno(), 2)
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
        except Exception:
            failed = True
            raise
        finally:
            sys.stderr.flush()  # Python's buffered text belongs to the captured part
            os.dup2(saved, 2)
            os.close(saved)
            # The import failed: its explanation must not be lost (a Ctrl-C explains itself).
            if failed:
                sink.seek(0)
                captured = memoryview(sink.read())
                while captured:
                    captured = captured[os.write(2, captured):]


def warn_if_gpu_missing() -> None:
    """One line in our words when a GPU was asked for but TensorFlow finds none.

    The quiet start-up hides TensorFlow's own "Could not find cuda drivers" / "failed call to
    cuInit" lines; they matter when the user meant to train on a GPU: ``CUDA_VISIBLE_DEVICES``
    names one, or the machine has an NVIDIA device node. Otherwise (a CPU machine) the check is
    skipped and TensorFlow's device list is not touched.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    asked = visible not in (None, "", "-1") or (visible is None and Path("/dev/nvidia0").exists())
    if not asked:
        return
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    why = (f"CUDA_VISIBLE_DEVICES={visible} asks for a GPU" if visible is not None
           else "this machine has an NVIDIA GPU")
    print(f"warning: {why}, but TensorFlow finds none (no CUDA driver or a CPU-only TensorFlow "
          f"build); running on the CPU. --verbose shows TensorFlow's messages.", file=sys.stderr)

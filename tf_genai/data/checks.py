"""How a streamed data set's images are checked before training (TensorFlow-free, so a run's
config is checked before TensorFlow loads): ``"verify"``, Pillow's integrity check (folders;
it does not decode JPEG data); ``"decode"``, every image decoded once with the stream's own
decoder, stopping on a corrupt one; ``"skip"``, the same decode, leaving corrupt images out
(named in a warning). :mod:`tf_genai.data.streaming` runs them.
"""

from __future__ import annotations

from tf_genai.errors import ConfigError

CHECKS = ("verify", "decode", "skip")


def check_option(check: str, stream: bool = True) -> str:
    """``check`` itself; ConfigError if it is not one of :data:`CHECKS`, or asks a decode check
    of data that is not streamed (the in-memory loader decodes every image already)."""
    if check not in CHECKS:
        raise ConfigError(f"check_files must be one of {', '.join(CHECKS)}; got {check!r}")
    if check != "verify" and not stream:
        raise ConfigError(f"check_files={check!r} (--decode-check, --skip-corrupt) applies to "
                          "streamed data (--stream): the in-memory loader decodes every image "
                          "already and stops at a corrupt one, naming it")
    return check

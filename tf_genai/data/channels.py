"""Channels: decided once for a source, stated in one line, and the conversions that apply it.

Models train on grey (1 channel) or RGB (3 channels) images; nothing downstream has a
convention for a fourth (the FID Inception network sees RGB, plots show RGB). So:

- ``channels=None`` (the default): **colour images are RGB and grey stays grey unless mixed
  with colour.** A source holding any colour image is RGB (its grey images are repeated to
  three channels); a source of grey images only is grey.
- ``channels=3`` or ``channels=1`` asks for RGB or grey whatever the source holds; colour
  becomes grey by ITU-R 601 luma, Pillow's ``convert("L")`` in integer arithmetic
  (``(19595 R + 38470 G + 7471 B + 32768) >> 16``).
- **Transparency is composited on white** before anything else: a pixel of alpha ``a`` shows
  ``c * a + white * (1 - a)``, which is how an image viewer on a white page shows it.
  Dropping the alpha instead would reveal whatever colour the transparent pixels happen to
  store (often black, sometimes garbage); keeping it as a fourth channel washes the samples out
  and leaves the images without a feature space. For 8-bit pixels the composite is integer
  arithmetic, ``(c * a + 255 * (255 - a) + 127) // 255``, the same in NumPy
  (:func:`tf_genai.data.load`) and TensorFlow (the streamed folders), so both give equal pixels.

The decision is a :class:`ChannelDecision`, whose :attr:`~ChannelDecision.description` is the
one line that says what happened, e.g. ``channels: 3 (RGB: the source holds colour images) --
304 images: 262 RGB, 32 RGBA (alpha composited on white), 10 grey (repeated to RGB)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import numpy as np

from tf_genai.errors import ConfigError

CHOICES = (None, 1, 3)
# What an image holds, by its channel count (what the decoders hand out).
KINDS = {1: "grey", 2: "grey+alpha", 3: "RGB", 4: "RGBA"}
COLOUR_KINDS = ("RGB", "RGBA")
# ITU-R 601 luma in 16-bit fixed point, Pillow's convert("L") (Convert.c, L24).
LUMA_WEIGHTS = (19595, 38470, 7471)


def check_choice(channels: Any) -> int | None:
    """``channels`` as None, 1 or 3; :class:`ConfigError` for anything else."""
    if channels is None:
        return None
    if isinstance(channels, (bool, np.bool_)) or channels not in (1, 3):
        raise ConfigError(f"channels must be None (decided from the images), 1 (grey) or "
                          f"3 (RGB); got {channels!r}")
    return int(channels)


@dataclasses.dataclass(frozen=True)
class ChannelDecision:
    """How many channels a source's images get, and what they held.

    ``channels`` is 1 or 3; ``requested`` the caller's ``channels`` argument (None: decided
    from the images); ``counts`` pairs each kind of image (``"grey"``, ``"grey+alpha"``,
    ``"RGB"``, ``"RGBA"``) with how many the source holds.
    """

    channels: int
    requested: int | None
    counts: tuple[tuple[str, int], ...]

    @property
    def description(self) -> str:
        """One line saying what was decided and what each kind of image became."""
        target = "RGB" if self.channels == 3 else "grey"
        if self.requested is not None:
            why = f"{target}, as asked"
        elif self.channels == 3:
            why = f"{target}: the source holds colour images"
        else:
            why = f"{target}: every image is grey"
        total = sum(n for _, n in self.counts)
        parts = [f"{n} {kind}{self._fate(kind)}" for kind, n in self.counts]
        return f"channels: {self.channels} ({why}) -- {total} images: " + ", ".join(parts)

    def _fate(self, kind: str) -> str:
        steps = []
        if kind.endswith("alpha") or kind == "RGBA":
            steps.append("alpha composited on white")
        if kind in ("grey", "grey+alpha") and self.channels == 3:
            steps.append("repeated to RGB")
        if kind in COLOUR_KINDS and self.channels == 1:
            steps.append("to grey by ITU-R 601 luma")
        return f" ({', then '.join(steps)})" if steps else ""


def decide(kinds: Iterable[str], requested: int | None = None) -> ChannelDecision:
    """The :class:`ChannelDecision` for a source whose images are of ``kinds`` (one per image)."""
    requested = check_choice(requested)
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    colour = any(kind in COLOUR_KINDS for kind in counts)
    channels = requested if requested is not None else (3 if colour else 1)
    ordered = tuple((kind, counts[kind]) for kind in KINDS.values() if kind in counts)
    return ChannelDecision(channels=channels, requested=requested, counts=ordered)


def composite_on_white(images: np.ndarray) -> np.ndarray:
    """``(..., c)`` images whose last channel is alpha (c = 2 or 4) -> ``(..., c - 1)`` on white.

    uint8 in integer arithmetic (rounded to nearest), float in [0, 1] as ``c * a + (1 - a)``.
    """
    colour, alpha = images[..., :-1], images[..., -1:]
    if images.dtype == np.uint8:
        c, a = colour.astype(np.int32), alpha.astype(np.int32)
        return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)
    return (colour * alpha + (1.0 - alpha)).astype(images.dtype)


def to_grey(images: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB -> ``(..., 1)`` ITU-R 601 luma; uint8 exactly as Pillow's ``convert("L")``."""
    weights = np.asarray(LUMA_WEIGHTS, np.int64)
    if images.dtype == np.uint8:
        luma = (images.astype(np.int64) @ weights + 32768) >> 16
        return luma[..., np.newaxis].astype(np.uint8)
    luma = images.astype(np.float64) @ (weights / 65536.0)
    return np.clip(luma, 0.0, 1.0)[..., np.newaxis].astype(images.dtype)


def convert(images: np.ndarray, channels: int) -> np.ndarray:
    """``(..., c)`` images with c in {1, 2, 3, 4} (a last channel of alpha for 2 and 4) ->
    ``(..., channels)``, channels 1 or 3: alpha composited on white, grey repeated, colour
    to luma."""
    if images.shape[-1] in (2, 4):
        images = composite_on_white(images)
    if images.shape[-1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    return to_grey(images)

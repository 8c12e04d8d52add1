"""Channels decided once per source: colour is RGB with alpha composited on white, grey stays
grey unless mixed with colour, channels=1|3 on request; load and streaming agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tf_genai.data import load
from tf_genai.data.streaming import scan_folder, stream_dataset
from tf_genai.errors import ConfigError

RED_HALF_ALPHA = (200, 0, 0, 128)
# (200 * 128 + 255 * 127 + 127) // 255 = 227 and (255 * 127 + 127) // 255 = 127: on white.
RED_ON_WHITE = (227, 127, 127)


def _photo_folder(root: Path) -> Path:
    """A folder as photo folders come: RGB JPEGs and PNGs of several sizes, a few RGBA PNGs
    (one uniform half-transparent red, one fully transparent), and grey PNGs."""
    root.mkdir()
    rng = np.random.default_rng(0)
    sizes = [(20, 30), (31, 17), (24, 24), (40, 22), (18, 26), (33, 33)]
    for i, (w, h) in enumerate(sizes):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"photo_{i}.{'jpg' if i % 2 else 'png'}")
    Image.new("RGBA", (25, 19), RED_HALF_ALPHA).save(root / "sticker_red.png")
    Image.new("RGBA", (21, 28), (0, 0, 0, 0)).save(root / "sticker_clear.png")
    Image.fromarray(rng.integers(0, 256, (22, 29, 4), dtype=np.uint8)).save(root / "sticker.png")
    Image.new("L", (27, 23), 90).save(root / "scan_grey.png")
    Image.fromarray(rng.integers(0, 256, (19, 35), dtype=np.uint8)).save(root / "scan_noise.png")
    return root


def _index(folder: Path, name: str) -> int:
    return sorted(p.name for p in folder.iterdir()).index(name)


def test_a_photo_folder_with_some_rgba_and_grey_files_is_rgb_and_says_so(tmp_path):
    folder = _photo_folder(tmp_path / "photos")
    loaded = load(folder, split="all", image_size=16)
    images, labels = loaded
    assert images.shape == (11, 16, 16, 3) and images.dtype == np.uint8 and labels is None
    assert loaded.channels.channels == 3
    assert loaded.channels.description == (
        "channels: 3 (RGB: the source holds colour images) -- 11 images: "
        "2 grey (repeated to RGB), 6 RGB, 3 RGBA (alpha composited on white)")
    red = images[_index(folder, "sticker_red.png")]
    assert (red == RED_ON_WHITE).all()  # composited on white, not washed out by a 4th channel
    assert (images[_index(folder, "sticker_clear.png")] == 255).all()  # fully transparent: white
    grey = images[_index(folder, "scan_grey.png")]
    assert (grey == 90).all()  # grey repeated to three equal channels


def test_channels_one_makes_colour_grey_by_pillows_luma(tmp_path):
    folder = _photo_folder(tmp_path / "photos")
    loaded = load(folder, split="all", image_size=16, channels=1)
    assert loaded[0].shape == (11, 16, 16, 1)
    luma = Image.new("RGB", (1, 1), RED_ON_WHITE).convert("L").getpixel((0, 0))
    assert (loaded[0][_index(folder, "sticker_red.png")] == luma).all()
    assert loaded.channels.description.startswith("channels: 1 (grey, as asked) -- 11 images:")
    assert "3 RGBA (alpha composited on white, then to grey by ITU-R 601 luma)" in (
        loaded.channels.description)


def test_grey_stays_grey_unless_rgb_is_asked_for(tmp_path):
    for i, mode in enumerate(["L", "L", "LA"]):
        Image.new(mode, (6, 5), 40 * (i + 1) if mode == "L" else (100, 0)).save(
            tmp_path / f"{i}.png")
    grey = load(tmp_path, split="all")
    assert grey[0].shape == (3, 5, 6, 1)
    assert grey.channels.description == ("channels: 1 (grey: every image is grey) -- 3 images: "
                                         "2 grey, 1 grey+alpha (alpha composited on white)")
    assert (grey[0][2] == 255).all()  # grey+alpha with alpha 0: white
    rgb = load(tmp_path, split="all", channels=3)
    assert rgb[0].shape == (3, 5, 6, 3)
    np.testing.assert_array_equal(rgb[0], np.repeat(grey[0], 3, axis=-1))


def test_arrays_with_alpha_are_composited_and_bad_choices_refused(tmp_path):
    rgba = np.zeros((2, 4, 4, 4), np.uint8)
    rgba[...] = RED_HALF_ALPHA
    loaded = load(rgba, split="all")
    assert loaded[0].shape == (2, 4, 4, 3) and (loaded[0] == RED_ON_WHITE).all()
    assert loaded.channels.description.endswith("2 RGBA (alpha composited on white)")
    floats = load(rgba.astype(np.float32) / 255.0, split="all")[0]
    np.testing.assert_allclose(floats[0, 0, 0], np.asarray(RED_ON_WHITE) / 255.0, atol=1 / 255)
    for bad in (4, 2, "3", True):
        with pytest.raises(ConfigError, match="channels must be None .*, 1 \\(grey\\) or 3"):
            load(rgba, split="all", channels=bad)
        with pytest.raises(ConfigError, match="channels must be None"):
            scan_folder(tmp_path, split="all", channels=bad)


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_streaming_decides_over_the_whole_folder_and_equals_load(tmp_path, channels):
    """Every kind of file at one size: the streamed pixels equal load's exactly, and a split
    with no colour image still gets the folder's channels."""
    rng = np.random.default_rng(2)
    kinds = {"RGB": (5, 7, 3), "RGBA": (5, 7, 4), "L": (5, 7), "LA": (5, 7, 2)}
    for i in range(12):
        mode = list(kinds)[i % 4] if i < 8 else "L"
        pixels = rng.integers(0, 256, kinds[mode], dtype=np.uint8)
        Image.fromarray(pixels, mode=mode).save(tmp_path / f"{i:02d}.png")
    palette = Image.fromarray(rng.integers(0, 4, (5, 7), dtype=np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette.save(tmp_path / "12.png", transparency=1)  # the red entry is transparent
    for split in ("all", "train", "heldout"):
        loaded = load(tmp_path, split=split, channels=channels)
        files = scan_folder(tmp_path, split=split, channels=channels)
        assert files.channels == loaded.channels  # one decision for the folder, every split
        assert files.image_shape == loaded[0].shape[1:]
        batches = stream_dataset(files, batch_size=5, shuffle=False)
        streamed = np.concatenate([b.numpy() for b in batches])
        np.testing.assert_array_equal(np.round(streamed * 255).astype(np.uint8), loaded[0])
    assert files.image_shape[-1] == (channels or 3)

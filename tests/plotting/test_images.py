"""image_grid, plot_samples and plot_reconstructions on real arrays and real zoo models."""

from __future__ import annotations

import matplotlib.figure
import numpy as np
import pytest

from tf_genai import plotting
from tf_genai.errors import ConfigError, DataError
from tf_genai.plotting.images import label_columns


def the_image(fig, index=0):
    """The pixel array drawn on axes ``index`` (each of our axes holds exactly one image)."""
    assert len(fig.axes[index].images) == 1
    return np.asarray(fig.axes[index].images[0].get_array())


def test_image_grid_grayscale_unit(tmp_path, png):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(10, 8, 8, 1)).astype(np.float32)
    fig = plotting.image_grid(images, title="ten", path=tmp_path / "sub" / "grid.png")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 1
    grid = the_image(fig)
    assert grid.shape == (3 * 9 - 1, 4 * 9 - 1)  # 4 columns, 3 rows, 1-pixel gutters
    assert np.all(np.isfinite(grid))
    np.testing.assert_allclose(grid[9:17, 18:26], images[6, ..., 0])  # row 1, column 2
    assert np.all(grid[8, :] == 1.0) and np.all(grid[:, 8] == 1.0)  # white gutters
    assert np.all(grid[18:, 18:] == 1.0)  # the two empty cells of the last row
    pixels = png(tmp_path / "sub" / "grid.png")
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 50


def test_image_grid_colour_symmetric_maps_to_unit(tmp_path, png):
    images = np.stack([np.full((5, 7, 3), v, np.float32) for v in (-1.0, 0.0, 1.0, 0.5)])
    fig = plotting.image_grid(images, nrows=2, data_range="symmetric", path=tmp_path / "c.png")
    grid = the_image(fig)
    assert grid.shape == (2 * 6 - 1, 2 * 8 - 1, 3)
    assert np.allclose(grid[:5, :7], 0.0) and np.allclose(grid[:5, 8:], 0.5)
    assert np.allclose(grid[6:, :7], 1.0) and np.allclose(grid[6:, 8:], 0.75)
    png(tmp_path / "c.png")


def test_image_grid_uint8_three_dims_and_no_pad(digits):
    images, _ = digits
    fig = plotting.image_grid(images[:6, ..., 0], ncols=6, pad=0)  # (N, H, W) grayscale
    grid = the_image(fig)
    assert grid.shape == (8, 48)
    np.testing.assert_allclose(grid[:, 8:16], images[1, ..., 0] / 255.0, atol=1e-6)


def test_image_grid_rejects_bad_input():
    with pytest.raises(DataError, match="shape"):
        plotting.image_grid(np.zeros((2, 3, 4, 5, 6)))
    with pytest.raises(ConfigError, match="data_range"):
        plotting.image_grid(np.zeros((2, 4, 4, 1)), data_range="bytes")
    with pytest.raises(DataError, match="NaN"):
        plotting.image_grid(np.full((2, 4, 4, 1), np.nan))
    with pytest.raises(ConfigError, match="cannot hold"):
        plotting.image_grid(np.zeros((7, 4, 4, 1)), nrows=2, ncols=3)


def test_plot_samples_from_vae_is_seeded(vae, tmp_path, png):
    fig = plotting.plot_samples(vae, n=16, seed=3, path=tmp_path / "s.png")
    grid = the_image(fig)
    assert grid.shape == (4 * 9 - 1, 4 * 9 - 1)
    assert np.all(np.isfinite(grid)) and grid.min() >= 0 and grid.max() <= 1
    again = the_image(plotting.plot_samples(vae, n=16, seed=3))
    other = the_image(plotting.plot_samples(vae, n=16, seed=4))
    np.testing.assert_array_equal(grid, again)
    assert not np.allclose(grid, other)
    png(tmp_path / "s.png")


def test_plot_samples_of_arrays(digits):
    images, _ = digits
    grid = the_image(plotting.plot_samples(images, n=5))
    assert grid.shape == (2 * 9 - 1, 3 * 9 - 1)


def test_plot_samples_conditional_lines_up_classes(cvae):
    # no labels: classes 0..9 cycle, one class per column
    assert the_image(plotting.plot_samples(cvae, n=20)).shape == (2 * 9 - 1, 10 * 9 - 1)
    # labels repeated per class (as training.write_plots passes them): one class per row
    labels = np.repeat(np.arange(10), 3)
    assert the_image(plotting.plot_samples(cvae, n=30, labels=labels)).shape == (
        10 * 9 - 1, 3 * 9 - 1)


def test_label_columns():
    assert label_columns(np.repeat(np.arange(4), 8)) == 8
    assert label_columns(np.arange(30) % 10) == 10
    assert label_columns(np.array([3, 1, 4, 1, 5])) is None


def test_plot_reconstructions(vae, digits, tmp_path, png):
    images, _ = digits
    fig = plotting.plot_reconstructions(vae, images[:12], n=7, path=tmp_path / "r.png")
    assert len(fig.axes) == 2
    top, bottom = the_image(fig, 0), the_image(fig, 1)
    assert top.shape == bottom.shape == (8, 7 * 9 - 1)
    np.testing.assert_allclose(top[:, :8], images[0, ..., 0] / 255.0, atol=1e-6)
    assert np.all(np.isfinite(bottom)) and 0 <= bottom.min() and bottom.max() <= 1
    png(tmp_path / "r.png")


def test_plot_reconstructions_conditional_needs_labels(cvae, digits):
    images, labels = digits
    with pytest.raises(ConfigError, match="labels"):
        plotting.plot_reconstructions(cvae, images[:4])
    fig = plotting.plot_reconstructions(cvae, images[:4], labels=labels[:4])
    assert the_image(fig, 1).shape == (8, 4 * 9 - 1)


def test_plot_samples_from_gans_map_symmetric_range(dcgan, cgan):
    grid = the_image(plotting.plot_samples(dcgan, n=9, seed=1))
    raw = np.asarray(dcgan.sample(9, seed=1))  # in [-1, 1]
    assert raw.min() < 0  # the generator's tanh output really is symmetric
    np.testing.assert_allclose(grid[:8, :8], (raw[0, ..., 0] + 1) / 2, atol=1e-6)
    assert the_image(plotting.plot_samples(cgan, n=30)).shape == (3 * 9 - 1, 10 * 9 - 1)

"""Latent scatter, manifold and interpolation on real zoo models (8x8, 2-D latents)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

import tf_genai
from tf_genai import plotting
from tf_genai.errors import ConfigError, DataError


def the_image(fig):
    assert len(fig.axes) == 1 and len(fig.axes[0].images) == 1
    return np.asarray(fig.axes[0].images[0].get_array())


def scatter_points(fig):
    return np.concatenate([c.get_offsets() for c in fig.axes[0].collections])


def test_scatter_of_2d_latents_colours_by_label(tmp_path, png):
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(200, 2)).astype(np.float32)
    labels = rng.integers(0, 10, size=200)
    fig = plotting.plot_latent_scatter(latents, labels=labels, path=tmp_path / "s.png")
    assert len(fig.axes) == 1
    assert len(fig.axes[0].collections) == len(np.unique(labels))  # one colour per class
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        str(c) for c in range(10)]
    points = scatter_points(fig)
    assert points.shape == (200, 2) and np.all(np.isfinite(points))
    # points are the latents themselves (regrouped by class)
    np.testing.assert_allclose(np.sort(points[:, 0]), np.sort(latents[:, 0]), rtol=1e-6)
    png(tmp_path / "s.png")


@pytest.mark.parametrize("method", ["auto", "pca", "tsne"])
def test_scatter_projects_wide_latents(method):
    rng = np.random.default_rng(1)
    # two clusters separated along a direction mixing all 6 dimensions
    offset = np.ones(6) * 3.0
    latents = np.concatenate([rng.normal(size=(30, 6)), rng.normal(size=(30, 6)) + offset])
    labels = np.repeat([0, 1], 30)
    fig = plotting.plot_latent_scatter(latents, labels=labels, method=method)
    points0, points1 = (np.asarray(c.get_offsets()) for c in fig.axes[0].collections)
    assert points0.shape == points1.shape == (30, 2)
    # the projection keeps the clusters apart: centroid gap far above the within-cluster spread
    gap = np.linalg.norm(points0.mean(0) - points1.mean(0))
    assert gap > 2 * max(points0.std(0).max(), points1.std(0).max())
    label = fig.axes[0].get_xlabel()
    assert label.startswith("t-SNE" if method == "tsne" else "PC 1")


def test_scatter_from_model_encodes_means_in_batches(vae, digits):
    images, labels = digits
    fig = plotting.plot_latent_scatter(vae, images[:50], labels=labels[:50], batch_size=7)
    mean = vae.encode(images[:50].astype(np.float32) / 255.0)
    expected = np.asarray(mean)
    for c, collection in zip(np.unique(labels[:50]), fig.axes[0].collections):
        np.testing.assert_allclose(collection.get_offsets(), expected[labels[:50] == c],
                                   rtol=1e-4, atol=1e-5)


def test_scatter_errors(vae):
    with pytest.raises(ConfigError, match="images"):
        plotting.plot_latent_scatter(vae)
    with pytest.raises(ConfigError, match="method"):
        plotting.plot_latent_scatter(np.zeros((5, 3)), method="umap")
    with pytest.raises(DataError, match="labels"):
        plotting.plot_latent_scatter(np.zeros((5, 2)), labels=[1, 2])


def test_manifold_decodes_the_whole_grid_in_one_call(vae, counting, tmp_path, png):
    model = counting(vae)
    n = 6
    fig = plotting.plot_latent_manifold(model, n, path=tmp_path / "m.png")
    assert model.calls == [(n * n, 2)]  # ONE decode call for the n*n grid
    grid = the_image(fig)
    assert grid.shape == (n * 8, n * 8)  # seamless
    assert np.all(np.isfinite(grid))
    png(tmp_path / "m.png")
    # cell (row r, column c) is z = (coords[c], coords[n-1-r]): y grows upwards
    coords = plotting.manifold_coordinates(n, "quantiles")
    r, c = 1, 4
    single = np.asarray(vae.decode(np.array([[coords[c], coords[n - 1 - r]]], np.float32)))
    np.testing.assert_allclose(grid[r * 8:(r + 1) * 8, c * 8:(c + 1) * 8], single[0, ..., 0],
                               atol=1e-5)


def test_manifold_coordinates():
    q = plotting.manifold_coordinates(30, "quantiles")
    np.testing.assert_allclose(q, norm.ppf((np.arange(30) + 0.5) / 30), rtol=1e-5)
    np.testing.assert_allclose(q, -q[::-1], atol=1e-6)  # symmetric about the prior mean
    np.testing.assert_allclose(plotting.manifold_coordinates(5, "range", 3.0),
                               [-3, -1.5, 0, 1.5, 3])
    with pytest.raises(ConfigError, match="grid"):
        plotting.manifold_coordinates(5, "log")


def test_manifold_needs_two_dims(counting):
    vae3 = tf_genai.create("mlp_vae", image_shape=(8, 8, 1), latent_dim=3, hidden_units=(8,))
    with pytest.raises(ConfigError, match="latent_dim=3"):
        plotting.plot_latent_manifold(vae3, 4)
    with pytest.raises(ConfigError, match="dims"):
        plotting.plot_latent_manifold(vae3, 4, dims=(1, 1))
    model = counting(vae3)
    fig = plotting.plot_latent_manifold(model, 4, dims=(0, 2), grid="range", extent=1.5)
    z = model.latents[0]
    assert z.shape == (16, 3)
    assert np.all(z[:, 1] == 0) and z[:, 0].max() == pytest.approx(1.5)
    assert fig.axes[0].get_xlabel() == "z[0]" and fig.axes[0].get_ylabel() == "z[2]"


def test_manifold_conditional_needs_a_label(cvae):
    with pytest.raises(ConfigError, match="labels"):
        plotting.plot_latent_manifold(cvae, 3)
    assert the_image(plotting.plot_latent_manifold(cvae, 3, labels=7)).shape == (24, 24)


def test_interpolation_between_latents_linear(vae, counting, tmp_path, png):
    model = counting(vae)
    start, end = np.array([-2.0, 1.0], np.float32), np.array([2.0, -1.0], np.float32)
    fig = plotting.plot_interpolation(model, start, end, steps=7, path=tmp_path / "i.png")
    assert model.calls == [(7, 2)]
    np.testing.assert_allclose(model.latents[0][3], [0.0, 0.0], atol=1e-6)  # the midpoint
    strip = the_image(fig)
    assert strip.shape == (8, 7 * 9 - 1)
    first = np.asarray(vae.decode(start[None]))[0, ..., 0]
    last = np.asarray(vae.decode(end[None]))[0, ..., 0]
    np.testing.assert_allclose(strip[:, :8], first, atol=1e-5)
    np.testing.assert_allclose(strip[:, -8:], last, atol=1e-5)
    png(tmp_path / "i.png")


def test_interpolation_slerp_keeps_the_norm(vae, counting):
    model = counting(vae)
    plotting.plot_interpolation(model, [2.0, 0.0], [0.0, 2.0], steps=5, method="slerp",
                                from_images=False)
    np.testing.assert_allclose(np.linalg.norm(model.latents[0], axis=1), 2.0, rtol=1e-5)
    # nearly parallel vectors fall back to a straight line instead of dividing by ~0
    z = plotting.slerp(np.array([1.0, 0.0]), np.array([2.0, 1e-9]), np.linspace(0, 1, 3))
    np.testing.assert_allclose(z[1], [1.5, 5e-10], atol=1e-6)
    # points of any shape (a diffusion model's x_T): the flattened points' slerp, reshaped
    a, b = np.random.default_rng(0).standard_normal((2, 3, 2, 2))
    t = np.linspace(0, 1, 4)
    np.testing.assert_allclose(plotting.slerp(a, b, t),
                               plotting.slerp(a.ravel(), b.ravel(), t).reshape(4, 3, 2, 2),
                               rtol=1e-6)
    with pytest.raises(DataError, match="shapes"):
        plotting.slerp(a, b.ravel(), t)


def test_interpolation_between_images(vae, digits, counting):
    images, _ = digits
    model = counting(vae)
    fig = plotting.plot_interpolation(model, images[0], images[1], steps=4)
    mean = vae.encode(images[:2].astype(np.float32) / 255.0)
    np.testing.assert_allclose(model.latents[0][[0, -1]], np.asarray(mean), rtol=1e-4, atol=1e-5)
    assert the_image(fig).shape == (8, 4 * 9 - 1)


def test_interpolation_errors(vae):
    with pytest.raises(ConfigError, match="method"):
        plotting.plot_interpolation(vae, [0, 0], [1, 1], method="cubic")
    with pytest.raises(DataError, match="latent_dim"):
        plotting.plot_interpolation(vae, [0, 0, 0], [1, 1, 1], from_images=False)


def test_interpolation_and_manifold_of_gans_use_one_generate_call(dcgan, cgan, counting):
    model = counting(dcgan)
    start, end = np.zeros(4, np.float32), np.ones(4, np.float32)
    strip = the_image(plotting.plot_interpolation(model, start, end, steps=6, method="slerp"))
    assert model.calls == [(6, 4)] and strip.shape == (8, 6 * 9 - 1)
    np.testing.assert_allclose(strip[:, -8:], (np.asarray(dcgan.generate(end[None]))[0, ..., 0]
                                               + 1) / 2, atol=1e-5)
    with pytest.raises(ConfigError, match="encode"):  # a GAN has no encoder
        plotting.plot_interpolation(dcgan, np.zeros((8, 8, 1)), np.ones((8, 8, 1)))
    model = counting(cgan)
    grid = the_image(plotting.plot_latent_manifold(model, 5, dims=(0, 3), labels=2))
    assert model.calls == [(25, 4)] and grid.shape == (40, 40)

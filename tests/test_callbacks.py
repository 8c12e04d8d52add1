"""SampleGrid, TensorBoardImages and KLWarmup during real ``model.fit`` runs on 8x8 digits."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tf_genai
from tf_genai.callbacks import KLWarmup, SampleGrid, TensorBoardImages
from tf_genai.errors import ConfigError
from tf_genai.plotting import compose_grid, to_unit


@pytest.fixture(scope="module")
def digits_ds():
    """256 of scikit-learn's 8x8 digits in [0, 1] as a batched dataset of (images, labels)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images[:256, ..., None] / 16.0).astype(np.float32)
    y = data.target[:256].astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(64)


def tiny(name, **kwargs):
    model = tf_genai.create(name, image_shape=(8, 8, 1), latent_dim=2, filters=(8,),
                            hidden_units=(16,), **kwargs)
    model.compile(optimizer="adam")
    return model


def tiny_gan(name, **kwargs):
    model = tf_genai.create(name, image_shape=(8, 8, 1), latent_dim=3, base_filters=4, **kwargs)
    model.compile()
    return model


@pytest.fixture(scope="module")
def vae_run(digits_ds, tmp_path_factory):
    """ONE 4-epoch fit of a tiny VAE (beta=2) with all three callbacks (one compile, ~5 s)."""
    root = tmp_path_factory.mktemp("vae_run")
    model = tiny("vae", beta=2.0)
    grid = SampleGrid(root / "grids", num_samples=16, seed=5)
    history = model.fit(
        digits_ds.map(lambda x, y: x), epochs=4, verbose=0,
        callbacks=[grid, TensorBoardImages(root / "logs", num_samples=9), KLWarmup(2)],
    ).history
    return model, history, root, grid


def test_sample_grid_writes_a_png_per_epoch_and_a_gif(vae_run):
    model, _, root, callback = vae_run
    names = sorted(os.listdir(root / "grids"))
    assert names == [f"epoch_00{e}.png" for e in range(1, 5)] + ["samples.gif"]
    assert callback.gif_path == str(root / "grids" / "samples.gif")
    with Image.open(root / "grids" / "epoch_004.png") as png:
        last = np.asarray(png)
    # 16 digits of 8x8 in a 4x4 grid with 1-pixel gutters = 35 px, shown 8x bigger (>= 256 px)
    assert last.shape == (35 * 8, 35 * 8)
    # the frame is the model's own seeded sample, after the last epoch
    expected = compose_grid(to_unit(np.asarray(model.sample(16, seed=5))), ncols=4)
    np.testing.assert_allclose(last[::8, ::8] / 255.0, expected, atol=1 / 255 + 1e-6)
    with Image.open(root / "grids" / "samples.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 4
        assert gif.info.get("loop") == 0
        assert gif.size == (280, 280 + 4)  # the grid and the progress bar under it
    with Image.open(root / "grids" / "epoch_001.png") as first:
        assert not np.array_equal(np.asarray(first), last)  # training changed the samples


def test_sample_grid_every_and_conditional_labels(digits_ds, tmp_path):
    model = tiny("cvae")
    callback = SampleGrid(tmp_path, num_samples=20, every=2, gif=False)
    model.fit(digits_ds, epochs=3, verbose=0, callbacks=[callback])
    assert sorted(os.listdir(tmp_path)) == ["epoch_002.png"]
    np.testing.assert_array_equal(callback.samples.labels, np.arange(20) % 10)
    with Image.open(tmp_path / "epoch_002.png") as png:
        # one class per column: 10 columns x 2 rows of 8x8 tiles (89 x 17), upscaled 3x
        assert png.size == (89 * 3, 17 * 3)


def test_sample_grid_on_a_gan_draws_through_the_model(digits_ds, tmp_path):
    model = tiny_gan("dcgan")
    callback = SampleGrid(tmp_path, num_samples=4, seed=1)
    model.fit(digits_ds.map(lambda x, y: x * 2.0 - 1.0), epochs=2, verbose=0,
              callbacks=[callback])
    assert sorted(os.listdir(tmp_path)) == ["epoch_001.png", "epoch_002.png", "samples.gif"]
    expected = compose_grid(to_unit(np.asarray(model.sample(4, seed=1)), "symmetric"), ncols=2)
    with Image.open(tmp_path / "epoch_002.png") as png:
        scale = png.size[0] // 17  # 2x2 tiles of 8 px + gutter, upscaled
        np.testing.assert_allclose(np.asarray(png)[::scale, ::scale] / 255.0, expected,
                                   atol=1 / 255 + 1e-6)


def test_tensorboard_images_logs_one_image_per_epoch(vae_run):
    _, _, root, _ = vae_run
    files = glob.glob(str(root / "logs" / "images" / "events.out.tfevents.*"))
    assert len(files) == 1
    steps = []
    for event in tf.compat.v1.train.summary_iterator(files[0]):
        for value in event.summary.value:
            if value.tag == "samples":
                assert value.metadata.plugin_data.plugin_name == "images"
                width, height, encoded = tf.make_ndarray(value.tensor)
                image = tf.io.decode_png(encoded).numpy()
                assert (int(width), int(height)) == (26, 26)  # 3x3 tiles of 8 px + gutters
                assert image.shape == (26, 26, 1)
                steps.append(event.step)
    assert steps == [0, 1, 2, 3]


def test_kl_warmup_changes_the_weight_training_uses(vae_run):
    model, history, _, _ = vae_run
    assert history["kl_weight"] == [0.0, 1.0, 2.0, 2.0]  # target defaults to beta
    assert float(model.kl_weight.numpy()) == 2.0
    loss = np.array(history["loss"])
    recon, kl = np.array(history["reconstruction_loss"]), np.array(history["kl_loss"])
    # the loss train_step optimised used the assigned weight: loss = recon + w * kl each epoch
    np.testing.assert_allclose(loss, recon + np.array(history["kl_weight"]) * kl, atol=1e-3)
    # and not the constant beta: at epoch 0 that would add 2 * kl, far above the tolerance
    assert 2.0 * kl[0] > 1e-2


def test_kl_warmup_explicit_target_and_errors():
    cb = KLWarmup(4, target=0.5)
    assert [cb.weight(e) for e in range(6)] == [0.0, 0.125, 0.25, 0.375, 0.5, 0.5]
    with pytest.raises(ConfigError, match="warmup_epochs"):
        KLWarmup(-1)
    with pytest.raises(ConfigError, match="target"):
        KLWarmup(2, target=float("nan"))
    cb.set_model(tiny_gan("gan"))  # a model without a kl_weight variable is refused
    with pytest.raises(ConfigError, match="kl_weight"):
        cb.on_train_begin()

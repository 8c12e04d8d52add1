"""The family contract: a third family defined here, in a few lines, runs through the package.

``ToyAutoencoder`` is a minimal :class:`tf_genai.models.base.GenerativeModel` subclass (a
dense encoder with Gaussian code noise and a dense decoder, squared error). Nothing in
``tf_genai/`` knows it, yet ``fit``, ``.keras`` save/load that keeps training, resume from
``BackupAndResume``, a SavedModel loaded by plain TensorFlow, ``evaluate_model``,
``plot_samples`` and ``tf_genai.training.train`` all work on it: the package talks to the
contract, never to a family.
"""

from __future__ import annotations

import json
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tf_genai import distribute, registry
from tf_genai.models.base import GenerativeModel

from zoo_helpers import _PLAIN_TF_SCRIPT, _finish, _run_python

TOY = "toy_autoencoder"


class ToyAutoencoder(GenerativeModel):
    """A toy third family: a dense autoencoder with a noisy code."""

    family = "toy"
    render_signature = "decode"
    render_part = "decoder"

    def __init__(self, image_shape=(8, 8, 1), latent_dim=4, seed=0, **kwargs):
        super().__init__(**kwargs)
        self._init_contract(image_shape=image_shape, latent_dim=latent_dim, num_classes=None,
                            seed=seed)
        pixels = int(np.prod(self.image_shape))
        self.encoder = keras.Sequential([
            keras.Input(self.image_shape), keras.layers.Flatten(),
            keras.layers.Dense(self.latent_dim, name="toy_code",
                               kernel_initializer=keras.initializers.GlorotUniform(seed))],
            name="toy_encoder")
        self.decoder = keras.Sequential([
            keras.Input((self.latent_dim,)),
            keras.layers.Dense(pixels, activation="sigmoid", name="toy_pixels",
                               kernel_initializer=keras.initializers.GlorotUniform(seed + 1)),
            keras.layers.Reshape(self.image_shape)], name="toy_decoder")
        self._init_trackers()
        self.built = True

    def get_config(self):
        return {"image_shape": list(self.image_shape), "latent_dim": self.latent_dim,
                "seed": self.seed, "name": self.name}

    def render(self, z, labels=None):
        return self.decoder(z)

    def loss_terms(self, images, labels, training):
        code = self.encoder(images, training=training)  # (batch, latent)
        noise = distribute.random_for_batch(keras.random.normal, ops.shape(code),
                                            seed=self.seed_generator)
        # Mixed-precision safe, as a family must be: training_options() picks mixed_bfloat16 on
        # CPUs with bf16 units, so the code is bf16 there; the loss is taken in float32.
        noise = ops.cast(noise, code.dtype)
        recon = ops.cast(self.decoder(code + 0.1 * noise, training=training), "float32")
        images = ops.cast(images, "float32")
        return {"loss": ops.mean(ops.sum(ops.square(images - recon), axis=(1, 2, 3)))}


@pytest.fixture(scope="module", autouse=True)
def toy_in_zoo():
    registry.register(TOY, description="a toy third family (tests only)")(ToyAutoencoder)
    yield
    registry.unregister(TOY)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return (load_digits().images[:256] / 16.0).astype("float32")[..., None]  # (256, 8, 8, 1)


def _data(x):
    return tf.data.Dataset.from_tensor_slices(x).batch(32)


def _toy(seed=0):
    model = registry.create(TOY, seed=seed)
    model.compile()  # the contract's default recipe: Adam(1e-3)
    return model


def test_fit_save_load_keeps_training(digits, tmp_path):
    model = _toy()
    first = model.fit(_data(digits), epochs=2, verbose=0).history["loss"]
    assert np.all(np.isfinite(first)) and first[1] < first[0]
    path = tmp_path / "toy.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is ToyAutoencoder and loaded.name == model.name
    z = np.random.default_rng(0).standard_normal((5, 4)).astype("float32")
    np.testing.assert_allclose(loaded.render(z), model.render(z), atol=1e-6)
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy())
    more = loaded.fit(_data(digits), epochs=1, verbose=0).history["loss"]
    assert more[0] < first[0]  # continues the curve instead of restarting it


def test_backup_and_resume_continues_like_an_uninterrupted_run(digits, tmp_path):
    from tf_genai.checkpointing import BackupAndResume

    whole = _toy(seed=1)
    whole.fit(_data(digits), epochs=3, verbose=0)
    first = _toy(seed=1)
    first.fit(_data(digits), epochs=2, verbose=0, callbacks=[BackupAndResume(tmp_path)])
    resumed = _toy(seed=1)  # a fresh process would rebuild it the same way
    history = resumed.fit(_data(digits), epochs=3, verbose=0,
                          callbacks=[BackupAndResume(tmp_path)]).history
    assert len(history["loss"]) == 1  # only epoch 3 ran
    for a, b in zip(resumed.weights, whole.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)


def test_saved_model_loads_in_plain_tensorflow(digits, tmp_path):
    from tf_genai import export

    model = _toy()
    model.fit(_data(digits), epochs=1, verbose=0)
    export_dir = export.export_saved_model(model, tmp_path / "export")
    z = np.random.default_rng(1).standard_normal((3, 4)).astype("float32")
    calls = {"decode": ["decode", {"z": "z"}], "default": ["serving_default", {"z": "z"}],
             "sample": ["sample", {"num_samples": "n", "seed": "seed"}]}
    (tmp_path / "calls.json").write_text(json.dumps(calls))
    np.savez(tmp_path / "calls.json.npz", z=z, n=np.int32(4), seed=np.int32(9))
    out = tmp_path / "out.json"
    _finish(_run_python(_PLAIN_TF_SCRIPT, str(export_dir), str(tmp_path / "calls.json"),
                        str(out)), "plain-TF load of the toy export")
    result, got = json.loads(out.read_text()), dict(np.load(str(out) + ".npz"))
    assert result["tf_genai_modules"] == []
    assert result["signatures"] == ["decode", "sample", "serving_default"]
    assert result["metadata"]["family"] == "toy"
    np.testing.assert_allclose(got["decode/images"], model.render(z), atol=1e-6)
    np.testing.assert_allclose(got["default/images"], model.render(z), atol=1e-6)
    np.testing.assert_allclose(got["sample/images"], model.sample(4, seed=9), atol=1e-6)


def test_evaluate_and_plot_samples(digits, tmp_path):
    from tf_genai.evaluation.report import evaluate_model
    from tf_genai.plotting import plot_samples

    model = _toy()
    model.fit(_data(digits), epochs=1, verbose=0)
    result = evaluate_model(model, "digits", num_generated=200, max_images=200)
    assert result["family"] == "toy" and "nll" not in result  # no likelihood: no NLL
    assert np.isfinite(result["fid"]) and 0.0 <= result["class_coverage"] <= 1.0
    figure = plot_samples(model, n=16, seed=0, path=tmp_path / "samples.png")
    assert (tmp_path / "samples.png").stat().st_size > 0 and figure.axes


def test_train_writes_a_run_for_the_new_family(tmp_path):
    from tf_genai import export
    from tf_genai.training import train

    result = train(TOY, data="digits", out_dir=tmp_path / "run", epochs=2, batch_size=64,
                   verbose=0)
    assert {"model", "history", "run", "samples"} <= set(result.files)
    assert len(result.history["loss"]) == 2 and "val_loss" in result.history
    reloaded = export.load_model(tmp_path / "run" / "model.keras")
    assert type(reloaded) is ToyAutoencoder


# "import tf_genai alone lets keras.saving.load_model rebuild every zoo model, and fit continues"
# is checked by tests/test_zoo.py: its reload process imports only tf_genai, then
# keras.saving.load_model, then fits an epoch (zoo_helpers.reload_and_continue).


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

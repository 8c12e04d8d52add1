"""The family contract: two toy families defined outside the package run through all of it.

``tests/toy_families.py`` defines ``ToyAutoencoder`` (a Gaussian latent that encodes) and
``ToyPixels`` (no latent, an exact likelihood). Nothing in ``tf_genai/`` knows them, yet
``fit``, the shared zoo checks (``.keras`` save and reload in a new process that keeps
training, a SavedModel loaded by plain TensorFlow, TFLite where the model has a network to
convert), ``BackupAndResume``, ``evaluate_model`` (the exact likelihood in nats and bits/dim),
``plot_samples``, ``SampleGrid`` and the CLI's ``train`` all work on both: the package reads
capabilities, never a family.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import tensorflow as tf

import toy_families
import zoo_helpers
from tf_genai import registry
from tf_genai.capabilities import Capabilities
from toy_families import LEVELS, TOY_LATENT, TOY_PIXELS, ToyAutoencoder, ToyPixels

TOYS = [TOY_LATENT, TOY_PIXELS]


@pytest.fixture(scope="module", autouse=True)
def toys_in_zoo():
    toy_families.register()
    yield
    toy_families.unregister()


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return (load_digits().images[:256] / 16.0).astype("float32")[..., None]  # (256, 8, 8, 1)


def _data(x):
    return tf.data.Dataset.from_tensor_slices(x).batch(32)


def _toy(name, seed=0):
    model = registry.create(name, seed=seed)
    model.compile()  # the contract's default recipe
    return model


def test_the_toys_declare_what_they_can_do():
    latent, pixels = registry.create(TOY_LATENT), registry.create(TOY_PIXELS)
    assert latent.capabilities == Capabilities(latent=True, encodes=True)
    assert pixels.capabilities == Capabilities(likelihood="exact")
    assert type(latent) is ToyAutoencoder and type(pixels) is ToyPixels


@pytest.mark.parametrize("name", TOYS)
def test_fit_lowers_the_loss(name, digits):
    history = _toy(name).fit(_data(digits), epochs=2, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[1] < history[0]


@pytest.mark.parametrize("name", TOYS)
def test_shared_zoo_checks(name, tmp_path):
    """The checks every zoo model runs (tests/test_zoo.py, tests/test_export.py)."""
    zoo_helpers.check_config_round_trip(name)
    for part in ("keras", "saved_model", "tflite"):
        (tmp_path / part).mkdir()
    zoo_helpers.check_save_load_continue(name, tmp_path / "keras", imports=("toy_families",))
    zoo_helpers.check_export_in_plain_tf(name, tmp_path / "saved_model")
    if zoo_helpers.make_model(name).tflite_signature is not None:
        zoo_helpers.check_tflite(name, tmp_path / "tflite")


@pytest.mark.parametrize("name", TOYS)
def test_backup_and_resume_continues_like_an_uninterrupted_run(name, digits, tmp_path):
    from tf_genai.checkpointing import BackupAndResume

    whole = _toy(name, seed=1)
    whole.fit(_data(digits), epochs=3, verbose=0)
    first = _toy(name, seed=1)
    first.fit(_data(digits), epochs=2, verbose=0, callbacks=[BackupAndResume(tmp_path)])
    resumed = _toy(name, seed=1)  # a fresh process would rebuild it the same way
    history = resumed.fit(_data(digits), epochs=3, verbose=0,
                          callbacks=[BackupAndResume(tmp_path)]).history
    assert len(history["loss"]) == 1  # only epoch 3 ran
    for a, b in zip(resumed.weights, whole.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)


def test_evaluate_reports_the_exact_likelihood_in_nats_and_bits(digits):
    from tf_genai.evaluation.report import evaluate_model

    model = _toy(TOY_PIXELS)
    model.fit(_data(digits), epochs=3, verbose=0)
    result = evaluate_model(model, "digits", num_generated=200, max_images=200)
    # The same figure by hand: -sum log softmax(logits)[level] over subpixels, averaged.
    from tf_genai import data

    held_out, _ = data.load("digits", split="heldout")
    levels = np.round(held_out[:200].reshape(200, -1) * (LEVELS - 1)).astype(int)  # (200, 64)
    logits = model.logits.numpy().astype("float64")
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))  # (64, 256)
    by_hand = -log_p[np.arange(64)[None], levels].sum(axis=1).mean()
    assert result["likelihood"] == "exact" and result["nll_unit"] == "nats per image"
    np.testing.assert_allclose(result["nll"], by_hand, rtol=1e-5)
    np.testing.assert_allclose(result["nll_bits_per_dim"], by_hand / (64 * math.log(2)),
                               rtol=1e-5)
    assert result["likelihood_levels"] == LEVELS
    assert result["nll_bits_per_dim"] < 8.0  # better than the uniform start (8 bits/dim)
    assert np.isfinite(result["fid"]) and 0.0 <= result["class_coverage"] <= 1.0


def test_evaluate_of_a_model_without_a_likelihood_has_no_nll(digits):
    from tf_genai.evaluation.report import evaluate_model

    model = _toy(TOY_LATENT)
    model.fit(_data(digits), epochs=1, verbose=0)
    result = evaluate_model(model, "digits", num_generated=200, max_images=200)
    assert result["family"] == "toy" and "nll" not in result
    assert np.isfinite(result["fid"])


@pytest.mark.parametrize("name", TOYS)
def test_plot_samples_and_sample_grid_draw_through_the_model(name, digits, tmp_path):
    from PIL import Image

    from tf_genai.callbacks import SampleGrid
    from tf_genai.plotting import compose_grid, plot_samples

    model = _toy(name)
    grid = SampleGrid(tmp_path / "grid", num_samples=9, seed=3, gif=False)
    model.fit(_data(digits), epochs=2, verbose=0, callbacks=[grid])
    with Image.open(tmp_path / "grid" / "epoch_002.png") as png:
        frame = np.asarray(png)
    scale = frame.shape[0] // 26  # 3x3 tiles of 8 px with 1-px gutters, upscaled
    expected = compose_grid(np.asarray(model.sample(9, seed=3)), ncols=3)
    np.testing.assert_allclose(frame[::scale, ::scale] / 255.0, expected, atol=1 / 255 + 1e-6)
    figure = plot_samples(model, n=16, seed=0, path=tmp_path / "samples.png")
    assert (tmp_path / "samples.png").stat().st_size > 0 and figure.axes


@pytest.mark.parametrize("name, plots", [
    (TOY_LATENT, {"samples", "latent_scatter", "reconstructions"}),
    (TOY_PIXELS, {"samples"}),
])
def test_cli_train_writes_a_run_for_the_new_family(name, plots, tmp_path, capsys):
    from tf_genai import cli, export

    out = tmp_path / "run"
    assert cli.main(["train", name, "--epochs", "2", "--batch-size", "64", "--out", str(out),
                     "--quiet"]) == 0
    written = {line.split(":")[0].removeprefix("wrote ") for line in
               capsys.readouterr().out.splitlines() if line.startswith("wrote ")}
    assert written == {"model", "history", "run"} | plots
    run = json.loads((out / "run.json").read_text())
    assert run["model"] == name and run["epochs_done"] == 2
    reloaded = export.load_model(out / "model.keras")
    assert type(reloaded) is type(registry.create(name))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

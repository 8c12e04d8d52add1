"""tf_genai.training.train: what it refuses before training, and the time budget."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tf_genai.errors import ConfigError, DataError
from tf_genai.training import train


@pytest.mark.parametrize("name", ["gan", "dcgan", "wgan_gp", "cgan"])
def test_gan_early_stopping_is_refused_before_training(name, tmp_path):
    """Review finding 6.6: val_g_loss does not measure sample quality, so --early-stopping on a
    GAN would keep an arbitrary epoch; it is refused, and nothing is written."""
    with pytest.raises(ConfigError, match="cannot stop early.*sample quality"):
        train(name, data="digits", out_dir=tmp_path / "run", epochs=2, early_stopping=2,
              verbose=0)
    assert not (tmp_path / "run").exists()


def test_vae_early_stopping_monitors_the_elbo(tmp_path):
    result = train("mlp_vae", data="digits", out_dir=tmp_path / "run", epochs=3,
                   early_stopping=1, verbose=0, plots=False)
    assert "val_loss" in result.history


def test_labels_beyond_the_given_classes_are_a_data_error_before_training(tmp_path):
    from tf_genai.data import load

    images, labels = load("digits")
    with pytest.raises(DataError, match="num_classes=5"):
        train("cvae", data=(images[:64], labels[:64]), split="all", epochs=1,
              model_kwargs={"num_classes": 5}, out_dir=tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_time_budget_stops_at_an_epoch_end_with_a_complete_run_that_resumes(tmp_path):
    from tf_genai import export

    start = time.perf_counter()
    result = train("mlp_vae", data="digits", out_dir=tmp_path / "run", epochs=300,
                   batch_size=32, time_budget=3.0, verbose=0)
    seconds = time.perf_counter() - start
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    done = len(result.history["loss"])
    assert run["stopped_by_time_budget"] is True and run["time_budget"] == 3.0
    assert 1 <= done < 300 and run["epochs_done"] == done
    assert seconds < 120  # it stopped long before 300 epochs
    model = export.load_model(tmp_path / "run" / "model.keras")
    assert int(model.optimizer.iterations.numpy()) == done * int(np.ceil(1294 / 32))
    # --resume continues from the last epoch the budget let finish.
    more = train("mlp_vae", data="digits", out_dir=tmp_path / "run", epochs=done + 2,
                 batch_size=32, resume=True, verbose=0, plots=False)
    assert len(more.history["loss"]) == done + 2


def test_time_budget_must_be_positive():
    with pytest.raises(ConfigError, match="time_budget"):
        train("vae", data="digits", time_budget=0, verbose=0)

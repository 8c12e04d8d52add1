"""tf_genai.training.train: what it refuses before training, and the time budget."""

from __future__ import annotations

import json
import time

import keras
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


def test_time_budget_stop_is_said_in_the_summary(tmp_path):
    result = train("mlp_vae", data="digits", out_dir=tmp_path / "run", epochs=300,
                   batch_size=64, time_budget=1.0, verbose=0, plots=False)
    done = len(result.history["loss"])
    assert result.stopped_by == "time_budget" and result.epochs == 300
    why, losses, model = result.summary()
    assert why.startswith(f"stopped after epoch {done} of 300: time_budget=1.0")
    assert "resume=True continues" in why
    assert losses.startswith("final loss ") and "val_loss" in losses
    assert model == f"model: {tmp_path / 'run' / 'model.keras'}"
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["stopped_by"] == "time_budget"


# --- the run directory after a failure or Ctrl-C ---------------------------------------------

class _CtrlC(keras.callbacks.Callback):
    """Raises KeyboardInterrupt (what SIGINT raises) at the start of epoch ``epoch``, or in
    its first batch when ``in_batch``."""

    def __init__(self, epoch, in_batch=False):
        super().__init__()
        self.epoch, self.in_batch, self._now = epoch, in_batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._now = epoch
        if epoch == self.epoch and not self.in_batch:
            raise KeyboardInterrupt

    def on_train_batch_end(self, batch, logs=None):
        if self._now == self.epoch and self.in_batch:
            raise KeyboardInterrupt


def _tree(folder):
    """Every file under ``folder`` with its bytes."""
    from pathlib import Path

    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


SMALL = dict(data="digits", batch_size=256, validation_fraction=0.0, verbose=0)


def test_ctrl_c_before_a_new_runs_first_epoch_leaves_the_old_run_as_it_was(tmp_path):
    from tf_genai.errors import TrainingInterrupted

    run = tmp_path / "run"
    train("mlp_vae", out_dir=run, epochs=1, **SMALL)
    before = _tree(run)
    with pytest.raises(TrainingInterrupted, match="before its first epoch was saved") as err:
        train("mlp_vae", out_dir=run, epochs=3, overwrite=True, callbacks=[_CtrlC(0, True)],
              **SMALL)
    assert err.value.epochs_done == 0 and err.value.backup is None
    assert _tree(run) == before  # every file, the backup's included, and nothing more

    fresh = tmp_path / "fresh"  # a new directory goes again
    with pytest.raises(TrainingInterrupted):
        train("mlp_vae", out_dir=fresh, epochs=3, callbacks=[_CtrlC(0, True)], **SMALL)
    assert not fresh.exists()


def test_ctrl_c_after_a_new_runs_first_epoch_leaves_the_new_run_to_resume(tmp_path):
    from tf_genai import checkpointing
    from tf_genai.errors import TrainingInterrupted

    run = tmp_path / "run"
    train("mlp_vae", out_dir=run, epochs=1, **SMALL)
    (run / ".backup.tmp-killed").mkdir()  # what a SIGKILL before the first epoch leaves
    with pytest.raises(TrainingInterrupted, match="after epoch 2 of 4.*resume=True") as err:
        train("mlp_vae", out_dir=run, epochs=4, overwrite=True, callbacks=[_CtrlC(2)], **SMALL)
    assert err.value.epochs_done == 2 and err.value.epochs == 4
    assert checkpointing.backup_epoch(run / "backup") == 2
    # The old run's files are gone (they would pass for the new run's), and the killed run's
    # staging folder; only the new run's backup stays.
    assert sorted(p.name for p in run.iterdir()) == ["backup"]
    assert sorted(p.name for p in (run / "backup").iterdir()) == [
        "config.json", "latest", "previous", "training_options.json"]
    assert json.loads((run / "backup" / "config.json").read_text())["epochs"] == 4
    more = train("mlp_vae", out_dir=run, epochs=4, resume=True, **SMALL)
    assert len(more.history["loss"]) == 4 and more.stopped_by == "epochs"


def test_resume_with_other_arguments_names_each_difference(tmp_path):
    run = tmp_path / "run"
    train("mlp_vae", out_dir=run, epochs=1, plots=False, **SMALL)
    with pytest.raises(ConfigError) as err:
        train("mlp_vae", out_dir=run, epochs=2, resume=True, latent_dim=3,
              **{**SMALL, "data": "mnist"})
    message = str(err.value)
    assert ("it was started with data='digits', latent_dim=None; this call has data='mnist', "
            "latent_dim=3") in message
    assert "overwrite=True" in message
    # epochs may change on a resume, and the model may be named in any case.
    assert len(train("MLP_VAE", out_dir=run, epochs=2, resume=True, plots=False,
                     **SMALL).history["loss"]) == 2

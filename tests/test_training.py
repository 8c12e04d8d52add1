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


# ----------------------------------------------------- a failed write keeps the previous file
# In a new process whose file-size limit is a third of the file being replaced, each writer of
# a run fails half-way (EFBIG); the previous file must still be there, whole and loadable. The
# backup comes last: h5py may crash the process on EFBIG, which is a kill mid-write as well.
_FAILING_WRITES = """
import json, resource, signal, sys
from pathlib import Path
from tf_genai import checkpointing, export, outputs, training
from tf_genai.callbacks import SampleGrid
from tf_genai.data import load, make_dataset

root = Path(sys.argv[1])
run = root / "run"
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG errors instead of a kill
model = export.load_model(run / "model.keras")
images, labels = load("digits")

def limited(name, file, write):
    print(json.dumps({"started": name}), flush=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (file.stat().st_size // 3, resource.RLIM_INFINITY))
    try:
        write()
        error = None
    except Exception as err:  # Keras and h5py wrap the OSError in their own types
        error = f"{type(err).__name__}: {err}"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE,
                           (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print(json.dumps({name: error}), flush=True)

limited("model.keras", run / "model.keras",
        lambda: training.write_run(model, {"loss": [1.0]}, run, plots=False, run_config={}))
limited("history.json", run / "history.json",
        lambda: outputs.write_json(run / "history.json", {"loss": [0.5] * 1000}))
limited("samples.png", run / "samples.png",
        lambda: training.write_plots(model, run, images=images[:64]))
grid = SampleGrid(run / "grid", num_samples=16)
grid.set_model(model)
grid.on_train_begin()
limited("epoch_001.png", run / "grid" / "epoch_001.png", lambda: grid.on_epoch_end(0))
gif = SampleGrid(root / "other_grid", num_samples=16)
gif.set_model(model)
gif.on_train_begin()
gif.on_epoch_end(0)
gif.directory = str(run / "grid")  # its GIF replaces the run's
limited("samples.gif", run / "grid" / "samples.gif", lambda: gif.on_train_end())
limited("export", root / "export" / "variables" / "variables.data-00000-of-00001",
        lambda: export.export_saved_model(model, root / "export", overwrite=True))
data = make_dataset(images[:64], batch_size=32, shuffle=False)
limited("backup", run / "backup" / "latest" / "model.weights.h5",
        lambda: model.fit(data, epochs=2, verbose=0,
                          callbacks=[checkpointing.BackupAndResume(run / "backup")]))
"""


@pytest.mark.subprocess
def test_every_failed_write_keeps_the_previous_run_files_whole(tmp_path):
    """model.keras, history.json, pictures, the sample grid and its GIF, the export and the
    backup: a write that fails half-way leaves the previous file, byte for byte; the model and
    the export still load and the backup still resumes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tf_genai import checkpointing, export
    from tf_genai.callbacks import SampleGrid
    from tf_genai.data import load

    images, labels = load("digits")
    run = tmp_path / "run"
    result = train("mlp_vae", data=(images[:64], labels[:64]), out_dir=run, epochs=1,
                   batch_size=32, validation_fraction=0.0, verbose=0,
                   callbacks=[SampleGrid(run / "grid", num_samples=16)])
    export.export_saved_model(result.model, tmp_path / "export")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    repo = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])
    child = subprocess.run([sys.executable, "-c", _FAILING_WRITES, str(tmp_path)], check=False,
                           env=dict(os.environ, PYTHONPATH=path), capture_output=True,
                           text=True, timeout=300)
    steps = {}
    for line in child.stdout.splitlines():
        steps.update(json.loads(line))
    started = steps.pop("started")
    if child.returncode != 0:  # only a crash inside the last step (the backup) is expected
        assert started == "backup" and "backup" not in steps, child.stderr[-5000:]
    assert set(steps) >= {"model.keras", "history.json", "samples.png", "epoch_001.png",
                          "samples.gif", "export"}, child.stderr[-5000:]
    assert all(error and "too large" in error for error in steps.values()), steps

    # No file lost, none added (no temporary file left), none changed.
    after = {p for p in tmp_path.rglob("*") if p.is_file() and "other_grid" not in p.parts
             and ".incoming" not in p.parts}  # the backup's staging folder, rebuilt each epoch
    assert after == set(before), f"files added or lost: {sorted(map(str, after ^ set(before)))}"
    changed = [str(p.relative_to(tmp_path)) for p in after if p.read_bytes() != before[p]]
    assert not changed, f"a failed write changed {changed}"
    export.load_model(run / "model.keras")
    assert export.read_metadata(tmp_path / "export")["family"] == "vae"
    assert checkpointing.backup_epoch(run / "backup") == 1


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


# ------------------------------------------------------------ flips and augmentation


def _distinct_colour_images(n=40, shape=(4, 6, 3)):
    """uint8 images no two of which (nor any one's mirror image) are equal."""
    return np.random.default_rng(5).integers(0, 256, (n, *shape), dtype=np.uint8)


def _epochs(images, **options):
    from tf_genai.training import epoch_dataset

    ds, steps = epoch_dataset(images, batch_size=16, scale="symmetric", **options)
    return np.concatenate([b.numpy() for b in ds]), steps


def test_flips_are_drawn_per_seed_and_epoch_and_resume_the_same():
    images = _distinct_colour_images()
    flipped, _ = _epochs(images, seed=3, epochs=3, flip=True)
    again, _ = _epochs(images, seed=3, epochs=3, flip=True)
    np.testing.assert_array_equal(flipped, again)  # seeded
    plain, _ = _epochs(images, seed=3, epochs=3)
    n = len(images)
    mirrored = np.zeros(len(plain), bool)
    for i, (f, p) in enumerate(zip(flipped, plain)):  # the same order; each image as is or mirrored
        mirrored[i] = np.array_equal(f, p[:, ::-1]) and not np.array_equal(f, p)
        assert mirrored[i] or np.array_equal(f, p), i
    assert 0.3 < mirrored.mean() < 0.7  # about half, out of 120
    per_epoch = mirrored.reshape(3, n)
    assert not np.array_equal(per_epoch[0], per_epoch[1])  # new draws every epoch
    resumed, _ = _epochs(images, seed=3, epochs=3, initial_epoch=1, flip=True)
    np.testing.assert_array_equal(resumed, flipped[n:])  # epochs 1-2 as in the full run


def test_flip_and_augmentation_defaults_follow_the_capabilities():
    from tf_genai import augment
    from tf_genai.capabilities import Capabilities
    from tf_genai.training import AUGMENT_BELOW, augment_policy, flips

    gan = Capabilities(latent=True, augments=True)
    vae = Capabilities(latent=True, encodes=True, likelihood="bound")
    diffusion = Capabilities(latent=True, encodes=True, iterative=True)
    assert flips(None, gan, 3) and flips(None, diffusion, 3)
    assert not flips(None, vae, 3)  # a likelihood model's data stays as it is
    assert not flips(None, gan, 1)  # grey: digits and letters have a handedness
    assert flips(True, vae, 1) and not flips(False, gan, 3)
    assert augment_policy(None, gan, 3728) == augment.DIFF_AUGMENT
    assert augment_policy(None, gan, AUGMENT_BELOW) == ""
    assert augment_policy("", gan, 10) == "" and augment_policy("cutout", gan, 10**6) == "cutout"
    assert augment_policy(None, vae, 10) is None


def test_a_run_flips_and_augments_a_gan_but_not_a_vae_by_default(tmp_path):
    images = _distinct_colour_images(32, (8, 8, 3))
    used = {}
    for name, kwargs in (("vae", {}), ("dcgan", {"base_filters": 4})):
        train(name, data=images, split="all", epochs=1, batch_size=16, out_dir=tmp_path / name,
              plots=False, verbose=0, model_kwargs=kwargs)
        run = json.loads((tmp_path / name / "run.json").read_text())
        used[name] = (run["augment_used"], run["flip_used"], run["model_kwargs"].get("augment"))
    assert used["vae"] == (None, False, None)
    assert used["dcgan"] == ("color,translation,cutout", True, "color,translation,cutout")
    result = train("dcgan", data=images, split="all", epochs=1, batch_size=16, plots=False,
                   verbose=0, augment="none", flip=False, model_kwargs={"base_filters": 4})
    assert result.model.get_config()["augment"] == ""


def test_augment_and_flip_options_are_checked():
    from tf_genai.train_config import TrainConfig

    with pytest.raises(ConfigError, match="policy"):
        TrainConfig(model="dcgan", augment="rotate")
    with pytest.raises(ConfigError, match="does not augment"):
        TrainConfig(model="vae", augment="cutout")
    with pytest.raises(ConfigError, match="twice"):
        TrainConfig(model="dcgan", augment="", model_kwargs={"augment": "cutout"})
    with pytest.raises(ConfigError, match="flip"):
        TrainConfig(model="dcgan", flip="yes")
    assert TrainConfig(model="vae", augment="none").augment == ""
    assert TrainConfig(model="sngan", augment=" colour ").augment == "color"

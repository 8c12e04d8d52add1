"""Resume after a crash (SIGKILL mid-epoch) and stop on NaN keeping the last good backup.

The killed and resumed runs are real subprocesses running this file as a script (``worker``
mode): the worker pauses inside a chosen batch and says so in a file; the test then sends it
SIGKILL, starts it again with ``resume=True`` and compares the final weights with an
uninterrupted run's.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# 18 steps per epoch: train() runs them as 2 executions of 9 (steps_per_execution divides the
# epoch), so the kill at batch 9 of the third epoch (zero-based) lands in the middle of an epoch.
EPOCHS, BATCH, NUM_IMAGES = 3, 16, 288
KILL_EPOCH, KILL_BATCH = 2, 9
# dynamic binarization + k draws; two optimizers + GP noise; random timesteps + noise + the EMA;
# a vae streamed from PNG files (train(stream=True): the per-(seed, epoch) file order); and
# sngan on the digits in colour: spectral normalisation's u, the GANs' default augmentation
# and the default horizontal flips of colour data (per-(seed, epoch) draws)
RESUME_MODELS = ("iwae", "wgan_gp", "ddpm", "vae_stream", "sngan_colour")
RUN_ARGS = {"vae_stream": {"model": "vae", "stream": True},
            "sngan_colour": {"model": "sngan", "channels": 3}}
MODEL_KWARGS = {"gan": {"dropout": 0.0}, "dcgan": {"dropout": 0.0}, "wgan_gp": {"dropout": 0.0},
                "cgan": {"dropout": 0.0}, "ddpm": {"widths": (8,), "timesteps": 50},
                "sngan": {"base_filters": 8, "generator_filters": 8}}


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _start(args: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "worker", json.dumps(args)], cwd=REPO,
                            env=_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _wait(proc: subprocess.Popen, log: Path, timeout: float) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{log.read_text()[-5000:]}"


# --------------------------------------------------------------------------- worker mode
def _worker(args: dict) -> None:
    """Train ``args["model"]`` into ``args["out_dir"]``; optionally park inside one batch."""
    import keras

    from tf_genai.data import load
    from tf_genai.training import train

    class ParkInBatch(keras.callbacks.Callback):
        """Announce the chosen batch, then sleep there until the test kills the process."""

        def __init__(self):
            super().__init__()
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if (self.epoch, batch) == (KILL_EPOCH, KILL_BATCH):  # half of epoch 3 done
                Path(args["park"]).write_text(str(os.getpid()))
                time.sleep(600)

    images, labels = load("digits")
    kwargs = MODEL_KWARGS.get(args["model"], {})
    data = args["folder"] if args.get("stream") else (images[:NUM_IMAGES], labels[:NUM_IMAGES])
    result = train(
        args["model"], data=data, split="all", stream=bool(args.get("stream")),
        channels=args.get("channels"),
        out_dir=args["out_dir"], epochs=args.get("epochs", EPOCHS), batch_size=BATCH, seed=5,
        validation_fraction=0.0,
        deterministic=True,
        resume=args.get("resume", False), plots=False, verbose=0, model_kwargs=kwargs,
        callbacks=[ParkInBatch()] if args.get("park") else [],
    )
    np.savez(Path(args["out_dir"]) / "final_weights.npz", *result.model.get_weights())
    Path(args["out_dir"], "history_seen.json").write_text(json.dumps(result.history))


# --------------------------------------------------------------------------- the kill test
def _png_folder(folder: Path) -> str:
    """The run's digits as 8-bit PNG files, for the streamed run."""
    from PIL import Image

    from tf_genai.data import load

    folder.mkdir()
    images, _ = load("digits")
    for i, image in enumerate(np.round(images[:NUM_IMAGES, ..., 0] * 255).astype("uint8")):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    return str(folder)


def _kill_and_resume(tmp_path, ref, killed, resumed) -> None:
    folder = _png_folder(tmp_path / "pngs")
    run_args = {name: {"model": name, "folder": folder, **RUN_ARGS.get(name, {})}
                for name in RESUME_MODELS}
    for name in RESUME_MODELS:  # start everything at once: the runs are independent
        ref[name] = (tmp_path / f"ref_{name}", tmp_path / f"ref_{name}.log")
        ref[name] += (_start({**run_args[name], "out_dir": str(ref[name][0])}, ref[name][1]),)
        park = tmp_path / f"parked_{name}"
        killed[name] = (tmp_path / f"run_{name}", tmp_path / f"run_{name}.log", park)
        killed[name] += (_start({**run_args[name], "out_dir": str(killed[name][0]),
                                 "park": str(park)}, killed[name][1]),)

    for name, (out_dir, log, park, proc) in killed.items():
        deadline = time.monotonic() + 400
        while not park.exists():
            assert proc.poll() is None, f"{name} ended before the kill:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"{name} never reached the kill point"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        meta = json.loads((out_dir / "backup" / "latest" / "training_metadata.json").read_text())
        assert meta["epoch"] == KILL_EPOCH, "the backup should hold the last completed epoch"
        assert not (out_dir / "model.keras").exists(), "a killed run must not have finished"

    for name, (out_dir, log, _, _) in killed.items():
        resumed[name] = (tmp_path / f"resume_{name}.log",)
        resumed[name] += (_start({**run_args[name], "out_dir": str(out_dir), "resume": True},
                                 resumed[name][0]),)
    for name in RESUME_MODELS:
        _wait(ref[name][2], ref[name][1], 400)
        _wait(resumed[name][1], resumed[name][0], 400)


@pytest.mark.slow
@pytest.mark.subprocess
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    """SIGKILL inside epoch 3, resume: final weights and history equal an uninterrupted run's."""
    ref, killed, resumed = {}, {}, {}
    try:
        _kill_and_resume(tmp_path, ref, killed, resumed)
    finally:  # never leave a worker behind, whatever failed
        for entry in [*ref.values(), *killed.values(), *resumed.values()]:
            proc = entry[-1]
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    for name in RESUME_MODELS:
        a = np.load(ref[name][0] / "final_weights.npz")
        b = np.load(killed[name][0] / "final_weights.npz")
        assert len(a.files) == len(b.files) > 0
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name} weight {key}")
        history_a = json.loads((ref[name][0] / "history_seen.json").read_text())
        history_b = json.loads((killed[name][0] / "history_seen.json").read_text())
        # All EPOCHS epochs, the resumed ones equal to a float32 ulp: a GAN's logged d_loss on
        # colour data varies by one ulp between two deterministic processes whose weights are
        # bit-identical (measured: a 3-channel dcgan, 2 of 6 fresh runs, also before flips and
        # augmentation existed); the weights above are compared bit for bit.
        assert history_a.keys() == history_b.keys()
        for key, values in history_a.items():
            np.testing.assert_allclose(history_b[key], values, rtol=3e-7, atol=0, err_msg=key)
        assert all(len(v) == EPOCHS for v in history_b.values())


# ------------------------------------------------------------- a damaged latest backup
# Each file of backup/latest damaged in its own way: cut short, hashed content changed, JSON
# cut short, and valid JSON of the wrong shape.
DAMAGES = {
    "model.weights.h5": lambda data: data[: len(data) // 2],
    "rng_state.npz": lambda data: data[:-7] + bytes(7),
    "history.json": lambda data: data[:-3],
    "training_metadata.json": lambda data: b"[2]",
}


@pytest.mark.subprocess
def test_a_damaged_latest_backup_resumes_from_previous_with_its_epoch_data_and_rng(tmp_path):
    """With any file of backup/latest (epoch 2) damaged, resume takes everything from
    backup/previous (epoch 1): the weights, the random states, the history AND the data's
    starting epoch, so the run ends exactly as an uninterrupted one (no phantom epoch)."""
    import shutil

    common = {"model": "mlp_vae"}
    jobs = {"ref": ({**common, "out_dir": str(tmp_path / "ref"), "epochs": 3}, tmp_path / "ref.log"),
            "base": ({**common, "out_dir": str(tmp_path / "base"), "epochs": 2},
                     tmp_path / "base.log")}
    procs = {name: _start(args, log) for name, (args, log) in jobs.items()}
    try:
        for name, proc in procs.items():
            _wait(proc, jobs[name][1], 400)
        resumed = {}
        for file, damage in DAMAGES.items():
            out = tmp_path / f"damaged_{file}"
            shutil.copytree(tmp_path / "base", out)
            target = out / "backup" / "latest" / file
            target.write_bytes(damage(target.read_bytes()))
            log = tmp_path / f"damaged_{file}.log"
            resumed[file] = (out, log, _start({**common, "out_dir": str(out), "epochs": 3,
                                               "resume": True}, log))
        for file, (out, log, proc) in resumed.items():
            _wait(proc, log, 400)
    finally:
        for proc in [*procs.values(), *(r[2] for r in locals().get("resumed", {}).values())]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    ref = np.load(tmp_path / "ref" / "final_weights.npz")
    ref_history = json.loads((tmp_path / "ref" / "history_seen.json").read_text())
    for file, (out, log, _) in resumed.items():
        assert "resuming from" in log.read_text() and file in log.read_text(), (
            f"falling back from a damaged {file} must be announced:\n{log.read_text()[-3000:]}")
        history = json.loads((out / "history_seen.json").read_text())
        assert history == ref_history, f"damaged {file}: history {history} != {ref_history}"
        got = np.load(out / "final_weights.npz")
        for key in ref.files:
            np.testing.assert_array_equal(got[key], ref[key], err_msg=f"damaged {file}: {key}")


# --------------------------------------------------------------------------- NaN handling
def _tiny_vae():
    import tf_genai

    # binarize=False: dynamic binarization would turn a NaN pixel into a 0.
    model = tf_genai.create("mlp_vae", image_shape=(8, 8, 1), seed=0, binarize=False)
    model.compile(optimizer="adam")
    return model


def _batches_with_nan_from(epoch: int, steps: int, epochs: int):
    """``epochs * steps`` batches of digits; from epoch ``epoch`` on one batch per epoch is NaN."""
    import tensorflow as tf

    from tf_genai.data import load

    images, _ = load("digits")
    x = (images[: steps * 16].astype("float32") / (255.0 if images.dtype == np.uint8 else 1.0))
    batches = []
    for e in range(epochs):
        for s in range(steps):
            b = x[s * 16:(s + 1) * 16].copy()
            if e >= epoch and s == 1:
                b[0, 0, 0, 0] = np.nan  # bad input that no validation saw
            batches.append(b)
    return tf.data.Dataset.from_tensor_slices(np.stack(batches))


def test_nan_stops_with_training_error_and_keeps_last_good_backup(tmp_path):
    """A NaN in epoch 3 raises TrainingError; the backup still holds epoch 2's finite state."""
    import keras

    from tf_genai import checkpointing
    from tf_genai.errors import TrainingError

    steps = 4
    model = _tiny_vae()
    after_epoch = {}

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            after_epoch[epoch + 1] = [np.array(w) for w in self.model.get_weights()]

    backup = tmp_path / "backup"
    callbacks = [checkpointing.BackupAndResume(backup), Record(),
                 checkpointing.TerminateOnNaN(backup)]
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 3, batch 2.*after epoch 2"):
        model.fit(_batches_with_nan_from(2, steps, 5), epochs=5, steps_per_epoch=steps,
                  callbacks=callbacks, verbose=0)
    assert not all(np.all(np.isfinite(w)) for w in model.get_weights()), "NaN should have spread"
    assert checkpointing.backup_epoch(backup) == 2

    # A fresh model resumes from the backup: finite and equal to the weights after epoch 2.
    fresh = _tiny_vae()
    fresh.fit(_batches_with_nan_from(99, steps, 1), epochs=2, steps_per_epoch=steps, verbose=0,
              callbacks=[checkpointing.BackupAndResume(backup)])  # nothing left: restores only
    restored = fresh.get_weights()
    assert all(np.all(np.isfinite(w)) for w in restored)
    for got, want in zip(restored, after_epoch[2]):
        np.testing.assert_array_equal(got, want)
    assert int(fresh.optimizer.iterations.numpy()) == 2 * steps  # optimizer state came back too


def test_train_with_diverging_learning_rate_raises_training_error(tmp_path):
    """train(): a learning rate that blows the loss up ends in TrainingError, backup kept finite."""
    from tf_genai import checkpointing
    from tf_genai.errors import TrainingError
    from tf_genai.training import train

    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="diverged"):
        train("mlp_vae", data="digits", out_dir=out, epochs=30, batch_size=256, seed=0,
              learning_rate=1e4, validation_fraction=0.0, plots=False, verbose=0)
    assert not (out / "model.keras").exists()
    done = checkpointing.backup_epoch(out / "backup")
    if done:  # every backup that was written is finite
        import h5py

        with h5py.File(out / "backup" / "latest" / "model.weights.h5") as f:
            arrays = []
            f.visititems(lambda k, v: arrays.append(v[()]) if hasattr(v, "shape") else None)
        assert arrays and all(np.all(np.isfinite(a)) for a in arrays)


def test_nan_images_are_refused_before_training(tmp_path):
    """Bad input (NaN pixels) is a DataError from the data layer, before any backup exists."""
    from tf_genai.errors import DataError
    from tf_genai.training import train

    images = np.random.default_rng(0).random((40, 8, 8, 1)).astype("float32")
    images[3, 2, 2, 0] = np.nan
    with pytest.raises(DataError):
        train("mlp_vae", data=images, out_dir=tmp_path / "run", epochs=1, plots=False, verbose=0)
    assert not (tmp_path / "run" / "backup").exists()


def test_overwrite_discards_a_stale_backup(tmp_path):
    """overwrite=True starts from scratch: an old run's backup is not restored into it."""
    from tf_genai import checkpointing
    from tf_genai.data import load
    from tf_genai.training import train

    images, labels = load("digits")
    data = (images[:64], labels[:64])
    kwargs = dict(data=data, batch_size=32, seed=0, validation_fraction=0.0, plots=False, verbose=0)
    train("mlp_vae", out_dir=tmp_path, epochs=2, **kwargs)
    assert checkpointing.backup_epoch(tmp_path / "backup") == 2
    result = train("mlp_vae", out_dir=tmp_path, epochs=1, overwrite=True, **kwargs)
    assert len(result.history["loss"]) == 1
    assert checkpointing.backup_epoch(tmp_path / "backup") == 1
    # resume=True on a finished run trains nothing more and keeps every epoch's history.
    again = train("mlp_vae", out_dir=tmp_path, epochs=1, resume=True, **kwargs)
    assert again.history == result.history
    assert math.isfinite(again.history["loss"][0])



def test_resume_keeps_the_levers_a_run_started_with_and_reads_older_runs(tmp_path, capsys):
    """A run records its speed levers in its backup and --resume continues with them, not with
    this machine's flags. A run written before the levers file kept them in
    ``backup/autotune.json``, with two levers that no longer exist: it resumes with its policy
    and says which lever it loses."""
    from tf_genai.data import load
    from tf_genai.training import LEGACY_LEVERS_FILE, LEVERS_FILE, train

    images, labels = load("digits")
    kwargs = dict(data=(images[:64], labels[:64]), batch_size=32, validation_fraction=0.0,
                  plots=False)
    train("mlp_vae", out_dir=tmp_path, epochs=1, verbose=0, **kwargs)
    backup = tmp_path / "backup"
    levers = json.loads((backup / LEVERS_FILE).read_text())["options"]
    assert set(levers) == {"mixed_precision_policy", "steps_per_execution", "jit_compile"}
    # What the previous release wrote: another policy than this machine's flags pick, and the
    # float32 weight gradients that are gone.
    other = "float32" if levers["mixed_precision_policy"] != "float32" else "mixed_bfloat16"
    (backup / LEVERS_FILE).unlink()
    (backup / LEGACY_LEVERS_FILE).write_text(json.dumps({"options": {
        "steps_per_execution": 16, "jit_compile": False, "mixed_precision_policy": other,
        "float32_weight_gradients": True, "fused_layers": True}, "source": "probe"}))
    capsys.readouterr()
    result = train("mlp_vae", out_dir=tmp_path, epochs=2, resume=True, verbose="auto", **kwargs)
    out = capsys.readouterr().out
    assert "float32 weight gradients, which tf_genai no longer has" in out
    assert f"training options: {other}" in out
    assert len(result.history["loss"]) == 2 and all(map(math.isfinite, result.history["loss"]))
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["training_options"]["mixed_precision_policy"] == other
    assert result.model.decoder.dtype_policy.name == other


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if sys.argv[1] == "worker":
        _worker(json.loads(sys.argv[2]))

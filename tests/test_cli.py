"""End-to-end tests of the ``tf-genai`` command: real training runs, real files, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tf_genai import cli, quiet

ZOO = {"vae", "colour_vae", "mlp_vae", "cvae", "iwae", "gan", "dcgan", "wgan_gp", "cgan", "ddpm",
       "cddpm"}


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m tf_genai ARGS`` in a fresh process, as a user's shell would."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "tf_genai", *args], capture_output=True, text=True, cwd=cwd,
        env=env, timeout=600,
    )


def test_help_lists_every_command():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("models", "train", "sample", "evaluate", "export", "plot"):
        assert command in proc.stdout


def test_models_lists_the_zoo():
    proc = run_cli("models")
    assert proc.returncode == 0, proc.stderr
    names = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert ZOO <= names


@pytest.mark.slow
@pytest.mark.subprocess
def test_train_vae_end_to_end_then_sample_evaluate_plot(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", "vae", "--data", "digits", "--epochs", "2", "--batch-size", "64",
                   "--latent-dim", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("model.keras", "history.json", "samples.png", "latent_scatter.png",
                 "latent_manifold.png", "run.json"):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 2 and all(np.isfinite(history["loss"]))
    assert "val_loss" in history

    # A second run into the same directory is refused and the first run's files survive.
    before = (out / "model.keras").read_bytes()
    again = run_cli("train", "vae", "--epochs", "1", "--out", str(out))
    assert again.returncode == 2
    assert "not empty" in again.stderr and "--overwrite" in again.stderr
    assert (out / "model.keras").read_bytes() == before

    # sample / evaluate / plot from the saved model, in-process through the same main().
    png = tmp_path / "s.png"
    assert cli.main(["sample", str(out / "model.keras"), "--n", "16", "--out", str(png)]) == 0
    assert png.stat().st_size > 0
    assert cli.main(["sample", str(out / "model.keras"), "--out", str(png)]) == 2  # no overwrite
    npy = tmp_path / "s.npy"
    assert cli.main(["sample", str(out / "model.keras"), "--n", "5", "--out", str(npy)]) == 0
    arr = np.load(npy)
    assert arr.shape == (5, 8, 8, 1) and arr.min() >= 0.0 and arr.max() <= 1.0

    plots = tmp_path / "plots"
    assert cli.main(["plot", str(out / "model.keras"), "--data", "digits", "--out", str(plots)]) == 0
    assert (plots / "samples.png").is_file() and (plots / "latent_scatter.png").is_file()


@pytest.mark.slow
def test_evaluate_json_reports_nll_and_elbo(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "mlp_vae", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(out / "model.keras"), "--data", "digits", "--split",
                     "heldout", "--num-samples", "20", "--num-generated", "200", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["nll"] > 0 and np.isfinite(result["nll"])
    # The importance-sampled bound is at least as tight as the ELBO: NLL <= -ELBO.
    assert result["nll"] <= -result["elbo"] + 1e-3
    assert "fid" in result and result["fid"] >= 0
    assert result["feature_space"] == "classifier"  # labelled grey digits: the classifier


@pytest.mark.slow
def test_unlabelled_colour_folder_trains_and_evaluates_in_inception_space(
        tmp_path, capsys, shared_data, inception_features):
    """#18's acceptance: a flat folder of PNGs (no class sub-folders) at 32 and 64 pixels."""
    from PIL import Image

    cifar = np.load(shared_data("cifar10/cifar10_subset.npz"))["x_train"][:80]
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(cifar):
        Image.fromarray(image).save(folder / f"photo_{i:03d}.png")
    run32 = tmp_path / "run32"
    assert cli.main(["train", "dcgan", "--data", str(folder), "--image-size", "32",
                     "--epochs", "1", "--quiet", "--out", str(run32)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(run32 / "model.keras"), "--data", str(folder),
                     "--num-generated", "48", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "sample_metrics" not in result  # nothing skipped
    assert result["feature_space"] == "inception"
    assert np.isfinite(result["fid"]) and result["fid"] > 0
    assert np.isfinite(result["kid"])
    run64 = tmp_path / "run64"
    assert cli.main(["train", "dcgan", "--data", str(folder), "--image-size", "64",
                     "--epochs", "1", "--quiet", "--out", str(run64)]) == 0
    samples = tmp_path / "samples64.npy"
    assert cli.main(["sample", str(run64 / "model.keras"), "--n", "4",
                     "--out", str(samples)]) == 0
    drawn = np.load(samples)
    assert drawn.shape == (4, 64, 64, 3) and np.isfinite(drawn).all() and drawn.std() > 0


@pytest.mark.slow
def test_train_dcgan_writes_run(tmp_path):
    out = tmp_path / "gan"
    assert cli.main(["train", "dcgan", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    for name in ("model.keras", "history.json", "samples.png"):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert np.isfinite(history["d_loss"][0]) and np.isfinite(history["g_loss"][0])


def test_bad_arguments_exit_2_with_a_message(tmp_path, capsys):
    assert cli.main(["train", "no_such_model", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'no_such_model'" in err and "vae" in err
    assert not (tmp_path / "a").exists()  # nothing written before the check

    assert cli.main(["train", "vae", "--data", str(tmp_path / "missing.npz"),
                     "--out", str(tmp_path / "b")]) == 2
    assert "missing.npz" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()  # a bad --data leaves no empty run directory

    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "vae", "--epochs", "0", "--out", str(tmp_path / "c")])
    assert exc.value.code == 2
    assert "positive integer" in capsys.readouterr().err

    assert cli.main(["sample", str(tmp_path / "nope.keras"), "--out", str(tmp_path / "x.png")]) == 2
    assert "nope.keras" in capsys.readouterr().err

    assert cli.main(["train", "vae", "--skip-corrupt", "--out", str(tmp_path / "d")]) == 2
    assert "--stream" in capsys.readouterr().err and not (tmp_path / "d").exists()
    with pytest.raises(SystemExit):  # one check or the other
        cli.main(["train", "vae", "--stream", "--decode-check", "--skip-corrupt", "--out",
                  str(tmp_path / "e")])


def test_conditional_model_without_labels_is_refused(tmp_path, capsys):
    x = np.random.default_rng(0).integers(0, 256, size=(40, 8, 8, 1), dtype=np.uint8)
    np.savez(tmp_path / "unlabelled.npz", x=x)
    assert cli.main(["train", "cvae", "--data", str(tmp_path / "unlabelled.npz"),
                     "--out", str(tmp_path / "run")]) == 2
    assert "needs labels" in capsys.readouterr().err


def test_auto_epochs_gives_small_data_enough_steps():
    from tf_genai.training import auto_epochs

    assert auto_epochs(1438, 128) == 209  # digits' training part: 12 steps an epoch
    assert auto_epochs(7200, 128) == 44  # the MNIST split less validation: 57 steps an epoch
    assert auto_epochs(10, 128) == 300 and auto_epochs(10**7, 128) == 10  # the bounds


# --- quiet start-up: TensorFlow's C++ log lines are hidden unless --verbose ----------------

TF_LOG_PREFIXES = ("I0000", "W0000", "E0000")


def run_combined(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``python -m tf_genai ARGS`` with stdout and stderr in one stream, as a terminal shows."""
    return subprocess.run(
        [sys.executable, "-m", "tf_genai", *args], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=env, timeout=600,
    )


def tf_log_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(TF_LOG_PREFIXES)]


@pytest.mark.subprocess
@pytest.mark.parametrize("model", ["mlp_vae", "gan"])  # one VAE, one GAN (GANs add grappler's)
def test_train_hides_tensorflow_startup_lines(model, tmp_path):
    # TF_CPP_MIN_LOG_LEVEL=0 asks TensorFlow for everything: the CLI must still be quiet.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    proc = run_combined("train", model, "--data", "digits", "--epochs", "1", "--batch-size",
                        "256", "--quiet", "--out", str(tmp_path / "run"), env=env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert tf_log_lines(proc.stdout) == [], proc.stdout[-3000:]
    assert "absl::InitializeLog" not in proc.stdout
    assert "WARNING:tensorflow" not in proc.stdout and "WARNING:absl" not in proc.stdout
    assert proc.stdout.startswith("wrote model: "), proc.stdout[-3000:]  # our lines, nothing before


@pytest.mark.subprocess
def test_verbose_passes_tensorflow_lines_through(tmp_path):
    # What plain TensorFlow prints here at its default log level, to compare with: a machine
    # where importing it prints nothing has nothing for --verbose to pass through.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    plain = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=env, timeout=600,
    )
    if not tf_log_lines(plain.stdout):
        pytest.skip("importing TensorFlow prints no I0000/W0000/E0000 lines on this machine")
    import tf_genai

    tf_genai.create("vae", image_shape=(8, 8, 1)).save(tmp_path / "vae.keras")
    # A command that loads TensorFlow (`models` reads a table and loads none); --verbose after
    # the command works too.
    proc = run_combined("sample", str(tmp_path / "vae.keras"), "--n", "4", "--out",
                        str(tmp_path / "s.png"), "--verbose", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert tf_log_lines(proc.stdout), proc.stdout[-3000:]
    assert (tmp_path / "s.png").is_file()


def test_verbose_is_accepted_before_and_after_the_command():
    parser = cli.build_parser()
    assert parser.parse_args(["--verbose", "models"]).verbose is True
    assert parser.parse_args(["models", "--verbose"]).verbose is True
    assert parser.parse_args(["train", "vae", "--out", "x"]).verbose is False


def test_missing_gpu_is_one_line_in_our_words(monkeypatch, capsys):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU TensorFlow can use")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    quiet.warn_if_gpu_missing()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: CUDA_VISIBLE_DEVICES=0 asks for a GPU")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # GPUs hidden on purpose: nothing to say
    quiet.warn_if_gpu_missing()
    assert capsys.readouterr().err == ""

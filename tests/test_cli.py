"""End-to-end tests of the ``tf-genai`` command: real training runs, real files, real exit codes."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

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


# --- one `error:` line, and before TensorFlow when no TensorFlow is needed ---------------------


def run_cli_importtime(*args: str, prefix: Sequence[str] = (), verbose: bool = True,
                       **kwargs) -> tuple[
        subprocess.CompletedProcess, set[str], list[str]]:
    """``run_cli`` under ``python -X importtime``: (the process, the modules it imported, its
    stderr lines other than the import times).

    ``verbose`` runs it with ``--verbose``: the quiet start-up imports TensorFlow with stderr
    sent to a temporary file, import times included, so only a verbose run shows whether
    TensorFlow was imported.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([*prefix, sys.executable, "-X", "importtime", "-m", "tf_genai",
                           *(["--verbose"] if verbose else []), *args],
                          capture_output=True, text=True, env=env, timeout=600, **kwargs)
    imported, lines = set(), []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:"):
            imported.add(line.rsplit("|", 1)[-1].strip())
        else:
            lines.append(line)
    return proc, imported, lines


def assert_one_error_line(proc: subprocess.CompletedProcess | subprocess.Popen,
                          lines: list[str], *expected: str, status: int = 2) -> str:
    """The one ``error:`` line among a command's stderr ``lines``, checked for ``expected``."""
    text = "\n".join(lines)
    assert proc.returncode == status, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    errors = [line for line in lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), errors
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained 8x8 mlp_vae saved as a .keras file (readable by every user)."""
    import tf_genai

    folder = tmp_path_factory.mktemp("model")
    path = folder / "model.keras"
    tf_genai.create("mlp_vae", image_shape=(8, 8, 1)).save(path)
    return path


@pytest.mark.subprocess
@pytest.mark.parametrize("args, expected", [
    (["train", "dcgna", "--out", "{tmp}/run"], ["unknown model 'dcgna'; did you mean 'dcgan'?"]),
    (["train", "vae", "--validation-fraction", "1.5", "--out", "{tmp}/run"],
     ["--validation-fraction must be in [0, 1), got 1.5"]),
    (["train", "vae", "--lr", "-1", "--out", "{tmp}/run"], ["--lr must be a positive number"]),
    (["train", "vae", "--out", "/proc/tf_genai_run"],
     ["cannot write run directory '/proc/tf_genai_run'"]),
    (["sample", "{tmp}/missing.keras", "--out", "{tmp}/s.png"], ["missing.keras", "not exist"]),
    (["evaluate", "{tmp}/missing.keras"], ["missing.keras", "not exist"]),
    (["export", "{tmp}/missing.keras", "--out", "{tmp}/export"], ["missing.keras", "not exist"]),
    (["plot", "{tmp}/missing.keras", "--out", "{tmp}/plots"], ["missing.keras", "not exist"]),
])
def test_checks_that_need_no_tensorflow_fail_before_it_is_imported(args, expected, tmp_path):
    proc, imported, lines = run_cli_importtime(*(a.format(tmp=tmp_path) for a in args))
    assert_one_error_line(proc, lines, *expected)
    assert not {"tensorflow", "keras"} & imported, sorted(imported)[:20]
    assert not (tmp_path / "run").exists() and list(tmp_path.iterdir()) == []


def _read_only_folder(tmp_path: Path) -> tuple[Path, list[str]]:
    """A folder no new file can be made in, and the command prefix that makes it so for root
    (who ignores permission bits unless the capability to is dropped)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return folder, []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: no folder is read-only to this user")
    return folder, [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.mark.subprocess
@pytest.mark.parametrize("where", ["proc", "under_a_file", "read_only_folder"])
@pytest.mark.parametrize("command", ["train", "sample", "export", "plot"])
def test_an_output_that_cannot_be_written_is_one_error_line(command, where, tmp_path,
                                                            tiny_model):
    prefix: list[str] = []
    if where == "proc":
        base = Path("/proc/tf_genai_test")
    elif where == "under_a_file":
        (tmp_path / "a_file").write_text("not a folder")
        base = tmp_path / "a_file"
    else:
        base, prefix = _read_only_folder(tmp_path)
    out = {"train": base / "run", "sample": base / "s.png", "export": base / "export",
           "plot": base / "plots"}[command]
    args = ["train", "vae", "--out", str(out)] if command == "train" else [
        command, str(tiny_model), "--out", str(out)]
    proc, imported, lines = run_cli_importtime(*args, prefix=prefix)
    assert_one_error_line(proc, lines, "cannot write", str(out))
    assert "tensorflow" not in imported
    assert not out.exists()


@pytest.mark.subprocess
def test_a_file_system_error_while_writing_is_one_error_line(tmp_path, tiny_model):
    """A write the checks cannot foresee (here a file-size limit, as a full disk would): one
    line, status 2, and no half-written file."""
    import resource

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # the array is 16 KiB

    out = tmp_path / "samples.npy"
    proc, _, lines = run_cli_importtime("sample", str(tiny_model), "--n", "64", "--out",
                                        str(out), verbose=False, preexec_fn=small_files)
    assert_one_error_line(proc, lines, "File too large", str(out))
    assert not out.exists()


# --- a real run: its progress lines, its summary, and what --resume refuses --------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``tf-genai train MLP_VAE`` (the name in capitals) for 2 epochs of the digits."""
    out = tmp_path_factory.mktemp("finished") / "run"
    proc = run_cli("train", "MLP_VAE", "--epochs", "2", "--batch-size", "256", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.mark.subprocess
def test_train_says_when_the_run_ends_and_sums_it_up(finished_run):
    out, proc = finished_run
    lines = proc.stdout.splitlines()
    assert any(line.startswith("run: epoch 1/2, ") and line.endswith(" left") for line in lines)
    assert "writing model.keras, samples.png and the figures into" in proc.stdout
    summary = lines[-4:]
    assert summary[0] == "trained all 2 epochs"
    assert summary[1].startswith("final loss ") and ", val_loss " in summary[1]
    assert summary[2:] == [f"model: {out / 'model.keras'}", f"samples: {out / 'samples.png'}"]
    # The name was matched without regard to case and recorded as the zoo spells it.
    assert json.loads((out / "run.json").read_text())["model"] == "mlp_vae"
    assert json.loads((out / "backup" / "config.json").read_text())["model"] == "mlp_vae"


@pytest.mark.subprocess
def test_a_time_budget_stop_says_so_and_how_to_go_on(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", "mlp_vae", "--epochs", "300", "--batch-size", "64",
                   "--time-budget", "2", "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = json.loads((out / "run.json").read_text())["epochs_done"]
    assert 1 <= done < 300
    assert (f"stopped after epoch {done} of 300: --time-budget 2.0 (seconds) was spent; "
            "--resume continues the run") in proc.stdout.splitlines()


@pytest.mark.subprocess
def test_resume_with_other_data_names_what_differs(finished_run):
    out, _ = finished_run
    proc, imported, lines = run_cli_importtime(
        "train", "mlp_vae", "--data", "mnist", "--latent-dim", "4", "--batch-size", "256",
        "--resume", "--out", str(out))
    assert_one_error_line(
        proc, lines, f"cannot resume the run in {str(out)!r}: it was started with "
        "--data 'digits', no --latent-dim; this call has --data 'mnist', --latent-dim 4",
        "--overwrite")
    assert "no readable backup" not in proc.stderr and "tensorflow" not in imported


# --- Ctrl-C --------------------------------------------------------------------------------------


def _start(*args: str, sigint=signal.SIG_DFL) -> subprocess.Popen:
    """``tf-genai *args`` as a terminal starts it: with Ctrl-C's default handling (``sigint``),
    even when these tests run where SIGINT is ignored (a script's background job), which the
    child would otherwise inherit and keep."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, "-m", "tf_genai", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))


def _start_training(*args: str) -> subprocess.Popen:
    return _start("train", *args)


def _interrupt_when(proc: subprocess.Popen, ready, timeout: float = 300) -> tuple[str, str]:
    """Send SIGINT (Ctrl-C) once ``ready()``; the process's (stdout, stderr)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"never ready to interrupt:\n{err[-3000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=120)


def _epoch_saved(run: Path) -> bool:
    return (run / "backup" / "latest" / "training_metadata.json").is_file()


def _stray(run: Path) -> list[str]:
    """Folders a run in progress uses that must not outlive it."""
    return [str(p) for p in (*run.glob(".backup.*"), *run.glob("backup/.incoming"),
                             *run.glob(".*.old-*"))]


@pytest.mark.subprocess
def test_ctrl_c_after_an_epoch_says_how_to_resume_and_resume_continues(tmp_path):
    run = tmp_path / "run"
    proc = _start_training("mlp_vae", "--epochs", "300", "--batch-size", "32", "--out", str(run))
    _, stderr = _interrupt_when(proc, lambda: _epoch_saved(run))
    line = assert_one_error_line(proc, stderr.splitlines(), status=130)
    match = re.fullmatch(r"error: interrupted after epoch (\d+) of 300; `(.*)` continues", line)
    assert match, line
    done, command = int(match.group(1)), shlex.split(match.group(2))
    assert command == ["tf-genai", "train", "mlp_vae", "--epochs", "300", "--batch-size", "32",
                       "--out", str(run), "--resume"]
    meta = json.loads((run / "backup" / "latest" / "training_metadata.json").read_text())
    assert meta["epoch"] == done >= 1
    assert _stray(run) == [] and not (run / "model.keras").exists()

    # The printed command continues the run (told to stop one epoch later).
    command[command.index("--epochs") + 1] = str(done + 1)
    resumed = run_cli(*command[1:])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(json.loads((run / "history.json").read_text())["loss"]) == done + 1


@pytest.mark.subprocess
def test_ctrl_c_during_overwrite_keeps_the_old_run_until_the_new_one_has_an_epoch(
        tmp_path, mnist_dir):
    run = tmp_path / "run"
    first = run_cli("train", "mlp_vae", "--epochs", "1", "--batch-size", "256", "--quiet",
                    "--out", str(run))
    assert first.returncode == 0, first.stderr[-3000:]
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}

    # Interrupted before its first epoch is saved (a conv VAE's first MNIST epoch takes
    # seconds): the old run is exactly as it was, and nothing else is left.
    proc = _start_training("vae", "--data", str(mnist_dir), "--batch-size", "32",
                           "--overwrite", "--out", str(run))
    _, stderr = _interrupt_when(proc, lambda: bool(list(run.glob(".backup.tmp-*"))))
    assert_one_error_line(proc, stderr.splitlines(), "before its first epoch was saved",
                          f"{str(run)!r} is as it was", status=130)
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before
    assert _stray(run) == []

    # Interrupted once the new run has saved an epoch: the directory is the new run's,
    # resumable, with none of the old run's files.
    proc = _start_training("mlp_vae", "--epochs", "300", "--batch-size", "32", "--overwrite",
                           "--out", str(run))

    def new_run_landed() -> bool:
        try:
            return json.loads((run / "backup" / "config.json").read_text())["epochs"] == 300
        except (OSError, ValueError):
            return False

    _, stderr = _interrupt_when(proc, new_run_landed)
    assert_one_error_line(proc, stderr.splitlines(), "interrupted after epoch", "--resume",
                          status=130)
    assert sorted(p.name for p in run.iterdir()) == ["backup"] and _stray(run) == []



@pytest.mark.subprocess
def test_ctrl_c_in_other_commands_is_one_line_and_leaves_nothing_half_written(
        tmp_path, tiny_model):
    # While TensorFlow loads (its start-up lines are captured then, and must stay hidden).
    proc = _start("evaluate", str(tiny_model), "--num-generated", "100000")
    started = time.monotonic()
    _, stderr = _interrupt_when(proc, lambda: time.monotonic() - started > 1.5)
    assert_one_error_line(proc, stderr.splitlines(), "error: interrupted", status=130)

    # While the SavedModel is written: the staged export goes, nothing is left. (A flow's
    # export traces its ODE samplers for seconds; an mlp_vae's can end before the signal lands.)
    import tf_genai

    flow = tmp_path / "model" / "flow.keras"
    flow.parent.mkdir()
    tf_genai.create("flow", image_shape=(8, 8, 1), widths=(8,)).save(flow)
    out = tmp_path / "export"
    proc = _start("export", str(flow), "--out", str(out))
    _, stderr = _interrupt_when(proc, lambda: bool(list(tmp_path.glob(".export.tmp-*"))))
    assert_one_error_line(proc, stderr.splitlines(), "error: interrupted", status=130)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.subprocess
def test_a_background_job_that_ignores_ctrl_c_keeps_ignoring_it(tiny_model):
    # A shell script's `tf-genai ... &` starts with SIGINT ignored, so that Ctrl-C on the
    # script leaves it running: the command must not take Ctrl-C back.
    proc = _start("evaluate", str(tiny_model), "--num-generated", "100000",
                  sigint=signal.SIG_IGN)
    try:
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        time.sleep(2)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
    finally:
        proc.kill()
        proc.communicate()


# --- messages and help ---------------------------------------------------------------------------


def test_library_argument_names_become_the_commands_flags():
    args = cli.build_parser().parse_args(["train", "vae", "--out", "x"])
    said = cli._in_flags(
        "stopped after epoch 3 of 300: time_budget=60.0 (seconds) was spent; resume=True "
        "continues; learning_rate must be positive; pass image_size to resize them; it was "
        "started with model='vae', data='digits', latent_dim=None; 'runs/image_size/x' stays",
        args)
    assert said == (
        "stopped after epoch 3 of 300: --time-budget 60.0 (seconds) was spent; --resume "
        "continues; --lr must be positive; pass --image-size to resize them; it was started "
        "with model 'vae', --data 'digits', no --latent-dim; 'runs/image_size/x' stays")


def test_every_option_says_its_default():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        formatter = command._get_formatter()
        for action in command._actions:
            if not action.option_strings or action.nargs == 0:  # positionals, flags, --help
                continue
            text = formatter._expand_help(action) if action.help else ""
            assert "default" in text or "required" in text, (name, action.option_strings, text)


@pytest.mark.subprocess
def test_train_help_shows_the_defaults():
    proc = run_cli("train", "--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    for shown in ("images per optimizer step (default: 128)",
                  "the part of --data to train on (tf_genai/data/README.md) (default: train)",
                  "0 turns validation off (default: 0.1)", "(default: default)"):
        assert shown in text, shown


# --- data of mixed sizes: --image-size where data is read ------------------------------------


@pytest.fixture(scope="module")
def mixed_photos(tmp_path_factory) -> Path:
    """A folder of real image files of three sizes and three kinds: RGB, RGBA and grey."""
    from PIL import Image

    from tf_genai.data import load

    digits, _ = load("digits")
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i, digit in enumerate(np.round(digits[:48, ..., 0] * 255).astype("uint8")):
        grey = Image.fromarray(digit)
        if i % 3 == 0:
            image = grey.convert("RGB").resize((20, 20))
        elif i % 3 == 1:
            image = grey.convert("RGBA").resize((24, 16))
            image.putalpha(Image.fromarray(rng.integers(128, 256, (16, 24), dtype=np.uint8)))
        else:
            image = grey.resize((12, 12))
        image.save(folder / f"photo_{i:02d}.png")
    return folder


@pytest.mark.subprocess
def test_image_size_reads_a_mixed_folder_and_errors_name_the_flag(tmp_path, mixed_photos):
    from tf_genai import data
    from tf_genai.errors import DataError

    # The library names its argument, the command line its flag.
    with pytest.raises(DataError, match="differ in size .*; pass image_size to resize"):
        data.load(mixed_photos)
    refused = run_cli("train", "vae", "--data", str(mixed_photos), "--epochs", "1",
                      "--out", str(tmp_path / "refused"))
    assert_one_error_line(refused, refused.stderr.splitlines(), "differ in size",
                          "pass --image-size to resize")

    run = tmp_path / "run"
    trained = run_cli("train", "vae", "--data", str(mixed_photos), "--image-size", "16",
                      "--epochs", "1", "--quiet", "--out", str(run))
    assert trained.returncode == 0, trained.stderr[-3000:]
    model = str(run / "model.keras")
    for extra, plots in (([], tmp_path / "plots"), (["--image-size", "16"], tmp_path / "p16")):
        proc = run_cli("plot", model, "--data", str(mixed_photos), *extra, "--out", str(plots))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (plots / "reconstructions.png").is_file() and (plots / "latent_scatter.png").is_file()
    other = run_cli("plot", model, "--data", str(mixed_photos), "--image-size", "24",
                    "--out", str(tmp_path / "p24"))
    assert_one_error_line(other, other.stderr.splitlines(),
                          "--image-size 24 differs from the model's image size 16x16")
    assert not (tmp_path / "p24").exists()


# --- progress bars on a terminal, none in a pipe -------------------------------------------------


def _run_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """``python -m tf_genai ARGS`` with stderr on a pseudo-terminal: (status, stdout, what the
    terminal showed)."""
    import pty
    import threading

    master, slave = pty.openpty()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", COLUMNS="120")
    proc = subprocess.Popen([sys.executable, "-m", "tf_genai", *args], stdout=subprocess.PIPE,
                            stderr=slave, text=True, env=env)
    os.close(slave)
    shown = bytearray()

    def read():  # drain the terminal while the command runs, or its writes would block
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    stdout, _ = proc.communicate(timeout=900)
    reader.join(timeout=60)
    os.close(master)
    return proc.returncode, stdout, shown.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.subprocess
def test_evaluate_shows_progress_bars_on_a_terminal_only(finished_run):
    out, _ = finished_run
    args = ("evaluate", str(out / "model.keras"), "--features", "classifier", "--num-samples",
            "5", "--num-generated", "300", "--max-images", "300", "--json")
    status, stdout, shown = _run_on_a_terminal(*args)
    assert status == 0, shown[-3000:]
    result = json.loads(stdout)  # stdout is the JSON alone
    assert result["num_images"] == 300 and np.isfinite(result["fid"])
    for bar in ("NLL", "sampling", "features of the samples", "features of the data"):
        assert bar in shown, shown[-3000:]
    assert "300/300" in shown and "left" in shown

    piped = run_cli(*args)  # stderr is a pipe: no bars, the same figures
    assert piped.returncode == 0, piped.stderr[-3000:]
    assert "sampling" not in piped.stderr and "300/300" not in piped.stderr
    assert json.loads(piped.stdout) == result


def test_augment_and_flip_flags_reach_the_train_config(tmp_path):
    def config(*flags):
        args = cli.build_parser().parse_args(["train", "dcgan", "--out", str(tmp_path / "r"),
                                              *flags])
        return cli._check_train(args)

    auto = config()
    assert (auto.augment, auto.flip) == (None, None)
    given = config("--augment", "none", "--no-flip")
    assert (given.augment, given.flip) == ("", False)
    policy = config("--augment", "cutout,translation", "--flip")
    assert (policy.augment, policy.flip) == ("cutout,translation", True)

"""Presets (tf_genai/presets): trained models as folders, shipped in the package or a user's own.

- ``save_to_preset`` -> ``from_preset`` gives back the same model for a tiny model of each
  family: float32 exactly, float16 within its rounding (every stored array is the float16
  rounding of the saved one; outputs close), a weight-averaged network from its average; the
  loaded model is compiled with a fresh optimizer and fits further.
- Broken presets are refused by name: a missing or corrupt weight file (ModelFileError), an
  unknown name (ConfigError with the nearest shipped name and the list); a preset is never
  overwritten silently.
- The command line: ``preset:NAME`` and preset folders in ``sample`` (checked before
  TensorFlow is imported), ``models --presets`` without TensorFlow, ``train --from-preset``
  fine-tunes and refuses a conflicting model or argument.
- ``benchmarks/build_presets.py`` builds a measured preset whose check figure reproduces.
- The package: a wheel built from the repository ships every preset in ``tf_genai/presets/``,
  within the size budget, and each one, loaded from the installed wheel alone, reproduces its
  recorded check figure within its recorded noise (skipped while none is shipped).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import tf_genai
from needs import REPO_ROOT, require_shared_data
from tf_genai import cli, presets
from tf_genai.errors import ConfigError, DataError, ModelFileError, OutputExistsError
from zoo_helpers import compile_model, dataset, deterministic_outputs, digits, make_model, \
    probe_inputs

FAMILIES = ["vae", "dcgan", "ddpm", "cflow"]  # one of each family; a GAN and a flow conditional
PRESETS_BUDGET_BYTES = 30_000_000  # every shipped preset together, as the wheel stores them


def _perturbed(name: str, **kwargs):
    """A tiny zoo model whose weight average differs from its trained network (as after
    training), so a preset that stored the wrong one of them is caught."""
    model = make_model(name, **kwargs)
    rng = np.random.default_rng(0)
    pair = model.weight_average()
    if pair is not None:
        for network in pair:
            for w in network.trainable_weights:
                w.assign(w.numpy() + 0.05 * rng.standard_normal(w.shape).astype("float32"))
    return model


def _expected_weights(model) -> list[np.ndarray]:
    """The weights a preset of ``model`` loads: its own, but the averaged network's for the
    trained network of a weight average."""
    pair = model.weight_average()
    stand_in = {} if pair is None else {
        id(t): a for t, a in zip(pair[0].weights, pair[1].weights)}
    return [np.asarray(stand_in.get(id(w), w).numpy()) for w in model.weights]


def _float16(values: np.ndarray) -> np.ndarray:
    return values.astype("float16").astype("float32") if values.ndim else values


@pytest.mark.parametrize("name", FAMILIES)
def test_round_trip_float32_exact_float16_within_its_rounding(name, tmp_path):
    model = _perturbed(name)
    compile_model(model)  # a trained model is compiled: its optimizers are not stored
    probe = probe_inputs(model)
    before = deterministic_outputs(model, probe)
    expected = _expected_weights(model)

    for dtype in ("float32", "float16"):
        folder = tf_genai.save_to_preset(model, tmp_path / dtype, dtype=dtype)
        assert sorted(p.name for p in folder.iterdir()) == [
            "config.json", "metadata.json", "model.weights.h5"]
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["weights"]["dtype"] == dtype and meta["zoo_name"] == name
        with h5py.File(folder / "model.weights.h5") as f:
            stored = []
            f.visititems(lambda key, item: stored.append(item)
                         if isinstance(item, h5py.Dataset) else None)
            arrays = {str(d.dtype) for d in stored if d.ndim and d.dtype.kind == "f"}
            assert arrays == {dtype}, arrays  # every float array in the storage dtype
            assert not any("optimizer" in d.name for d in stored)

        loaded = tf_genai.from_preset(folder)
        assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
        assert {v.dtype for v in loaded.weights} == {"float32"}
        got = [np.asarray(w.numpy()) for w in loaded.weights]
        after = deterministic_outputs(loaded, probe)
        if dtype == "float32":
            for e, g in zip(expected, got, strict=True):
                np.testing.assert_array_equal(g, e)
            for key in before:
                np.testing.assert_array_equal(after[key], before[key], err_msg=key)
        else:
            for e, g in zip(expected, got, strict=True):
                np.testing.assert_array_equal(g, _float16(e))
            for key in before:  # float16 weights: outputs within ~1e-3 of the value range
                scale = max(1.0, float(np.max(np.abs(before[key]))))
                np.testing.assert_allclose(after[key], before[key], atol=2e-2 * scale,
                                           err_msg=key)
            assert any(not np.array_equal(g, e) for e, g in zip(expected, got))

    # Ready to train further: compiled with the family's recipe, fresh optimizers.
    for _, optimizer, _ in loaded.training_optimizers():
        assert int(optimizer.iterations.numpy()) == 0
    x, y = digits(loaded, 64)
    history = loaded.fit(dataset(loaded, x, y), epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, on the GAN file
def test_missing_or_corrupt_weight_files_are_named(tmp_path):
    folder = tf_genai.save_to_preset(make_model("vae"), tmp_path / "p", dtype="float32")
    weights = folder / "model.weights.h5"
    good = weights.read_bytes()

    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    with pytest.raises(ModelFileError, match="corrupt.*SHA-256") as err:
        tf_genai.from_preset(folder)
    assert str(weights) in str(err.value)

    # Without a recorded digest (a hand-made preset) the damage shows when it is read.
    meta = json.loads((folder / "metadata.json").read_text())
    del meta["weights"]["sha256"]
    (folder / "metadata.json").write_text(json.dumps(meta))
    weights.write_bytes(good[: len(good) // 3])
    with pytest.raises(ModelFileError, match="could not be loaded") as err:
        tf_genai.from_preset(folder)
    assert str(weights) in str(err.value)

    # Another model's weights (a GAN's in the VAE's folder).
    other = tf_genai.save_to_preset(make_model("gan"), tmp_path / "gan", dtype="float32")
    shutil.copy(other / "model.weights.h5", weights)
    with pytest.raises(ModelFileError, match="could not be loaded into VAE"):
        tf_genai.from_preset(folder)

    weights.unlink()
    with pytest.raises(ModelFileError, match="no weight file") as err:
        tf_genai.from_preset(folder)
    assert str(weights) in str(err.value)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="config.json"):
        tf_genai.from_preset(folder)


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """Two tiny presets in place of the package's shipped ones: ``vae_2d`` and ``dcgan``."""
    folder = tmp_path / "shipped"
    tf_genai.save_to_preset(make_model("vae", latent_dim=2), folder / "vae_2d")
    tf_genai.save_to_preset(make_model("dcgan"), folder / "dcgan")
    monkeypatch.setattr(presets, "SHIPPED", folder)
    return folder


def test_unknown_names_list_the_shipped_presets(shipped, tmp_path):
    assert presets.available() == ["dcgan", "vae_2d"]
    with pytest.raises(ConfigError, match=r"unknown preset 'vae2d'; did you mean 'vae_2d'\? "
                                          r"the shipped presets: dcgan, vae_2d"):
        tf_genai.from_preset("vae2d")
    with pytest.raises(ConfigError, match="the shipped presets: dcgan, vae_2d"):
        tf_genai.from_preset("flow")
    with pytest.raises(ModelFileError, match="does not exist"):
        tf_genai.from_preset(tmp_path / "nowhere")
    model = tf_genai.from_preset("VAE_2D")  # any case, like zoo names
    assert model.latent_dim == 2

    # The class method checks the class.
    from tf_genai.models.gan.model import GAN
    from tf_genai.models.vae.model import VAE

    assert isinstance(GAN.from_preset("dcgan"), GAN)
    with pytest.raises(ConfigError, match="holds a GAN, not a VAE"):
        VAE.from_preset("dcgan")


def test_a_preset_is_never_overwritten_silently(tmp_path):
    model = make_model("vae")
    folder = model.save_to_preset(tmp_path / "p")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        model.save_to_preset(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with pytest.raises(ConfigError, match="dtype must be one of float16, float32"):
        model.save_to_preset(tmp_path / "q", dtype="bfloat16")
    assert not (tmp_path / "q").exists()
    import keras

    with pytest.raises(ConfigError, match="not a tf_genai model"):
        tf_genai.save_to_preset(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]),
                                tmp_path / "r")
    model.save_to_preset(folder, dtype="float32", overwrite=True)
    assert json.loads((folder / "metadata.json").read_text())["weights"]["dtype"] == "float32"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging


# ---------------------------------------------------------------------------- command line


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


@pytest.mark.subprocess
def test_sample_takes_preset_names_and_folders(shipped, tmp_path, capsys):
    npy = tmp_path / "s.npy"
    assert cli.main(["sample", "preset:vae_2d", "--n", "5", "--out", str(npy)]) == 0
    expected = np.asarray(tf_genai.from_preset("vae_2d").sample(5, seed=0))
    np.testing.assert_array_equal(np.load(npy), expected)

    # A preset folder, given as a path in a new process, as a user's shell would.
    folder = shipped / "vae_2d"
    for argument in (str(folder), f"preset:{folder}"):
        out = tmp_path / f"{len(argument)}.npy"
        done = _python("from tf_genai import cli; raise SystemExit(cli.main())", "sample",
                       argument, "--n", "5", "--out", str(out))
        assert done.returncode == 0, done.stderr[-2000:]
        np.testing.assert_array_equal(np.load(out), expected)

    # A broken preset is refused before TensorFlow is imported.
    (folder / "model.weights.h5").unlink()
    done = _python("import sys; from tf_genai import cli; code = cli.main(); "
                   "print('tensorflow' in sys.modules); raise SystemExit(code)",
                   "sample", f"preset:{folder}", "--out", str(tmp_path / "x.png"))
    assert done.returncode == 2 and done.stdout.strip() == "False"
    assert "model.weights.h5" in done.stderr and "missing" in done.stderr
    capsys.readouterr()
    assert cli.main(["sample", "preset:vae2d", "--out", str(tmp_path / "y.png")]) == 2
    assert "did you mean 'vae_2d'" in capsys.readouterr().err
    # The other commands that take a model.keras file load presets the same way.
    assert cli.main(["plot", "preset:dcgan", "--out", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "samples.png").is_file()


@pytest.mark.subprocess
def test_models_presets_lists_them_without_tensorflow(shipped):
    meta = json.loads((shipped / "dcgan" / "metadata.json").read_text())
    meta.update(headline="FID 9.99 (classifier)", data={"name": "MNIST"})
    (shipped / "dcgan" / "metadata.json").write_text(json.dumps(meta))
    done = _python("import sys, pathlib; from tf_genai import cli, presets; "
                   f"presets.SHIPPED = pathlib.Path({str(shipped)!r}); "
                   "code = cli.main(['models', '--presets']); "
                   "print('tensorflow' in sys.modules, 'keras' in sys.modules); "
                   "raise SystemExit(code)")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "False False"
    assert lines[0].split() == ["dcgan", "dcgan", "MNIST", "FID", "9.99", "(classifier)"]
    assert lines[1].split() == ["vae_2d", "vae", "-", "-"]


@pytest.mark.slow
def test_train_from_preset_fine_tunes_it(tmp_path, capsys):
    model = _perturbed("vae", latent_dim=3)
    folder = model.save_to_preset(tmp_path / "mine", dtype="float32")
    out = tmp_path / "run"
    # A learning rate of 1e-9 leaves the weights where the preset put them (Adam moves each
    # by about the rate a step), so the run is seen to start from them.
    assert cli.main(["train", "vae", "--data", "digits", "--epochs", "1", "--lr", "1e-9",
                     "--batch-size", "256", "--from-preset", str(folder), "--quiet",
                     "--out", str(out)]) == 0
    tuned = tf_genai.export.load_model(out / "model.keras")
    assert tuned.latent_dim == 3
    for before, after in zip(model.weights, tuned.weights, strict=True):
        np.testing.assert_allclose(after.numpy(), before.numpy(), atol=1e-6)
    steps = int(tuned.optimizer.iterations.numpy())
    assert steps == 6  # 1,438 training digits less the 10 % validation share, batches of 256
    assert json.loads((out / "run.json").read_text())["from_preset"] == str(folder)

    capsys.readouterr()
    assert cli.main(["train", "dcgan", "--from-preset", str(folder), "--out",
                     str(tmp_path / "a")]) == 2
    assert "holds a 'vae' model, but model 'dcgan'" in capsys.readouterr().err
    assert cli.main(["train", "vae", "--latent-dim", "4", "--from-preset", str(folder),
                     "--out", str(tmp_path / "b")]) == 2
    assert "it has --latent-dim 3; leave --latent-dim out" in capsys.readouterr().err
    with pytest.raises(DataError, match="takes 8x8x1 images, but the data's are 8x8x3"):
        tf_genai.training.train("vae", data="digits", channels=3, epochs=1,
                                from_preset=str(folder), verbose=0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------- the build script


@pytest.mark.slow
def test_build_script_writes_a_measured_preset_that_reproduces(benchmark_module, tmp_path,
                                                               monkeypatch, capsys):
    from sklearn.datasets import load_digits

    from tf_genai.evaluation.report import quick_figure

    build = benchmark_module("build_presets")
    d = load_digits()
    x = (d.images * (255 / 16)).round().astype("uint8")
    root = tmp_path / "data"
    root.mkdir()
    np.savez(root / "digits.npz", x_train=x[:1400], y_train=d.target[:1400],
             x_test=x[1400:], y_test=d.target[1400:])
    monkeypatch.setattr(build, "DATA", {"digits": build.Data(
        "digits", "digits.npz", "scikit-learn's digits", "images 0-1,399", "the rest", "BSD")})
    monkeypatch.setattr(build, "ROWS", [build.Row("tiny_vae", "vae", "digits", "elbo",
                                                  {"filters": [8], "hidden_units": [16]})])
    args = ["--names", "tiny_vae", "--budget", "1", "--out", str(tmp_path / "presets"),
            "--data-root", str(root), "--check-n", "40", "--num-generated", "40",
            "--nll-images", "20", "--nll-samples", "4"]
    assert build.main(args) == 0
    folder = tmp_path / "presets" / "tiny_vae"
    meta = presets.check(folder).metadata
    assert meta["data"]["licence"] == "BSD" and meta["training"]["steps"]["optimizer"] > 0
    assert meta["training"]["command"].startswith("python benchmarks/build_presets.py --names")
    assert meta["weights"]["dtype"] == meta["storage"]["chosen"]
    assert meta["evaluation"]["command"].startswith("tf-genai evaluate preset:tiny_vae")
    assert meta["evaluation"]["result"]["nll_images"] == 20
    check = meta["check"]
    assert check["noise"] > 0 and len(check["values"]) == 3
    value = quick_figure(tf_genai.from_preset(folder), check["figure"], root / "digits.npz",
                         n=check["n"], seed=check["seed"])
    assert abs(value - check["value"]) <= check["noise"]

    capsys.readouterr()  # an existing preset is refused before anything trains
    assert build.main(args) == 2
    assert "not empty; pass overwrite=True" in capsys.readouterr().err

    with pytest.raises(ConfigError, match="figure must be one of classifier_confidence, elbo"):
        quick_figure(tf_genai.from_preset(folder), "fid", root / "digits.npz")
    with pytest.raises(ConfigError, match="no likelihood, so no ELBO"):
        quick_figure(make_model("gan"), "elbo", root / "digits.npz")


# ---------------------------------------------------------------------------- the package


WORKER = """
import json, sys
import tf_genai
from tf_genai import presets
from tf_genai.evaluation.report import quick_figure

data = json.loads(sys.argv[1])
out = {"file": tf_genai.__file__, "available": presets.available(), "figures": {},
       "shapes": {}}
for name, path in data.items():
    check = presets.check(name).metadata["check"]
    model = tf_genai.from_preset(name)
    out["shapes"][name] = list(model.sample(4, seed=0).shape)
    out["figures"][name] = quick_figure(model, check["figure"], path, n=check["n"],
                                        seed=check["seed"])
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_wheel_ships_every_preset_and_each_reproduces_its_figure(tmp_path):
    shipped = presets.available()
    if not shipped:
        pytest.skip("no preset is shipped in tf_genai/presets/ yet: "
                    "benchmarks/build_presets.py builds them (docs/presets.md)")
    checks = {name: presets.check(name).metadata["check"] for name in shipped}
    data = {name: str(require_shared_data(c["data"])) for name, c in checks.items()}

    # Build the wheel from a copy of the repository's package files (the checkout stays
    # clean), offline: setuptools as installed, no isolated build environment.
    src = tmp_path / "src"
    shutil.copytree(REPO_ROOT / "tf_genai", src / "tf_genai",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist")], capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("tf_genai-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        members = {i.filename: i for i in archive.infolist()}
    for name in shipped:
        for file in (presets.CONFIG_FILE, presets.WEIGHTS_FILE, presets.METADATA_FILE):
            assert f"tf_genai/presets/{name}/{file}" in members, (name, file)
    stored = sum(i.compress_size for f, i in members.items() if f.startswith("tf_genai/presets/"))
    assert stored <= PRESETS_BUDGET_BYTES, f"the presets take {stored / 1e6:.1f} MB of the wheel"

    site = tmp_path / "site"
    installed = subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(data)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).is_relative_to(site)  # the wheel's package, not the checkout
    assert result["available"] == shipped
    for name, check in checks.items():
        assert result["shapes"][name][0] == 4
        got = result["figures"][name]
        assert abs(got - check["value"]) <= check["noise"], (
            f"{name}: {check['figure']} {got:.5g}, recorded {check['value']:.5g} "
            f"+- {check['noise']:.3g}")

"""tf_genai.export: safe `.keras` loading, SavedModel export read by plain TensorFlow, TFLite.

Every zoo model is exported and loaded in a process that never imports tf_genai (tests/
zoo_helpers.py), and its decoder/generator is converted to TFLite; both must give the
in-process model's outputs.
"""

from __future__ import annotations

import json
import shutil
import typing
import zipfile

import keras
import numpy as np
import pytest
import zoo_helpers

import tf_genai
from tf_genai import export
from tf_genai.errors import ConfigError, ModelFileError, OutputExistsError

ZOO = tf_genai.available()


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("name", ZOO)
def test_export_loads_and_serves_in_plain_tensorflow(name, tmp_path):
    zoo_helpers.check_export_in_plain_tf(name, tmp_path)


@pytest.mark.parametrize("name", ZOO)
def test_tflite_decoder_or_generator_matches_model(name, tmp_path):
    zoo_helpers.check_tflite(name, tmp_path)


@pytest.mark.subprocess
@pytest.mark.parametrize("coupling", [False, True])
def test_colour_vae_with_logistic_mixture_exports_and_converts(tmp_path, coupling):
    """A colour VAE's default likelihood is the discretized logistic: its decoder's (H, W, C, P)
    parameters must reach the exports as images (the mixture's mean, channel-coupled or not),
    in plain TF and TFLite."""
    shape = dict(image_shape=(8, 8, 3), logistic_components=3, logistic_coupling=coupling)
    assert zoo_helpers.make_model("vae", **shape).likelihood == "logistic"
    zoo_helpers.check_export_in_plain_tf("vae", tmp_path / "saved", **shape)
    zoo_helpers.check_tflite("vae", tmp_path / "lite", **shape)


# ------------------------------------------------------------------------- load_model


@pytest.fixture(scope="module")
def saved_vae(tmp_path_factory):
    """A real tf_genai .keras file (compiled, untrained mlp_vae: the smallest zoo model)."""
    model = zoo_helpers.make_model("mlp_vae")
    zoo_helpers.compile_model(model)
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    model.save(path)
    return model, path


def test_load_model_rebuilds_the_saved_model(saved_vae):
    model, path = saved_vae
    loaded = export.load_model(path)
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    z = np.random.default_rng(0).standard_normal((3, model.latent_dim)).astype("float32")
    np.testing.assert_allclose(loaded.decode(z), model.decode(z), rtol=1e-6, atol=1e-7)


def _raises_model_file_error(path, *words):
    with pytest.raises(ModelFileError) as info:
        export.load_model(path)
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message
    return message


def test_load_model_missing_file(tmp_path):
    _raises_model_file_error(tmp_path / "nope.keras", "does not exist")


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.0])
def test_load_model_truncated_file(saved_vae, tmp_path, fraction):
    _, path = saved_vae
    data = path.read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(data[: int(len(data) * fraction)])
    _raises_model_file_error(cut, "empty" if fraction == 0 else "truncated")


def test_load_model_random_bytes_and_text(tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _raises_model_file_error(junk, "not a .keras zip archive")
    text = tmp_path / "notes.keras"
    text.write_text("this is not a model\n")
    _raises_model_file_error(text, "not a .keras zip archive")


def test_load_model_zip_without_keras_members(tmp_path):
    other = tmp_path / "other.keras"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("hello.txt", "a zip, but no model in it")
    _raises_model_file_error(other, "not a complete .keras file")


def test_load_model_plain_keras_model_is_not_tf_genai(tmp_path):
    inputs = keras.Input((4,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    path = tmp_path / "plain.keras"
    plain.save(path)
    _raises_model_file_error(path, "not a tf_genai model")


# Advisories against loading .keras files in Keras 3, and the release that fixed each.
KERAS_LOADING_ADVISORIES = {
    "CVE-2025-1550": "3.9", "CVE-2025-8747": "3.11", "CVE-2025-9906": "3.11",
    "CVE-2025-12058": "3.12", "CVE-2025-12060": "3.12", "CVE-2026-1462": "3.13.2",
    "GHSA-hqp4-2352-xf5r": "3.14",
}


def test_the_keras_floor_is_a_release_without_the_loading_advisories(repo_root):
    import configparser

    from packaging.requirements import Requirement
    from packaging.version import Version

    cfg = configparser.ConfigParser()
    cfg.read(repo_root / "setup.cfg")
    lines = [line.strip() for line in cfg["options"]["install_requires"].splitlines()]
    keras_req = next(Requirement(line) for line in lines
                     if line and not line.startswith("#") and line.startswith("keras"))
    floors = [Version(s.version) for s in keras_req.specifier if s.operator == ">="]
    assert floors, f"setup.cfg allows any old Keras: {keras_req}"
    for advisory, fixed in KERAS_LOADING_ADVISORIES.items():
        assert floors[0] >= Version(fixed), f"keras {keras_req.specifier} allows {advisory}"
        assert advisory in (repo_root / "setup.cfg").read_text(), f"say why: {advisory}"
    assert keras_req.specifier.contains(keras.__version__)


def _with_compile_config(path, target, optimizer_config):
    """A copy of the .keras file ``path`` whose compile config names ``optimizer_config``."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["compile_config"]["optimizer"] = optimizer_config
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    return target


@keras.saving.register_keras_serializable(package="tf_genai_test")
class _RecordingOptimizer(keras.optimizers.Adam):
    """An optimizer a crafted compile config names: its from_config records every call (a
    stand-in for any callable a file could name there)."""

    calls: typing.ClassVar[list] = []

    @classmethod
    def from_config(cls, config, custom_objects=None):
        cls.calls.append(config)
        raise RuntimeError("the file's compile config was deserialised")


def test_load_model_never_deserialises_the_files_compile_config(saved_vae, tmp_path):
    """A file whose compile config names another optimizer class, or builtins.exec: loading
    never touches it; the model comes back compiled with its own recipe."""
    model, path = saved_vae
    recording = _with_compile_config(path, tmp_path / "recording.keras", {
        "module": None, "class_name": "_RecordingOptimizer",
        "registered_name": "tf_genai_test>_RecordingOptimizer", "config": {"learning_rate": 1.0}})
    marker = tmp_path / "pwned"
    exec_call = _with_compile_config(path, tmp_path / "exec.keras", {
        "module": "builtins", "class_name": "function", "registered_name": "function",
        "config": "exec", "args": [f"open({str(marker)!r}, 'w').write('x')"]})
    for crafted in (recording, exec_call):
        loaded = export.load_model(crafted)
        assert _RecordingOptimizer.calls == [] and not marker.exists()
        assert loaded.compiled and type(loaded.optimizer) is type(model.optimizer)
        np.testing.assert_allclose(float(loaded.optimizer.learning_rate), 1e-3, rtol=1e-6)


def test_load_model_restores_the_optimizer_state_and_weight_decay(tmp_path):
    """Compiled with the recipe, the reloaded model has the file's optimizer state: the step
    count, the learning rate it was trained at, every moment; and the saved weight decay."""
    from tf_genai.training import compile_model

    model = zoo_helpers.make_model("mlp_vae")
    compile_model(model, learning_rate=5e-4, weight_decay=0.01)
    x, y = zoo_helpers.digits(model)
    zoo_helpers.fit_one_epoch(model, zoo_helpers.dataset(model, x, y))
    model.save(tmp_path / "trained.keras")
    loaded = export.load_model(tmp_path / "trained.keras")
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.weight_decay == pytest.approx(0.01)
    saved, restored = model.optimizer.variables, loaded.optimizer.variables
    assert len(saved) == len(restored) and int(restored[0].numpy()) > 0
    for a, b in zip(saved, restored):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_load_model_directory_and_wrong_suffix(saved_vae, tmp_path):
    _raises_model_file_error(tmp_path, "is a directory")
    _, path = saved_vae
    renamed = tmp_path / "model.zip"
    shutil.copy(path, renamed)
    _raises_model_file_error(renamed, ".keras")


# ------------------------------------------------------------- export_saved_model files


def test_export_refuses_an_existing_directory_and_overwrite_replaces_it(tmp_path):
    model = zoo_helpers.make_model("gan")
    target = tmp_path / "exports" / "gan"
    target.mkdir(parents=True)
    (target / "keep.txt").write_text("user data")
    with pytest.raises(OutputExistsError, match="exports"):
        export.export_saved_model(model, target)
    assert (target / "keep.txt").read_text() == "user data"
    assert sorted(p.name for p in target.parent.iterdir()) == ["gan"]  # no temp dir left

    export.export_saved_model(model, target, overwrite=True)
    assert not (target / "keep.txt").exists()
    meta = export.read_metadata(target)
    assert meta["zoo_name"] == "gan" and meta["family"] == "gan"
    assert sorted(p.name for p in target.parent.iterdir()) == ["gan"]


def test_export_into_an_empty_directory_is_allowed(tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    export.export_saved_model(zoo_helpers.make_model("gan"), target)
    assert (target / "saved_model.pb").is_file() and (target / "metadata.json").is_file()


class _BrokenDecoderVAE(tf_genai.registry.entry("mlp_vae").cls):
    """A VAE whose decode fails while the export traces it (a real failure, mid-export)."""

    def decode(self, z, labels=None):
        raise RuntimeError("decoder exploded")


def test_failed_export_keeps_the_old_export_and_leaves_no_half_directory(tmp_path):
    target = tmp_path / "vae"
    export.export_saved_model(zoo_helpers.make_model("gan"), target)
    before = {p.name: p.stat().st_size for p in target.rglob("*")}
    broken = _BrokenDecoderVAE(**zoo_helpers.make_model("mlp_vae").get_config())
    with pytest.raises(RuntimeError, match="decoder exploded"):
        export.export_saved_model(broken, target, overwrite=True)
    assert {p.name: p.stat().st_size for p in target.rglob("*")} == before
    assert export.read_metadata(target)["family"] == "gan"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae"]

    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        export.export_saved_model(broken, fresh)
    assert not fresh.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["vae"]


def test_export_rejects_a_model_that_is_not_tf_genai(tmp_path):
    inputs = keras.Input((4,))
    with pytest.raises(ConfigError, match="not a tf_genai"):
        export.export_saved_model(keras.Model(inputs, inputs), tmp_path / "x")
    assert not (tmp_path / "x").exists()


# -------------------------------------------------------------------- sample_from_export


@pytest.fixture(scope="module")
def cgan_export(tmp_path_factory):
    model = zoo_helpers.make_model("cgan")
    return model, export.export_saved_model(model, tmp_path_factory.mktemp("exp") / "cgan")


def test_sample_from_export_is_seeded_and_matches_model_sample(cgan_export):
    model, export_dir = cgan_export
    a = export.sample_from_export(export_dir, 12, seed=3)
    assert a.shape == (12, *zoo_helpers.IMAGE_SHAPE) and a.dtype == np.float32
    assert a.min() >= -1.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, export.sample_from_export(export_dir, 12, seed=3))
    assert not np.allclose(a, export.sample_from_export(export_dir, 12, seed=4))
    # labels=None cycles the classes, as model.sample does.
    np.testing.assert_allclose(a, np.asarray(model.sample(12, seed=3)), atol=1e-5)
    labels = np.full(12, 7, dtype="int32")
    np.testing.assert_allclose(export.sample_from_export(export_dir, 12, seed=3, labels=labels),
                               np.asarray(model.sample(12, seed=3, labels=labels)), atol=1e-5)


def test_sample_from_export_bad_arguments(cgan_export, tmp_path):
    _, export_dir = cgan_export
    with pytest.raises(ConfigError, match="labels"):
        export.sample_from_export(export_dir, 4, seed=0, labels=[0, 1])
    with pytest.raises(ConfigError, match=r"\[0, 10\)"):
        export.sample_from_export(export_dir, 2, seed=0, labels=[0, 10])
    with pytest.raises(ConfigError, match="num_samples"):
        export.sample_from_export(export_dir, 0, seed=0)
    with pytest.raises(ModelFileError, match="does not exist"):
        export.sample_from_export(tmp_path / "missing", 4, seed=0)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ModelFileError, match="not a tf_genai export"):
        export.sample_from_export(tmp_path / "plain", 4, seed=0)


def test_unconditional_export_takes_no_labels(tmp_path):
    export_dir = export.export_saved_model(zoo_helpers.make_model("gan"), tmp_path / "gan")
    with pytest.raises(ConfigError, match="unconditional"):
        export.sample_from_export(export_dir, 2, seed=0, labels=[0, 1])
    meta = json.loads((export_dir / "metadata.json").read_text())
    assert meta["signatures"]["generate"]["inputs"]["z"]["shape"] == [None, meta["latent_dim"]]


def test_tflite_part_must_match_the_family():
    with pytest.raises(ConfigError, match="generator"):
        export.convert_to_tflite(zoo_helpers.make_model("gan"), part="decoder")
    with pytest.raises(ConfigError, match="part"):
        export.convert_to_tflite(zoo_helpers.make_model("gan"), part="encoder")

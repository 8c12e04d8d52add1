"""The one registry: zoo names, Keras serialization names and clear errors come from one table."""

from __future__ import annotations

import keras
import pytest

import tf_genai
from tf_genai import registry
from tf_genai.errors import ConfigError


def test_every_zoo_class_is_registered_with_keras_under_tf_genai():
    names = registry.available()
    assert {"vae", "mlp_vae", "cvae", "iwae", "gan", "dcgan", "wgan_gp", "cgan"} <= set(names)
    for name in names:
        cls = registry.entry(name).cls
        assert keras.saving.get_registered_name(cls) == f"tf_genai>{cls.__name__}"
        assert keras.saving.get_registered_object(f"tf_genai>{cls.__name__}") is cls


def test_create_applies_entry_defaults_and_overrides():
    model = tf_genai.create("mlp_vae", image_shape=(8, 8, 1), latent_dim=3)
    assert model.latent_dim == 3 and model.image_shape == (8, 8, 1)
    assert model.get_config()["architecture"] == "mlp"  # the entry's default
    assert registry.entry("mlp_vae").cls is registry.entry("vae").cls  # one class, two names


def test_unknown_name_and_unknown_argument_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model 'nope'.*vae"):
        registry.create("nope")
    with pytest.raises(ConfigError, match="not_an_argument"):
        registry.create("vae", image_shape=(8, 8, 1), not_an_argument=1)


def test_a_name_cannot_be_taken_twice():
    @registry.register("zz_registry_test")
    class First(keras.Model):
        pass

    with pytest.raises(ConfigError, match="already taken"):
        @registry.register("zz_registry_test")
        class Second(keras.Model):
            pass

    registry._ZOO.pop("zz_registry_test")
    assert registry.entry("vae").description  # every entry describes itself


def test_the_zoo_table_matches_its_classes():
    """tf_genai/zoo.py is data; every row's family and defaults must fit the class it names."""
    from tf_genai.zoo import PRESETS

    for name, preset in PRESETS.items():
        cls = registry.entry(name).cls
        assert cls.family == preset.family, name
        params = cls.__init__.__code__.co_varnames[1:cls.__init__.__code__.co_argcount]
        assert set(preset.defaults) <= set(params), (name, set(preset.defaults) - set(params))


def test_listing_the_zoo_and_import_tf_genai_load_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, io, contextlib\n"
            "import tf_genai\n"
            "from tf_genai import cli\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    cli.main(['models'])\n"
            "assert 'ddpm' in out.getvalue() and 'dcgan' in out.getvalue()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_keras_loads_a_zoo_file_through_the_deferred_stand_in(tmp_path):
    """Before any model module is imported, Keras holds a stand-in that imports the class."""
    import subprocess
    import sys

    model = tf_genai.create("vae", image_shape=(8, 8, 1))
    model.save(tmp_path / "vae.keras")
    code = ("import sys, tf_genai, keras\n"
            "assert 'tf_genai.models' not in sys.modules\n"
            "print(keras.saving.get_registered_object('tf_genai>VAE').__name__)\n"
            "m = keras.saving.load_model(sys.argv[1])\n"
            "print(type(m).__module__, m.name)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "vae.keras")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == "DeferredVAE" and lines[-1] == "tf_genai.models.vae.model vae"


def test_keras_knows_the_zoo_when_tensorflow_imports_it_first():
    """TensorFlow looks Keras up (``importlib.util.find_spec``) before importing it: the
    registration after ``import keras`` must survive that look-up."""
    import subprocess
    import sys

    code = ("import tf_genai, tensorflow, keras\n"
            "print(keras.saving.get_registered_object('tf_genai>VAE').__name__)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "DeferredVAE"


def test_names_match_in_any_case_and_a_typo_gets_the_nearest_name():
    assert registry.entry("VAE").name == "vae" and registry.entry("Mlp_Vae").name == "mlp_vae"
    assert registry.create("DCGAN", image_shape=(8, 8, 1)).name == "dcgan"
    with pytest.raises(ConfigError, match="unknown model 'dcgna'; did you mean 'dcgan'\\?"):
        registry.entry("dcgna")
    with pytest.raises(ConfigError) as err:
        registry.entry("xyz")  # nothing near: no suggestion, the list
    assert "did you mean" not in str(err.value) and "wgan_gp" in str(err.value)

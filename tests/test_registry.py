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

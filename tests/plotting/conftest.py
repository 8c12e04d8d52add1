"""Fixtures of the plotting tests: tiny real zoo models (8x8 images) and real digit images."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits as uint8 (N, 8, 8, 1) images in [0, 255] and int labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.round(data.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, data.target.astype(np.int64)


@pytest.fixture(scope="session")
def vae():
    import tf_genai

    return tf_genai.create("vae", image_shape=(8, 8, 1), latent_dim=2, filters=(8,),
                           hidden_units=(16,))


@pytest.fixture(scope="session")
def cvae():
    import tf_genai

    return tf_genai.create("cvae", image_shape=(8, 8, 1), latent_dim=2, filters=(8,),
                           hidden_units=(16,))


class Counting:
    """A real model seen through a proxy that records every ``render`` call's z shape (the
    family contract's latent -> image map that plots draw through)."""

    def __init__(self, model):
        self._model = model
        self.calls: list[tuple] = []
        self.latents: list[np.ndarray] = []

    def __getattr__(self, name):
        attr = getattr(self._model, name)
        if name == "render":
            def counted(z, *args, **kwargs):
                self.calls.append(tuple(np.shape(z)))
                self.latents.append(np.asarray(z))
                return attr(z, *args, **kwargs)
            return counted
        return attr


@pytest.fixture
def counting():
    """The :class:`Counting` proxy class (wrap a model to count its render calls)."""
    return Counting


def read_png(path) -> np.ndarray:
    """The pixels of a saved PNG (fails the test if it is missing or unreadable)."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


@pytest.fixture
def png():
    return read_png


@pytest.fixture(scope="session")
def dcgan():
    import tf_genai

    return tf_genai.create("dcgan", image_shape=(8, 8, 1), latent_dim=4, base_filters=4)


@pytest.fixture(scope="session")
def cgan():
    import tf_genai

    return tf_genai.create("cgan", image_shape=(8, 8, 1), latent_dim=4, base_filters=4)

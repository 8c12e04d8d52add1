"""The digit classifier feature extractor: accuracy on real MNIST, the on-disk cache, inputs."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest

from tf_genai.data import load
from tf_genai.errors import ConfigError, DataError
from tf_genai.evaluation import features
from tf_genai.evaluation.features import FeatureExtractor, cache_key, get_classifier


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load(str(mnist_dir), split="train"), load(str(mnist_dir), split="heldout")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist):
    """The classifier of the MNIST train split (images 0-7,999), and how long the call took."""
    # Shared with tests/evaluation/test_metrics.py, so the second module loads it.
    cache = tmp_path_factory.getbasetemp() / "evaluation_classifier_cache"
    start = time.perf_counter()
    extractor = get_classifier(*mnist[0], cache_dir=cache)
    return extractor, time.perf_counter() - start, cache


@pytest.mark.slow
def test_classifier_reaches_97_percent_on_heldout_mnist(trained, mnist):
    extractor, seconds, _ = trained
    images, labels = mnist[1]  # images 8,000-9,999, never seen in training
    accuracy = extractor.accuracy(images, labels)
    print(f"held-out accuracy {accuracy:.4f} (classifier ready in {seconds:.1f} s, "
          f"from cache: {extractor.from_cache})")
    assert accuracy >= 0.97


@pytest.mark.slow
def test_second_call_loads_the_cached_classifier(trained, mnist):
    extractor, _, cache = trained
    assert extractor.cache_path is not None and extractor.cache_path.parent == cache
    assert extractor.cache_path.is_file()
    start = time.perf_counter()
    again = get_classifier(*mnist[0], cache_dir=cache)
    seconds = time.perf_counter() - start
    assert again.from_cache and again.cache_path == extractor.cache_path
    assert seconds < 10.0  # training takes tens of seconds; loading about one
    sample = mnist[1][0][:64]
    np.testing.assert_allclose(again.features(sample), extractor.features(sample), rtol=1e-5,
                               atol=1e-5)


def test_cache_key_changes_with_the_data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 8, 8, 1)).astype(np.uint8) / np.float32(255)
    labels = rng.integers(0, 10, size=20)
    key = cache_key(images, labels, epochs=6, seed=0)
    assert key == cache_key(images.copy(), labels.copy(), epochs=6, seed=0)
    one_pixel = images.copy()
    one_pixel[3, 4, 4, 0] = 1.0 - one_pixel[3, 4, 4, 0]
    other_labels = labels.copy()
    other_labels[0] = (labels[0] + 1) % 10
    others = {cache_key(one_pixel, labels, epochs=6, seed=0),
              cache_key(images, other_labels, epochs=6, seed=0),
              cache_key(images, labels, epochs=7, seed=0),
              cache_key(images, labels, epochs=6, seed=1),
              cache_key(images, labels, epochs=6, seed=0, min_steps=1)}
    assert key not in others and len(others) == 5


def _tiny_digits(dtype=np.float32):
    """300 of scikit-learn's 8x8 digits, as uint8 or as the equal float32 values in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images[:300, :, :, None] * (255 / 16)).astype(np.uint8)
    if dtype == np.uint8:
        return pixels, digits.target[:300]
    return pixels.astype(np.float32) / 255.0, digits.target[:300]


def test_cache_env_var_and_different_data_trains_a_new_classifier(tmp_path, monkeypatch):
    # 8x8 digits, one epoch: each training is a few seconds.
    images, labels = _tiny_digits()
    monkeypatch.setenv(features.CACHE_ENV_VAR, str(tmp_path))
    first = get_classifier(images, labels, epochs=1, min_steps=0)
    assert not first.from_cache
    assert first.cache_path.parent == tmp_path / "classifiers"
    # uint8 input of the same pixels is the same training data, so the same cache entry.
    same = get_classifier(_tiny_digits(np.uint8)[0], labels, epochs=1, min_steps=0)
    assert same.from_cache and same.cache_path == first.cache_path
    changed = get_classifier(images[:-1], labels[:-1], epochs=1, min_steps=0)
    assert not changed.from_cache and changed.cache_path != first.cache_path
    kept = (tmp_path / "classifiers").glob("*.keras")
    assert sorted(p.name for p in kept) == sorted([first.cache_path.name, changed.cache_path.name])


def _get(images, labels, folder):
    return get_classifier(images, labels, epochs=1, min_steps=0, cache_dir=folder)


def _warnings_of(call):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in caught if "cache entry" in str(w.message)]


def test_a_changed_cache_file_is_never_loaded(tmp_path):
    """The classifier file is checked against the SHA-256 recorded when it was written: a
    damaged file, or another (valid) classifier put in its place, is not loaded."""
    images, labels = _tiny_digits()
    first = _get(images, labels, tmp_path)
    other = _get(images[:200], labels[:200], tmp_path / "other")
    for replacement in (other.cache_path.read_bytes(), b"not a keras file"):
        first.cache_path.write_bytes(replacement)
        again, warned = _warnings_of(lambda: _get(images, labels, tmp_path))
        assert not again.from_cache, "a file that differs from its record was trusted"
        assert len(warned) == 1 and "SHA-256" in warned[0], warned
        first = again
    assert _get(images, labels, tmp_path).from_cache


@pytest.mark.parametrize("record", [b"[1, 2]", b'{"file": 3, "sha256": "x"}', b'{"fi',
                                    b'{"file": "../../x.keras", "sha256": "00"}', b"null"])
def test_a_malformed_cache_record_counts_as_absent_with_one_warning(tmp_path, record):
    images, labels = _tiny_digits()
    first = _get(images, labels, tmp_path)
    [record_file] = tmp_path.glob("*.json")
    record_file.write_bytes(record)
    again, warned = _warnings_of(lambda: _get(images, labels, tmp_path))
    assert not again.from_cache and len(warned) == 1 and str(record_file) in warned[0], warned
    third, warned = _warnings_of(lambda: _get(images, labels, tmp_path))
    assert third.from_cache and not warned and third.cache_path == again.cache_path
    assert first.cache_path.is_file()  # another entry's file is never deleted by mistake


_CONCURRENT_WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from test_features import _get, _tiny_digits
images, labels = _tiny_digits()
n = int(sys.argv[3])
_get(images[:n], labels[:n], sys.argv[1])
"""


@pytest.mark.subprocess
def test_concurrent_writers_keep_every_entry(tmp_path):
    """Four processes fill one cache folder at once, two keys twice each: afterwards both
    entries load from the cache, undamaged and without a warning."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests_dir = Path(__file__).resolve().parent
    repo = tests_dir.parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo), os.environ.get("PYTHONPATH",
                                                                                  "")]))
    sizes = ("300", "250", "300", "250")
    procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT_WRITER, str(tmp_path),
                               str(tests_dir), n], env=env, stderr=subprocess.PIPE, text=True)
             for n in sizes]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    images, labels = _tiny_digits()
    for n in (300, 250):
        cached, warned = _warnings_of(lambda n=n: _get(images[:n], labels[:n], tmp_path))
        assert cached.from_cache and not warned, warned
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_feature_extractor_wraps_any_keras_classifier():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(7, name="hidden")(x)
    logits = keras.layers.Dense(3)(x)  # logits, not probabilities
    extractor = FeatureExtractor(keras.Model(inputs, logits))
    images = np.random.default_rng(0).integers(0, 256, size=(1100, 8, 8, 1)).astype(np.uint8)
    feats, probs = extractor.features_and_proba(images, batch_size=256)
    assert extractor.feature_layer == "hidden"
    assert feats.shape == (1100, 7) and probs.shape == (1100, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    # uint8 is scaled by 1/255: the same features as the float images.
    np.testing.assert_allclose(extractor.features(images.astype(np.float32) / 255.0), feats,
                               rtol=1e-5, atol=1e-6)
    assert FeatureExtractor(extractor.model, "hidden").features(images[:5]).shape == (5, 7)
    with pytest.raises(ConfigError, match="no layer 'nope'"):
        FeatureExtractor(extractor.model, "nope")


def test_feature_extractor_rejects_bad_images():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Dense(4)(keras.layers.Flatten()(inputs))
    extractor = FeatureExtractor(keras.Model(inputs, keras.layers.Softmax()(x)))
    with pytest.raises(DataError, match=r"\(x \+ 1\) / 2"):
        extractor.features(np.full((2, 8, 8, 1), -1.0, np.float32))
    with pytest.raises(DataError, match="expects"):
        extractor.features(np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(DataError, match="non-empty"):
        extractor.features(np.zeros((0, 8, 8, 1), np.float32))
    with pytest.raises(DataError, match="labels"):
        get_classifier(np.zeros((4, 8, 8, 1), np.float32), np.zeros(3, int))

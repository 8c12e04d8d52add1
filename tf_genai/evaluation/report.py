"""One call that evaluates a trained model the way ``tf-genai evaluate`` reports it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 or [0, 1] float images -> float32 in [0, 1]."""
    if images.dtype == np.uint8:
        return images.astype("float32") / 255.0
    return images.astype("float32")


def _model_input(model, unit_images: np.ndarray, seed: int) -> np.ndarray:
    """Held-out images in the form the model trains on (binarized once, with a fixed seed)."""
    if getattr(model, "binarize", False):
        from tf_genai.data import binarize_once

        return np.asarray(binarize_once(unit_images, seed=seed), dtype="float32")
    if model.data_range == "symmetric":
        return unit_images * 2.0 - 1.0
    return unit_images


def evaluate_model(
    model,
    data: Any = "digits",
    *,
    split: str = "heldout",
    num_samples: int = 1000,
    num_generated: int = 2000,
    max_images: int | None = None,
    seed: int = 0,
    classifier_cache: str | None = None,
) -> dict[str, Any]:
    """Likelihood (VAEs) and sample-quality metrics (every model) on one split of ``data``.

    VAEs get ``nll`` (importance-sampled, ``num_samples`` = k) and ``elbo``, nats per image;
    every model gets the feature-space sample metrics (``fid``, ``kid``, ``precision``,
    ``recall``, ``density``, ``coverage``, ``classifier_score``, ``class_coverage``) computed in
    the feature space of a digit classifier trained on the *train* split of ``data`` (cached on
    disk). Sources without labels get the likelihood only.

    Returns:
        A JSON-serialisable dict.
    """
    from tf_genai import data as data_lib
    from tf_genai.evaluation import features, metrics

    images, labels = data_lib.load(data, split=split)
    if max_images is not None:
        images = images[:max_images]
        labels = None if labels is None else labels[:max_images]
    unit = _to_unit(images)
    result: dict[str, Any] = {
        "model": type(model).__name__,
        "family": model.family,
        "data": str(data),
        "split": split,
        "num_images": int(len(images)),
    }
    if model.family == "vae":
        from tf_genai.evaluation.likelihood import importance_sampled_nll

        x = _model_input(model, unit, seed)
        lik = importance_sampled_nll(model, x, labels if model.num_classes else None,
                                     num_samples=num_samples, seed=seed)
        result["nll"] = float(lik["nll"])
        result["elbo"] = float(lik["elbo"])
        result["num_importance_samples"] = int(num_samples)

    train_images, train_labels = data_lib.load(data, split="train")
    if train_labels is None or labels is None:
        result["sample_metrics"] = "skipped: the data has no labels to train a feature classifier"
        return result
    extractor = features.get_classifier(train_images, train_labels, cache_dir=classifier_cache)
    gen_labels = None
    if model.num_classes is not None:
        gen_labels = np.resize(np.arange(model.num_classes, dtype="int32"), num_generated)
    fake = np.asarray(model.sample(num_generated, seed=seed, labels=gen_labels), dtype="float32")
    if model.data_range == "symmetric":
        fake = (fake + 1.0) / 2.0
    fake = np.clip(fake, 0.0, 1.0)
    sample = metrics.sample_metrics(
        extractor.features(unit), extractor.features(fake), fake_probs=extractor.predict_proba(fake)
    )
    result.update(sample)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in result.items()}

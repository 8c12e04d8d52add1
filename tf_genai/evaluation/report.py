"""One call that evaluates a trained model the way ``tf-genai evaluate`` reports it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tf_genai import ranges


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

    Models with a likelihood bound (VAEs) get ``nll`` (importance-sampled, ``num_samples`` =
    k) and ``elbo``, nats per image — ``conditional_nll`` / ``conditional_elbo`` for a
    conditional model, whose bound is on ``-log p(x | y)`` — and, where the likelihood is a
    probability mass over pixel values (discretized logistic: 8-bit; Bernoulli: binary),
    ``nll_bits_per_dim`` with ``likelihood_levels``;
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
    unit = ranges.uint8_to_unit(images)
    result: dict[str, Any] = {
        "model": type(model).__name__,
        "family": model.family,
        "data": str(data),
        "split": split,
        "num_images": int(len(images)),
    }
    if model.nll_key is not None:  # the model has a likelihood bound (VAEs)
        from tf_genai.evaluation.likelihood import importance_sampled_nll

        lik = importance_sampled_nll(model, model.likelihood_inputs(images, seed),
                                     labels if model.num_classes else None,
                                     num_samples=num_samples, seed=seed)
        # A conditional model's is -log p(x | y): up to log K nats below an unconditional
        # -log p(x), so it is named as such wherever it is reported.
        prefix = "conditional_" if model.num_classes else ""
        result[f"{prefix}nll"] = float(lik["nll"])
        result[f"{prefix}elbo"] = float(lik["elbo"])
        result["nll_unit"] = "nats per image"
        if lik["nll_bits_per_dim"] is not None:  # a probability mass: also in bits/dim
            result[f"{prefix}nll_bits_per_dim"] = lik["nll_bits_per_dim"]
            result["likelihood_levels"] = int(model.likelihood_levels)
        result["num_importance_samples"] = int(num_samples)

    train_images, train_labels = data_lib.load(data, split="train")
    if train_labels is None or labels is None:
        result["sample_metrics"] = "skipped: the data has no labels to train a feature classifier"
        return result
    extractor = features.get_classifier(train_images, train_labels, cache_dir=classifier_cache)
    gen_labels = None
    if model.num_classes is not None:
        gen_labels = np.resize(np.arange(model.num_classes, dtype="int32"), num_generated)
    fake = ranges.to_unit(model.sample(num_generated, seed=seed, labels=gen_labels),
                          model.data_range)
    sample = metrics.sample_metrics(
        extractor.features(unit), extractor.features(fake), fake_probs=extractor.predict_proba(fake)
    )
    result.update(sample)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in result.items()}

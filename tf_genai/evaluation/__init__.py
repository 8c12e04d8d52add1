"""Evaluation: likelihoods where a model has one, feature-space sample metrics for every model.

- :mod:`~tf_genai.evaluation.metrics`: FID, KID, improved precision/recall, density/coverage,
  classifier score and class coverage on feature arrays (NumPy/SciPy only).
- :mod:`~tf_genai.evaluation.features`: the cached digit classifier that turns images into
  those features (:func:`get_classifier`, :class:`FeatureExtractor`).
- :mod:`~tf_genai.evaluation.likelihood`: a model's NLL in nats per image and bits/dim
  (:func:`nll_summary`, for any model whose capabilities declare a likelihood).
"""

from tf_genai.evaluation.features import FeatureExtractor, get_classifier
from tf_genai.evaluation.likelihood import nll_summary
from tf_genai.evaluation.metrics import (
    class_coverage,
    classifier_score,
    density_coverage,
    frechet_distance,
    frechet_distance_from_stats,
    kernel_distance,
    precision_recall,
    sample_metrics,
)

__all__ = [
    "FeatureExtractor",
    "class_coverage",
    "classifier_score",
    "density_coverage",
    "frechet_distance",
    "frechet_distance_from_stats",
    "get_classifier",
    "kernel_distance",
    "nll_summary",
    "precision_recall",
    "sample_metrics",
]

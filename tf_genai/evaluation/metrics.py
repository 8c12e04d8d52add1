"""Sample-quality metrics on feature arrays: FID, KID, precision/recall, density/coverage.

Every function takes NumPy feature arrays of shape ``(n, d)`` (the output of a feature extractor,
see :mod:`tf_genai.evaluation.features`) or class probabilities ``(n, num_classes)``; nothing here
knows about models or images. Work is done in float64. The k-nearest-neighbour metrics compute
distances in row chunks, so 10,000 points in a few hundred dimensions need only tens of megabytes.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from tf_genai.errors import ConfigError, DataError

# Rows per chunk are chosen so one (chunk, n) distance block stays near this many entries.
_CHUNK_ENTRIES = 4_000_000


def _as_features(x: Any, name: str, min_rows: int = 2) -> np.ndarray:
    """``x`` as a finite float64 ``(n, d)`` array, or a DataError naming ``name``."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a 2-D feature array (n, d), got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise DataError(f"{name}: need at least {min_rows} rows, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: features contain NaN or infinite values")
    return arr


def _check_same_dim(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise DataError(f"{names}: feature dimensions differ ({a.shape[1]} vs {b.shape[1]})")


# --------------------------------------------------------------------------------------------
# Fréchet distance (FID)
# --------------------------------------------------------------------------------------------


def _sqrt_psd(mat: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    vals, vecs = np.linalg.eigh(mat)
    # Round-off makes tiny eigenvalues of a singular covariance slightly negative.
    vals = np.clip(vals, 0.0, None)
    return (vecs * np.sqrt(vals)) @ vecs.T


def frechet_distance_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})`` (Dowson & Landau 1982; used as FID by
    Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium"). ``tr((S1 S2)^{1/2})`` is computed as the sum of square roots of the eigenvalues
    of the symmetric PSD matrix ``S1^{1/2} S2 S1^{1/2}``, which has the same spectrum as ``S1 S2``.
    Unlike ``scipy.linalg.sqrtm(S1 @ S2)`` this stays real and finite for singular or
    near-singular covariances (fewer samples than dimensions, dead feature units), so the
    eps-on-the-diagonal fallback of the TTUR reference code is not needed.

    Returns:
        The squared Fréchet distance, a float >= 0 (up to round-off, clipped at 0).
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,):
        raise DataError(f"frechet_distance: means must be vectors of one length, got "
                        f"{mu1.shape} and {mu2.shape}")
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise DataError(f"frechet_distance: covariances must be ({d}, {d}), got "
                        f"{sigma1.shape} and {sigma2.shape}")
    for name, arr in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.all(np.isfinite(arr)):
            raise DataError(f"frechet_distance: {name} contains NaN or infinite values")
    # Symmetrise: covariances from np.cov are symmetric only up to round-off.
    sigma1 = 0.5 * (sigma1 + sigma1.T)
    sigma2 = 0.5 * (sigma2 + sigma2.T)
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    tr_covmean = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(value, 0.0)


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` of a feature array ``(n, d)``."""
    f = _as_features(features, "feature_stats")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID on these features).

    Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium". Note the estimator is biased upwards for finite samples (two independent
    sample sets of one distribution score above 0), so compare FIDs at equal sample sizes.
    """
    f1 = _as_features(features1, "frechet_distance features1")
    f2 = _as_features(features2, "frechet_distance features2")
    _check_same_dim(f1, f2, "frechet_distance")
    return frechet_distance_from_stats(*feature_stats(f1), *feature_stats(f2))


# --------------------------------------------------------------------------------------------
# Kernel distance (KID)
# --------------------------------------------------------------------------------------------


# Pools up to this many kernel entries (all three blocks) are computed once and the subsets
# indexed from them; larger pools compute each subset's kernels afresh.
_KID_PRECOMPUTE_ENTRIES = 16_000_000


def _polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int, gamma: float,
                       coef0: float) -> np.ndarray:
    """``(gamma x y^T + coef0)^degree``: ``(n_x, n_y)``."""
    k = x @ y.T  # (n_x, n_y)
    # In place, and by repeated multiplication: `** degree` on a float array is several times
    # slower for the small integer degrees used in practice, and this dominates KID's cost.
    k *= gamma
    k += coef0
    powered = k.copy()
    for _ in range(degree - 1):
        powered *= k
    return powered


def kernel_distance(
    features1: np.ndarray,
    features2: np.ndarray,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD² with a polynomial kernel, averaged over subsets.

    Bińkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD GANs". The kernel is
    ``k(x, y) = (gamma x.y + coef0)^degree`` with ``gamma = 1/d`` by default (the paper's cubic
    kernel). Each subset draws ``subset_size`` rows without replacement from each side and
    computes the unbiased estimator

        1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j)
        - 2/m^2 sum_{i,j} k(x_i, y_j),

    which has expectation 0 when both sets come from one distribution (it can be negative).

    Args:
        num_subsets: how many random subsets to average.
        subset_size: rows per subset; capped at the smaller set's size.
        seed: seed of the subset draws, so the value is reproducible.

    Returns:
        ``(mean, standard_error)``. The standard error is the standard deviation of the
        per-subset estimates divided by ``sqrt(min(num_subsets, n / subset_size))``: subsets
        drawn from a pool of ``n`` rows overlap, so they are worth at most about ``n / m``
        independent ones and dividing by ``sqrt(num_subsets)`` would overstate the precision.
    """
    f1 = _as_features(features1, "kernel_distance features1")
    f2 = _as_features(features2, "kernel_distance features2")
    _check_same_dim(f1, f2, "kernel_distance")
    if num_subsets < 1:
        raise ConfigError(f"kernel_distance: num_subsets must be >= 1, got {num_subsets}")
    if subset_size < 2:
        raise ConfigError(f"kernel_distance: subset_size must be >= 2, got {subset_size}")
    if degree < 1:
        raise ConfigError(f"kernel_distance: degree must be >= 1, got {degree}")
    n_min = min(f1.shape[0], f2.shape[0])
    m = min(subset_size, n_min)
    gamma = 1.0 / f1.shape[1] if gamma is None else float(gamma)
    n1, n2 = f1.shape[0], f2.shape[0]
    rng = np.random.default_rng(seed)
    subsets = [(rng.choice(n1, m, replace=False), rng.choice(n2, m, replace=False))
               for _ in range(num_subsets)]
    if n1 * n1 + n2 * n2 + n1 * n2 <= _KID_PRECOMPUTE_ENTRIES:
        # Kernel sums over all subsets at once: with W the (n, num_subsets) subset-indicator
        # matrix, the sum of K over subset s is column s of sum(W * (K W)), three BLAS calls.
        w1 = np.zeros((n1, num_subsets))
        w2 = np.zeros((n2, num_subsets))
        for s, (i1, i2) in enumerate(subsets):
            w1[i1, s] = 1.0
            w2[i2, s] = 1.0
        k11 = _polynomial_kernel(f1, f1, degree, gamma, coef0)  # (n1, n1)
        sum_xx = np.einsum("is,is->s", w1, k11 @ w1) - w1.T @ np.diag(k11)  # (num_subsets,)
        del k11
        k22 = _polynomial_kernel(f2, f2, degree, gamma, coef0)  # (n2, n2)
        sum_yy = np.einsum("is,is->s", w2, k22 @ w2) - w2.T @ np.diag(k22)
        del k22
        k12 = _polynomial_kernel(f1, f2, degree, gamma, coef0)  # (n1, n2)
        sum_xy = np.einsum("is,is->s", w1, k12 @ w2)
    else:
        sum_xx, sum_yy, sum_xy = (np.empty(num_subsets) for _ in range(3))
        for s, (i1, i2) in enumerate(subsets):
            x, y = f1[i1], f2[i2]  # (m, d) each
            k_xx = _polynomial_kernel(x, x, degree, gamma, coef0)  # (m, m)
            k_yy = _polynomial_kernel(y, y, degree, gamma, coef0)  # (m, m)
            sum_xx[s] = k_xx.sum() - np.trace(k_xx)
            sum_yy[s] = k_yy.sum() - np.trace(k_yy)
            sum_xy[s] = _polynomial_kernel(x, y, degree, gamma, coef0).sum()
    # Unbiased: the within-set sums above exclude the diagonal (i == j) terms.
    estimates = (sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * sum_xy / (m * m)  # (num_subsets,)
    mean = float(estimates.mean())
    if num_subsets == 1:
        return mean, float("nan")
    effective = max(1.0, min(float(num_subsets), n_min / m))
    return mean, float(estimates.std(ddof=1) / np.sqrt(effective))


# --------------------------------------------------------------------------------------------
# k-nearest-neighbour metrics: improved precision/recall, density/coverage
# --------------------------------------------------------------------------------------------
#
# All four metrics only compare distances with k-NN radii, so they work on squared distances
# (no square roots) computed in float32 chunks: a 10,000 x 10,000 block in float64 plus its
# square root would take several seconds and 800 MB. Float32 round-off (~1e-6 relative) only
# matters for points sitting exactly on a ball's edge.


def _chunks(n_rows: int, n_cols: int) -> Iterator[slice]:
    step = max(1, _CHUNK_ENTRIES // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


class _SquaredDistances:
    """Row-chunked squared Euclidean distances from the rows of ``a`` to the rows of ``b``."""

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        # Centre on a shared point so |x|^2 stays small and the expansion below cancels less.
        centre = a.mean(axis=0)
        self.a = (a - centre).astype(np.float32)
        self.b = (b - centre).astype(np.float32)
        self.a_sq = np.einsum("ij,ij->i", self.a, self.a)
        self.b_sq = np.einsum("ij,ij->i", self.b, self.b)

    def __iter__(self) -> Iterator[tuple[slice, np.ndarray]]:
        for rows in _chunks(self.a.shape[0], self.b.shape[0]):
            sq = self.a[rows] @ self.b.T  # (chunk, n_b)
            sq *= -2.0
            sq += self.a_sq[rows, None]
            sq += self.b_sq[None, :]
            np.maximum(sq, 0.0, out=sq)
            yield rows, sq


def _knn_sq_radii(features: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
    """Squared distance from each row to its k-th nearest other row, for each k in ``ks``."""
    radii = {k: np.empty(features.shape[0], dtype=np.float32) for k in ks}
    for rows, sq in _SquaredDistances(features, features):
        # The point itself is at index 0 of each sorted row; force it there despite round-off
        # so index k is the k-th neighbour even when several points coincide.
        idx = np.arange(rows.stop - rows.start)
        sq[idx, idx + rows.start] = -1.0
        part = np.partition(sq, sorted(ks), axis=1)
        for k in ks:
            radii[k][rows] = part[:, k]
    return radii


def _check_k(k: int, n_real: int, n_fake: int, name: str) -> None:
    if k < 1:
        raise ConfigError(f"{name}: k must be >= 1, got {k}")
    if min(n_real, n_fake) <= k:
        raise DataError(f"{name}: need more than k={k} rows on each side, got "
                        f"{n_real} real and {n_fake} fake")


def _knn_metrics(real: np.ndarray, fake: np.ndarray, k_pr: int | None,
                 k_dc: int | None) -> dict[str, float]:
    """Precision/recall (k_pr) and density/coverage (k_dc) sharing the distance passes."""
    real_ks = [k for k in (k_pr, k_dc) if k is not None]
    real_radii = _knn_sq_radii(real, sorted(set(real_ks)))
    fake_radii = _knn_sq_radii(fake, [k_pr])[k_pr] if k_pr is not None else None
    precise = 0
    recalled = np.zeros(real.shape[0], dtype=bool)
    density_count = 0
    covered = np.zeros(real.shape[0], dtype=bool)
    for rows, sq in _SquaredDistances(fake, real):  # sq: (chunk of fake, n_real)
        if k_pr is not None:
            # Kynkäänniemi et al. use closed balls (<=).
            precise += int(np.count_nonzero((sq <= real_radii[k_pr][None, :]).any(axis=1)))
            recalled |= (sq <= fake_radii[rows, None]).any(axis=0)
        if k_dc is not None:
            # Naeem et al.'s reference code uses open balls (<).
            inside = sq < real_radii[k_dc][None, :]
            density_count += int(np.count_nonzero(inside))
            covered |= inside.any(axis=0)
    out: dict[str, float] = {}
    if k_pr is not None:
        out["precision"] = precise / fake.shape[0]
        out["recall"] = float(recalled.mean())
    if k_dc is not None:
        out["density"] = density_count / (k_dc * fake.shape[0])
        out["coverage"] = float(covered.mean())
    return out


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall from k-NN manifold estimates.

    Kynkäänniemi, Karras, Laine, Lehtinen & Aila 2019, "Improved Precision and Recall Metric for
    Assessing Generative Models". Precision is the fraction of fake points inside at least one
    real point's k-NN ball (radius = distance to its k-th nearest real neighbour, ball closed
    as in the paper); recall swaps the roles of the two sets.

    Returns:
        ``(precision, recall)``, each in [0, 1]; both are exactly 1 for identical sets.
    """
    r = _as_features(real, "precision_recall real")
    f = _as_features(fake, "precision_recall fake")
    _check_same_dim(r, f, "precision_recall")
    _check_k(k, r.shape[0], f.shape[0], "precision_recall")
    out = _knn_metrics(r, f, k, None)
    return out["precision"], out["recall"]


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Density and coverage from k-NN balls around the real points.

    Naeem, Oh, Uh, Choi & Yoo 2020, "Reliable Fidelity and Diversity Metrics for Generative
    Models". With ``B_i`` the open ball around real point ``i`` of radius its k-th nearest real
    neighbour distance (open, as in the authors' reference code):
    density = ``1/(k M) sum_j #{i: fake_j in B_i}`` (expectation 1 for a fake set drawn from the
    real distribution, can exceed 1) and coverage = the fraction of real points whose ball holds
    at least one fake point. For ``fake`` identical to ``real`` coverage is 1 and density is 1
    up to round-off on ball edges (each open ball holds its centre and its k-1 nearer
    neighbours).

    Returns:
        ``(density, coverage)``.
    """
    r = _as_features(real, "density_coverage real")
    f = _as_features(fake, "density_coverage fake")
    _check_same_dim(r, f, "density_coverage")
    _check_k(k, r.shape[0], f.shape[0], "density_coverage")
    out = _knn_metrics(r, f, None, k)
    return out["density"], out["coverage"]


# --------------------------------------------------------------------------------------------
# Classifier-based metrics
# --------------------------------------------------------------------------------------------


def _as_probs(probs: Any, name: str) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        raise DataError(f"{name}: expected class probabilities (n, num_classes), got {p.shape}")
    if not np.all(np.isfinite(p)) or p.min() < -1e-6:
        raise DataError(f"{name}: probabilities must be finite and non-negative")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise DataError(f"{name}: rows must sum to 1 (got sums from {p.sum(axis=1).min():.4g} "
                        f"to {p.sum(axis=1).max():.4g}); pass softmax outputs, not logits")
    return np.clip(p, 0.0, None)


def classifier_score(probs: np.ndarray) -> float:
    """``exp(E_x KL(p(y|x) || p(y)))``: the Inception Score computed with our digit classifier.

    Salimans et al. 2016, "Improved Techniques for Training GANs". It is high (up to the number
    of classes) when each sample is confidently one class and the classes are balanced. Computed
    on the whole set (no splits).
    """
    p = _as_probs(probs, "classifier_score")
    marginal = p.mean(axis=0)  # (num_classes,)
    eps = 1e-12
    kl = np.sum(p * (np.log(p + eps) - np.log(marginal + eps)[None, :]), axis=1)  # (n,)
    return float(np.exp(kl.mean()))


def class_coverage(probs: np.ndarray, num_classes: int | None = None) -> dict[str, Any]:
    """How the classifier's predicted classes spread over a sample set (mode-dropping check).

    Returns:
        ``fractions`` (list, fraction of samples predicted as each class), ``min_fraction``,
        ``classes_hit`` (classes predicted at least once), ``num_classes`` and
        ``mean_confidence`` (mean top-class probability).
    """
    p = _as_probs(probs, "class_coverage")
    n_cls = p.shape[1] if num_classes is None else int(num_classes)
    if n_cls < p.shape[1]:
        raise ConfigError(f"class_coverage: num_classes={n_cls} but probabilities have "
                          f"{p.shape[1]} columns")
    counts = np.bincount(p.argmax(axis=1), minlength=n_cls)
    fractions = counts / p.shape[0]
    return {
        "fractions": [float(v) for v in fractions],
        "min_fraction": float(fractions.min()),
        "classes_hit": int(np.count_nonzero(counts)),
        "num_classes": n_cls,
        "mean_confidence": float(p.max(axis=1).mean()),
    }


def sample_metrics(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    fake_probs: np.ndarray | None = None,
    *,
    k_precision_recall: int = 3,
    k_density_coverage: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every feature-space metric of ``fake`` against ``real`` in one JSON-serialisable dict.

    Returns:
        ``fid``, ``kid``, ``kid_std`` (KID standard error), ``precision``, ``recall``,
        ``density``, ``coverage``, and, from ``fake_probs``, ``classifier_score``,
        ``class_coverage`` (fraction of classes predicted at least once),
        ``class_min_fraction``, ``class_confidence`` and ``class_fractions`` (a list). The
        classifier entries are ``None`` when ``fake_probs`` is not given.
    """
    real = _as_features(real_features, "sample_metrics real_features")
    fake = _as_features(fake_features, "sample_metrics fake_features")
    _check_same_dim(real, fake, "sample_metrics")
    kid, kid_se = kernel_distance(real, fake, num_subsets=kid_subsets,
                                  subset_size=kid_subset_size, seed=seed)
    precision, recall = precision_recall(real, fake, k=k_precision_recall)
    density, coverage = density_coverage(real, fake, k=k_density_coverage)
    out: dict[str, Any] = {
        "fid": frechet_distance(real, fake),
        "kid": kid,
        "kid_std": kid_se,
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
        "classifier_score": None,
        "class_coverage": None,
        "class_min_fraction": None,
        "class_confidence": None,
        "class_fractions": None,
    }
    if fake_probs is not None:
        if np.shape(fake_probs)[0] != fake.shape[0]:
            raise DataError(f"sample_metrics: fake_probs has {np.shape(fake_probs)[0]} rows but "
                            f"fake_features has {fake.shape[0]}")
        cc = class_coverage(fake_probs)
        out.update(
            classifier_score=classifier_score(fake_probs),
            class_coverage=cc["classes_hit"] / cc["num_classes"],
            class_min_fraction=cc["min_fraction"],
            class_confidence=cc["mean_confidence"],
            class_fractions=cc["fractions"],
        )
    return out

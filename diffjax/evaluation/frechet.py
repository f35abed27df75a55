"""Gaussian statistics of embeddings and the Fréchet distance between them (FID/FAD-style).

    stats = gaussian_stats(features)          # features [N, D] -> GaussianStats(mean [D], cov [D, D])
    fd = frechet_distance(stats_a, stats_b)   # float

The Fréchet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2) is (Dowson & Landau 1982;
Heusel et al. 2017, eq. 6 for FID; Kilgour et al. 2019 for FAD):

    FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}).

`Tr (S1 S2)^{1/2}` is computed as `sum_i sqrt(lambda_i)` with `lambda_i` the eigenvalues of the
symmetric PSD matrix `S1^{1/2} S2 S1^{1/2}`, which has the same spectrum as `S1 S2`. Two symmetric
eigendecompositions in float64 replace the usual non-symmetric `sqrtm` with its complex round-off,
and singular covariances (fewer examples than dimensions) need no regularising offset.

FD is biased upwards by finite samples, by roughly Tr(S1)/N1 + Tr(S2)/N2 (Chong & Forsyth 2020):
compare values only at equal sample counts. KID (`kid.py`) is the unbiased alternative.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class GaussianStats:
    """Mean [D] and covariance [D, D] (float64) of N embeddings."""

    mean: np.ndarray
    cov: np.ndarray
    count: int

    def to_dict(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "cov": self.cov, "count": np.asarray(self.count)}

    @classmethod
    def from_dict(cls, d) -> "GaussianStats":
        return cls(mean=np.asarray(d["mean"], np.float64), cov=np.asarray(d["cov"], np.float64),
                   count=int(d["count"]))


def gaussian_stats(features: np.ndarray) -> GaussianStats:
    """Sample mean and unbiased (N - 1) covariance of `features` [N, D], in float64."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, D]; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or Inf (are the samples finite?)")
    return GaussianStats(mean=x.mean(0), cov=np.cov(x, rowvar=False).reshape(x.shape[1], -1),
                         count=x.shape[0])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root via eigh, clipping round-off negative eigenvalues to 0."""
    w, v = np.linalg.eigh(0.5 * (s + s.T))
    return (v * np.sqrt(np.maximum(w, 0.0))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr (S1 S2)^{1/2} for symmetric PSD S1, S2 = sum sqrt(eig(S1^{1/2} S2 S1^{1/2}))."""
    r = _psd_sqrt(np.asarray(s1, np.float64))
    m = r @ np.asarray(s2, np.float64) @ r
    return float(np.sum(np.sqrt(np.maximum(np.linalg.eigvalsh(0.5 * (m + m.T)), 0.0))))


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """FD = ||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr (S1 S2)^{1/2} (Heusel et al. 2017, eq. 6)."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"embedding sizes differ: {a.mean.shape} vs {b.mean.shape}")
    diff = a.mean - b.mean
    fd = diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * trace_sqrt_product(a.cov, b.cov)
    return float(max(fd, 0.0))  # >= 0 exactly; clip round-off of identical sets.


def frechet_distance_features(x: np.ndarray, y: np.ndarray) -> float:
    """FD between the Gaussian fits of features x [N, D] and y [M, D]."""
    return frechet_distance(gaussian_stats(x), gaussian_stats(y))

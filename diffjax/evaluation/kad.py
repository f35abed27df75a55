"""Kernel Audio Distance (KAD): the unbiased MMD^2 with a Gaussian kernel (Chung et al. 2025).

Chung, Eu, Lee, Choi, Nam, Chon 2025, "KAD: No More FAD! An Effective and Efficient Evaluation
Metric for Audio Generation" (arXiv:2502.15602), sec. 3:

    k(a, b) = exp(-||a - b||^2 / (2 h^2)),   h = median_{i < j} ||r_i - r_j||  of the REFERENCE set
    KAD = scale * MMD_u^2(x, r)             (the U-statistic of `kid.mmd2_from_kernels`)

The bandwidth is the median pairwise distance of the reference features only, so one reference
gives one kernel for every evaluated set. The scale is 100, the `SCALE_FACTOR` of the authors'
toolkit (kadtk, `kad.py`); it only makes typical values readable. Unlike FD (`frechet.py`), KAD
assumes no Gaussian and is unbiased: its mean over repeats is 0 for two samples of one
distribution at any sample size, so a value can go slightly negative.

    kad = kernel_audio_distance(x, ref)          # x [N, D] evaluated, ref [M, D] reference
    stat = kad_statistic(x, ref)                 # stat(ix, iy): KAD of x[ix] vs ref[iy]
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from scipy.spatial import distance

from diffjax.evaluation.kid import check_sizes, mmd2_from_kernels

SCALE = 100.0  # kadtk's SCALE_FACTOR


def median_pairwise_distance(ref: np.ndarray) -> float:
    """The median Euclidean distance over pairs i < j of `ref` [M, D] (the median heuristic)."""
    ref = np.asarray(ref, np.float64)
    check_sizes(len(ref), len(ref))
    h = float(np.median(distance.pdist(ref)))
    if not h > 0:
        raise ValueError("the reference features are (mostly) identical: their median pairwise "
                         "distance is 0, so the KAD bandwidth is undefined; use more varied "
                         "reference audio or pass a bandwidth")
    return h


def gaussian_kernel(a: np.ndarray, b: np.ndarray, bandwidth: float) -> np.ndarray:
    """k(a_i, b_j) = exp(-||a_i - b_j||^2 / (2 h^2)): [N, D], [M, D] -> [N, M]."""
    return np.exp(-distance.cdist(a, b, "sqeuclidean") / (2.0 * bandwidth ** 2))


def kad_statistic(x: np.ndarray, ref: np.ndarray, *, bandwidth: Optional[float] = None,
                  scale: float = SCALE) -> Callable[[np.ndarray, np.ndarray], float]:
    """KAD as a function of example indices, for the bootstrap (`distances.bootstrap_interval`).

    The kernel matrices are computed once. `stat(ix, iy)` is KAD of x[ix] [n] against ref[iy] [m];
    with repeated indices (a resample with replacement) the within-set means leave out every pair
    of one original example, not only i = j, so a resample stays unbiased (a repeated pair would
    add k = 1). The bandwidth stays the one of the full reference.
    """
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    check_sizes(len(x), len(ref))
    if x.shape[1] != ref.shape[1]:
        raise ValueError(f"embedding sizes differ: {x.shape[1]} vs {ref.shape[1]}")
    h = median_pairwise_distance(ref) if bandwidth is None else float(bandwidth)
    kxx, krr, kxr = gaussian_kernel(x, x, h), gaussian_kernel(ref, ref, h), gaussian_kernel(x, ref, h)

    def within(k: np.ndarray, idx: np.ndarray) -> float:
        distinct = idx[:, None] != idx[None, :]
        pairs = distinct.sum()
        return float(np.sum(k[np.ix_(idx, idx)] * distinct) / pairs) if pairs else np.nan

    def stat(ix: np.ndarray, iy: np.ndarray) -> float:
        ix, iy = np.asarray(ix), np.asarray(iy)
        return scale * (within(kxx, ix) + within(krr, iy) - 2.0 * float(kxr[np.ix_(ix, iy)].mean()))

    return stat


def kernel_audio_distance(x: np.ndarray, ref: np.ndarray, *, bandwidth: Optional[float] = None,
                          scale: float = SCALE) -> float:
    """KAD = scale * MMD_u^2 of x [N, D] against ref [M, D], Gaussian kernel of bandwidth h
    (default: the median pairwise distance of `ref`). Chung et al. 2025, sec. 3."""
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    check_sizes(len(x), len(ref))
    h = median_pairwise_distance(ref) if bandwidth is None else float(bandwidth)
    return scale * mmd2_from_kernels(gaussian_kernel(x, x, h), gaussian_kernel(ref, ref, h),
                                     gaussian_kernel(x, ref, h))

"""Kernel distance (KID): the unbiased squared MMD with a cubic polynomial kernel.

Bińkowski et al. 2018 ("Demystifying MMD GANs", sec. 3 and eq. 4):

    k(x, y) = (x . y / D + 1)^3
    MMD_u^2 = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
              - 2/(mn) sum_{i, j} k(x_i, y_j)

Each term is an unbiased U-statistic, so E[MMD_u^2] = MMD^2 exactly: it is 0 in expectation for
two samples of one distribution (and can be slightly negative), at any sample size. That makes KID
comparable across sample counts, unlike FD. As in the paper, the estimate is averaged over
`num_subsets` random subsets of `subset_size` examples from each set, and their standard deviation
is reported too.
"""
from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray, *, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """k(x, y) = (gamma x . y + coef0)^degree, gamma = 1 / D by default. [N, D], [M, D] -> [N, M]."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, **kernel_kwargs) -> float:
    """The unbiased MMD^2 U-statistic (Bińkowski et al. 2018, eq. 4) between x [m, D] and y [n, D]."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    check_sizes(len(x), len(y))
    return mmd2_from_kernels(polynomial_kernel(x, x, **kernel_kwargs),
                             polynomial_kernel(y, y, **kernel_kwargs),
                             polynomial_kernel(x, y, **kernel_kwargs))


def check_sizes(m: int, n: int) -> None:
    """Raises unless both sets have the 2 examples an unbiased MMD^2 needs."""
    if m < 2 or n < 2:
        raise ValueError(f"MMD needs at least 2 examples per set; got {m} and {n}")


def mmd2_from_kernels(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """The unbiased MMD^2 (eq. 4) from kernel matrices kxx [m, m], kyy [n, n], kxy [m, n]: the
    within-set means leave out the diagonal (i = j), the cross mean keeps every pair."""
    m, n = len(kxx), len(kyy)
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def kernel_distance(x: np.ndarray, y: np.ndarray, *, num_subsets: int = 100,
                    subset_size: int = 1000, seed: int = 0) -> dict[str, float]:
    """KID: mean and std of `mmd2_unbiased` over random subsets (without replacement within one).

    Args:
        x: [N, D] features of the generated set.
        y: [M, D] features of the reference set.
        num_subsets: subsets drawn (Bińkowski et al. use 100).
        subset_size: examples per subset, capped at min(N, M) (they use 1000).
        seed: numpy seed of the subset draws, so a score is reproducible.

    Returns:
        {'kid': mean, 'kid_std': std over subsets, 'kid_subset_size': size used}.
    """
    size = min(subset_size, len(x), len(y))
    if size == len(x) and size == len(y):
        num_subsets = 1  # Every subset is the whole set.
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(x[rng.choice(len(x), size, replace=False)],
                            y[rng.choice(len(y), size, replace=False)])
              for _ in range(num_subsets)]
    return {"kid": float(np.mean(values)), "kid_std": float(np.std(values)),
            "kid_subset_size": int(size)}

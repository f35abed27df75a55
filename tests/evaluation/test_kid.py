"""KID: the unbiased MMD^2 estimator with the cubic polynomial kernel."""
import numpy as np
import pytest

from diffjax.evaluation import kid


def test_matches_definition_on_a_tiny_example():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(4) for j in range(4) if i != j) / 12
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(a, b) for a in x for b in y) / 20
    assert kid.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_unbiased_for_one_distribution():
    """Mean over many independent pairs of small samples is 0 within 3 standard errors, while the
    biased V-statistic (diagonal included) is clearly positive."""
    rng = np.random.default_rng(1)
    values, biased = [], []
    for _ in range(400):
        x, y = rng.standard_normal((20, 8)), rng.standard_normal((20, 8))
        values.append(kid.mmd2_unbiased(x, y))
        kxx, kyy = kid.polynomial_kernel(x, x), kid.polynomial_kernel(y, y)
        biased.append(kxx.mean() + kyy.mean() - 2 * kid.polynomial_kernel(x, y).mean())
    se = np.std(values) / np.sqrt(len(values))
    assert abs(np.mean(values)) < 3 * se
    assert np.mean(biased) > 10 * se


def test_positive_for_different_distributions():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((300, 8)), rng.standard_normal((300, 8)) + 0.5
    out = kid.kernel_distance(x, y, num_subsets=20, subset_size=100)
    assert out["kid"] > 5 * out["kid_std"] / np.sqrt(20)
    assert out["kid_subset_size"] == 100
    same = kid.kernel_distance(x, rng.standard_normal((300, 8)), num_subsets=20, subset_size=100)
    assert abs(same["kid"]) < 0.1 * out["kid"]

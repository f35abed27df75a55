"""Fréchet distance: closed forms for Gaussians, and its behaviour on samples."""
import numpy as np
import pytest
from scipy import linalg

from diffjax.evaluation import frechet


def random_cov(rng, d, scale=1.0):
    a = rng.standard_normal((d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def closed_form_sqrtm(mu1, s1, mu2, s2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) with scipy's general sqrtm."""
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def test_matches_closed_form_with_known_moments():
    rng = np.random.default_rng(0)
    for d in (1, 3, 16):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = random_cov(rng, d), random_cov(rng, d, 2.0)
        got = frechet.frechet_distance(frechet.GaussianStats(mu1, s1, 0),
                                       frechet.GaussianStats(mu2, s2, 0))
        np.testing.assert_allclose(got, closed_form_sqrtm(mu1, s1, mu2, s2), rtol=1e-8)


def test_commuting_covariances():
    """Diagonal S1, S2: FD = ||mu1 - mu2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    mu = np.array([1.0, 0.0, -1.0])
    got = frechet.frechet_distance(frechet.GaussianStats(mu, np.diag(a), 0),
                                   frechet.GaussianStats(np.zeros(3), np.diag(b), 0))
    assert got == pytest.approx(2.0 + 1.0 + 0.0 + 4.0)


def test_singular_covariances():
    """Fewer examples than dimensions: finite, and 0 for identical sets."""
    x = np.random.default_rng(1).standard_normal((5, 20))
    assert frechet.frechet_distance_features(x, x) == pytest.approx(0.0, abs=1e-8)
    assert np.isfinite(frechet.frechet_distance_features(x, x[::-1] + 1.0))


def test_samples_of_gaussians_converge_to_closed_form():
    rng = np.random.default_rng(2)
    d, n = 4, 200_000
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    s1, s2 = random_cov(rng, d), random_cov(rng, d)
    x = rng.multivariate_normal(mu1, s1, n)
    y = rng.multivariate_normal(mu2, s2, n)
    expected = closed_form_sqrtm(mu1, s1, mu2, s2)
    assert frechet.frechet_distance_features(x, y) == pytest.approx(expected, rel=0.02)


def test_self_same_and_different_distributions():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((2000, 8)), rng.standard_normal((2000, 8))
    assert frechet.frechet_distance_features(x, x) == pytest.approx(0.0, abs=1e-9)
    same = frechet.frechet_distance_features(x, y)
    assert same < 0.05  # bias ~ Tr(S) (1/N1 + 1/N2) / 2 ~ 0.008
    different = frechet.frechet_distance_features(x, 1.5 * y + 0.5)
    assert different > 50 * same


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        frechet.gaussian_stats(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="sizes differ"):
        frechet.frechet_distance_features(np.zeros((3, 2)), np.zeros((3, 4)))

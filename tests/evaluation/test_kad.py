"""KAD (Chung et al. 2025): the Gaussian-kernel unbiased MMD^2, bandwidth from the reference."""
import numpy as np
import pytest

from diffjax.evaluation import frechet, kad


def test_matches_definition_on_a_tiny_example():
    rng = np.random.default_rng(0)
    x, r = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    h = np.median([np.linalg.norm(r[i] - r[j]) for i in range(5) for j in range(i + 1, 5)])

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * h ** 2))

    xx = sum(k(x[i], x[j]) for i in range(4) for j in range(4) if i != j) / 12
    rr = sum(k(r[i], r[j]) for i in range(5) for j in range(5) if i != j) / 20
    xr = sum(k(a, b) for a in x for b in r) / 20
    assert kad.median_pairwise_distance(r) == pytest.approx(h, rel=1e-12)
    assert kad.kernel_audio_distance(x, r) == pytest.approx(100 * (xx + rr - 2 * xr), rel=1e-10)
    assert kad.kernel_audio_distance(x, r, scale=1.0) == pytest.approx(xx + rr - 2 * xr, rel=1e-10)


def test_unbiased_on_one_distribution_while_fd_is_biased():
    """Two independent samples of N(0, I_8), N = 20 each, 300 repeats: mean KAD is 0 within 3
    standard errors; FD at the same N is clearly positive (its bias ~ 2 Tr(I) / N = 0.8)."""
    rng = np.random.default_rng(1)
    kads, fds = [], []
    for _ in range(300):
        x, r = rng.standard_normal((20, 8)), rng.standard_normal((20, 8))
        kads.append(kad.kernel_audio_distance(x, r))
        fds.append(frechet.frechet_distance_features(x, r))
    se = np.std(kads) / np.sqrt(len(kads))
    assert abs(np.mean(kads)) < 3 * se
    fd_se = np.std(fds) / np.sqrt(len(fds))
    assert np.mean(fds) > 20 * fd_se and np.mean(fds) > 0.5


def test_grows_with_a_mean_shift():
    rng = np.random.default_rng(2)
    r = rng.standard_normal((200, 8))
    x = rng.standard_normal((200, 8))
    values = [kad.kernel_audio_distance(x + shift, r) for shift in (0.0, 0.25, 0.5, 1.0)]
    assert np.all(np.diff(values) > 0)
    assert values[-1] > 20 * abs(values[0])


def test_statistic_on_indices():
    """At identity indices it is KAD; every example repeated twice changes nothing, because pairs
    of one original example are left out of the within-set means."""
    rng = np.random.default_rng(3)
    x, r = rng.standard_normal((7, 4)), rng.standard_normal((9, 4)) + 0.3
    stat = kad.kad_statistic(x, r)
    full = kad.kernel_audio_distance(x, r)
    assert stat(np.arange(7), np.arange(9)) == pytest.approx(full, rel=1e-12)
    assert stat(np.repeat(np.arange(7), 2), np.repeat(np.arange(9), 3)) == pytest.approx(full, rel=1e-12)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="at least 2"):
        kad.kernel_audio_distance(np.zeros((1, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="median pairwise distance is 0"):
        kad.kernel_audio_distance(np.zeros((4, 3)), np.ones((5, 3)))

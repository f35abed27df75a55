"""FD and KAD with percentile-bootstrap intervals (diffjax.evaluation.distances)."""
import numpy as np
import pytest

from diffjax.evaluation import distances, frechet, kad


def shifted(n, seed, shift=0.7, dim=6):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)) + shift, rng.standard_normal((n, dim))


def test_registry_lists_both_with_their_bias():
    assert distances.DISTANCES.names() == ["fd", "kad"]
    assert distances.DISTANCES.meta("kad")["unbiased"] and not distances.DISTANCES.meta("fd")["unbiased"]
    with pytest.raises(ValueError, match="valid names: fd, kad"):
        distances.distance_with_interval("fad", *shifted(10, 0))


@pytest.mark.parametrize("name", ["fd", "kad"])
def test_interval_contains_the_estimate_and_narrows_with_n(name):
    widths = []
    for n in (50, 400):
        x, ref = shifted(n, n)
        out = distances.distance_with_interval(name, x, ref, num_resamples=100, seed=0)
        point = (frechet.frechet_distance_features(x, ref) if name == "fd"
                 else kad.kernel_audio_distance(x, ref))
        assert out["value"] == pytest.approx(point, rel=1e-12)
        assert out["low"] < out["value"] < out["high"] and out["resamples"] == 100
        widths.append(out["high"] - out["low"])
    assert widths[1] < 0.6 * widths[0]  # ~ 1/sqrt(N): sqrt(50/400) = 0.35


def test_fd_resamples_are_biased_and_kad_resamples_are_not():
    """Same distribution, N = 50, D = 6: FD's resamples sit above the point estimate (fewer distinct
    examples, more small-sample bias), by more than half the interval; KAD's median stays at the
    estimate within a fifth of the interval. The interval is centred to remove that offset."""
    x, ref = shifted(50, 7, shift=0.0)
    fd = distances.distance_with_interval("fd", x, ref, num_resamples=200, seed=0)
    ka = distances.distance_with_interval("kad", x, ref, num_resamples=200, seed=0)
    assert fd["bias"] > 0.5 * (fd["high"] - fd["low"])
    assert abs(ka["bias"]) < 0.2 * (ka["high"] - ka["low"])
    assert fd["low"] < fd["value"] < fd["high"]


def test_seeded_and_optional():
    x, ref = shifted(30, 1)
    a = distances.distance_with_interval("kad", x, ref, num_resamples=20, seed=3)
    assert a == distances.distance_with_interval("kad", x, ref, num_resamples=20, seed=3)
    assert a != distances.distance_with_interval("kad", x, ref, num_resamples=20, seed=4)
    assert distances.distance_with_interval("fd", x, ref, num_resamples=0).keys() == {"value"}
    with pytest.raises(ValueError, match="percentiles"):
        distances.distance_with_interval("fd", x, ref, percentiles=(95, 5))

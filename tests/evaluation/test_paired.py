"""Paired metrics (from diffjax.audio.metrics) on synthetic signals with hand-computed values."""
import numpy as np
import pytest

from diffjax.evaluation.paired import paired_metrics


def signal(n=2, length=8192, seed=0):
    return 0.3 * np.random.default_rng(seed).standard_normal((n, length, 1)).astype(np.float32)


def test_scaled_copy():
    x = signal()
    out = paired_metrics(x, 0.5 * x)
    assert out["si_sdr"] > 60.0  # scale-invariant: a scaled copy is perfect
    assert out["snr"] == pytest.approx(10 * np.log10(1 / 0.25), abs=1e-3)  # ||s||^2/||s/2||^2
    # every STFT bin's power changes by 1/4: |log10 P - log10 P/4| = log10 4 in every bin
    assert out["lsd"] == pytest.approx(np.log10(4.0), rel=1e-3)
    assert paired_metrics(x, x)["lsd"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("target_db", [0.0, 10.0, 20.0])
def test_noise_at_known_snr(target_db):
    """Noise orthogonal to the signal, scaled to the target SNR: SI-SDR = SNR = target."""
    x, noise = signal(seed=1), signal(seed=2)
    noise -= (np.sum(noise * x, axis=(1, 2), keepdims=True)
              / np.sum(x * x, axis=(1, 2), keepdims=True)) * x
    noise *= np.sqrt(np.sum(x ** 2, axis=(1, 2), keepdims=True)
                     / np.sum(noise ** 2, axis=(1, 2), keepdims=True) / 10 ** (target_db / 10))
    out = paired_metrics(x, x + noise)
    assert out["snr"] == pytest.approx(target_db, abs=0.01)
    assert out["si_sdr"] == pytest.approx(target_db, abs=0.05)
    np.testing.assert_allclose(out["per_example"]["si_sdr"], target_db, atol=0.05)
    assert out["mrstft"] > paired_metrics(x, x)["mrstft"]


def test_shape_mismatch():
    with pytest.raises(ValueError, match="both be"):
        paired_metrics(signal(), signal()[:, :100])

"""Reconstruction metrics: SI-SDR at a known SNR, zero distances on identical signals, and the
report (with pitch confidence)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.autoencoder import (log_mel_l1, log_spectral_distance, mr_stft_distance,
                                 reconstruction_report, si_sdr)

SR, L = 16000, 4000


@pytest.fixture(scope="module")
def tone():
    """[2, L, 1]: a 220 Hz and a 440 Hz tone with two harmonics, amplitude ~0.5."""
    t = np.arange(L) / SR
    clips = [0.4 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(2 * np.pi * 2 * f * t) for f in (220, 440)]
    return np.stack(clips)[:, :, None].astype(np.float32)


@pytest.mark.usefixtures("x64")
def test_si_sdr_is_scale_invariant_and_equals_the_snr_of_orthogonal_noise():
    """SI-SDR(s, a s) is limited only by rounding (~ +300 dB in float64). For s_hat = s + n with
    n orthogonal to s, the projection a = <s_hat, s> / ||s||^2 is 1, so SI-SDR = 10 log10
    ||s||^2 / ||n||^2 = the SNR exactly; n is white noise scaled to 20 dB and made orthogonal to s
    by one Gram-Schmidt step."""
    rng = np.random.default_rng(0)
    s = rng.normal(size=(2, L, 1))
    assert float(jnp.min(si_sdr(jnp.asarray(s), jnp.asarray(0.3 * s)))) > 100.0
    n = rng.normal(size=s.shape)
    dot = lambda a, b: np.sum(a * b, axis=(1, 2), keepdims=True)  # noqa: E731
    n -= dot(n, s) / dot(s, s) * s
    n *= np.sqrt(dot(s, s) / dot(n, n) / 100)  # ||s||^2 / ||n||^2 = 100: 20 dB
    np.testing.assert_allclose(np.asarray(si_sdr(jnp.asarray(s), jnp.asarray(s + n))), 20.0, atol=1e-9)


def test_distances_are_zero_on_identical_signals_and_positive_otherwise(tone):
    x = jnp.asarray(tone)
    y = x + 0.05 * jax.random.normal(jax.random.PRNGKey(0), x.shape)
    for fn in (log_spectral_distance, mr_stft_distance, lambda a, b: log_mel_l1(a, b, SR)):
        fn = jax.jit(fn)
        same, other = np.asarray(fn(x, x)), np.asarray(fn(x, y))
        assert same.shape == other.shape == (2,)
        np.testing.assert_array_equal(same, 0.0)
        assert np.all(other > 0)


def test_reconstruction_report_includes_pitch_confidence(tone):
    report = reconstruction_report(tone, tone, SR)
    assert set(report) == {"si_sdr", "mr_stft", "log_mel_l1", "lsd", "pitch_confidence",
                           "pitch_confidence_reference"}
    assert report["mr_stft"] == 0.0 and report["lsd"] == 0.0 and report["log_mel_l1"] == 0.0
    assert report["pitch_confidence"] == report["pitch_confidence_reference"] > 0.5  # clear tones

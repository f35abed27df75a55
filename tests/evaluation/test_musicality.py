"""Musicality statistics: closed-form values for white noise, and tones against noise."""
import numpy as np
import pytest

from diffjax.evaluation.musicality import pitch_confidence, spectral_flatness

SR = 16000


def tones(f0s, seconds=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return np.stack([sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * 0.3
                     for f0 in f0s])[..., None]


def test_white_noise_flatness_is_exp_minus_euler_gamma():
    # Power of a Hann-windowed white-noise bin is exponential (chi^2_2): its geometric mean is
    # e^{-gamma} times its mean, so the flatness is 0.5615 up to the DC/Nyquist bins.
    noise = np.random.default_rng(0).standard_normal((8, 16384, 1))
    assert spectral_flatness(noise) == pytest.approx(np.exp(-np.euler_gamma), abs=0.01)


def test_tones_against_noise():
    harmonic = tones([110.0, 220.0, 440.0, 523.25])
    noise = np.random.default_rng(1).normal(scale=0.2, size=harmonic.shape)
    assert spectral_flatness(harmonic) < 0.02
    assert pitch_confidence(harmonic, SR) > 0.5 > 0.05 > pitch_confidence(noise, SR)
    assert np.isnan(pitch_confidence(np.zeros_like(harmonic), SR))
    assert np.isnan(spectral_flatness(np.zeros_like(harmonic)))

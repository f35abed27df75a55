"""The full-band composition of a lower-rate restoration (issue 21, item 1): the band split against
sinusoids, the crossfade's partition of unity, and the operators' intact samples."""
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.restoration import fullband, get_operator

SR, MODEL_SR = 44100, 16000
TOL = 10 ** (-fullband.STOPBAND_DB / 20)  # the Blackman design's error outside the transition


def _sine(freq, amplitude, seconds=0.25, phase=0.0):
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t + phase))[:, None]


def test_crossover_is_the_top_tenth_of_the_models_band_and_none_when_it_covers_the_file():
    band = fullband.crossover(model_rate=MODEL_SR, sample_rate=SR)
    assert (band.low_hz, band.high_hz) == (0.82 * 8000, 0.92 * 8000)
    assert fullband.crossover(model_rate=SR, sample_rate=SR) is None
    assert fullband.crossover(model_rate=48000, sample_rate=SR) is None
    text = fullband.band_description(band, model_rate=MODEL_SR, sample_rate=SR, keep_input_band=True)
    assert text.startswith("0-6960 Hz by the model") and "above from the input" in text


def test_band_split_takes_each_band_from_its_source():
    """restored = 1 kHz (A) + 12 kHz (B), degraded = 1 kHz (C) + 12 kHz (D): the composite is A + D.
    Both tones are more than 3 fs / N from the transition, where the FIR is within `TOL` of 1 or 0,
    so the error is at most TOL (|B| + |C|) (away from the mirrored ends, N / 2 samples)."""
    band = fullband.crossover(model_rate=MODEL_SR, sample_rate=SR)
    a, b = _sine(1000, 0.5), _sine(12000, 0.2, phase=0.3)
    c, d = _sine(1000, 0.3, phase=1.0), _sine(12000, 0.25, phase=2.0)
    out = fullband.band_split(a + b, c + d, band=band, sample_rate=SR)
    half = len(fullband.lowpass_taps(band, SR)) // 2
    error = np.abs(out - (a + d))[half:-half]
    assert error.max() <= TOL * (0.2 + 0.3) + 1e-6, error.max()
    # the low-pass alone: the 1 kHz tone through, the 12 kHz one out
    low = fullband.lowpass(a + b, fullband.lowpass_taps(band, SR))
    assert np.abs(low - a)[half:-half].max() <= TOL * 0.7 + 1e-6


def test_the_crossfade_sums_to_one():
    """LP + (1 - LP) = 1: with one source for both bands, any signal (here white noise, with content
    in the transition band too) comes back to float precision, ends included; at the crossover
    centre the low-pass passes half (the raised cosine's midpoint)."""
    band = fullband.crossover(model_rate=MODEL_SR, sample_rate=SR)
    x = 0.3 * np.random.default_rng(0).standard_normal((5000, 2)).astype(np.float32)
    np.testing.assert_allclose(fullband.band_split(x, x, band=band, sample_rate=SR), x, atol=1e-6)
    taps = fullband.lowpass_taps(band, SR)
    response = np.abs(np.sum(taps * np.exp(-2j * np.pi * band.centre_hz / SR * np.arange(len(taps)))))
    assert abs(response - 0.5) < 1e-3 and len(taps) % 2 == 1 and np.allclose(taps, taps[::-1])


def test_compose_keeps_intact_samples_exactly_and_the_input_band_only_when_asked():
    band = fullband.crossover(model_rate=MODEL_SR, sample_rate=SR)
    degraded = _sine(1000, 0.3) + _sine(12000, 0.1)
    restored = _sine(1000, 0.5, phase=0.2)
    intact = np.ones_like(degraded, bool)
    intact[4000:6000] = False
    kept = fullband.compose(restored, degraded, intact, sample_rate=SR, band=band, keep_input_band=True)
    dropped = fullband.compose(restored, degraded, intact, sample_rate=SR, band=band, keep_input_band=False)
    for out in (kept, dropped):
        assert np.array_equal(out[intact], degraded[intact].astype(np.float32))
    np.testing.assert_allclose(dropped[~intact], restored[~intact], atol=1e-6)
    # inside the stretch: the restored 1 kHz tone and the input's 12 kHz tone
    np.testing.assert_allclose(kept[4000:6000], (_sine(1000, 0.5, phase=0.2) + _sine(12000, 0.1))[4000:6000],
                               atol=TOL * 0.8 + 1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        fullband.compose(restored[:100], degraded, intact, sample_rate=SR, band=band, keep_input_band=True)


def test_operators_name_their_intact_samples():
    x = 0.8 * jnp.sin(jnp.linspace(0, 20, 400))[None, :, None]
    gap = get_operator("gap", sample_rate=1000, gap_seconds=0.05, start_seconds=0.1)
    intact = gap.intact(gap.apply(x), x.shape)[0, :, 0]
    assert intact.shape == (400,) and not intact[100:150].any() and intact[:100].all() and intact[150:].all()
    clip = get_operator("hard_clip", threshold=0.5)
    y = clip.apply(x)
    np.testing.assert_array_equal(clip.intact(y, x.shape), np.abs(np.asarray(x)) < 0.5 * (1 - clip.tolerance))
    for damaged in (get_operator("gap", sample_rate=1000, gap_seconds=0.05, noise_sigma=0.1),
                    get_operator("butterworth", cutoff=100.0, sample_rate=1000),
                    get_operator("identity", noise_sigma=0.1)):
        assert not damaged.intact(damaged.apply(x), x.shape).any()

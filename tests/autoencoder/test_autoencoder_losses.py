"""The multi-resolution STFT loss: zero on identical inputs, spectral convergence of a scaled
signal, a click's STFT in closed form, and which resolution sees which error (STYLE rule 24a)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.audio.codecs import hann
from diffjax.autoencoder import multi_resolution_stft_loss, waveform_l1
from diffjax.autoencoder.losses import DEFAULT_FFT_SIZES, MAGNITUDE_FLOOR

pytestmark = pytest.mark.usefixtures("x64")

SR, L = 16000, 4000
FFTS = DEFAULT_FFT_SIZES  # (2048, ..., 64)
_loss = jax.jit(multi_resolution_stft_loss)  # every test uses [1, L, 1] float64: one compile


def _terms(x, y):
    return _loss(jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64))


def _per(per_resolution, term):
    return np.array([float(per_resolution[f"{term}/{n}"][0]) for n in FFTS])


def test_zero_on_identical_inputs_and_l1():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, L, 1)))
    loss, per_resolution = _terms(x, x)
    assert loss.shape == (1,) and float(loss[0]) == 0.0
    assert len(per_resolution) == 2 * len(FFTS)
    assert all(v.shape == (1,) for v in per_resolution.values())
    np.testing.assert_allclose(np.asarray(waveform_l1(x, x + 0.25)), 0.25, rtol=1e-12)


@pytest.mark.parametrize("a", [0.5, 2.0])
def test_spectral_convergence_of_a_scaled_signal_is_one_minus_a(a):
    """|S_{ax}| = a |S_x| for a >= 0, so SC = ||(1 - a)|S_x|||_F / |||S_x|||_F = |1 - a| wherever
    the floor is inactive: white noise's unit-gain bins fall below 1e-5 with probability ~1e-10."""
    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, L, 1)))
    _, per_resolution = _terms(x, a * x)
    np.testing.assert_allclose(_per(per_resolution, "spectral_convergence"), abs(1 - a), rtol=1e-12)
    np.testing.assert_allclose(_per(per_resolution, "log_magnitude"), abs(np.log(a)), rtol=1e-12)


def _click_terms(n0: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """SC and log-magnitude L1 of a unit click at n0 vs n0 + shift, without an FFT.

    The centred STFT's frame k holds sample n at window index n + N/2 - k hop, so a click's
    magnitude is w[n0 + N/2 - k hop] / sqrt(sum w^2) in every bin of frame k (0 outside the
    window), floored like the loss. The F bins of a frame are equal and cancel in both terms.
    """
    sc, log_l1 = [], []
    for n in FFTS:
        hop, w = n // 4, hann(n).astype(np.float64)
        frames = np.arange(1 + L // hop) * hop

        def mag(pos):
            idx = pos + n // 2 - frames
            vals = np.where((idx >= 0) & (idx < n), w[np.clip(idx, 0, n - 1)], 0.0)
            return np.maximum(vals / np.sqrt(np.sum(w ** 2)), MAGNITUDE_FLOOR)

        mx, my = mag(n0), mag(n0 + shift)
        sc.append(np.sqrt(np.sum((mx - my) ** 2) / np.sum(mx ** 2)))
        log_l1.append(np.mean(np.abs(np.log(mx) - np.log(my))))
    return np.array(sc), np.array(log_l1)


def test_a_time_shifted_click_matches_its_closed_form_and_small_ffts_see_it_most():
    """A 4-sample (0.25 ms) shift moves the click along each Hann window: the change of w over 4
    samples scales like 4 / N, so the spectral convergence halves (roughly) per doubling of n_fft
    and the 64-point resolution sees the shift most."""
    n0, shift = 1000, 4
    x = np.zeros((1, L, 1)); x[0, n0, 0] = 1.0
    y = np.zeros((1, L, 1)); y[0, n0 + shift, 0] = 1.0
    _, per_resolution = _terms(x, y)
    sc, log_l1 = _click_terms(n0, shift)
    np.testing.assert_allclose(_per(per_resolution, "spectral_convergence"), sc, rtol=1e-9)
    np.testing.assert_allclose(_per(per_resolution, "log_magnitude"), log_l1, rtol=1e-9)
    assert np.all(np.diff(sc) > 0), sc  # FFTS runs from 2048 down to 64
    ratios = sc[1:] / sc[:-1]
    assert np.all((ratios > 1.5) & (ratios < 2.5)), ratios


def test_a_frequency_shift_is_seen_by_the_large_ffts_and_barely_by_the_small():
    """1000 Hz vs 1020 Hz. A shift of d = 20 Hz is d N / fs bins: 2.56 at N = 2048, where the Hann
    main lobes (4 bins wide) barely overlap and SC -> sqrt(2) (two disjoint spectra of equal
    energy; never more, since magnitudes are non-negative), and 0.08 at N = 64, where
    |S_y| - |S_x| ~ d dM/df and SC ~ d ||M'|| / ||M|| grows linearly in N: it doubles per octave
    until the lobes separate. (The log-magnitude term of pure tones is dominated by the
    side-lobe bins, so only SC is compared here.)"""
    t = np.arange(L) / SR
    x = np.sin(2 * np.pi * 1000 * t)[None, :, None]
    y = np.sin(2 * np.pi * 1020 * t)[None, :, None]
    _, per_resolution = _terms(x, y)
    sc = _per(per_resolution, "spectral_convergence")  # 2048 .. 64
    assert 1.0 < sc[0] <= np.sqrt(2) + 1e-3, sc
    assert sc[-1] < 0.1, sc
    assert np.all(np.diff(sc) < 0), sc
    ratios = sc[:-1] / sc[1:]  # N vs N / 2, in the linear regime (N <= 512: d <= 0.64 bins)
    assert np.all((ratios[2:] > 1.8) & (ratios[2:] < 2.1)), ratios

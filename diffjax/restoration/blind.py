"""Blind bandwidth extension: the low-pass filter is unknown and fitted during sampling.

BABE (Moliner, Elvander & Välimäki 2023, "Blind audio bandwidth extension", sec. III) models the
degradation as a zero-phase low-pass whose magnitude is piecewise linear in dB: 0 dB below a
cutoff `fc`, then falling by `slope` dB per octave,

    H(f) = 1 (f < fc),   10^(-slope log2(f / fc) / 20) (f >= fc),

and alternates DPS steps on `x` with gradient steps on `(fc, slope)`, carried across levels. Here
the fit is stateless, so `blind_bwe` stays one more denoiser wrapper on any sampler: at every
denoiser call the candidate of a grid (cutoffs x slopes) whose band spectrum of `H x0_hat` best
matches the band spectrum of `y` in dB, up to a free gain, is chosen (least squares over
log-spaced bands, floored 60 dB below the peak), and DPS (`methods.guided_by_residual`) guides
`x0_hat` towards `y` through it. Magnitudes only: an early, phase-incoherent `x0_hat` still shows
the filter's shape, whereas the waveform least-squares fit `min ||y - H x0_hat||` prefers `H = 0`
while `x0_hat` is uncorrelated with `y` and collapsed to the lowest cutoff (measured).
`fit_lowpass` reports the estimate.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.restoration.filters import _irfft, _rfft
from diffjax.restoration.methods import guided_by_residual, register_method, run_sampler

Array = jax.Array

DEFAULT_SLOPES = (6.0, 12.0, 24.0, 48.0, 96.0)  # dB per octave (Butterworth of order n: 6 n)


def lowpass_family(freqs: np.ndarray, cutoffs, slopes) -> np.ndarray:
    """Magnitudes `[len(cutoffs) * len(slopes), F]` of BABE's filter at `freqs` (cutoff-major)."""
    fc = np.asarray(cutoffs, np.float64)[:, None, None]
    slope = np.asarray(slopes, np.float64)[None, :, None]
    octaves = np.log2(np.maximum(np.asarray(freqs, np.float64)[None, None, :], 1e-9) / fc)
    h = np.where(octaves < 0, 1.0, 10.0 ** (-slope * np.maximum(octaves, 0.0) / 20.0))
    return h.reshape(-1, len(freqs)).astype(np.float32)


def default_cutoffs(sample_rate: int, num: int = 64) -> np.ndarray:
    """`num` log-spaced candidate cutoffs from 250 Hz to 0.95 Nyquist."""
    return np.geomspace(250.0, 0.95 * sample_rate / 2, num)


def band_matrix(freqs: np.ndarray, num_bands: int = 128, low_hz: float = 50.0) -> np.ndarray:
    """`[F, N]` averaging of rFFT bins into log-spaced bands from `low_hz` to Nyquist (empty dropped)."""
    edges = np.geomspace(low_hz, freqs[-1] + 1e-6, num_bands + 1)
    band = np.searchsorted(edges, freqs, side="right") - 1
    m = np.zeros((len(freqs), num_bands))
    inside = (band >= 0) & (band < num_bands)
    m[np.nonzero(inside)[0], band[inside]] = 1.0
    m = m[:, m.sum(0) > 0]
    return (m / m.sum(0)).astype(np.float32)


def _band_db(power: Array, bands: Array, floor_db: float) -> Array:
    """Band powers `[..., N]` in dB of per-bin powers `[..., F]`, floored `floor_db` below their peak."""
    p = power @ bands
    return 10.0 * jnp.log10(jnp.maximum(p, jnp.max(p, axis=-1, keepdims=True) * 10 ** (floor_db / 10) + 1e-30))


def _power(x: Array) -> Array:
    """Per-bin power `[B, F]` of `x` `[B, L, ...]`, summed over channels."""
    return jnp.sum(jnp.abs(_rfft(x)) ** 2, axis=tuple(range(2, x.ndim)))


def _filter(x: Array, h: Array) -> Array:
    """`x` `[B, L, ...]` through per-example zero-phase magnitudes `h` `[B, F]`."""
    h = h.reshape(h.shape + (1,) * (x.ndim - 2))
    return _irfft(h * _rfft(x), x.shape[1]).astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class Fit:
    """The candidate filters on the rFFT grid of `length` samples and their band view in dB."""

    cutoffs: np.ndarray
    slopes: np.ndarray
    family: Array  # [G, F] magnitudes
    bands: Array  # [F, N]
    floor_db: float

    @classmethod
    def build(cls, length: int, sample_rate: int, cutoffs=None, slopes=DEFAULT_SLOPES, floor_db=-60.0):
        cutoffs = default_cutoffs(sample_rate) if cutoffs is None else np.asarray(cutoffs, np.float64)
        freqs = np.fft.rfftfreq(length, 1.0 / sample_rate)
        family = lowpass_family(freqs, cutoffs, slopes)
        return cls(cutoffs, np.asarray(slopes, np.float64), jnp.asarray(family),
                   jnp.asarray(band_matrix(freqs)), float(floor_db))

    def target(self, y: Array) -> Array:
        """The band spectrum of the measurement in dB, `[B, N]` (computed once per restoration)."""
        return _band_db(_power(y), self.bands, self.floor_db)

    def index(self, x0: Array, y_db: Array) -> Array:
        """Per example, the candidate `H` whose band spectrum of `H x0` best matches `y_db` in dB up
        to a free gain (least squares over bands): `[B]`. Magnitudes only, so a phase-incoherent
        `x0_hat` (early, noisy levels) still gives the filter's shape."""
        model_db = _band_db(_power(x0)[:, None, :] * self.family[None] ** 2, self.bands, self.floor_db)
        return jnp.argmin(jnp.var(y_db[:, None, :] - model_db, axis=2), axis=1)  # free gain: the mean


def fit_lowpass(x: Array, y: Array, sample_rate: int, *, cutoffs=None, slopes=DEFAULT_SLOPES):
    """The (cutoff Hz, slope dB/octave) of BABE's family that best maps `x` to `y`, per example."""
    fit = Fit.build(x.shape[1], sample_rate, cutoffs, slopes)
    index = fit.index(x, fit.target(y))
    return jnp.asarray(fit.cutoffs)[index // len(slopes)], jnp.asarray(fit.slopes)[index % len(slopes)]


def blind_bwe_denoiser(denoiser, y, sample_rate: int, *, cutoffs=None, slopes=DEFAULT_SLOPES,
                       zeta: float = 0.3, normalize: str = "gradient"):
    """DPS with the filter refitted to every `x0_hat` (held fixed inside the gradient)."""
    fit = Fit.build(y.shape[1], sample_rate, cutoffs, slopes)
    y_db = fit.target(y)

    def residual(x0):
        h = fit.family[fit.index(jax.lax.stop_gradient(x0), y_db)]
        return y - _filter(x0, h)

    return guided_by_residual(denoiser, residual, zeta=zeta, normalize=normalize)


def fitted_cutoff(x: Array, y: Array, sample_rate: int) -> dict:
    """The evaluation table's extra column: the mean cutoff the restoration implies (`fit_lowpass`)."""
    return {"fitted_cutoff_hz": round(float(jnp.mean(fit_lowpass(x, y, sample_rate)[0])), 1)}


@register_method("blind_bwe", requires=("lowpass", "model_space"), report=fitted_cutoff)
def blind_bwe(denoiser, operator, y, x_init, sigmas, *, key, sampler="euler", anchor=None,
              sampler_options=None, sample_rate=None, cutoffs=None, slopes=DEFAULT_SLOPES,
              zeta: float = 0.3, normalize: str = "gradient"):
    """Blind bandwidth extension (BABE-style): `operator` only supplies `sample_rate` (a low-pass
    operator's, `operator.is_lowpass`; or pass `sample_rate=`); its cutoff is not used. The filter
    is fitted to `x0_hat` itself, so the model must work on the waveform ('model_space')."""
    sample_rate = sample_rate or (operator.sample_rate if operator.is_lowpass else None)
    if not sample_rate:
        raise ValueError("blind_bwe needs the sample rate: pass sample_rate= or a low-pass operator")
    guided = blind_bwe_denoiser(denoiser, y, int(sample_rate), cutoffs=cutoffs, slopes=slopes, zeta=zeta,
                                normalize=normalize)
    return run_sampler(guided, x_init, sigmas, key=key, sampler=sampler, anchor=anchor,
                       sampler_options=sampler_options)

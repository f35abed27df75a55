"""Full-band output of a restoration at a lower rate than the file's (issue 21, item 1): the model
restores the band it covers, the input keeps the rest, and what the degradation left intact is the
input sample for sample.

    band = crossover(model_rate=16000, sample_rate=44100)        # Crossover(6560.0, 7360.0)
    out = compose(restored, degraded, intact, sample_rate=44100, band=band, keep_input_band=True)

`restored` is the model's output resampled to the file's rate (nothing above the model's Nyquist),
`degraded` the input at the file's rate, `intact` the samples the degradation did not touch (the
operator's `intact`: observed samples of a gap mask, unclipped samples). Then

    c   = y + LP(r - y)          (keep_input_band: low band from r, high band from y)
        = r                      (otherwise: nothing above the model's band)
    out = y                      where intact
        = c                      elsewhere

with `LP` a zero-phase (odd, symmetric) FIR low-pass whose response falls from 1 to 0 as a raised
cosine across `band` (the top tenth of the model's band), so LP + (1 - LP) = 1 exactly.

The switch between intact and degraded samples is sample-exact, with no crossfade: inside a gap
the input holds nothing to fade from (zeros, or the glitch that made it a gap), and a fade into a
clipped run would put its clipped samples back. The low band joins smoothly because the model
restored it consistent with the intact samples around it; the band above the model's, where it is
not kept, stops at the edge of the gap (issue 21: it is the input's, and the model cannot make it).

No file I/O here; the restore job (`diffjax.jobs.restore`) reads, resamples and writes.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.signal

# soxr 'HQ' (the project's resampler, `audio.io.resample`) is flat to 0.92 of the Nyquist frequency
# (-0.02 dB at 7.4 kHz from 16 kHz) and -2.8 dB at 0.95: the crossover ends before its roll-off.
CROSSOVER = (0.82, 0.92)  # the transition band, in fractions of the model's Nyquist frequency
STOPBAND_DB = 74.0  # Blackman window: the designed low-pass is within 10^(-74/20) of its target


@dataclasses.dataclass(frozen=True)
class Crossover:
    """The transition band `[low_hz, high_hz]` of the band split: below it the model's, above it
    the input's."""

    low_hz: float
    high_hz: float

    @property
    def centre_hz(self) -> float:
        return 0.5 * (self.low_hz + self.high_hz)


def crossover(*, model_rate: int, sample_rate: int):
    """The band split of a model at `model_rate` under a file at `sample_rate`, or None when the
    model covers the file's whole band (`model_rate >= sample_rate`)."""
    if model_rate >= sample_rate:
        return None
    nyquist = 0.5 * model_rate
    return Crossover(CROSSOVER[0] * nyquist, CROSSOVER[1] * nyquist)


def band_description(band, *, model_rate: int, sample_rate: int, keep_input_band: bool) -> str:
    """One line for the run's report: which band the model restored and where the rest comes from."""
    if band is None:
        return f"0-{sample_rate // 2} Hz (the whole band) by the model"
    above = ("above from the input" if keep_input_band
             else "nothing above (the input's band above is kept only where it is intact)")
    return (f"0-{band.centre_hz:.0f} Hz by the model (crossfade {band.low_hz:.0f}-{band.high_hz:.0f} Hz, "
            f"model rate {model_rate} Hz), {above}")


def lowpass_taps(band: Crossover, sample_rate: int) -> np.ndarray:
    """An odd-length symmetric FIR `[N]` whose response is 1 below `band`, a raised cosine across it
    and 0 above (frequency sampling, Blackman window: `scipy.signal.firwin2`). With `N = 8 fs / width`
    the window's main lobe (`12 fs / N` wide) smooths the raised cosine by at most 0.03, and from
    `3 fs / N` (3/8 of the transition) outside it the response is within `10^(-STOPBAND_DB / 20)`
    of 1 or 0 (measured: 3e-6 at 22.05-96 kHz)."""
    width = band.high_hz - band.low_hz
    numtaps = int(np.ceil(8 * sample_rate / width)) | 1
    nyquist = 0.5 * sample_rate
    inside = np.linspace(band.low_hz, band.high_hz, 65)
    gain = np.cos(0.5 * np.pi * (inside - band.low_hz) / width) ** 2
    freq = np.concatenate([[0.0], inside, [nyquist]]) / nyquist
    gain = np.concatenate([[1.0], gain, [0.0]])
    return scipy.signal.firwin2(numtaps, freq, gain, window="blackman")


def lowpass(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """`x` `[L, C]` filtered by the zero-phase FIR `taps` along time, with the ends mirrored (no
    fade at the edges of the file)."""
    half = len(taps) // 2
    mode = "reflect" if x.shape[0] > 1 else "edge"
    padded = np.pad(np.asarray(x, np.float64), ((half, half), (0, 0)), mode=mode)
    return scipy.signal.oaconvolve(padded, taps[:, None], mode="valid", axes=0)


def band_split(restored: np.ndarray, degraded: np.ndarray, *, band, sample_rate: int) -> np.ndarray:
    """`y + LP(r - y)`: the low band of `restored`, the high band of `degraded` (`[L, C]` each);
    `band` None: `restored`."""
    if band is None:
        return np.asarray(restored, np.float32)
    taps = lowpass_taps(band, sample_rate)
    difference = np.asarray(restored, np.float64) - np.asarray(degraded, np.float64)
    return (np.asarray(degraded, np.float64) + lowpass(difference, taps)).astype(np.float32)


def compose(restored: np.ndarray, degraded: np.ndarray, intact: np.ndarray, *, sample_rate: int, band,
            keep_input_band: bool) -> np.ndarray:
    """The full-band output `[L, C]` (see the module docstring).

    Args:
      restored: `[L, C]` the restoration at `sample_rate` (resampled from the model's rate).
      degraded: `[L, C]` the input at `sample_rate`.
      intact: `[L, C]` (or broadcastable) True where the degradation left the input intact.
      band: `crossover(...)`, or None when the model covers the whole band.
      keep_input_band: take the band above `band` from the input (else from `restored`: nothing).
    Returns:
      `[L, C]` float32, equal to `degraded` on intact samples, clipped to [-1, 1].
    """
    if np.shape(restored) != np.shape(degraded):
        raise ValueError(f"restored {np.shape(restored)} and degraded {np.shape(degraded)} differ in shape")
    intact = np.broadcast_to(np.asarray(intact, bool), np.shape(degraded))
    degraded = np.asarray(degraded, np.float32)
    composite = (band_split(restored, degraded, band=band, sample_rate=sample_rate) if keep_input_band
                 else np.asarray(restored, np.float32))
    return np.clip(np.where(intact, degraded, composite), -1.0, 1.0)

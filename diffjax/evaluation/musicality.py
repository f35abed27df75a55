"""Model-free 'is it musical?' statistics of waveforms [B, L, C] (first channel is used).

- `spectral_flatness`: geometric / arithmetic mean of the power spectrum (Gray & Markel 1974),
  ~0.56 for white noise, near 0 for harmonic tones. Very sensitive to a faint noise floor: a
  clean tone with noise 40 dB down already scores ~0.1.
- `pitch_confidence`: the mean pYIN voiced probability over audible frames (Mauch & Dixon 2014,
  `librosa.pyin`), the probability that a frame has one clear fundamental: ~0.01 for noise,
  ~0.5 for the embedded music's single notes, lower for chords (several fundamentals) and drums.
  It is the issue's 'a simple pitch estimator is confident', and tolerates a faint noise floor as
  listeners do.
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def _mono(waves) -> np.ndarray:
    waves = np.asarray(waves, np.float32)
    return waves[..., 0] if waves.ndim == 3 else waves


def spectral_flatness(waves, n_fft: int = 1024) -> float:
    """Mean spectral flatness over 1024-sample Hann frames of `waves` [B, L, C] (silent frames,
    RMS <= 1e-3, are skipped); nan if every frame is silent."""
    mono = _mono(waves)
    usable = mono.shape[1] // n_fft * n_fft
    frames = mono[:, :usable].reshape(-1, n_fft) * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2 + 1e-12
    loud = frames.std(axis=1) > 1e-3
    flatness = np.exp(np.mean(np.log(power), -1)) / np.mean(power, -1)
    return float(flatness[loud].mean()) if np.any(loud) else float("nan")


def pyin_frame_length(sample_rate: int, fmin: float, at_least: int = 1024) -> int:
    """The shortest power of two >= `at_least` in which two periods of `fmin` fit, as pYIN needs
    (`librosa.pyin` warns unless `sample_rate / fmin < frame_length // 2`): 1024 at 16 kHz for
    C2 (65 Hz: 492 samples for two periods), 2048 at 44.1 and 48 kHz (1357 and 1477)."""
    two_periods = 2 * sample_rate / fmin + 2  # strictly more than two periods in frame_length // 2
    return int(2 ** np.ceil(np.log2(max(at_least, two_periods))))


def pitch_confidence(waves, sample_rate: int, *, fmin: float = 65.0, fmax: float = 2100.0,
                     frame_length: Optional[int] = None, min_rms: float = 1e-3) -> float:
    """Mean pYIN voiced probability over frames with RMS > `min_rms` of `waves` [B, L, C].

    `fmin`..`fmax` (Hz) bounds the fundamentals searched (default C2..C7, the embedded music's
    range); frames hop by `frame_length // 4`. `frame_length` defaults to `pyin_frame_length`
    (1024 at 16 kHz), so `fmin` fits at any rate; a given one too short for `fmin` is an error.
    nan if every frame is silent.
    """
    import librosa  # lazily: slow to import

    if frame_length is None:
        frame_length = pyin_frame_length(sample_rate, fmin)
    elif frame_length // 2 <= sample_rate / fmin:
        raise ValueError(f"pitch_confidence: frame_length={frame_length} holds less than two periods of fmin={fmin:g} Hz "
                         f"at {sample_rate} Hz; use frame_length >= {int(2 * sample_rate / fmin) + 2} or fmin > "
                         f"{sample_rate / (frame_length // 2):.1f}")
    fmax = min(fmax, 0.45 * sample_rate)
    hop = frame_length // 4
    probs = []
    for wave in _mono(waves):
        if len(wave) < frame_length:
            continue
        _, _, voiced_prob = librosa.pyin(wave, fmin=fmin, fmax=fmax, sr=sample_rate,
                                         frame_length=frame_length, hop_length=hop, center=False)
        rms = librosa.feature.rms(y=wave, frame_length=frame_length, hop_length=hop,
                                  center=False)[0][:len(voiced_prob)]
        probs.append(voiced_prob[rms > min_rms])
    probs = np.concatenate(probs) if probs else np.zeros(0)
    return float(np.mean(probs)) if probs.size else float("nan")

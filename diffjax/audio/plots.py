"""Spectrogram pictures for logs, README and entry points (matplotlib, headless)."""
from __future__ import annotations

import io as _io
from typing import Optional, Sequence

import numpy as np


def log_spectrogram(wave: np.ndarray, n_fft: int = 512, hop: int = 128, floor_db: float = -80.0) -> np.ndarray:
    """Magnitude spectrogram in dB `[F, T]` of a mono waveform `[L]` (Hann window, numpy rfft)."""
    wave = np.asarray(wave, np.float64).reshape(-1)
    if wave.shape[0] < n_fft:
        wave = np.pad(wave, (0, n_fft - wave.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    db = 10 * np.log10(np.maximum(power, 1e-12))
    return np.maximum(db, db.max() + floor_db).T


def spectrogram_grid(waves: Sequence[np.ndarray], sample_rate: int, path: Optional[str] = None, *,
                     titles: Optional[Sequence[str]] = None, columns: int = 4) -> np.ndarray:
    """Draws a grid of spectrograms of waveforms `[L]` or `[L, C]` (first channel); saves a PNG to
    `path` if given and returns the image as uint8 `[H, W, 3]`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = int(np.ceil(len(waves) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 2.2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(waves):
            continue
        wave = np.asarray(waves[i])
        wave = wave[:, 0] if wave.ndim == 2 else wave
        spec = log_spectrogram(wave)
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma",
                  extent=(0, len(wave) / sample_rate, 0, sample_rate / 2000))
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=70)
    if path is not None:
        with open(path, "wb") as f:
            f.write(buffer.getvalue())
    plt.close(fig)
    buffer.seek(0)
    return (plt.imread(buffer)[..., :3] * 255).astype(np.uint8)

"""Spectrogram pictures for logs, README, entry points and listening pages (matplotlib, headless).

`spectrogram_figure` / `write_spectrograms` draw labelled clips `[L, C]` at any rate: every channel,
the full band (0 to Nyquist, in kHz), time in seconds, one dB-FS colour scale with a colorbar, and an
optional reference (the clean signal) beside the outputs. `spectrogram_grid` is the compact
first-channel grid for TensorBoard.
"""
from __future__ import annotations

import io as _io
from typing import Optional, Sequence, Union

import numpy as np

Clip = tuple[str, np.ndarray]  # (label, audio [L] or [L, C])


def power_db(wave: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Power spectrogram in dB full scale `[F, T]`, F = n_fft // 2 + 1, of a mono waveform `[L]`.

    Hann-windowed frames every `hop` samples (zero-padded to one frame if shorter), scaled so that a
    full-scale sine at a bin centre reads 0 dB: |X_k|^2 / (sum(w) / 2)^2.
    """
    wave = np.asarray(wave, np.float64).reshape(-1)
    if wave.shape[0] < n_fft:
        wave = np.pad(wave, (0, n_fft - wave.shape[0]))
    window = np.hanning(n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop] * window
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2 / (window.sum() / 2) ** 2
    return 10 * np.log10(np.maximum(power, 1e-20)).T


def log_spectrogram(wave: np.ndarray, n_fft: int = 512, hop: int = 128, floor_db: float = -80.0) -> np.ndarray:
    """Magnitude spectrogram in dB `[F, T]` of a mono waveform `[L]`, floored `floor_db` below its peak."""
    db = power_db(wave, n_fft, hop)
    return np.maximum(db, db.max() + floor_db)


def fft_size(sample_rate: int, length: int) -> int:
    """A power of two near 23 ms at `sample_rate` (512 at 16 kHz, 1024 at 44.1/48 kHz), at most the
    clip's length (and at least 16)."""
    n = 2 ** int(round(np.log2(sample_rate / 43.0)))
    while n > 16 and n > length:
        n //= 2
    return max(n, 16)


def _channel_names(channels: int) -> list[str]:
    return ["left", "right"] if channels == 2 else [f"channel {c + 1}" for c in range(channels)] if channels > 1 else [""]


def spectrogram_figure(clips: Sequence[Clip], sample_rate: Union[int, Sequence[int]], *,
                       reference: Optional[Clip] = None,
                       reference_rate: Optional[int] = None,
                       columns: Optional[int] = None,
                       dynamic_range_db: float = 100.0,
                       max_frames: int = 2000,
                       panel_size: tuple[float, float] = (4.0, 2.2)):
    """A figure of spectrograms: one panel per clip and channel, on one dB scale with a colorbar.

    Clips run left to right, `columns` to a row (default: all in one row), then the `reference` (e.g.
    the clean signal) beside them; a clip's channels are stacked. Each panel spans 0..L/rate seconds
    and 0..rate/2 kHz (the full band). Colours span [peak - dynamic_range_db, peak] dB FS, the peak
    over all panels, so levels compare across clips.

    Args:
      clips: `(label, audio)` pairs, audio `[L]` or `[L, C]`.
      sample_rate: one rate for every clip, or one per clip.
      reference: an optional `(label, audio)` drawn after the clips.
      reference_rate: its rate (default: the clips' rate, when they share one).
      columns: clips per row of panels.
      dynamic_range_db: the colour scale's span below the loudest bin.
      max_frames: the most STFT frames per panel (the hop grows on long clips).
      panel_size: inches per panel (width, height).
    Returns:
      A `matplotlib.figure.Figure` (no pyplot state; the caller saves it).
    """
    from matplotlib.figure import Figure

    rates = [int(sample_rate)] * len(clips) if np.ndim(sample_rate) == 0 else [int(r) for r in sample_rate]
    if len(rates) != len(clips):
        raise ValueError(f"{len(clips)} clips but {len(rates)} sample rates; give one rate or one per clip")
    panels = [(label, np.asarray(audio), rate) for (label, audio), rate in zip(clips, rates)]
    if reference is not None:
        if reference_rate is None and len(set(rates)) > 1:
            raise ValueError(f"clips at several rates {sorted(set(rates))}: give the reference's reference_rate")
        panels.append((f"reference: {reference[0]}", np.asarray(reference[1]),
                       int(reference_rate or (rates[0] if rates else 0))))
    if not panels:
        raise ValueError("spectrogram_figure needs at least one clip")
    panels = [(label, audio[:, None] if audio.ndim == 1 else audio, rate) for label, audio, rate in panels]
    for label, audio, rate in panels:
        if audio.ndim != 2 or audio.shape[0] == 0 or rate <= 0:
            raise ValueError(f"clip {label!r}: expected audio [L] or [L, C] with L > 0 at a positive rate; "
                             f"got shape {audio.shape} at {rate} Hz")
    specs = []
    for _, audio, rate in panels:
        n_fft = fft_size(rate, audio.shape[0])
        hop = max(n_fft // 4, -(-audio.shape[0] // max_frames))
        specs.append([power_db(audio[:, c], n_fft, hop) for c in range(audio.shape[1])])
    vmax = max(float(s.max()) for chans in specs for s in chans)
    vmin = vmax - dynamic_range_db

    columns = columns or len(panels)
    channels = max(audio.shape[1] for _, audio, _ in panels)
    rows = -(-len(panels) // columns) * channels
    fig = Figure(figsize=(panel_size[0] * columns + 1.0, panel_size[1] * rows), layout="constrained")
    grid = fig.add_gridspec(rows, columns)
    image, axes = None, []
    for i, ((label, audio, rate), chans) in enumerate(zip(panels, specs)):
        names = _channel_names(audio.shape[1])
        for c, spec in enumerate(chans):
            ax = fig.add_subplot(grid[(i // columns) * channels + c, i % columns])
            seconds, khz = audio.shape[0] / rate, rate / 2000
            image = ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                              extent=(0, seconds, 0, khz), interpolation="nearest")
            ax.set_xlim(0, seconds)
            ax.set_ylim(0, khz)
            ax.set_title(f"{label} ({names[c]})" if names[c] else label, fontsize=9)
            if i % columns == 0:
                ax.set_ylabel("frequency (kHz)")
            if c == audio.shape[1] - 1:
                ax.set_xlabel("time (s)")
            axes.append(ax)
    fig.colorbar(image, ax=axes, label="power (dB FS)", shrink=0.9)
    return fig


def write_spectrograms(path: str, clips: Sequence[Clip], sample_rate: Union[int, Sequence[int]], *,
                       dpi: int = 80, **kwargs) -> str:
    """Saves `spectrogram_figure(clips, sample_rate, **kwargs)` as a PNG at `path` (guarded by the
    caller: the jobs layer) and returns `path`."""
    fig = spectrogram_figure(clips, sample_rate, **kwargs)
    fig.savefig(path, format="png", dpi=dpi)
    return path


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

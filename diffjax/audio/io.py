"""Audio file I/O with soundfile (wav/flac/ogg) and resampling with soxr.

Arrays are `[L, C]` float32 in [-1, 1] (one file, channels-last); sample rates are always explicit.

    info = audio_info("a.flac")                       # AudioInfo(frames, sample_rate, channels)
    x = read_audio("a.flac", sample_rate=16000, channels=1, normalize=True)   # [L, 1]
    write_audio("out.wav", x, sample_rate=16000)      # an existing path needs overwrite=True

Every resample is logged (logger 'diffjax'); files that cannot be used raise `AudioError` naming
the file and the reason (unreadable, empty, non-finite samples).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os

import numpy as np
import soundfile as sf
import soxr

logger = logging.getLogger("diffjax")

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")  # mp3: libsndfile >= 1.1
_WRITE_BLOCK = 1 << 16  # frames per write call (write_audio)
_ANNOUNCED: set = set()  # (name, sr_in, sr_out) already logged at INFO


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and the reason."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """Header facts of one file."""

    frames: int
    sample_rate: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str) -> AudioInfo:
    """Reads the header of `path`; raises `AudioError` if unreadable or empty."""
    try:
        info = sf.info(path)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError or TypeError.
        raise AudioError(f"{path}: unreadable as audio ({type(e).__name__}: {e})") from None
    if info.frames <= 0:
        raise AudioError(f"{path}: contains no samples")
    return AudioInfo(frames=int(info.frames), sample_rate=int(info.samplerate),
                     channels=int(info.channels))


def resample(x: np.ndarray, sr_in: int, sr_out: int, *, name: str = "audio") -> np.ndarray:
    """Resamples `x` [L, C] from `sr_in` to `sr_out` Hz with soxr ('HQ'); logs every resample.

    The first resample of each (name, rates) is logged at INFO, repeats (a dataset reading crops
    of one file) at DEBUG. The output has `round(L * sr_out / sr_in)` frames (soxr compensates
    its filter delay).
    """
    if sr_in == sr_out:
        return x
    key = (name, sr_in, sr_out)
    level = logging.DEBUG if key in _ANNOUNCED else logging.INFO
    _ANNOUNCED.add(key)
    logger.log(level, "resampling %s from %d Hz to %d Hz", name, sr_in, sr_out)
    y = soxr.resample(np.ascontiguousarray(x, np.float32), sr_in, sr_out, quality="HQ")
    return np.asarray(y, np.float32).reshape(-1, x.shape[1])


def convert_channels(x: np.ndarray, channels: int | None) -> np.ndarray:
    """Channel conversion of `x` [L, C]: 1 = mono down-mix (mean), 2 = stereo, None = keep.

    Stereo from mono duplicates the channel; from more than two channels it keeps the first two.
    """
    if channels is None or x.shape[1] == channels:
        return x
    if channels == 1:
        return x.mean(axis=1, keepdims=True)
    if channels == 2:
        return np.repeat(x, 2, axis=1) if x.shape[1] == 1 else x[:, :2]
    raise ValueError(f"channels must be 1 (mono), 2 (stereo) or None (keep); got {channels!r}")


def peak_normalize(x: np.ndarray, peak: float = 0.95) -> np.ndarray:
    """Scales `x` so that max |x| = `peak`; silence is returned unchanged."""
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return x if m == 0.0 else (x * (peak / m)).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    """Root-mean-square level in dBFS (a full-scale sine is -3 dB); -inf for silence."""
    rms = math.sqrt(float(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def read_audio(
        path: str,
        *,
        sample_rate: int,
        channels: int | None = 1,
        normalize: bool = False,
        start: int = 0,
        frames: int = -1,
) -> np.ndarray:
    """Reads `path` as float32 [L, C] at `sample_rate` Hz.

    Args:
        path: a wav/flac/ogg file.
        sample_rate: the wanted rate; the file is resampled (and the resample logged) if needed.
        channels: 1 (mono down-mix), 2 (stereo) or None (keep the file's channels).
        normalize: peak-normalise (to 0.95) after reading.
        start, frames: the segment to read, in frames of the *file's* rate (-1 = to the end).
    Returns:
        [L, C] float32, clipped to [-1, 1].
    Raises:
        AudioError: unreadable, empty, or containing NaN/inf samples.
    """
    try:
        x, sr = sf.read(path, start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"{path}: unreadable as audio ({type(e).__name__}: {e})") from None
    if x.shape[0] == 0 and start == 0:
        raise AudioError(f"{path}: contains no samples")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{path}: contains non-finite (NaN or inf) samples")
    x = convert_channels(x, channels)
    x = resample(x, int(sr), int(sample_rate), name=os.fspath(path))
    if normalize:
        x = peak_normalize(x)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def write_audio(
        path: str,
        audio: np.ndarray,
        *,
        sample_rate: int,
        overwrite: bool = False,
        subtype: str | None = None,
) -> str:
    """Writes `audio` [L, C] or [L] to `path` (format from the extension: wav/flac/ogg).

    Refuses to replace an existing file unless `overwrite=True`, so inputs are never clobbered.
    `subtype` is soundfile's (e.g. 'PCM_16', 'FLOAT'); None = the format's default.
    Returns the path.
    """
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    x = np.asarray(audio, np.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"audio must be [L] or [L, C]; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"refusing to write non-finite samples to {path}")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    x = np.clip(x, -1.0, 1.0).reshape(len(x), -1)
    # In blocks: libsndfile 1.2.2 overflows its stack on one large OGG write (60 s of 44.1 kHz stereo).
    with sf.SoundFile(path, "w", int(sample_rate), x.shape[1], subtype=subtype) as f:
        for i in range(0, len(x), _WRITE_BLOCK):
            f.write(x[i:i + _WRITE_BLOCK])
    return path

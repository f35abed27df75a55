"""Every audio file of a folder cut into non-overlapping crops: evaluation sets from real music.

    files = audio_files("my_music")                     # sorted relative paths (wav/flac/ogg)
    rate = folder_sample_rate("my_music")               # the most common rate of its files
    for rel, crops in folder_crops("my_music", sample_rate=44100, crop_seconds=2.0, channels=1,
                                   max_per_file=32, max_total=2048):
        crops   # float32 [k, L, C], L = round(crop_seconds * sample_rate)

A folder of 5 long tracks is 5 x (many) crops, not 5 examples. A file with more crops than its
share keeps crops spread evenly over its length (`crop_plan`); a file shorter than one crop gives
one zero-padded crop (and a warning: the padding is silence the embedders see). Files are read
with `io.read_audio` (resampled with soxr and logged, down-mixed or made stereo), in sorted order,
so the crops of a folder are deterministic.
"""
from __future__ import annotations

import logging
import os
from typing import Iterator, Optional

import numpy as np

from diffjax.audio import io

logger = logging.getLogger("diffjax")


def audio_files(root: str) -> list[str]:
    """Sorted relative paths of the wav/flac/ogg files under `root` (recursively).

    Raises:
        FileNotFoundError: `root` is not a directory.
        ValueError: it holds no audio file.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root} is not a directory; pass a folder of audio files "
                                f"({', '.join(io.AUDIO_EXTENSIONS)})")
    found = sorted(os.path.relpath(os.path.join(d, f), root)
                   for d, _, names in os.walk(root) for f in names
                   if f.lower().endswith(io.AUDIO_EXTENSIONS))
    if not found:
        raise ValueError(f"{root} holds no audio files ({', '.join(io.AUDIO_EXTENSIONS)}, searched "
                         "recursively); pass a folder of audio")
    return found


def folder_sample_rate(root: str) -> int:
    """The most common sample rate of the audio files under `root` (the lowest among ties)."""
    rates = [io.audio_info(os.path.join(root, rel)).sample_rate for rel in audio_files(root)]
    values, counts = np.unique(rates, return_counts=True)
    return int(values[np.argmax(counts)])


def crop_plan(lengths: list[int], crop: int, *, max_per_file: Optional[int] = None,
              max_total: Optional[int] = None) -> list[np.ndarray]:
    """Start samples of the non-overlapping crops to take from files of `lengths` samples.

    File i has n_i = max(1, lengths[i] // crop) crop slots; it takes k_i = min(n_i, max_per_file)
    of them, and if sum k_i > max_total, every k_i is lowered to min(k_i, c) with the largest cap c
    that fits (the remainder going to the first files still below their k_i), so no file is dropped
    while max_total >= number of files. The k_i slots are spread evenly over the file.

    Returns:
        One int64 array [k_i] of starts (in samples) per file.
    """
    if crop <= 0:
        raise ValueError(f"crop must be > 0 samples; got {crop}")
    slots = np.asarray([max(1, int(n) // crop) for n in lengths], np.int64)
    want = slots if max_per_file is None else np.minimum(slots, int(max_per_file))
    if max_total is not None and want.sum() > max_total:
        if max_total < len(lengths):
            raise ValueError(f"max_total = {max_total} crops is fewer than the {len(lengths)} files; "
                             "raise it (every file gives at least one crop)")
        cap = max(c for c in range(int(want.max()) + 1) if np.minimum(want, c).sum() <= max_total)
        take = np.minimum(want, cap)
        extra = int(max_total - take.sum())
        for i in np.flatnonzero(take < want)[:extra]:
            take[i] += 1
        want = take
    return [np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64)) * crop
            for n, k in zip(slots, want)]


def folder_crops(root: str, *, sample_rate: int, crop_seconds: float, channels: int = 1,
                 max_per_file: Optional[int] = None, max_total: Optional[int] = None
                 ) -> Iterator[tuple[str, np.ndarray]]:
    """Yields (relative path, crops [k, L, C] float32) for every audio file of `root`, in order.

    Args:
        root: a folder of wav/flac/ogg files (searched recursively).
        sample_rate: the rate of the crops (files at other rates are resampled, and it is logged).
        crop_seconds: crop length; L = round(crop_seconds * sample_rate).
        channels: 1 (mono down-mix) or 2 (stereo; mono files duplicated).
        max_per_file, max_total: caps on the number of crops (`crop_plan`); None: no cap.
    """
    crop = int(round(crop_seconds * sample_rate))
    if crop < 1:
        raise ValueError(f"crop_seconds = {crop_seconds} is shorter than one sample at {sample_rate} Hz")
    files = audio_files(root)
    infos = [io.audio_info(os.path.join(root, rel)) for rel in files]
    lengths = [int(round(i.frames * sample_rate / i.sample_rate)) for i in infos]
    short = sum(n < crop for n in lengths)
    if short:
        logger.warning("%d of %d files in %s are shorter than a crop (%.3g s) and are zero-padded; "
                       "lower the crop length to compare them fairly", short, len(files), root,
                       crop_seconds)
    for rel, starts in zip(files, crop_plan(lengths, crop, max_per_file=max_per_file,
                                            max_total=max_total)):
        x = io.read_audio(os.path.join(root, rel), sample_rate=sample_rate, channels=channels)
        x = np.concatenate([x, np.zeros((max(0, int(starts[-1]) + crop - len(x)), x.shape[1]),
                                        np.float32)])
        yield rel, np.stack([x[s:s + crop] for s in starts])

"""A decode cache for folders of audio: each file decoded once, at the model's rate, into a `.npy`.

Compressed formats (OGG, MP3, FLAC) are slow to seek: a batch of 16 random crops from OGG files took
28x as long as from the same tracks as WAV, almost all of it in `soundfile.seek` (issue 21). The
cache decodes every file once, resampled to `sample_rate`, converted to `channels` and optionally
peak-normalised, and crops then slice a memory map:

    folder = cache_folder(root, cache_dir, sample_rate=44100, channels=2, normalize=False)
    manifest = build_cache([(rel, path, stamp), ...], folder, sample_rate=44100, channels=2,
                           normalize=False, silence_db=-60.0, silence_min_seconds=1.0)
    x = read(folder, manifest["files"][rel], start=0, frames=44100)   # float32 [<= 44100, 2]

`folder` is `<cache_dir>/audio/<hash of root, rate, channels, normalize>`, holding one float32
`<hash of path>.npy` of shape [L, C] per file and `manifest.json`:

    {"sample_rate", "channels", "normalize",
     "files": {rel: {"source", "stamp": [size, mtime_ns], "npy", "frames", "duration" (s),
                     "source_rate", "source_channels", "peak", "rms_db",
                     "silence": [silence_db, silence_min_seconds], "segments": [[start, end), ...]}},
     "skipped": {rel: {"source", "stamp", "reason"}}}

A file whose (size, mtime) changed is decoded again; an unusable one is skipped with its reason
(and retried only once it changes). Every write is a temporary file renamed into place, so a run
killed mid-way leaves no corrupt entry. `segments` are the frames kept after dropping silence
(`kept_segments`); they are recomputed from the cached audio, without decoding, when the silence
settings change. Float32 keeps crops bitwise equal to a direct decode, at 4 bytes per sample
(1.27 GB per hour of 44.1 kHz stereo).
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import time

import numpy as np
import tqdm

from diffjax.audio import io

logger = logging.getLogger("diffjax")

SILENCE_WINDOW_SECONDS = 0.05  # RMS windows of 50 ms: 20 decisions per second
_BLOCK_WINDOWS = 1 << 14       # windows per block when scanning a long file for silence


def _digest(*parts) -> str:
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:16]


def cache_folder(root: str, cache_dir: str, *, sample_rate: int, channels: int, normalize: bool) -> str:
    """`<cache_dir>/audio/<hash>`: one cache per (absolute root, rate, channels, normalize)."""
    return os.path.join(cache_dir, "audio",
                        _digest(os.path.abspath(root), int(sample_rate), int(channels), bool(normalize)))


def kept_segments(
        x: np.ndarray,
        sample_rate: int,
        *,
        silence_db: float | None,
        min_seconds: float = 1.0,
) -> list[list[int]]:
    """The [start, end) frame ranges of `x` [L, C] left after dropping long silences.

    The signal is cut into windows of `SILENCE_WINDOW_SECONDS`; a window is silent when its RMS over
    frames and channels, `10 log10(mean x^2)`, is below `silence_db` (dBFS; a full-scale sine is
    -3 dB). Runs of silent windows lasting at least `min_seconds` are dropped; shorter pauses (rests
    in music) are kept. `silence_db=None` keeps everything. Works block-wise, so `x` may be a memmap.
    """
    length = len(x)
    if silence_db is None:
        return [[0, length]] if length else []
    w = max(1, int(round(SILENCE_WINDOW_SECONDS * sample_rate)))
    n = math.ceil(length / w)
    power = np.empty(n, np.float64)
    for b in range(0, n, _BLOCK_WINDOWS):
        block = np.asarray(x[b * w:min(length, (b + _BLOCK_WINDOWS) * w)], np.float64)
        sums = np.add.reduceat(np.square(block).sum(axis=1), np.arange(0, len(block), w))
        counts = np.minimum(w, len(block) - np.arange(0, len(block), w)) * block.shape[1]
        power[b:b + len(sums)] = sums / counts
    with np.errstate(divide="ignore"):
        silent = 10.0 * np.log10(power) < silence_db
    # Runs of silent windows: [first, last + 1) window indices.
    edges = np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(np.int8), [0]])))
    kept, cursor = [], 0
    for a, b in zip(edges[::2], edges[1::2]):
        lo, hi = a * w, min(length, b * w)
        if hi - lo >= min_seconds * sample_rate:
            if lo > cursor:
                kept.append([int(cursor), int(lo)])
            cursor = hi
    if cursor < length:
        kept.append([int(cursor), int(length)])
    return kept


def _load_manifest(path: str, header: dict) -> dict:
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
            if all(old.get(k) == v for k, v in header.items()):
                return old
        except (OSError, ValueError):
            logger.warning("audio cache manifest %s is unreadable; rebuilding it", path)
    return {**header, "files": {}, "skipped": {}}


def _write_json(path: str, value: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, path)


def _decode(full: str, npy: str, *, sample_rate: int, channels: int, normalize: bool) -> dict:
    """Decodes `full` into `npy` (atomically); returns its statistics. Raises io.AudioError."""
    info = io.audio_info(full)
    x = io.read_audio(full, sample_rate=sample_rate, channels=channels, normalize=normalize)
    tmp = f"{npy}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(x, np.float32))
    os.replace(tmp, npy)
    return {"frames": int(len(x)), "duration": len(x) / sample_rate, "source_rate": info.sample_rate,
            "source_channels": info.channels, "peak": float(np.max(np.abs(x))), "rms_db": io.rms_db(x)}


def build_cache(
        sources: list[tuple[str, str, list[int]]],
        folder: str,
        *,
        sample_rate: int,
        channels: int,
        normalize: bool,
        silence_db: float | None = None,
        silence_min_seconds: float = 1.0,
        progress: bool = True,
) -> dict:
    """Brings the cache in `folder` up to date with `sources` and returns its manifest.

    Args:
        sources: (relative path, absolute path, [size, mtime_ns]) of every audio file of the folder.
        folder: the cache directory (`cache_folder`); created if missing.
        sample_rate, channels, normalize: the decoding (`io.read_audio`).
        silence_db, silence_min_seconds: the silence dropped from `segments` (`kept_segments`).
        progress: a tqdm bar over the files to decode.
    Returns:
        The manifest (module docstring), restricted to `sources`; unusable files are under
        'skipped' with the reason, each warned about (logger 'diffjax').
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "manifest.json")
    header = {"sample_rate": int(sample_rate), "channels": int(channels), "normalize": bool(normalize)}
    old = _load_manifest(path, header)
    silence = [silence_db, float(silence_min_seconds)]
    files, skipped, todo = {}, {}, []
    for rel, full, stamp in sources:
        prev_ok, prev_bad = old["files"].get(rel), old["skipped"].get(rel)
        if prev_ok and prev_ok["stamp"] == list(stamp) and os.path.exists(os.path.join(folder, prev_ok["npy"])):
            files[rel] = prev_ok
        elif prev_bad and prev_bad["stamp"] == list(stamp):
            skipped[rel] = prev_bad
        else:
            todo.append((rel, full, stamp))
    manifest = {**header, "files": files, "skipped": skipped}
    saved = time.monotonic()
    for rel, full, stamp in tqdm.tqdm(todo, desc=f"decoding audio into {folder}", unit="file",
                                      disable=not (progress and todo)):
        npy = hashlib.sha1(rel.encode()).hexdigest()[:16] + ".npy"
        try:
            stats = _decode(full, os.path.join(folder, npy), sample_rate=sample_rate,
                            channels=channels, normalize=normalize)
            files[rel] = {"source": full, "stamp": list(stamp), "npy": npy, **stats, "silence": None}
        except io.AudioError as e:
            skipped[rel] = {"source": full, "stamp": list(stamp), "reason": str(e).removeprefix(f"{full}: ")}
        if time.monotonic() - saved > 30.0:  # a long first build survives being killed
            _write_json(path, manifest)
            saved = time.monotonic()
    for rel, e in files.items():
        if e.get("silence") != silence:
            e["segments"] = kept_segments(load(folder, e), sample_rate, silence_db=silence_db,
                                          min_seconds=silence_min_seconds)
            e["silence"] = silence
    for rel, e in skipped.items():
        logger.warning("skipping %s: %s", e["source"], e["reason"])
    for rel in set(old["files"]) - set(files):  # removed or changed: drop the stale array
        stale = os.path.join(folder, old["files"][rel]["npy"])
        if os.path.exists(stale) and all(e["npy"] != old["files"][rel]["npy"] for e in files.values()):
            os.remove(stale)
    _write_json(path, manifest)
    return manifest


@functools.lru_cache(maxsize=128)  # open maps hold a file descriptor each: keep a bounded number
def _open(path: str, stamp: tuple[int, int]) -> np.ndarray:
    del stamp  # in the key only: a file decoded again is opened again
    return np.load(path, mmap_mode="r")


def load(folder: str, entry: dict) -> np.ndarray:
    """The cached audio of one manifest entry: a read-only float32 memmap [L, C] (the last 128
    opened stay open: parsing a .npy header costs more than copying a 1 s crop)."""
    return _open(os.path.join(folder, entry["npy"]), tuple(entry["stamp"]))


def read(folder: str, entry: dict, start: int, frames: int) -> np.ndarray:
    """Frames [start, start + frames) of one cached file, float32 [<= frames, C], in memory."""
    return np.array(load(folder, entry)[start:start + frames], np.float32)

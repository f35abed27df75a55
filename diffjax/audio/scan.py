"""Scanning and splitting folders of audio files (the `folder` dataset, `diffjax.audio.datasets`).

    sources = walk_audio(root, follow_symlinks=False)      # [(rel, path, [size, mtime_ns])]
    manifest = build_manifest(root, cache_dir)               # header facts, without a decode cache
    evals = split_by_duration({rel: seconds}, 0.05)          # the eval files, by duration
"""
from __future__ import annotations

import hashlib
import json
import logging
import os

import numpy as np

from diffjax.audio import io, synth

logger = logging.getLogger("diffjax")


def walk_audio(root: str, follow_symlinks: bool) -> list[tuple[str, str, list[int]]]:
    """(relative path, absolute path, [size, mtime_ns]) of the audio files under `root`, sorted."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"audio folder {root} does not exist")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.lower().endswith(io.AUDIO_EXTENSIONS):
                continue
            full = os.path.join(dirpath, name)
            if os.path.islink(full) and not follow_symlinks:
                logger.warning("skipping %s: a symbolic link (set data.folder.follow_symlinks=True to read it)", full)
                continue
            st = os.stat(full)
            found.append((os.path.relpath(full, root).replace(os.sep, "/"), full, [st.st_size, st.st_mtime_ns]))
    return found


def _scan_file(path: str) -> dict:
    """Manifest entry of one file; raises io.AudioError (with the reason) if it is unusable."""
    info = io.audio_info(path)
    x = io.read_audio(path, sample_rate=info.sample_rate, channels=None)  # NaN/inf check.
    return {"duration": info.duration, "sample_rate": info.sample_rate,
            "channels": info.channels, "frames": info.frames, "rms_db": io.rms_db(x),
            "peak": float(np.max(np.abs(x)))}


def build_manifest(root: str, cache_dir: str | None = None, *, follow_symlinks: bool = False) -> dict:
    """Scans `root` recursively (without a decode cache) and caches the manifest as JSON in
    `cache_dir` (None: `$XDG_CACHE_HOME/diffjax`, else `~/.cache/diffjax`).

    Entries are keyed by relative path, with (size, mtime) to detect changed files; only new or
    changed files are re-read on later calls. Unusable files are listed under 'skipped' with the
    reason, and each is warned about (logger 'diffjax'). Symbolic links (files or folders) are
    skipped unless `follow_symlinks`, so nothing outside `root` is read by default.
    """
    root = os.path.abspath(root)
    cache_dir = cache_dir or synth.default_cache_dir()
    sources = walk_audio(root, follow_symlinks)
    path = os.path.join(cache_dir, f"manifest_{hashlib.sha1(root.encode()).hexdigest()[:12]}.json")
    old = {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    files, skipped = {}, {}
    for rel, full, stamp in sources:
        prev_ok, prev_bad = old.get("files", {}).get(rel), old.get("skipped", {}).get(rel)
        if prev_ok and prev_ok["stamp"] == stamp:
            files[rel] = prev_ok
            continue
        if prev_bad and prev_bad["stamp"] == stamp:
            skipped[rel] = prev_bad
        else:
            try:
                files[rel] = {**_scan_file(full), "stamp": stamp}
                continue
            except io.AudioError as e:
                skipped[rel] = {"reason": str(e).removeprefix(f"{full}: "), "stamp": stamp}
        logger.warning("skipping %s: %s", full, skipped[rel]["reason"])
    manifest = {"root": root, "files": files, "skipped": skipped}
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, path)
    return manifest


def path_hash(relpath: str) -> float:
    """A number in [0, 1) fixed by the relative path (stable across machines): the split order."""
    return int(hashlib.sha1(relpath.replace(os.sep, "/").encode()).hexdigest()[:8], 16) / 2 ** 32


def split_by_duration(durations: dict[str, float], eval_fraction: float) -> tuple[str, ...]:
    """The eval files: about `eval_fraction` of the total duration, never none and never all.

    Files are visited in `path_hash` order and one is added when that brings the eval duration
    closer to the target `eval_fraction * total`, so the result misses the target by at most half
    the longest file; if none is added, the shortest file is. Needs >= 2 files.
    """
    if len(durations) < 2:
        raise ValueError(f"split_by_duration needs >= 2 files; got {len(durations)}")
    target, total, chosen = eval_fraction * sum(durations.values()), 0.0, []
    for rel in sorted(durations, key=lambda r: (path_hash(r), r)):
        if len(chosen) == len(durations) - 1:
            break
        if durations[rel] < 2.0 * (target - total):  # |total + d - target| < |total - target|
            chosen.append(rel)
            total += durations[rel]
    if not chosen:
        chosen = [min(durations, key=lambda r: (durations[r], path_hash(r), r))]
    return tuple(sorted(chosen))


def cut_segments(segments: list, frames: int) -> tuple[list, list]:
    """Splits [start, end) segments at `frames` of kept audio: (the first `frames`, the rest)."""
    head, tail, seen = [], [], 0
    for s, e in segments:
        n = max(0, min(e - s, frames - seen))
        if n:
            head.append([s, s + n])
        if s + n < e:
            tail.append([s + n, e])
        seen += e - s
    return head, tail

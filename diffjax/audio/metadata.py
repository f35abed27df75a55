"""Per-example text and timing annotations for the audio datasets (`diffjax.audio.datasets`).

- `read_metadata`: captions of the files of an audio folder, from a CSV or JSON-lines file;
- `caption_rng`: the generator that picks a caption (a template, or one of a file's captions);
- `truncate`: keeps the first seconds of an example with a short fade-out (variable-length
  training, as Stable Audio's padded clips, Evans et al. 2024);
- `crop_events`: note events [E, 4] of a clip, re-timed to a crop of it.
"""
from __future__ import annotations

import csv
import json
import os

import numpy as np

EXPECTED = ("a CSV file (.csv) whose header row names at least the columns 'path' and 'caption', "
            "or a JSON-lines file (.jsonl, .ndjson, .json) of objects with 'path' and 'caption'")
PAD_EVENT = (-1.0, 0.0, 0.0, 0.0)  # an unused row of an events array: pitch -1


def caption_rng(seed: int, step: int, position: int) -> np.random.Generator:
    """The generator of the caption of stream position `position` of `step` (see datasets)."""
    return np.random.default_rng(np.random.SeedSequence([seed, step, int(position), 0xCA9]))


def _rows(path: str) -> list[tuple[int, dict]]:
    """(line number, row) pairs of a CSV or JSON-lines file; ValueError if it is not one."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".jsonl", ".ndjson", ".json"):
        raise ValueError(f"unknown extension {ext!r}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        if ext == ".csv":
            reader = csv.DictReader(f)
            missing = {"path", "caption"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"the header row lacks the column(s) {sorted(missing)} "
                                 f"(it names {reader.fieldnames})")
            return [(reader.line_num, row) for row in reader]
        rows = []
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise ValueError(f"line {n} is not JSON ({e})") from None
        return rows


def read_metadata(path: str, root: str) -> dict[str, tuple[str, ...]]:
    """Captions by file from a metadata file: {relative path under root: (caption, ...)}.

    Args:
        path: a CSV file with a header row naming at least `path,caption` (other columns are
            ignored), or JSON lines of objects {"path": ..., "caption": ..., ...}. A file may have
            several rows (several captions, drawn from at random per example).
        root: the audio folder; relative row paths are resolved against it, and absolute ones
            are made relative to it.

    Raises:
        ValueError naming `path` and the expected format if it is unreadable or malformed.
    """
    try:
        rows = _rows(path)
        captions: dict[str, list[str]] = {}
        for n, row in rows:
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str)
                                                    for k in ("path", "caption")):
                raise ValueError(f"row at line {n} has no string 'path' and 'caption': {row!r}")
            rel = os.path.relpath(os.path.join(root, row["path"]), root).replace(os.sep, "/")
            captions.setdefault(rel, []).append(row["caption"])
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as e:
        raise ValueError(f"cannot read metadata file {path} (data.folder.metadata): {e}. "
                         f"Expected {EXPECTED}") from None
    return {rel: tuple(c) for rel, c in captions.items()}


def truncate(x: np.ndarray, mask: np.ndarray, n: int, fade: int) -> tuple[np.ndarray, np.ndarray]:
    """Keeps the first `n` samples of x [L, C] with a linear fade-out over the last `fade` of them,
    and zeros after; mask [L, 1] is 0 after n. Returns new arrays."""
    x, mask = x.copy(), mask.copy()
    f = min(fade, n)
    x[n - f:n] *= (np.arange(f, 0, -1, dtype=np.float32) / max(f, 1))[:, None]
    x[n:], mask[n:] = 0.0, 0.0
    return x, mask


def crop_events(events: np.ndarray, start: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Re-times note events to crops: onsets shifted by -start, durations clipped to the crop.

    Args:
        events: float32 [b, E, 4] rows (pitch, onset_s, duration_s, velocity); pitch -1: padding.
        start: [b] crop start in seconds; total: [b] seconds of audio kept from there.

    Returns:
        float32 [b, E, 4]: the events with 0 <= onset - start < total, in their order, then
        padding rows `PAD_EVENT` (events starting before or after the crop are dropped).
    """
    start, total = np.asarray(start)[:, None], np.asarray(total)[:, None]
    onset = events[..., 1] - start
    keep = (events[..., 0] >= 0) & (onset >= 0) & (onset < total)
    out = np.stack([events[..., 0], onset, np.minimum(events[..., 2], total - onset),
                    events[..., 3]], axis=-1)
    out = np.where(keep[..., None], out, np.asarray(PAD_EVENT))
    order = np.argsort(~keep, axis=1, kind="stable")
    return np.take_along_axis(out, order[..., None], axis=1).astype(np.float32)

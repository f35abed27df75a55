"""Do folders of compressed audio train at WAV speed? Batch loading time of the `folder` dataset from
WAV, FLAC, OGG and MP3 copies of the same tracks, reading crops from the files (`cache=False`)
against the decode cache (`cache=True`, `diffjax.audio.cache`), at 16 kHz mono and 44.1 kHz stereo.

    python benchmarks/data.py [--files 6] [--min_seconds 30] [--max_seconds 60] [--batch 16]
                              [--steps 3] [--formats wav,flac,ogg,mp3] [--update_readme]

The tracks are synthesised music (`diffjax.audio.synth`, 2 s clips end to end; stereo from two
streams mixed 1 : 0.5 and 0.5 : 1) at 44.1 kHz, written once per format (soundfile's default
codec settings) into a fresh temporary folder that is removed afterwards. A row times `--steps`
batches of `--batch` crops of `--crop_seconds` after one warm-up batch; the cache's first build
(decode, resample, write) is timed separately, from an empty cache directory. MP3 needs libsndfile
>= 1.1 (the row says so when it is missing). One JSON line per row; `--update_readme` refreshes
the `data-table` block of README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from benchmarks.tables import machine, replace_block  # noqa: E402
from diffjax.audio import io, synth  # noqa: E402
from diffjax.audio.datasets import AudioFolder  # noqa: E402

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
FORMATS = ("wav", "flac", "ogg", "mp3")
SETTINGS = ((16000, 1), (44100, 2))  # (sample_rate, channels) of the dataset
SOURCE_RATE = 44100


def tracks(n: int, lo: float, hi: float, work: str) -> list[np.ndarray]:
    """`n` stereo tracks [L, 2] of lo..hi seconds (evenly spaced) at 44.1 kHz."""
    seconds = np.linspace(lo, hi, n)
    clips = int(np.ceil(seconds / 2.0).sum())
    audio = synth.synth_music(2 * clips, sample_rate=SOURCE_RATE, clip_seconds=2.0, seed=0,
                              cache_dir=os.path.join(work, "synth"))["audio"]
    a, b = audio[:clips].reshape(-1), audio[clips:].reshape(-1)
    out, at = [], 0
    for s in seconds:
        n_frames = int(round(s * SOURCE_RATE))
        x = np.stack([a[at:at + n_frames] + 0.5 * b[at:at + n_frames],
                      0.5 * a[at:at + n_frames] + b[at:at + n_frames]], 1)
        out.append((0.9 * x / np.max(np.abs(x))).astype(np.float32))
        at += int(np.ceil(s / 2.0)) * 2 * SOURCE_RATE
    return out


def time_batches(ds: AudioFolder, batch: int, steps: int) -> float:
    """Mean seconds per batch over `steps` batches, after one warm-up batch."""
    ds.batch(0, batch, seed=0)
    tic = time.perf_counter()
    for step in range(1, steps + 1):
        ds.batch(step, batch, seed=0)
    return (time.perf_counter() - tic) / steps


def rows(args, work: str):
    audio = tracks(args.files, args.min_seconds, args.max_seconds, work)
    total = sum(len(x) for x in audio) / SOURCE_RATE
    for fmt in args.formats.split(","):
        if fmt.upper() not in sf.available_formats():
            yield {"format": fmt, "skipped": f"libsndfile {sf.__libsndfile_version__} cannot write "
                                             f"{fmt.upper()} (needs >= 1.1)"}
            continue
        root = os.path.join(work, fmt)
        for i, x in enumerate(audio):
            io.write_audio(os.path.join(root, f"track{i}.{fmt}"), x, sample_rate=SOURCE_RATE)
        size = sum(os.path.getsize(os.path.join(root, f)) for f in os.listdir(root))
        for sample_rate, channels in SETTINGS:
            common = dict(root=root, sample_rate=sample_rate, channels=channels,
                          crop_seconds=args.crop_seconds, eval_fraction=0.2)
            row = {"format": fmt, "files": args.files, "audio_s": round(total, 1),
                   "folder_mb": round(size / 2 ** 20, 1), "sample_rate": sample_rate,
                   "channels": channels, "batch": args.batch, "crop_s": args.crop_seconds}
            tic = time.perf_counter()
            seek = AudioFolder(cache=False, cache_dir=os.path.join(work, "manifests"), **common)
            scan_s = time.perf_counter() - tic
            seek_s = time_batches(seek, args.batch, args.steps)
            cache_dir = os.path.join(work, f"cache_{fmt}_{sample_rate}_{channels}")
            tic = time.perf_counter()
            cached = AudioFolder(cache=True, cache_dir=cache_dir, **common)
            build_s = time.perf_counter() - tic
            cache_s = time_batches(cached, args.batch, args.steps)
            cache_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cache_dir) for f in fs)
            yield {**row, "scan_s": round(scan_s, 2), "seek_batch_s": round(seek_s, 4),
                   "cache_build_s": round(build_s, 2), "cache_batch_s": round(cache_s, 4),
                   "cache_mb": round(cache_mb / 2 ** 20, 1), "speedup": round(seek_s / cache_s, 1)}


def table(results: list[dict], args) -> str:
    lines = [f"Batches of {args.batch} crops of {args.crop_seconds:g} s from {args.files} synthesised "
             f"44.1 kHz stereo tracks ({args.min_seconds:g}-{args.max_seconds:g} s), mean of {args.steps} "
             f"batches ({machine()}; `python benchmarks/data.py`). Seek: crops read from the files "
             "(`data.folder.cache=False`); cache: the decode cache (default), built once.",
             "",
             "| format | dataset | folder MB | seek s/batch | cache s/batch | speedup | cache build s | cache MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['format']} | {r['skipped']} | | | | | | |")
            continue
        kind = f"{r['sample_rate'] / 1000:g} kHz {'mono' if r['channels'] == 1 else 'stereo'}"
        lines.append(f"| {r['format']} | {kind} | {r['folder_mb']} | {r['seek_batch_s']:.3f} | "
                     f"{r['cache_batch_s']:.4f} | {r['speedup']:.0f}x | {r['cache_build_s']:.1f} | {r['cache_mb']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--min_seconds", type=float, default=30.0)
    parser.add_argument("--max_seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop_seconds", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--update_readme", action="store_true")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="diffjax_data_bench_")
    try:
        results = []
        for row in rows(args, work):
            print(json.dumps(row), flush=True)
            results.append(row)
    finally:
        shutil.rmtree(work)  # the temporary folder this run created, nothing else
    if args.update_readme:
        replace_block(README, "data-table", table(results, args))
    else:
        print(table(results, args))


if __name__ == "__main__":
    main()

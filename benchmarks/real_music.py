"""Your own music, measured on a real recording the project fetches itself: singularity-music, 16
44.1 kHz stereo OGG tracks of game music (`experiments/fetch_real_audio.py`).

    python experiments/fetch_real_audio.py --out_dir workdirs/real_audio --packages singularity-music
    python benchmarks/real_music.py --root workdirs/real_audio/singularity-music [--workdir W] [--update_readme]

Three questions, one JSON line each:
- loading: seconds per batch of 16 one-second 44.1 kHz stereo crops, read from the OGG files
  (`data.folder.cache=False`) against the decode cache (default), and the cache's first build;
- restoration: a 10 s excerpt of the first track, a 0.2 s gap simulated and filled by a 16 kHz
  waveform model (`--workdir`; without it a smoke model is trained for the purpose, so the gap's
  quality means nothing, only what is kept): energy above 8 kHz, in dB of the total, of the input
  and the output, and the largest difference outside the gap;
- evaluation: FD and KAD (mel, MFCC) with 5-95 % bootstrap intervals of the odd-numbered tracks
  against the even-numbered ones (other pieces of the same album), and of the odd tracks low-passed
  at 4 kHz against the same reference (`experiments/evaluate.py --samples --reference`).

`--update_readme` refreshes the `real-music-table` block of README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402

import configs.evaluate as evaluate_config  # noqa: E402
import configs.restore as restore_config  # noqa: E402
from benchmarks.tables import machine, replace_block  # noqa: E402
from diffjax.audio import crops, io  # noqa: E402
from diffjax.audio.datasets import AudioFolder  # noqa: E402
from diffjax.jobs import restore as restore_job  # noqa: E402
from diffjax.jobs.evaluate_folders import evaluate_folders  # noqa: E402

README = os.path.join(ROOT, "README.md")
RATE = 44100


def loading(root: str, work: str, batch: int = 16, steps: int = 3) -> dict:
    """Seconds per batch of `batch` 1 s stereo crops at 44.1 kHz, seek against cache."""
    common = dict(root=root, sample_rate=RATE, channels=2, crop_seconds=1.0, eval_fraction=0.1)
    result = {}
    for name, cache in (("seek", False), ("cache", True)):
        tic = time.perf_counter()
        ds = AudioFolder(cache=cache, cache_dir=os.path.join(work, name), **common)
        result[f"{name}_setup_s"] = round(time.perf_counter() - tic, 2)
        ds.batch(0, batch, seed=0)
        tic = time.perf_counter()
        for step in range(1, steps + 1):
            ds.batch(step, batch, seed=0)
        result[f"{name}_batch_s"] = round((time.perf_counter() - tic) / steps, 4)
    files = crops.audio_files(root)
    result.update(question="loading", files=len(files), batch=batch,
                  speedup=round(result["seek_batch_s"] / result["cache_batch_s"], 1))
    return result


def high_band_db(x: np.ndarray, rate: int, cutoff: float = 8000.0) -> float:
    """Energy above `cutoff` in dB of the total, of `x` [L, C]."""
    f, p = scipy.signal.welch(x, fs=rate, axis=0, nperseg=4096)
    p = p.sum(axis=-1)
    return float(10 * np.log10(p[f > cutoff].sum() / p.sum()))


def smoke_workdir(work: str) -> str:
    """A 16 kHz waveform model trained for a few steps (`configs/waveform.py:smoke`)."""
    workdir = os.path.join(work, "waveform")
    subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "train.py"),
                    f"--config={os.path.join(ROOT, 'configs', 'waveform.py')}:smoke", f"--workdir={workdir}"],
                   check=True, capture_output=True)
    return workdir


def restoration(root: str, work: str, workdir: str) -> dict:
    """A 0.2 s gap in 10 s of the first track, filled by the 16 kHz model at 44.1 kHz."""
    track = crops.audio_files(root)[0]
    x = io.read_audio(os.path.join(root, track), sample_rate=RATE, channels=2)
    excerpt = x[20 * RATE:30 * RATE] if len(x) >= 30 * RATE else x[:10 * RATE]
    src = io.write_audio(os.path.join(work, "excerpt.wav"), excerpt, sample_rate=RATE, subtype="FLOAT")
    config = restore_config.get_config()
    config.task.name, config.task.simulate, config.task.inpaint.gap_seconds = "inpaint", True, 0.2
    config.method.name, config.sampler, config.nfe, config.stereo = "replacement", "euler", 8, "per_channel"
    loaded = restore_job.load_restorable_model(workdir)
    out = os.path.join(work, "restored", "excerpt.wav")
    info = restore_job.restore_file_with(loaded, config, input=src, out=out)
    y = io.read_audio(out, sample_rate=RATE, channels=None)
    degraded = io.read_audio(os.path.join(work, "restored", "excerpt.degraded.wav"), sample_rate=RATE, channels=None)
    gap = np.convolve(np.all(degraded == 0, axis=1), np.ones(3), "same") > 0  # zeroed samples, 1 of margin
    return {"question": "restoration", "track": track, "seconds": round(len(excerpt) / RATE, 2),
            "model_rate": info["model_rate"], "band": info["band"],
            "input_above_8k_db": round(high_band_db(excerpt, RATE), 1),
            "output_above_8k_db": round(high_band_db(y, RATE), 1),
            # What restoring at the model's rate and resampling back (the job before issue 21) keeps:
            "model_rate_round_trip_above_8k_db": round(high_band_db(io.resample(io.resample(
                excerpt, RATE, info["model_rate"]), info["model_rate"], RATE), RATE), 1),
            "max_diff_outside_gap": float(np.max(np.abs(y[~gap] - excerpt[~gap]))),
            "intact_fraction": info["intact_fraction"], "seconds_per_audio_second": info["seconds_per_audio_second"]}


def evaluation(root: str, work: str) -> list[dict]:
    """FD/KAD: even tracks against odd tracks, and against odd tracks low-passed at 4 kHz."""
    files = crops.audio_files(root)
    folders = {name: os.path.join(work, name) for name in ("even", "odd", "odd_lowpassed")}
    for f in folders.values():
        os.makedirs(f)
    sos = scipy.signal.butter(8, 4000, fs=RATE, output="sos")
    for i, rel in enumerate(files):
        x = io.read_audio(os.path.join(root, rel), sample_rate=RATE, channels=2)
        name = f"{i:02d}.wav"
        if i % 2 == 0:
            io.write_audio(os.path.join(folders["even"], name), x, sample_rate=RATE)
        else:
            io.write_audio(os.path.join(folders["odd"], name), x, sample_rate=RATE)
            io.write_audio(os.path.join(folders["odd_lowpassed"], name),
                           scipy.signal.sosfiltfilt(sos, x, axis=0).astype(np.float32), sample_rate=RATE)
    config = evaluate_config.get_config()
    config.embedders = "mel_stats,mfcc_stats"
    config.folder.sample_rate = 16000
    results = []
    for samples in ("odd", "odd_lowpassed"):
        r = evaluate_folders(folders[samples], folders["even"], config, out_dir=os.path.join(work, f"eval_{samples}"))
        keep = {k: round(float(v), 3) for k, v in r.items()
                if k.split("_")[0] in ("fd", "kad") and k.split("_")[1] in ("mel", "mfcc")}
        results.append({"question": "evaluation", "samples": samples, "reference": "even",
                        "num": r["num"], "reference_num": r["reference_num"], **keep})
    return results


def table(rows: list[dict], args) -> str:
    load = next(r for r in rows if r["question"] == "loading")
    rest = next(r for r in rows if r["question"] == "restoration")
    evals = [r for r in rows if r["question"] == "evaluation"]
    interval = lambda r, k: f"{r[k]:.2f} [{r[k + '_low']:.2f}, {r[k + '_high']:.2f}]"
    lines = [f"`python benchmarks/real_music.py --root {args.root}` on {machine()}: singularity-music "
             f"({load['files']} OGG tracks, 44.1 kHz stereo).", "",
             "| question | measured |", "|---|---|",
             f"| loading a batch of {load['batch']} one-second stereo crops at 44.1 kHz | "
             f"{load['seek_batch_s']:.3f} s from the OGG files, {load['cache_batch_s']:.4f} s from the cache "
             f"({load['speedup']:.0f}x; first build {load['cache_setup_s']:.0f} s) |",
             f"| filling a 0.2 s gap in {rest['seconds']:g} s of `{os.path.basename(rest['track'])}` with a "
             f"{rest['model_rate'] // 1000} kHz model | energy above 8 kHz {rest['input_above_8k_db']:.1f} dB of the "
             f"total in the input, {rest['output_above_8k_db']:.1f} dB in the output (a round trip through the "
             f"model's rate keeps {rest['model_rate_round_trip_above_8k_db']:.1f} dB); largest change outside the gap "
             f"{rest['max_diff_outside_gap']:.1g} |", "",
             "| samples vs reference (even tracks) | crops | FD mel | KAD mel | FD MFCC | KAD MFCC |",
             "|---|---:|---|---|---|---|"]
    for r in evals:
        lines.append(f"| {r['samples']} tracks | {r['num']} vs {r['reference_num']} | {interval(r, 'fd_mel')} | "
                     f"{interval(r, 'kad_mel')} | {interval(r, 'fd_mfcc')} | {interval(r, 'kad_mfcc')} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.join("workdirs", "real_audio", "singularity-music"))
    parser.add_argument("--workdir", default=None, help="a 16 kHz waveform model (default: train a smoke one)")
    parser.add_argument("--update_readme", action="store_true")
    args = parser.parse_args()
    if not os.path.isdir(args.root):
        sys.exit(f"{args.root} does not exist: fetch it with python experiments/fetch_real_audio.py "
                 "--out_dir workdirs/real_audio --packages singularity-music")
    work = tempfile.mkdtemp(prefix="diffjax_real_music_")
    try:
        rows = [loading(args.root, work)]
        print(json.dumps(rows[-1]), flush=True)
        rows.append(restoration(args.root, work, args.workdir or smoke_workdir(work)))
        print(json.dumps(rows[-1]), flush=True)
        for r in evaluation(args.root, work):
            rows.append(r)
            print(json.dumps(r), flush=True)
    finally:
        shutil.rmtree(work)  # the temporary folder this run created, nothing else
    text = table(rows, args)
    if args.update_readme:
        replace_block(README, "real-music-table", text)
    print(text)


if __name__ == "__main__":
    main()

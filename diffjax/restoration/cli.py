"""What experiments/restore.py does, as functions: restore one file, or evaluate on clean clips."""
from __future__ import annotations

import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.audio import io
from diffjax.restoration import evaluation
from diffjax.restoration.methods import METHODS
from diffjax.restoration.tasks import EVAL_TASKS, Model, degraded_view, eval_length, restore_audio, task_operator

log = logging.getLogger("diffjax")


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b) or (
            os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b))


def read_input(path: str, model: Model, stereo: str) -> tuple[np.ndarray, int]:
    """The input as a batch `[B, L, C]` at the model's rate; returns it and the file's rate.

    A sample-rate mismatch is resampled (logged by `io.read_audio`); a multi-channel file for a mono
    model is refused unless `stereo` is 'mixdown' or 'per_channel' (channels become the batch).
    NaN/inf samples are refused by `io.read_audio`.
    """
    info = io.audio_info(path)
    if info.sample_rate != model.sample_rate:
        log.info("%s is at %d Hz and the model at %d Hz: resampling the input, and the output back",
                 path, info.sample_rate, model.sample_rate)
    if info.channels != model.channels and model.channels == 1:
        if stereo == "refuse":
            raise ValueError(f"{path} has {info.channels} channels but the model is mono; pass "
                             "--stereo=mixdown to down-mix or --stereo=per_channel to restore each channel")
        x = io.read_audio(path, sample_rate=model.sample_rate, channels=None)
        if stereo == "mixdown":
            return x.mean(axis=1, keepdims=True)[None], info.sample_rate
        return np.transpose(x)[:, :, None], info.sample_rate  # [C, L, 1]
    if info.channels != model.channels:
        raise ValueError(f"{path} has {info.channels} channels; the model expects {model.channels}")
    return io.read_audio(path, sample_rate=model.sample_rate, channels=None)[None], info.sample_rate


def _to_file_layout(x: np.ndarray, stereo: str, model: Model) -> np.ndarray:
    """`[B, L, C]` back to `[L, C]` (per-channel batches become channels again)."""
    if x.shape[0] > 1 and stereo == "per_channel" and model.channels == 1:
        return np.transpose(x[:, :, 0])
    return x[0]


def _method_options(method: str, model: Model, options: dict) -> dict:
    options = dict(options)
    if method in ("pigdm", "ddnm"):
        options.setdefault("data_std", float(model.config.precond.get("sigma_data", 1.0)))
    return options


def run_file(model: Model, path: str, out: str, *, task: str, method: str, sampler: str, nfe: int,
             grid: str, seed: int, stereo: str, simulate: bool, overwrite: bool, params: dict,
             options: dict, chunks_per_call: int | None = None) -> dict:
    """Restores `path` into `out` (+ a spectrogram PNG); returns the run's info."""
    METHODS.get(method)  # fail early on an unknown name
    if _same_file(path, out):
        raise ValueError(f"--out {out} is the input file; choose another path (the input is never overwritten)")
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    x, file_rate = read_input(path, model, stereo)
    x = jnp.asarray(x)
    simulate = simulate or params.get("clip_sdr") is not None or params.get("snr") is not None
    if simulate:
        op = task_operator(task, model.sample_rate, reference=np.asarray(x), **params)
        y = op.measure(x, jax.random.PRNGKey(seed + 1))
        stem = os.path.splitext(out)[0]
        io.write_audio(stem + ".degraded.wav", np.clip(_to_file_layout(np.asarray(
                degraded_view(op, y, x.shape)), stereo, model), -1, 1), sample_rate=model.sample_rate,
                overwrite=True)
        log.info("simulated %s on %s; the degraded input is %s.degraded.wav", task, path, stem)
    else:
        op = task_operator(task, model.sample_rate, degraded=np.asarray(x), **params)
        if task == "upsample":
            raise ValueError("upsample restores a decimated signal: pass --simulate with a full-rate input")
        y = x
    restored, info = restore_audio(model, op, y, method=method, sampler=sampler, nfe=nfe, grid=grid,
                                   seed=seed, length=x.shape[1], chunks_per_call=chunks_per_call,
                                   **_method_options(method, model, options))
    result = io.resample(_to_file_layout(np.asarray(restored), stereo, model), model.sample_rate,
                         file_rate, name="output")
    io.write_audio(out, result, sample_rate=file_rate, overwrite=overwrite)
    png = os.path.splitext(out)[0] + ".png"
    evaluation.plot_spectrograms(png, np.asarray(degraded_view(op, y, x.shape))[0, :, 0],
                                 np.asarray(restored)[0, :, 0], model.sample_rate)
    info.update(out=out, png=png, task=task, method=method, sampler=sampler)
    log.info("wrote %s and %s (%s mode, NFE %d, %.2f s per second of audio)", out, png, info["mode"],
             info["nfe"], info["seconds_per_audio_second"])
    return info


def run_evaluation(model: Model, reference_dir: str, *, tasks, methods, sampler: str, nfe: int, seed: int,
                   max_clips: int, table: str, options: dict) -> list[dict]:
    """Degrades the clean clips of `reference_dir`, restores them, prints and writes the table."""
    tasks = list(tasks or EVAL_TASKS)
    clean = evaluation.load_references(reference_dir, model, max_clips=max_clips,
                                       length=max((eval_length(t, model) for t in tasks if t in EVAL_TASKS),
                                                  default=model.length))
    options = {m: _method_options(m, model, options.get(m, {})) for m in methods}
    rows = evaluation.evaluate(model, clean, tasks=tasks, methods=methods, sampler=sampler, nfe=nfe,
                               seed=seed, options=options)
    text = evaluation.markdown_table(rows)
    print(text)
    with open(table, "w") as f:
        f.write(f"Restoration of {clean.shape[0]} clips from {reference_dir} (model step {model.step}); "
                "'_in' = degraded input, '_out' = restored; SI-SDR/SNR in dB (higher is better), "
                "LSD and multi-resolution STFT distance (lower is better).\n\n" + text)
    with open(os.path.splitext(table)[0] + ".jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return rows

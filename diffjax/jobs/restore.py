"""The restoration job (experiments/restore.py, configs/restore.py): restore one file, or evaluate
restoration on clean clips. The only restoration code that reads a workdir or user files, and
every file it writes goes through `files.guarded_path` (never an input, never an existing file
without --overwrite).

    run(config, workdir="runs/waveform", input="clipped.wav", out="restored.wav")
    run(config, workdir="runs/waveform", reference_dir="clean/", table="results.md")
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import soundfile
import tqdm

from diffjax import sampling
from diffjax.audio import io, metrics
from diffjax.audio.plots import write_spectrograms
from diffjax.jobs import files, page
from diffjax.jobs import workdir as workdir_lib
from diffjax.model import DiffusionModel
from diffjax.registry import accepted_parameters
from diffjax.restoration import evaluation, fullband
from diffjax.restoration.methods import METHODS, method_options
from diffjax.restoration.operators import differentiable_codecs
from diffjax.restoration.tasks import (EVAL_TASKS, TASKS, check_restorable, context_length, degraded_view,
                                       eval_length, eval_task, needs_reference, restore_audio, task_operator)

log = logging.getLogger("diffjax")

STEREO_MODES = ("refuse", "mixdown", "per_channel")
HIGH_BANDS = ("auto", "input", "none")  # config.high_band: the band above a lower-rate model's
TASK_KEYS = ("name", "simulate", "snr", "noise_sigma")  # config.task keys beside the tasks' sub-sections
_TASK_CONTEXT = frozenset({"sample_rate", "noise_sigma", "reference", "degraded"})  # given by the job


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


def require_restorable_model(config, model: DiffusionModel) -> None:
    """Restoration operators act on audio `[L, C]`: the model must work on waveforms, or in a codec
    whose `decode` is differentiable (a latent model: the operator is applied to `decode(z)`, and the
    methods that need only its gradient work). The codec is asked, not its name."""
    if model.spec.is_audio and len(model.spec.shape) == 2 and model.codec.decode_is_differentiable:
        return
    codec = config.get("codec", {}).get("name", "waveform")
    why = ("its decode is not differentiable" if not model.codec.decode_is_differentiable
           else f"its data are not audio [L, C] but {model.spec.shape}")
    raise ValueError(f"restoration needs a waveform model, or one whose codec decodes differentiably to audio "
                     f"(codecs: {', '.join(differentiable_codecs())}), but this one works in the {codec!r} codec "
                     f"and {why}. Train one with configs/waveform.py: python experiments/train.py --config "
                     "configs/waveform.py --workdir runs/waveform (or a latent model with configs/latent.py)")


def load_restorable_model(workdir: str, *, step: Optional[int] = None, ema: int = 0) -> workdir_lib.Loaded:
    """The model of `workdir` and its weights; a model that cannot restore audio is refused before
    they load (`require_restorable_model`)."""
    return workdir_lib.load(workdir, step=step, ema=ema, check=require_restorable_model)


# --------------------------------------------------------------------------------------
# The config: task and method sections
# --------------------------------------------------------------------------------------


def _plain(section) -> dict:
    return dict(section.to_dict() if callable(getattr(section, "to_dict", None)) else section or {})


def task_params(section) -> tuple[str, dict]:
    """`config.task` -> (task name, its keys without None values, `snr` and `noise_sigma` included).

    A key outside `TASK_KEYS` and the tasks' sub-sections, or a key the chosen task does not take,
    is an error naming the keys it takes."""
    values = _plain(section)
    name = values.get("name")
    builder = TASKS.get(name)
    stray = sorted(k for k in values if k not in TASK_KEYS and k not in TASKS)
    own = _plain(values.get(name))
    takes = sorted(accepted_parameters(builder) - _TASK_CONTEXT)
    unknown = stray + sorted(set(own) - set(takes))
    if unknown:
        raise TypeError(f"restoration task {name!r} does not take {unknown}; it takes {takes} (config.task."
                        f"{name}.<key>) and config.task.{{{', '.join(k for k in TASK_KEYS if k != 'name')}}}")
    params = {k: v for k, v in own.items() if v is not None}
    params.update({k: values[k] for k in ("snr", "noise_sigma") if values.get(k) is not None})
    return name, params


def method_section(section, method: str) -> dict:
    """The options of `method` in `config.method` (its sub-section; None values dropped); a key
    `method` does not take is an error naming the keys it takes."""
    values = _plain(section)
    stray = sorted(k for k in values if k != "name" and k not in METHODS)
    if stray:
        raise TypeError(f"config.method has {stray}; it holds 'name' and one sub-section per method "
                        f"({', '.join(METHODS.names())})")
    return method_options(method, values.get(method))


def evaluation_names(text: str) -> list[str]:
    return [name.strip() for name in str(text or "").split(",") if name.strip()]


def check_config(config) -> None:
    """Validates every name and value of a restore config before anything is loaded: the sampler's
    NFE budget (`sampling.steps_for_nfe` names the nearest valid ones), the grid, the task's and the
    methods' keys, the stereo mode."""
    if config.stereo not in STEREO_MODES:
        raise ValueError(f"stereo={config.stereo!r}; valid: {', '.join(STEREO_MODES)}")
    if config.high_band not in HIGH_BANDS:
        raise ValueError(f"high_band={config.high_band!r}; valid: {', '.join(HIGH_BANDS)}")
    sampling.GRIDS.get(config.grid)
    for method in evaluation_names(config.evaluation.methods) or [config.method.name]:
        options = method_section(config.method, method)
        sampling.steps_for_nfe(config.sampler, int(config.nfe), **(options.get("sampler_options") or {}))
    task_params(config.task)
    for name in evaluation_names(config.evaluation.tasks):
        eval_task(name)


def model_options(config, method: str, model: DiffusionModel) -> dict:
    """The options of `method`, completed by its model-dependent defaults (PiGDM's `data_std`)."""
    return method_options(method, method_section(config.method, method), precond=model.precond)


# --------------------------------------------------------------------------------------
# Audio files
# --------------------------------------------------------------------------------------


def to_batch(x: np.ndarray, stereo: str, spec, path: str) -> np.ndarray:
    """The file's samples `[L, C]` as the model's batch `[B, L, C']`: as they are, down-mixed
    (`stereo='mixdown'`) or one channel per example (`'per_channel'`) for a mono model; any other
    channel mismatch is refused with the fix."""
    channels = int(spec.shape[1])
    if x.shape[1] != channels and channels == 1:
        if stereo == "refuse":
            raise ValueError(f"{path} has {x.shape[1]} channels but the model is mono; pass "
                             "--config.stereo=mixdown to down-mix or --config.stereo=per_channel to restore "
                             "each channel")
        if stereo == "mixdown":
            return x.mean(axis=1, keepdims=True)[None]
        return np.transpose(x)[:, :, None]  # [C, L, 1]
    if x.shape[1] != channels:
        raise ValueError(f"{path} has {x.shape[1]} channels; the model expects {channels}")
    return x[None]


def read_input(path: str, spec, stereo: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The input as a batch `[B, L, C]` at the model's rate, the same batch `[B, L_file, C]` at the
    file's own rate (the full band the output keeps, `fullband.compose`), and the file's rate.

    A sample-rate mismatch is resampled (logged); a multi-channel file for a mono model is refused
    unless `stereo` is 'mixdown' or 'per_channel' (`to_batch`). NaN/inf samples are refused by
    `io.read_audio`.
    """
    rate = int(spec.sample_rate)
    info = io.audio_info(path)
    if info.sample_rate != rate:
        log.info("%s is at %d Hz and the model at %d Hz: the model restores its band at %d Hz, and the "
                 "output is composed at %d Hz", path, info.sample_rate, rate, rate, info.sample_rate)
    at_file_rate = to_batch(io.read_audio(path, sample_rate=info.sample_rate, channels=None), stereo, spec, path)
    at_model_rate = np.stack([io.resample(b, info.sample_rate, rate, name=path) for b in at_file_rate])
    return at_model_rate, at_file_rate, info.sample_rate


def to_file_layout(x: np.ndarray, stereo: str, spec) -> np.ndarray:
    """`[B, L, C]` back to `[L, C]` (per-channel batches become channels again)."""
    if x.shape[0] > 1 and stereo == "per_channel" and int(spec.shape[1]) == 1:
        return np.transpose(x[:, :, 0])
    return x[0]


def to_rate(x: np.ndarray, sr_in: int, sr_out: int, length: int) -> np.ndarray:
    """A batch `[B, L, C]` resampled to `sr_out` and cut or edge-padded to `length` samples."""
    out = np.stack([io.resample(b, sr_in, sr_out, name="output") for b in np.asarray(x, np.float32)])
    out = out[:, :length]
    return np.pad(out, ((0, 0), (0, length - out.shape[1]), (0, 0)), mode="edge")


def output_subtype(input: str, out: str):
    """The input's sample format (soundfile subtype) where `out`'s format takes it, else None (the
    format's default): a 24-bit or float input is not written back at 16 bits."""
    subtype = soundfile.info(input).subtype
    return subtype if soundfile.check_format(os.path.splitext(out)[1][1:].upper(), subtype) else None


def output_paths(out: str, *, simulate: bool) -> dict[str, str]:
    """Every file `restore_file` writes: the output, its spectrogram PNG, the listening page
    (`index.html` beside the output) and, when simulating, the degraded input (`<out stem>.degraded.wav`)."""
    stem = os.path.splitext(out)[0]
    paths = {"out": out, "png": stem + ".png", "page": os.path.join(os.path.dirname(out), page.PAGE_NAME)}
    if simulate:
        paths["degraded"] = stem + ".degraded.wav"
    return paths


# --------------------------------------------------------------------------------------
# Restore one file
# --------------------------------------------------------------------------------------


def chunk_bar(desc: str, *, on_done=None):
    """A tqdm bar fed by `restore_audio`'s `progress(done, total)` (one step per chunk); `on_done()`
    runs when the last chunk is done."""
    bar = tqdm.tqdm(desc=desc, unit="chunk", leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            if on_done is not None:
                on_done()

    return update


def keeps_input_band(config, task: str) -> bool:
    """`config.high_band`: 'auto' (the task's `keeps_input_band`), 'input' or 'none'."""
    return TASKS.meta(task)["keeps_input_band"] if config.high_band == "auto" else config.high_band == "input"


def simulation_metrics(clean: np.ndarray, degraded: np.ndarray, restored: np.ndarray) -> dict:
    """SI-SDR (dB) and LSD of the degraded input and of the output against the clean input, at the
    file's rate (means over the batch)."""
    clean, before, after = (jnp.asarray(a, jnp.float32) for a in (clean, degraded, restored))
    values = {"si_sdr_in": metrics.si_sdr(clean, before), "si_sdr_out": metrics.si_sdr(clean, after),
              "lsd_in": metrics.lsd(clean, before), "lsd_out": metrics.lsd(clean, after)}
    return {k: round(float(jnp.mean(v)), 3) for k, v in values.items()}


def file_rate_view(task: str, params: dict, *, op, y, x_shape: tuple, x_file: np.ndarray, file_rate: int,
                   model_rate: int, simulate: bool, key) -> tuple[np.ndarray, np.ndarray]:
    """The degraded input at the file's rate `[B, L_file, C]` and its intact samples (`op.intact`);
    `op`, `y` and `x_shape` are the model's, at `model_rate`.

    Above the model's rate the task's operator is built again at the file's rate (gaps in seconds,
    the clipping threshold of the file's own samples) and, when simulating, degrades the clean file
    there, so the degraded input keeps the full band. Below it: the model's degraded view
    resampled, and nothing intact (the output is the resampled restoration)."""
    if file_rate == model_rate:
        return np.asarray(degraded_view(op, y, x_file.shape)), np.asarray(op.intact(np.asarray(y), x_file.shape))
    if file_rate < model_rate:
        view = np.asarray(degraded_view(op, y, x_shape))
        return to_rate(view, model_rate, file_rate, x_file.shape[1]), np.zeros(x_file.shape, bool)
    op_file = task_operator(task, file_rate, **({"reference": x_file} if simulate else {"degraded": x_file}), **params)
    y_file = op_file.measure(jnp.asarray(x_file), key) if simulate else x_file
    return (np.asarray(degraded_view(op_file, y_file, x_file.shape)),
            np.asarray(op_file.intact(np.asarray(y_file), x_file.shape)))


def restore_file_with(loaded, config, *, input: str, out: str, overwrite: bool = False,
                      command: Optional[str] = None) -> dict:
    """Restores the file `input` into `out` (+ a spectrogram PNG) with a loaded model (a waveform
    model, or a latent one: see `require_restorable_model`); returns the run's info. A method the
    operator cannot serve (for a latent model: one that needs a projection in its space) is refused
    before anything is written, naming the methods that work.

    The model restores at its rate; the output is composed at the file's (`fullband.compose`): the
    samples the degradation left intact are the input's, and above the model's band the input's
    band is kept where the task allows (`info['band']` says which). With `task.simulate` the clean
    input is degraded at both rates (the model's, to restore; the file's, to compose and to write
    `<out stem>.degraded.wav`), and `info['metrics']` holds SI-SDR and LSD before and after."""
    check_config(config)
    model = loaded.model
    require_restorable_model(loaded.config, model)
    task, params = task_params(config.task)
    method = config.method.name
    options = model_options(config, method, model)
    simulate = bool(config.task.simulate) or needs_reference(task, params)
    if TASKS.meta(task)["needs_simulation"] and not simulate:
        raise ValueError(f"{task} restores a signal it degrades itself: pass --config.task.simulate=True "
                         "with a clean input")
    paths = output_paths(out, simulate=simulate)
    files.guard_all(paths.values(), inputs=[input], overwrite=overwrite)  # before any work
    spec, sample_rate = model.spec, int(model.spec.sample_rate)
    x, x_file, file_rate = read_input(input, spec, config.stereo)
    op = task_operator(task, sample_rate, **({"reference": x} if simulate else {"degraded": x}), **params)
    check_restorable(model, op, method, options, x.shape[1])
    x = jnp.asarray(x)
    key = jax.random.PRNGKey(config.seed + 1)
    y = op.measure(x, key) if simulate else x
    degraded, intact = file_rate_view(task, params, op=op, y=y, x_shape=x.shape, x_file=x_file, file_rate=file_rate,
                                      model_rate=sample_rate, simulate=simulate, key=key)
    if simulate:
        io.write_audio(files.guarded_path(paths["degraded"], inputs=[input], overwrite=overwrite),
                       np.clip(to_file_layout(degraded, config.stereo, spec), -1, 1), sample_rate=file_rate,
                       overwrite=overwrite, subtype=output_subtype(input, paths["degraded"]))
        log.info("simulated %s on %s; the degraded input is %s", task, input, paths["degraded"])
    restored, info = restore_audio(model, loaded.model.denoiser(loaded.params), op, y, method=method,
                                   sampler=config.sampler, nfe=int(config.nfe), grid=config.grid, seed=config.seed,
                                   length=x.shape[1], overlap_seconds=config.overlap_seconds,
                                   chunks_per_call=config.chunks_per_call,
                                   progress=chunk_bar(f"restoring {os.path.basename(input)}"), **options)
    band = fullband.crossover(model_rate=sample_rate, sample_rate=file_rate)
    keep = keeps_input_band(config, task)
    restored_file = to_rate(np.asarray(restored), sample_rate, file_rate, x_file.shape[1])
    composed = np.stack([fullband.compose(r, d, m, sample_rate=file_rate, band=band, keep_input_band=keep)
                         for r, d, m in zip(restored_file, degraded, intact)])
    io.write_audio(files.guarded_path(out, inputs=[input], overwrite=overwrite),
                   to_file_layout(composed, config.stereo, spec), sample_rate=file_rate, overwrite=overwrite,
                   subtype=output_subtype(input, out))
    reference = [("clean", to_file_layout(x_file, config.stereo, spec))] if simulate else []
    write_spectrograms(files.guarded_path(paths["png"], inputs=[input], overwrite=overwrite),
                       [("degraded", to_file_layout(degraded, config.stereo, spec)),
                        ("restored", to_file_layout(composed, config.stereo, spec))] + reference, file_rate)
    info.update(out=out, png=paths["png"], task=task, method=method, sampler=config.sampler,
                sample_rate=file_rate, model_rate=sample_rate, intact_fraction=round(float(np.mean(intact)), 4),
                band=fullband.band_description(band, model_rate=sample_rate, sample_rate=file_rate,
                                               keep_input_band=keep))
    log.info("band: %s; %.1f %% of the samples kept as they were", info["band"], 100 * info["intact_fraction"])
    if simulate:
        info["metrics"] = simulation_metrics(x_file, degraded, composed)
        log.info("against the clean input at %d Hz: SI-SDR %.2f -> %.2f dB, LSD %.3f -> %.3f", file_rate,
                 info["metrics"]["si_sdr_in"], info["metrics"]["si_sdr_out"], info["metrics"]["lsd_in"],
                 info["metrics"]["lsd_out"])
    write_page(paths, info, simulate=simulate, command=command, overwrite=overwrite)
    log.info("wrote %s, %s and %s (%s mode, NFE %d, %.2f s per second of audio)", out, paths["png"], paths["page"],
             info["mode"], info["nfe"], info["seconds_per_audio_second"])
    return info


def write_page(paths: dict[str, str], info: dict, *, simulate: bool, command: Optional[str], overwrite: bool) -> str:
    """The listening page beside the output: the restored file (and the degraded one when simulated)
    with the before/after spectrogram, the run's settings and metrics, and the command."""
    folder = os.path.dirname(paths["page"]) or "."
    rel = lambda key: os.path.relpath(paths[key], folder)
    clips = [page.PageClip("restored", rel("out"), rel("png"), caption=info["band"])]
    if simulate:
        clips.append(page.PageClip("degraded (simulated)", rel("degraded")))
    rows = page.metric_rows({**{k: v for k, v in info.items() if k not in ("out", "png")}, **info.get("metrics", {})})
    return page.write_listening_page(folder, clips, title=f"restoration: {info['task']} with {info['method']}",
                                     metrics=rows, command=command, overwrite=overwrite)


# --------------------------------------------------------------------------------------
# Evaluate on clean clips
# --------------------------------------------------------------------------------------


def load_references(directory: str, spec, *, max_clips: int = 8, length: Optional[int] = None) -> np.ndarray:
    """Up to `max_clips` files of `directory`, at the model's rate and channels, cut/padded to
    `length` samples (default the model's context): `[B, L, C]`."""
    length = int(spec.shape[0]) if length is None else length
    names = sorted(f for f in os.listdir(directory) if f.lower().endswith(io.AUDIO_EXTENSIONS))
    if not names:
        raise FileNotFoundError(f"no {'/'.join(io.AUDIO_EXTENSIONS)} files in {directory}")
    clips = []
    for name in names[:max_clips]:
        x = io.read_audio(os.path.join(directory, name), sample_rate=int(spec.sample_rate),
                          channels=int(spec.shape[1]))[:length]
        clips.append(np.pad(x, ((0, length - x.shape[0]), (0, 0))))
    return np.stack(clips)


def table_paths(table: str) -> dict[str, str]:
    """The markdown table and its rows as JSON lines (`<table stem>.jsonl`)."""
    return {"table": table, "jsonl": os.path.splitext(table)[0] + ".jsonl"}


def evaluate_with(loaded, config, *, reference_dir: str, table: str, overwrite: bool = False) -> list[dict]:
    """Degrades the clean clips of `reference_dir` by each evaluation task, restores them with each
    method, prints the table and writes it (and its rows as JSON lines)."""
    check_config(config)
    model = loaded.model
    require_restorable_model(loaded.config, model)
    tasks = evaluation_names(config.evaluation.tasks) or list(EVAL_TASKS)
    methods = evaluation_names(config.evaluation.methods) or [config.method.name]
    paths = table_paths(table)
    files.guard_all(paths.values(), inputs=[reference_dir], overwrite=overwrite)
    length = max([eval_length(t, model) for t in tasks], default=context_length(model))
    clean = load_references(reference_dir, model.spec, max_clips=int(config.evaluation.max_clips), length=length)
    with tqdm.tqdm(total=len(tasks) * len(methods), desc=f"restoring {clean.shape[0]} clips", unit="row") as rows_bar:
        rows = evaluation.evaluate(model, model.denoiser(loaded.params), clean, tasks=tasks, methods=methods,
                                   sampler=config.sampler, nfe=int(config.nfe), seed=config.seed,
                                   options={m: model_options(config, m, model) for m in methods},
                                   progress=lambda label: chunk_bar(label, on_done=lambda: rows_bar.update(1)))
    text = evaluation.markdown_table(rows)
    print(text)
    with open(files.guarded_path(paths["table"], inputs=[reference_dir], overwrite=overwrite), "w") as f:
        f.write(f"Restoration of {clean.shape[0]} clips from {reference_dir} (model step {loaded.step}); "
                "'_in' = degraded input, '_out' = restored; SI-SDR/SNR in dB (higher is better), "
                "LSD and multi-resolution STFT distance (lower is better).\n\n" + text)
    with open(files.guarded_path(paths["jsonl"], inputs=[reference_dir], overwrite=overwrite), "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return rows


# --------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------


def run(config, *, workdir: str, input: Optional[str] = None, out: Optional[str] = None,
        reference_dir: Optional[str] = None, table: Optional[str] = None, overwrite: bool = False,
        step: Optional[int] = None, command: Optional[str] = None) -> Any:
    """experiments/restore.py: with `reference_dir` the evaluation table (default
    `<workdir>/restoration.md`), else restores `input` into `out`. The config is validated, and
    the outputs guarded, before the model loads."""
    check_config(config)
    if reference_dir:
        table = table or os.path.join(workdir, "restoration.md")
        files.guard_all(table_paths(table).values(), inputs=[reference_dir], overwrite=overwrite)
        loaded = load_restorable_model(workdir, step=step, ema=config.ema)
        return evaluate_with(loaded, config, reference_dir=reference_dir, table=table, overwrite=overwrite)
    if not input or not out:
        raise ValueError("--input and --out are required (or --reference_dir for the evaluation table)")
    files.guarded_path(out, inputs=[input], overwrite=overwrite)
    loaded = load_restorable_model(workdir, step=step, ema=config.ema)
    return restore_file_with(loaded, config, input=input, out=out, overwrite=overwrite, command=command)

"""The job behind experiments/sample.py: load a workdir, generate (unconditionally, under conditions, by
trained inpainting, or long-form by continuation), write wavs, spectrogram PNGs (one per clip and a
grid), a JSON and a listening page (`index.html`: a player and a spectrogram per clip, the settings
and the command). No output file is replaced unless `overwrite`.

Autoguidance (EDM2; `guidance.autoguidance`): `guide_workdir` (+ `guide_step`, `guide_ema`) is a
weaker model of the same data, loaded by the same `load`; `guidance` is the weight w. It replaces
classifier-free guidance: the config's default `cfg_scale` is not applied, and an explicit CFG
setting (`cfg_scale` other than 1, `cfg_scales`, `negative_prompt`) with a guide is an error.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Optional

import jax
import numpy as np

from diffjax.audio import io as audio_io
from diffjax.audio.plots import write_spectrograms
from diffjax.jobs import files
from diffjax.jobs.conditions import (inpaint_condition, parse_scales, read_clip, request_conditions,
                                     require, resolve_label)
from diffjax.jobs.generation import AutoGuide, generate, load_autoguide
from diffjax.jobs import phema as phema_job
from diffjax.jobs import sdedit as sdedit_job
from diffjax.jobs.longform import generate_long
from diffjax.jobs.page import PAGE_NAME, PageClip, spectrogram_name, write_clip_spectrograms, write_listening_page
from diffjax.jobs.workdir import load, write_json_atomically

log = logging.getLogger("diffjax")


@dataclasses.dataclass(frozen=True)
class SampleRequest:
    workdir: str
    sampler: Optional[str] = None
    grid: Optional[str] = None
    nfe: Optional[int] = None
    num: int = 8
    seed: int = 0
    batch: int = 0  # samples per call (0: all at once)
    label: Optional[str] = None  # class name or index
    cfg_scale: Optional[float] = None
    cfg_scales: Optional[str] = None  # per-condition scales, "text=4,notes=2"
    prompt: Optional[str] = None
    negative_prompt: Optional[str] = None
    notes: Optional[str] = None  # a MIDI file
    seconds: Optional[float] = None  # length of the output (timing condition; > window: long-form)
    init: Optional[str] = None  # SDEdit input (all of it: jobs/sdedit.py), or the clip to inpaint (with mask_start/mask_end)
    strength: float = 0.5  # SDEdit: start noise level / sigma_data (noise-to-signal ratio; 0.5: SNR 6 dB)
    mask_start: Optional[float] = None  # seconds: inpaint [mask_start, mask_end) of init
    mask_end: Optional[float] = None
    continue_from: Optional[str] = None  # a wav to continue, up to `seconds` in all
    overlap_seconds: Optional[float] = None  # long-form: audio shared by consecutive windows (None: a quarter window)
    ema_index: int = 0
    step: Optional[int] = None  # checkpoint step (default: the latest)
    sigma_rel: Optional[float] = None  # post-hoc EMA length (EDM2), reconstructed by reconstruct_ema.py
    guide_workdir: Optional[str] = None  # autoguidance: a weaker model of the same data (EDM2)
    guide_step: Optional[int] = None  # its checkpoint step (default: its latest)
    guide_ema: Optional[int] = None  # its EMA index (default: ema_index; -1: raw weights)
    guidance: Optional[float] = None  # autoguidance weight w (1: the main model alone)
    out: Optional[str] = None
    overwrite: bool = False  # replace existing outputs in `out`
    command: Optional[str] = None  # the command line, shown on the listening page


def _check_request(request: SampleRequest, window_seconds: float) -> None:
    if (request.mask_start is None) != (request.mask_end is None):
        raise ValueError("--mask_start and --mask_end go together (seconds of --init to regenerate)")
    if request.mask_start is not None and request.init is None:
        raise ValueError("--mask_start/--mask_end inpaint the clip given by --init; pass --init file.wav")
    if request.continue_from is not None and request.seconds is None:
        raise ValueError("--continue_from needs --seconds, the length of the whole piece")
    if request.seconds is not None and request.seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {request.seconds}")
    if request.init is not None and (request.seconds or 0) > window_seconds:
        raise ValueError(f"--init works on one window ({window_seconds:g} s); drop --seconds or use --continue_from")
    if request.guide_workdir is None:
        given = [f"--{k}" for k in ("guidance", "guide_step", "guide_ema") if getattr(request, k) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} without --guide_workdir: autoguidance needs the guiding model's "
                             "workdir (--guide_workdir W2)")
        return
    if request.guidance is None:
        raise ValueError("--guide_workdir without --guidance: give the autoguidance weight w (1: no guidance; "
                         "EDM2 uses about 2)")
    if (request.cfg_scale is not None and request.cfg_scale != 1.0) or request.cfg_scales or request.negative_prompt:
        raise ValueError("classifier-free guidance (--cfg other than 1, --cfg_scales or --negative_prompt) and "
                         "autoguidance (--guide_workdir) together: choose one (EDM2 uses autoguidance instead of CFG)")


def load_guide(request: SampleRequest, loaded) -> tuple[Optional[AutoGuide], Optional[dict]]:
    """The autoguidance guide of a request and its summary entry (None, None without `guide_workdir`)."""
    if request.guide_workdir is None:
        return None, None
    ema = request.ema_index if request.guide_ema is None else request.guide_ema
    guide, step = load_autoguide(loaded, request.workdir, request.guide_workdir, step=request.guide_step, ema=ema,
                                 weight=float(request.guidance))
    summary = {"workdir": request.guide_workdir, "checkpoint_step": step, "ema": ema, "weight": float(request.guidance)}
    return guide, summary


def _generate(request: SampleRequest, loaded, cond, negative, scale, seeds, sampler,
              autoguide: Optional[AutoGuide]) -> tuple[np.ndarray, int, int]:
    """`(audio [N, L, C], nfe, num_steps)` for one window per seed, in chunks of `request.batch`."""
    model, config = loaded.model, loaded.config
    batch = request.batch or request.num
    pieces = []
    for start in range(0, request.num, batch):
        rows = slice(start, start + batch)
        pieces.append(generate(
            model, loaded.params, sampling_config=config.sampling, seeds=seeds[rows], sampler=sampler,
            grid=request.grid, nfe=request.nfe, cond=None if cond is None else jax.tree.map(lambda a: a[rows], cond),
            cfg_scale=scale if cond is not None else None,
            negative=None if negative is None else jax.tree.map(lambda a: a[rows], negative),
            autoguide=autoguide))
    return np.concatenate([p.audio for p in pieces]), pieces[0].nfe, pieces[0].num_steps


def run_sample_request(request: SampleRequest) -> dict:
    """Generates `request.num` samples and writes them; returns the summary that is also saved."""
    if request.sigma_rel is not None and request.step is not None:
        raise ValueError("--sigma_rel loads a post-hoc EMA reconstructed at one step; drop --step")
    loaded = (load(request.workdir, step=request.step, ema=request.ema_index) if request.sigma_rel is None
              else phema_job.load_phema(request.workdir, request.sigma_rel))
    model, config = loaded.model, loaded.config
    window = model.spec.shape[0] / model.spec.sample_rate if model.spec.is_audio else None
    _check_request(request, window or 0.0)
    autoguide, guide_summary = load_guide(request, loaded)
    sampler = request.sampler or config.sampling.sampler
    long_form = request.continue_from is not None or (request.seconds or 0) > (window or 0)
    cond, negative = request_conditions(model, num=request.num, label=request.label, prompt=request.prompt,
                                        negative_prompt=request.negative_prompt, notes=request.notes,
                                        seconds=request.seconds, timing=not long_form)
    if request.mask_start is not None:
        require(model, "inpaint", "--mask_start/--mask_end")
        cond = {**(cond or {}), "inpaint": inpaint_condition(model, read_clip(request.init, model.spec),
                                                               request.mask_start, request.mask_end, request.num)}
    scale = parse_scales(request.cfg_scales, model) or (
        request.cfg_scale if request.cfg_scale is not None else config.sampling.get("cfg_scale"))
    if autoguide is not None:  # autoguidance replaces CFG (the config's default scale included)
        scale = None
    seeds = np.arange(request.seed, request.seed + request.num)
    if request.out is not None:  # refuse before the work; the default folder is known after it (its NFE)
        _guard_outputs(request, request.out, seeds, model.spec.is_audio)
    sdedit, edit_info = request.init is not None and request.mask_start is None, {}
    tic = time.time()
    if long_form:
        prefix = None if request.continue_from is None else np.repeat(
            read_clip(request.continue_from, model.spec)[None], request.num, axis=0)
        piece = generate_long(model, loaded.params, sampling_config=config.sampling, seeds=seeds.tolist(),
                              seconds=request.seconds, overlap_seconds=request.overlap_seconds or window / 4, cond=cond,
                              prefix=prefix, sampler=sampler, grid=request.grid, nfe=request.nfe,
                              cfg_scale=scale if cond else None, negative=negative, autoguide=autoguide)
        audio, nfe, num_steps = piece.audio, piece.nfe, None
    elif sdedit:  # the whole input, every channel (jobs/sdedit.py)
        audio, edit_info = sdedit_job.edit_file(request, loaded, sampler=sampler, seeds=seeds.tolist(), cond=cond,
                                                cfg_scale=scale, negative=negative, autoguide=autoguide)
        nfe, num_steps = edit_info.pop("nfe"), edit_info.pop("num_steps")
    else:
        audio, nfe, num_steps = _generate(request, loaded, cond, negative, scale, seeds, sampler, autoguide)
        if request.seconds is not None and model.spec.is_audio:
            audio = audio[:, :int(round(request.seconds * model.spec.sample_rate))]
    wall = time.time() - tic
    out_dir = (sdedit_job.output_dir(request, sampler, nfe) if sdedit
               else request.out or os.path.join(request.workdir, "samples", f"{sampler}_nfe{nfe}"))
    _guard_outputs(request, out_dir, seeds, model.spec.is_audio)
    os.makedirs(out_dir, exist_ok=True)
    summary = {"workdir": request.workdir, "checkpoint_step": int(loaded.step), "sigma_rel": request.sigma_rel,
               "sampler": sampler,
               "grid": request.grid or config.sampling.grid, "nfe": nfe, "num_steps": num_steps,
               "seeds": seeds.tolist(), "conditions": sorted(cond or {}),
               "cfg_scale": (scale if isinstance(scale, (int, float)) or scale is None else dict(scale)) if cond else None,
               "guide": guide_summary, "label": resolve_label(request.label, model.spec),
               **{k: getattr(request, k) for k in ("prompt", "negative_prompt", "notes", "seconds", "init",
                                                   "mask_start", "mask_end", "continue_from")},
               "strength": request.strength if request.init and request.mask_start is None else None,
               "wall_seconds": wall, **edit_info}
    if model.spec.is_audio:
        seconds = audio.shape[0] * audio.shape[1] / model.spec.sample_rate
        summary["real_time_factor"] = wall / seconds  # < 1: faster than real time
        clips = _write_audio(out_dir, audio, seeds, model.spec.sample_rate, overwrite=request.overwrite)
    else:
        np.save(os.path.join(out_dir, "samples.npy"), audio)
    write_json_atomically(os.path.join(out_dir, "samples.json"), summary)
    if model.spec.is_audio:
        write_listening_page(out_dir, clips, title=f"Samples from {request.workdir}", command=request.command,
                             metrics=[{"setting": k, "value": v} for k, v in summary.items() if v is not None],
                             overwrite=request.overwrite)
    log.info("wrote %d samples to %s", len(seeds), out_dir)
    return summary


def _wav_name(seed: int) -> str:
    return f"seed{seed:06d}.wav"


def _guard_outputs(request: SampleRequest, out_dir: str, seeds, is_audio: bool) -> None:
    """Refuses, before anything is written, an output that exists (unless `overwrite`) or is an input."""
    wavs = [_wav_name(s) for s in seeds]
    names = (wavs + [spectrogram_name(w) for w in wavs] + ["spectrograms.png", PAGE_NAME] if is_audio
             else ["samples.npy"]) + ["samples.json"]
    files.guard_all([os.path.join(out_dir, n) for n in names], overwrite=request.overwrite,
                    inputs=[request.init, request.continue_from, request.notes])


def _write_audio(out_dir: str, audio: np.ndarray, seeds, sample_rate: int, *, overwrite: bool) -> list[PageClip]:
    """Writes a wav and a spectrogram PNG per clip `[L, C]` and a grid of the first 16; returns the
    listening page's clips."""
    wavs = [_wav_name(s) for s in seeds]
    for name, wave in zip(wavs, audio):
        audio_io.write_audio(os.path.join(out_dir, name), np.clip(wave, -1, 1), sample_rate=sample_rate,
                             overwrite=overwrite)
    pngs = write_clip_spectrograms(out_dir, list(zip(wavs, audio)), sample_rate, overwrite=overwrite)
    write_spectrograms(os.path.join(out_dir, "spectrograms.png"),
                       [(f"seed {s}", wave) for s, wave in zip(seeds[:16], audio[:16])], sample_rate,
                       columns=min(4, len(seeds)))
    return [PageClip(f"seed {s}", wav, png) for s, wav, png in zip(seeds, wavs, pngs)]

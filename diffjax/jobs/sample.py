"""The job behind experiments/sample.py: load a workdir, generate, write wavs, a PNG and a JSON."""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Optional

import numpy as np

from diffjax.audio import io as audio_io
from diffjax.audio.plots import spectrogram_grid
from diffjax.jobs.generation import generate
from diffjax.jobs.workdir import load, write_json_atomically
from diffjax.model import DataSpec

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
    init: Optional[str] = None  # SDEdit input wav
    strength: float = 0.5
    ema_index: int = 0
    step: Optional[int] = None  # checkpoint step (default: the latest)
    out: Optional[str] = None


def resolve_label(label: Optional[str], spec: DataSpec) -> Optional[int]:
    """A class name or index -> index; an unknown name lists the valid ones."""
    if label is None:
        return None
    names = list(spec.class_names)
    if label.isdigit() and int(label) < max(len(names), spec.num_classes):
        return int(label)
    if label in names:
        return names.index(label)
    raise ValueError(f"unknown class {label!r}; valid classes: {', '.join(names)} (or their indices)")


def _read_init(path: str, spec: DataSpec, num: int) -> np.ndarray:
    length, channels = spec.shape
    audio = audio_io.read_audio(path, sample_rate=spec.sample_rate, channels=channels)
    if audio.shape[0] < length:
        audio = np.pad(audio, ((0, length - audio.shape[0]), (0, 0)))
    return np.broadcast_to(audio[:length], (num,) + audio[:length].shape)


def run_sample_request(request: SampleRequest) -> dict:
    """Generates `request.num` samples and writes them; returns the summary that is also saved."""
    loaded = load(request.workdir, step=request.step, ema=request.ema_index)
    model, config = loaded.model, loaded.config
    sampler = request.sampler or config.sampling.sampler
    label = resolve_label(request.label, model.spec)
    if label is not None and "label" not in model.conditioners:
        raise ValueError(f"--class {request.label!r} was given but the model in {request.workdir} has no label "
                         f"conditioner (its conditions: {sorted(model.conditioners) or 'none'})")
    cfg_scale = request.cfg_scale if request.cfg_scale is not None else config.sampling.get("cfg_scale")
    seeds = np.arange(request.seed, request.seed + request.num)
    init = None if request.init is None else _read_init(request.init, model.spec, request.num)
    batch = request.batch or request.num
    tic = time.time()
    pieces = []
    for start in range(0, request.num, batch):
        chunk = seeds[start:start + batch]
        cond = None if label is None else {"label": np.full(len(chunk), label, np.int32)}
        pieces.append(generate(
            model, loaded.params, sampling_config=config.sampling, seeds=chunk, sampler=sampler, grid=request.grid,
            nfe=request.nfe, cond=cond, cfg_scale=cfg_scale if label is not None else None,
            init=None if init is None else init[start:start + batch], strength=request.strength))
    wall = time.time() - tic
    audio = np.concatenate([p.audio for p in pieces])
    out_dir = request.out or os.path.join(request.workdir, "samples", f"{sampler}_nfe{pieces[0].nfe}")
    os.makedirs(out_dir, exist_ok=True)
    summary = {"workdir": request.workdir, "checkpoint_step": int(loaded.step), "sampler": sampler,
               "grid": request.grid or config.sampling.grid, "nfe": pieces[0].nfe,
               "num_steps": pieces[0].num_steps, "seeds": seeds.tolist(), "label": label,
               "cfg_scale": cfg_scale if label is not None else None, "init": request.init,
               "strength": request.strength if request.init else None, "wall_seconds": wall}
    if model.spec.is_audio:
        _write_audio(out_dir, audio, seeds, model.spec.sample_rate)
        seconds = audio.shape[0] * audio.shape[1] / model.spec.sample_rate
        summary["real_time_factor"] = wall / seconds  # < 1: faster than real time
    else:
        np.save(os.path.join(out_dir, "samples.npy"), audio)
    write_json_atomically(os.path.join(out_dir, "samples.json"), summary)
    log.info("wrote %d samples to %s", len(seeds), out_dir)
    return summary


def _write_audio(out_dir: str, audio: np.ndarray, seeds, sample_rate: int) -> None:
    for seed, wave in zip(seeds, audio):
        audio_io.write_audio(os.path.join(out_dir, f"seed{seed:06d}.wav"), np.clip(wave, -1, 1),
                             sample_rate=sample_rate, overwrite=True)
    spectrogram_grid(list(audio[:16]), sample_rate, os.path.join(out_dir, "spectrograms.png"),
                     titles=[f"seed {s}" for s in seeds[:16]])

"""The job behind experiments/sample.py: load a workdir, generate, write wavs, a PNG and a JSON."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Optional

import numpy as np

from diffjax import factory, generation
from diffjax.training import checkpoint

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
    out: Optional[str] = None


def resolve_label(label: Optional[str], dataset) -> Optional[int]:
    """A class name or index -> index; an unknown name lists the valid ones."""
    if label is None:
        return None
    names = list(getattr(dataset, "class_names", []) or [])
    if label.isdigit() and int(label) < max(len(names), getattr(dataset, "num_classes", 0)):
        return int(label)
    if label in names:
        return names.index(label)
    raise ValueError(f"unknown class {label!r}; valid classes: {', '.join(names)} (or their indices)")


def _read_init(path: str, dataset, num: int) -> np.ndarray:
    from diffjax.audio import io as audio_io

    audio = audio_io.read_audio(path, sample_rate=dataset.sample_rate, channels=dataset.channels)
    if audio.shape[0] < dataset.length:
        audio = np.pad(audio, ((0, dataset.length - audio.shape[0]), (0, 0)))
    return np.broadcast_to(audio[: dataset.length], (num,) + audio[: dataset.length].shape)


def run_sample_request(request: SampleRequest) -> dict:
    """Generates `request.num` samples and writes them; returns the summary that is also saved."""
    config, params, step = checkpoint.load_for_sampling(request.workdir, ema_index=request.ema_index)
    dataset = factory.build_dataset(config)
    sampler = request.sampler or config.sampling.sampler
    label = resolve_label(request.label, dataset)
    cfg_scale = request.cfg_scale if request.cfg_scale is not None else config.sampling.get("cfg_scale")
    seeds = np.arange(request.seed, request.seed + request.num)
    init = None if request.init is None else _read_init(request.init, dataset, request.num)
    batch = request.batch or request.num
    tic = time.time()
    pieces = []
    for start in range(0, request.num, batch):
        chunk = seeds[start:start + batch]
        labels = None if label is None else np.full(len(chunk), label)
        pieces.append(generation.generate(
            config, params, seeds=chunk, sampler=sampler, grid=request.grid, nfe=request.nfe, labels=labels,
            cfg_scale=cfg_scale if label is not None else None,
            init=None if init is None else init[start:start + batch], strength=request.strength,
            dataset=dataset))
    wall = time.time() - tic
    audio = np.concatenate([p.audio for p in pieces])
    out_dir = request.out or os.path.join(request.workdir, "samples", f"{sampler}_nfe{pieces[0].nfe}")
    os.makedirs(out_dir, exist_ok=True)
    summary = {"workdir": request.workdir, "checkpoint_step": int(step), "sampler": sampler,
               "grid": request.grid or config.sampling.grid, "nfe": pieces[0].nfe,
               "num_steps": pieces[0].num_steps, "seeds": seeds.tolist(), "label": label,
               "cfg_scale": cfg_scale if label is not None else None, "init": request.init,
               "strength": request.strength if request.init else None, "wall_seconds": wall}
    if generation.is_audio(config):
        _write_audio(out_dir, audio, seeds, dataset.sample_rate)
        seconds = audio.shape[0] * audio.shape[1] / dataset.sample_rate
        summary["real_time_factor"] = wall / seconds  # < 1: faster than real time
    else:
        np.save(os.path.join(out_dir, "samples.npy"), audio)
    with open(os.path.join(out_dir, "samples.json"), "w") as f:
        json.dump(summary, f, indent=2)
    log.info("wrote %d samples to %s", len(seeds), out_dir)
    return summary


def _write_audio(out_dir: str, audio: np.ndarray, seeds, sample_rate: int) -> None:
    from diffjax.audio import io as audio_io
    from diffjax.audio.plots import spectrogram_grid

    for seed, wave in zip(seeds, audio):
        audio_io.write_audio(os.path.join(out_dir, f"seed{seed:06d}.wav"), np.clip(wave, -1, 1),
                             sample_rate=sample_rate, overwrite=True)
    spectrogram_grid(list(audio[:16]), sample_rate, os.path.join(out_dir, "spectrograms.png"),
                     titles=[f"seed {s}" for s in seeds[:16]])

"""The audio autoencoder's job pieces: its objective from the config, periodic reconstructions in
TensorBoard, and the held-out evaluation written to `eval.json` (SI-SDR, multi-resolution STFT
distance, log-mel L1, LSD, pitch confidence; `diffjax.autoencoder.metrics`)."""
from __future__ import annotations

import functools
import os

import jax
import numpy as np

from diffjax.audio import io as audio_io
from diffjax.audio.plots import spectrogram_grid
from diffjax.autoencoder import metrics, objective
from diffjax.jobs.workdir import write_json_atomically
from diffjax.model import AutoencoderModel


def build_objective(config, model: AutoencoderModel) -> objective.ReconstructionObjective:
    return objective.build_objective(model.network, config.reconstruction)


@functools.lru_cache(maxsize=4)
def _reconstructor(model: AutoencoderModel):
    return jax.jit(lambda params, audio: model.decode(params, model.encode(params, audio), audio.shape[1]))


def reconstruct(model: AutoencoderModel, params, audio: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """audio [N, L, C] -> the posterior-mean reconstruction [N, L, C], in batches."""
    fn = _reconstructor(model)
    return np.concatenate([np.asarray(fn(params, audio[i:i + batch_size])) for i in range(0, len(audio), batch_size)])


def held_out_clips(dataset, num: int) -> np.ndarray:
    """`num` clips of the evaluation split [num, L, C] (the same for every run)."""
    return np.asarray(dataset.eval.batch(0, num, seed=0)["x"], np.float32)


def log_reconstructions(model: AutoencoderModel, params, dataset, writer, step: int, num: int = 4) -> None:
    """Held-out clips and their reconstructions (audio and spectrograms) in TensorBoard."""
    if not writer.enabled:
        return
    real = held_out_clips(dataset, num)
    recon = reconstruct(model, params, real)
    rate = model.spec.sample_rate
    for i, wave in enumerate(recon):
        writer.audio(step, f"reconstructions/{i}", wave, rate)
    writer.image(step, "reconstructions/spectrograms", spectrogram_grid(list(real) + list(recon), rate))
    writer.flush()


def evaluate(config, model: AutoencoderModel, params, dataset, workdir: str, step: int = 0) -> dict:
    """Reconstruction metrics on `evaluation.num_samples` held-out clips; wavs and a spectrogram
    grid (data above, reconstructions below) in the workdir; `eval.json`."""
    num = int(config.evaluation.num_samples)
    if jax.process_index() != 0 or num <= 0:
        return {}
    real = held_out_clips(dataset, num)
    recon = reconstruct(model, params, real)
    rate = model.spec.sample_rate
    results = {k: float(v) for k, v in metrics.reconstruction_report(real, recon, rate).items()}
    results.update(num_clips=num, step=step, hop=model.hop)
    out_dir = os.path.join(workdir, "reconstructions")
    os.makedirs(out_dir, exist_ok=True)
    for i, wave in enumerate(recon[:4]):
        audio_io.write_audio(os.path.join(out_dir, f"step{step}_clip{i}.wav"), np.clip(wave, -1, 1),
                             sample_rate=rate, overwrite=True)
    shown = min(num, 4)
    spectrogram_grid(list(real[:shown]) + list(recon[:shown]), rate, os.path.join(workdir, "reconstructions.png"),
                     titles=[f"data {i}" for i in range(shown)] + [f"reconstruction {i}" for i in range(shown)])
    write_json_atomically(os.path.join(workdir, "eval.json"), results)
    return results

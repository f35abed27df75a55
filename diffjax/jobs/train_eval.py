"""Evaluation during and after training: samples from the EMA model, measured against the data."""
from __future__ import annotations

import os

import jax
import matplotlib
import numpy as np
import tqdm

from diffjax import toy
from diffjax.audio import io as audio_io
from diffjax.audio.plots import spectrogram_grid, write_spectrograms
from diffjax.evaluation import embed_all, frechet_distance_features, get_embedder
from diffjax.evaluation.musicality import pitch_confidence, spectral_flatness
from diffjax.jobs.generation import generate
from diffjax.jobs.workdir import write_json_atomically

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _plot_toy(path: str, real: np.ndarray, generated: np.ndarray) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    for ax, points, title in zip(axes, (real, generated), ("data", "samples")):
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
        ax.set_title(title)
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def evaluate_closed_form(config, model, params, mixture, workdir: str) -> dict:
    """Toy data with a known density: energy distance to fresh data and mode statistics; a scatter plot."""
    num = config.evaluation.num_samples
    seeds = np.arange(num) + 1_000_000 * (config.seed + 1)
    generated = generate(model, params, sampling_config=config.sampling, seeds=seeds).audio
    real = np.asarray(mixture.sample(jax.random.PRNGKey(config.seed + 2), num))
    results = {"energy_distance": float(toy.energy_distance(generated, real)),
               **toy.mode_statistics(generated, mixture)}
    if mixture.dim == 2:
        _plot_toy(os.path.join(workdir, "samples.png"), real, generated)
    np.save(os.path.join(workdir, "samples.npy"), generated)
    return results


def distinct_examples(dataset, num: int, *, seed: int = 0, pool: int = 4) -> np.ndarray:
    """`num` crops `[num, L, C]` from as many distinct items (files, clips) as the data hold.

    The eval split first, then the training split (a small folder's eval split may be one file);
    `pool * num` crops are drawn from each, items are told apart by `batch["index"]`, and second
    crops of an item fill in only when there are fewer than `num` items.
    """
    chosen, spare = [], []
    for name, split in (("eval", dataset.eval), ("train", dataset)):
        batch = split.batch(0, num * pool, seed=seed)
        index = batch.get("index", np.arange(len(batch["x"])))
        seen = set()
        for i, x in zip(np.asarray(index).tolist(), np.asarray(batch["x"])):
            (spare if (name, i) in seen else chosen).append(x)
            seen.add((name, i))
        if len(chosen) >= num:
            break
    return np.stack((chosen + spare)[:num])


def evaluate_audio(config, model, params, dataset, workdir: str, step: int = 0) -> dict:
    """Writes generated wavs and a spectrogram grid (real vs generated) and measures the samples,
    with a progress bar over its stages (pYIN on long clips takes minutes)."""
    num, rate = config.evaluation.num_samples, model.spec.sample_rate
    bar = tqdm.tqdm(total=8, desc="evaluation", disable=not config.training.get("progress_bar", True))

    def stage(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    bar.set_postfix_str(f"generating {num} samples")
    out = generate(model, params, sampling_config=config.sampling, seeds=np.arange(num))
    stage("writing samples")
    real = np.asarray(dataset.eval.batch(0, num, seed=0)["x"])
    noise = np.random.default_rng(0).normal(scale=real.std(), size=real.shape)
    sample_dir = os.path.join(workdir, "samples")
    os.makedirs(sample_dir, exist_ok=True)
    for i, wave in enumerate(out.audio):
        audio_io.write_audio(os.path.join(sample_dir, f"step{step}_seed{i}.wav"), np.clip(wave, -1, 1),
                             sample_rate=rate, overwrite=True)
    stage("spectrograms")
    shown = min(num, 4)  # a row of data from distinct files above a row of samples
    shown_data = distinct_examples(dataset, shown)
    write_spectrograms(os.path.join(workdir, "spectrograms.png"),
                       [(f"data {i}", x) for i, x in enumerate(shown_data)]
                       + [(f"sample {i}", x) for i, x in enumerate(out.audio[:shown])], rate, columns=shown)
    sets = {"samples": out.audio, "data": real, "noise": noise}
    stage("spectral flatness")
    results = {"spectral_flatness": {k: spectral_flatness(v) for k, v in sets.items()},
               "pitch_confidence": {}, "nfe": out.nfe, "num_samples": num}
    for k, v in sets.items():
        stage(f"pitch confidence ({k})")
        results["pitch_confidence"][k] = pitch_confidence(v, rate)
    # Fréchet distance between Gaussian fits of mel statistics (128-D; with few clips a rough,
    # relative number: samples against noise, both to the same data).
    stage("mel FD")
    embedder = get_embedder("mel_stats", sample_rate=rate)
    reference = embed_all(embedder, real)["embedding"]
    results["fd_mel"] = {k: frechet_distance_features(embed_all(embedder, sets[k])["embedding"], reference)
                         for k in ("samples", "noise")}
    stage("done")
    bar.close()
    return results


def log_samples(config, model, params, writer, step: int, num: int = 4) -> None:
    """Periodic samples during training: audio clips and a spectrogram grid in TensorBoard."""
    if not model.spec.is_audio or not writer.enabled:
        return
    out = generate(model, params, sampling_config=config.sampling, seeds=np.arange(num))
    for i, wave in enumerate(out.audio):
        writer.audio(step, f"samples/{i}", wave, model.spec.sample_rate)
    writer.image(step, "samples/spectrograms", spectrogram_grid(list(out.audio), model.spec.sample_rate))
    writer.flush()


def evaluate(config, model, params, dataset, workdir: str, step: int = 0) -> dict:
    """Closed-form data are measured against their density, audio by its statistics; only process 0
    evaluates; `evaluation.num_samples = 0` skips it."""
    if jax.process_index() != 0 or config.evaluation.num_samples <= 0:
        return {}
    mixture = dataset.closed_form
    if mixture is not None:
        results = evaluate_closed_form(config, model, params, mixture, workdir)
    else:
        results = evaluate_audio(config, model, params, dataset, workdir, step)
    write_json_atomically(os.path.join(workdir, "eval.json"), results)
    return results

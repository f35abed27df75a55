"""End-of-training evaluation: samples from the EMA model and measures them against the data."""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import sampling, toy


def sample_from_config(config, denoiser, process, shape, *, seed: int) -> jax.Array:
    """Draws samples `shape` with `config.sampling` (sampler, grid, num_steps) over the process range."""
    sigma_min, sigma_max = process.sigma_range()
    sigmas = sampling.get_grid(config.sampling.grid)(config.sampling.num_steps, sigma_min, sigma_max)
    key_init, key_sample = jax.random.split(jax.random.PRNGKey(seed))
    x_init = sigmas[0] * jax.random.normal(key_init, shape)
    sample = sampling.get_sampler(config.sampling.sampler)
    return jax.jit(lambda x, k: sample(denoiser, x, sigmas, key=k))(x_init, key_sample)


def _plot_toy(path: str, real: np.ndarray, generated: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    for ax, points, title in zip(axes, (real, generated), ("data", "samples")):
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
        ax.set_title(title)
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def evaluate_toy(config, mixture: toy.GaussianMixture, denoiser, process, workdir: str) -> dict:
    """Energy distance to fresh data and mode recovery statistics; writes a scatter plot."""
    num = config.evaluation.num_samples
    generated = sample_from_config(config, denoiser, process, (num, mixture.dim), seed=config.seed + 1)
    real = mixture.sample(jax.random.PRNGKey(config.seed + 2), num)
    results = {"energy_distance": float(toy.energy_distance(generated, real)),
               **toy.mode_statistics(generated, mixture)}
    if mixture.dim == 2:
        _plot_toy(os.path.join(workdir, "samples.png"), np.asarray(real), np.asarray(generated))
    np.save(os.path.join(workdir, "samples.npy"), np.asarray(generated))
    with open(os.path.join(workdir, "eval.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def evaluate(config, dataset, denoiser, process, workdir: str) -> dict:
    """Dispatches on the dataset kind."""
    if isinstance(dataset, toy.GaussianMixture):
        return evaluate_toy(config, dataset, denoiser, process, workdir)
    return {}

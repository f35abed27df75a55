"""SDEdit on real clips (Meng et al. 2022): the whole input, every channel, noised and denoised.

    python experiments/sample.py --workdir runs/waveform --init song.wav --strength 0.5 --num 4

Strength is relative to the data: the input `y` (in the model's space) starts at

    x(sigma_0) = y + sigma_0 z,   sigma_0 = strength * sigma_data,   z ~ N(0, I),

so `strength` is the noise-to-signal ratio of the start (its SNR is -20 log10(strength) dB:
0.25 -> 12 dB, 0.5 -> 6 dB, 1 -> 0 dB, 2 -> -6 dB); `sigma_max / sigma_data` samples from scratch.
On configs/waveform.py after 600 steps (benchmarks/sdedit.py, 8 clips, Heun, 25 levels) the edits'
SI-SDR to their input is 16.9 / 12.1 / 7.1 / 1.8 dB at strengths 0.25 / 0.5 / 1 / 2; the former
strength (the last half of the grid) gave -16.3 dB to the input and +7.0 dB to the seed's
unconditional sample.
`sigma_data` is the model's (`precond.sigma_data`). The sampler then spends its whole budget
(`--nfe`, or the config's levels) on the grid from sigma_0 down to 0 (`sdedit_grid`).

For N(0, sigma_data^2) data and the probability-flow ODE the edit is exact in closed form (tested):
`x(0) = (y + sigma_0 z) / sqrt(1 + strength^2)`, so the output's correlation with the input is
`1 / sqrt(1 + strength^2)` per coordinate and its marginal stays N(0, sigma_data^2).

The whole input is edited, not the model's context: it is read at the model's rate with all its
channels (a mono model edits each channel of a stereo file as its own example, a stereo model a
mono file on both channels), encoded by the codec, and an input longer than the context is
denoised by overlapping windows blended by a partition of unity (`longform.windowed_denoiser`,
the machinery restoration uses), in one sampler run over the whole signal. The sample job writes
the outputs to `--out` (default `<workdir>/samples/sdedit_<input stem>_s<strength>_<sampler>_nfe<N>/`,
`output_dir`), guarded like every sample: an existing file is never replaced without --overwrite,
an input never.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import guidance, restoration, sampling
from diffjax.audio import io as audio_io
from diffjax.jobs.generation import guided_denoiser, resolve_steps
from diffjax.restoration.longform import chunk_starts, windowed_denoiser
from diffjax.sampling.loop import INITIAL_NOISE_STREAM, example_normal

log = logging.getLogger("diffjax")
OVERLAP = 0.25  # fraction of the context shared by consecutive windows


def sdedit_sigma(strength: float, sigma_data: float, sigma_range: tuple[float, float]) -> float:
    """The starting level `sigma_0 = strength * sigma_data`, which must lie in the process's range
    `(sigma_min, sigma_max]`; out of range is an error naming the valid strengths."""
    low, high = (float(s) for s in sigma_range)
    sigma = float(strength) * float(sigma_data)
    if not low < sigma <= high:
        raise ValueError(f"SDEdit strength {strength:g} starts at sigma {sigma:g} = strength * sigma_data ({sigma_data:g}), "
                         f"outside the model's noise range ({low:g}, {high:g}]; valid strengths: "
                         f"({low / sigma_data:.3g}, {high / sigma_data:.4g}] (the top one samples from scratch)")
    return sigma


def sdedit_grid(process, grid: str, num_steps: int, sigma_start: float, grid_options: Optional[Mapping] = None):
    """The registered grid `grid` of `num_steps` positive levels from `sigma_start` down to the
    process's sigma_min, then 0: the whole budget is spent below the start."""
    options = {k: v for k, v in dict(grid_options or {}).items() if k != "sigma_max"}
    return sampling.grid_for_process(process, grid, int(num_steps), sigma_max=float(sigma_start), **options)


def sdedit_audio(denoiser, audio, keys, *, codec, process, context: int, sigma_start: float, sampler: str,
                 num_steps: int, grid: str = "karras", grid_options: Optional[Mapping] = None,
                 sampler_options: Optional[Mapping] = None, overlap: float = OVERLAP) -> tuple[np.ndarray, dict]:
    """SDEdit of whole waveforms: `audio [B, L, C]` -> edited `[B, L, C]`, and an info dict.

    Args:
      denoiser: `D(x, sigma)` in the model's space for one context (`model.denoiser(params)`).
      audio: waveforms at the model's rate and channels, any length (shorter than the context:
        zero-padded to it, and cut back).
      keys: `[B]` per-example keys (`sampling.seed_keys`): the start noise is
        `sampling.example_normal(keys, INITIAL_NOISE_STREAM, 0, ...)`, as for `generate`.
      codec, process: the model's; `context`: its window in samples (`model.spec.shape[0]`).
      sigma_start: the first level (`sdedit_sigma`).
      sampler, num_steps, grid, grid_options, sampler_options: the sampler and its grid from
        `sigma_start` (`sdedit_grid`).
      overlap: the fraction of a window that consecutive windows share.
    """
    audio = jnp.asarray(audio, jnp.float32)
    batch, length, channels = audio.shape
    padded = jnp.pad(audio, ((0, 0), (0, max(context - length, 0)), (0, 0)))
    guide = codec.encode(padded)  # [B, T, ...]
    frames, window = guide.shape[1], codec.latent_shape(context, channels)[0]
    shared = min(max(int(round(overlap * window)), 1), window - 1) if frames > window else 0
    edit_denoiser = windowed_denoiser(denoiser, length=frames, chunk_length=window, overlap=shared)
    sigmas = sdedit_grid(process, grid, num_steps, sigma_start, grid_options)
    x_init = sigma_start * example_normal(keys, INITIAL_NOISE_STREAM, 0, tuple(guide.shape[1:]), guide.dtype)
    method = restoration.get_method("sdedit")  # strength 1 of this grid: start at its first level
    run = jax.jit(lambda g, x, k: method(edit_denoiser, restoration.get_operator("identity"), g, x, sigmas, key=k,
                                         sampler=sampler, sampler_options=dict(sampler_options or {}), strength=1.0,
                                         guide=g))
    latent = run(guide, x_init, keys)
    edited = np.asarray(codec.decode(latent, padded.shape[1]))[:, :length]
    info = {"sigma_start": float(sigma_start), "num_steps": int(num_steps),
            "nfe": sampling.nfe(sampler, int(num_steps), **dict(sampler_options or {})),
            "windows": len(chunk_starts(frames, window, shared)) if frames > window else 1}
    return edited, info


# --------------------------------------------------------------------------------------
# The input file and the job
# --------------------------------------------------------------------------------------


def channel_groups(audio: np.ndarray, model_channels: int, path: str) -> np.ndarray:
    """A file's `[L, C_file]` -> examples `[G, L, C_model]`: the file itself when the channels
    match, each channel for a mono model, the mono channel twice for a stereo model."""
    file_channels = audio.shape[1]
    if file_channels == model_channels:
        return audio[None]
    if model_channels == 1:
        return np.transpose(audio)[:, :, None]
    if file_channels == 1:
        return np.repeat(audio, model_channels, axis=1)[None]
    raise ValueError(f"{path} has {file_channels} channels and the model {model_channels}; give a mono file or one "
                     f"with {model_channels} channels")


def from_groups(edited: np.ndarray, groups: int, model_channels: int) -> np.ndarray:
    """`[G, L, C_model]` back to one file `[L, C]` (each channel of a mono model side by side)."""
    if groups > 1 and model_channels == 1:
        return np.transpose(edited[:, :, 0])
    return edited[0]


def output_dir(request, sampler: str, nfe: int) -> str:
    """`request.out`, or `<workdir>/samples/sdedit_<input stem>_s<strength>_<sampler>_nfe<N>`."""
    stem = os.path.splitext(os.path.basename(request.init))[0]
    return request.out or os.path.join(request.workdir, "samples",
                                       f"sdedit_{stem}_s{request.strength:g}_{sampler}_nfe{nfe}")


def _rows(tree: Optional[Mapping], rows: slice, count: int):
    """Examples `rows` of a condition pytree with leading `[N]`, each repeated `count` times."""
    if tree is None:
        return None
    return jax.tree.map(lambda a: jnp.repeat(jnp.asarray(a)[rows], count, axis=0), tree)


def edit_file(request, loaded, *, sampler: str, seeds, cond: Optional[Mapping] = None, cfg_scale: Any = None,
              negative: Optional[Mapping] = None, autoguide=None) -> tuple[np.ndarray, dict]:
    """SDEdit of the whole file `request.init` at `request.strength`, one output per seed:
    `(audio [N, L, C] at the model's rate, info)`. Seeds go `request.batch` at a time (0: all in one
    compiled call), each as `G` examples (`channel_groups`). `cond`/`negative` (leading axis N)
    bind conditions; with an input longer than the model's window they are refused (the windows
    are batched)."""
    model, config = loaded.model, loaded.config
    spec, rate = model.spec, int(model.spec.sample_rate)
    sigma_start = sdedit_sigma(request.strength, model.precond.sigma_data, model.process.sigma_range())
    steps = resolve_steps(sampler, request.nfe, None, config.sampling.num_steps)
    grid = request.grid or config.sampling.grid
    grid_options = config.sampling.get("grid_options") if grid == config.sampling.grid else None
    info = audio_io.audio_info(request.init)
    if info.sample_rate != rate:
        log.info("%s is at %d Hz and the model at %d Hz: editing at %d Hz", request.init, info.sample_rate, rate, rate)
    groups = channel_groups(audio_io.read_audio(request.init, sample_rate=rate, channels=None), spec.shape[1],
                            request.init)
    context, count, seeds = int(spec.shape[0]), len(groups), [int(s) for s in seeds]
    if cond is not None and groups.shape[1] > context:
        raise ValueError(f"SDEdit with conditions works on inputs up to the model's window ({context / rate:g} s); "
                         f"{request.init} is {groups.shape[1] / rate:g} s. Drop the condition flags or cut the input")
    batch = request.batch or len(seeds)
    outputs, run_info = [], {}
    for start in range(0, len(seeds), batch):
        rows = slice(start, start + batch)
        row_cond = _rows(cond, rows, count)
        if autoguide is not None:
            denoiser = guidance.autoguidance(model.conditional_denoiser(loaded.params), row_cond,
                                             guide=autoguide.model.conditional_denoiser(autoguide.params),
                                             weight=autoguide.weight)
        else:
            denoiser = guided_denoiser(model, loaded.params, row_cond, cfg_scale if row_cond is not None else None,
                                       _rows(negative, rows, count))
        # example (seed s, group g) is row s * G + g, with the key fold_in(PRNGKey(s), g)
        keys = jax.vmap(lambda k: jax.vmap(lambda g: jax.random.fold_in(k, g))(jnp.arange(count, dtype=jnp.uint32)))(
                sampling.seed_keys(np.asarray(seeds[rows])))
        edited, run_info = sdedit_audio(denoiser, np.tile(groups, (len(seeds[rows]), 1, 1)),
                                        keys.reshape((-1,) + keys.shape[2:]), codec=model.codec,
                                        process=model.process, context=context, sigma_start=sigma_start,
                                        sampler=sampler, num_steps=steps, grid=grid, grid_options=grid_options)
        edited = edited.reshape((-1, count) + edited.shape[1:])
        outputs += [from_groups(e, count, spec.shape[1]) for e in edited]
    log.info("SDEdit of %s (%.2f s, %d channel(s), %d window(s)) at strength %g (sigma %.3g = strength x sigma_data %g)",
             request.init, groups.shape[1] / rate, info.channels, run_info["windows"], request.strength, sigma_start,
             model.precond.sigma_data)
    summary = {"mode": "sdedit", "sigma_start": sigma_start, "sigma_data": float(model.precond.sigma_data),
               "windows": run_info["windows"], "input_seconds": groups.shape[1] / rate,
               "input_channels": int(info.channels), "input_sample_rate": int(info.sample_rate)}
    return np.stack(outputs), {**summary, "nfe": run_info["nfe"], "num_steps": steps}

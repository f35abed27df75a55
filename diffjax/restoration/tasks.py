"""Audio restoration tasks with a trained model: the library behind experiments/restore.py.

    model = load_model(workdir)                       # config, denoiser, sample rate, clip length
    op = task_operator("declip", model.sample_rate, clip_sdr=3.0, reference=x)
    x_hat, info = restore_audio(model, op, y, method="dps", sampler="heun", nfe=50)

A task names a degradation family and its parameters (`TASK_OPERATORS`); `EVAL_TASKS` are the
fixed settings of the evaluation table (docs/restoration.md).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import factory, generation, sampling
from diffjax.restoration import schedules
from diffjax.restoration.longform import restore_long, windowed_denoiser
from diffjax.restoration.methods import get_method
from diffjax.restoration.operators import GapMask, get_operator

log = logging.getLogger("diffjax")

TASK_OPERATORS = {"inpaint": "gap", "declip": "hard_clip", "softclip": "soft_clip", "bwe": "butterworth",
                  "upsample": "decimate", "denoise": "identity", "dereverb": "reverb"}

# The evaluation table's tasks: name -> (task, parameters). `seconds` sets the excerpt length when
# the model's context is too short for the degradation (a 0.5 s reverb tail); default the context.
EVAL_TASKS = {
    "gap_50ms": ("inpaint", {"gap_seconds": 0.05}),
    "gap_200ms": ("inpaint", {"gap_seconds": 0.2}),
    "declip_3db": ("declip", {"clip_sdr": 3.0}),
    "bwe_4khz": ("bwe", {"cutoff": 4000.0}),
    "bwe_1khz": ("bwe", {"cutoff": 1000.0}),  # the embedded music has little energy above 4 kHz
    "denoise_10db": ("denoise", {"snr": 10.0}),
    # with 30 dB noise: noise-free, inverse filtering (projection, DDNM) recovers x exactly (126 dB)
    "dereverb_0.5s": ("dereverb", {"rt60": 0.5, "snr": 30.0, "seconds": 1.0}),
}


@dataclasses.dataclass(frozen=True)
class Model:
    """A trained waveform model: its denoiser (VE view), process, and audio format."""

    config: Any
    denoiser: Any
    process: Any
    sample_rate: int
    length: int  # the training clip length in samples: the model's context
    channels: int
    step: int


def eval_length(task_name: str, model: "Model") -> int:
    """Samples of the excerpts restored for evaluation task `task_name`."""
    seconds = EVAL_TASKS[task_name][1].get("seconds")
    return model.length if seconds is None else max(model.length, int(round(seconds * model.sample_rate)))


def _audio_format(config) -> tuple[int, int, int]:
    data = config.data
    if "sample_rate" not in data:
        raise ValueError(f"the model in this workdir is not an audio model (data.name={data.name!r} has "
                         "no sample_rate); restore.py needs a waveform model")
    seconds = data.get("crop_seconds", None) or data.get("clip_seconds", 1.0)
    return int(data.sample_rate), int(round(seconds * data.sample_rate)), int(data.get("channels", 1))


def load_model(workdir: str) -> Model:
    """Loads the EMA weights of the latest checkpoint in `workdir` (lead's `load_for_sampling`)."""
    from diffjax.training.checkpoint import load_config, load_for_sampling

    generation.require_waveform_model(load_config(workdir), "restoration")  # before any weights
    config, params, step = load_for_sampling(workdir)
    sample_rate, length, channels = _audio_format(config)
    return Model(config=config, denoiser=factory.build_denoiser(config, params),
                 process=factory.build_process(config), sample_rate=sample_rate, length=length,
                 channels=channels, step=int(step))


# --------------------------------------------------------------------------------------
# Operators of the tasks
# --------------------------------------------------------------------------------------


def task_operator(task: str, sample_rate: int, *, reference=None, degraded=None, **p):
    """The operator of `task` with parameters `p` (see experiments/restore.py for their flags).

    `reference` (clean, [B, L, C]) calibrates SDR/SNR targets (`snr` adds measurement noise at that
    SNR of the clean RMS to any task); without it (restoring a given degraded input) the clipping
    threshold is read off the input's peak and the noise level must be given as `noise_sigma`.
    """
    if task not in TASK_OPERATORS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(sorted(TASK_OPERATORS))}")
    noise = float(p.get("noise_sigma") or 0.0)
    if p.get("snr") is not None and reference is not None:  # any task: noise at this SNR of the clean RMS
        noise = float(np.sqrt(np.mean(np.square(np.asarray(reference))))) / 10 ** (float(p["snr"]) / 20)
    if task == "inpaint":
        gap_kw = dict(sample_rate=sample_rate, gap_seconds=float(p.get("gap_seconds") or 0.2),
                      noise_sigma=noise)
        if p.get("period_seconds"):
            return get_operator("packet_loss", period_seconds=float(p["period_seconds"]), **gap_kw)
        if int(p.get("num_gaps") or 1) > 1:
            return get_operator("gaps", num_gaps=int(p["num_gaps"]), **gap_kw)
        return get_operator("gap", start_seconds=p.get("start_seconds"), **gap_kw)
    if task in ("declip", "softclip"):
        name = TASK_OPERATORS[task]
        if p.get("clip_threshold"):
            return get_operator(name, threshold=float(p["clip_threshold"]), noise_sigma=noise)
        if p.get("clip_sdr") and reference is not None:
            return get_operator(name, sdr_db=float(p["clip_sdr"]), reference=reference, noise_sigma=noise)
        if degraded is None:
            raise ValueError(f"{task}: pass clip_threshold, or clip_sdr with a clean reference")
        peak = np.max(np.abs(np.asarray(degraded).reshape(degraded.shape[0], -1)), axis=1)
        log.info("%s: clipping threshold estimated from the input's peak: %s", task, np.round(peak, 4))
        return get_operator(name, threshold=peak, noise_sigma=noise)
    if task == "bwe":
        return get_operator(p.get("filter") or "butterworth", cutoff=float(p["cutoff"]),
                            sample_rate=sample_rate, noise_sigma=noise)
    if task == "upsample":
        return get_operator("decimate", factor=int(p.get("factor") or 2), noise_sigma=noise)
    if task == "denoise":
        if noise <= 0:
            raise ValueError("denoise: pass noise_sigma (> 0), or snr with a clean reference")
        return get_operator("identity", noise_sigma=noise)
    return get_operator("reverb", sample_rate=sample_rate, rir_path=p.get("rir_path"),
                        rt60=float(p.get("rt60") or 0.5), drr_db=float(p.get("drr_db") or 0.0),
                        seed=int(p.get("seed") or 0), noise_sigma=noise)


def longest_gap_seconds(operator, length: int) -> float:
    """The longest unobserved stretch of a gap operator (0 for other operators)."""
    if not isinstance(operator, GapMask):
        return 0.0
    m = np.asarray(operator.mask_for((1, length, 1)))[:, 0]
    longest = run = 0
    for v in m:
        run = run + 1 if v == 0 else 0
        longest = max(longest, run)
    return longest / operator.sample_rate


# --------------------------------------------------------------------------------------
# Restoration of a batch of waveforms
# --------------------------------------------------------------------------------------


def steps_within(sampler: str, nfe: int) -> int:
    """The most grid levels whose NFE with `sampler` stays within the budget `nfe`."""
    steps = 1
    while sampling.nfe(sampler, steps + 1) <= nfe:
        steps += 1
    return steps


def restoration_mode(model: Model, operator, length: int) -> str:
    """'single' (one pass at the input's length), 'chunked' (`longform.restore_long`: other lengths,
    or a gap longer than a quarter of the context) or 'windowed' (longer inputs under a non-local
    operator, which cannot be cut: one pass with `longform.windowed_denoiser`)."""
    if not operator.local:
        return "windowed" if length > model.length else "single"
    long_gap = longest_gap_seconds(operator, length) * model.sample_rate > model.length / 4
    return "chunked" if length != model.length or long_gap else "single"


def restore_audio(model: Model, operator, y: jax.Array, *, method: str = "dps", sampler: str = "heun",
                  nfe: int = 50, grid: str = "karras", seed: int = 0, length: Optional[int] = None,
                  overlap_seconds: float = 0.1, chunks_per_call: Optional[int] = None,
                  **options) -> tuple[jax.Array, dict]:
    """Restores `x` `[B, length, C]` from `y`; returns `(x, info)` with NFE, seconds and the
    `restoration_mode` used. `chunks_per_call` bounds the memory of windowed mode
    (`longform.windowed_denoiser`; 10 s of DPS: peak RSS 3.0 -> 2.0 GB with 8, 47 % slower)."""
    length = y.shape[1] if length is None else length
    num_steps = steps_within(sampler, nfe)
    sigmas = sampling.grid_for_process(model.process, grid, num_steps)
    total_nfe = schedules.method_nfe(method, sampler, num_steps, **options)
    key = jax.random.PRNGKey(seed)
    mode = restoration_mode(model, operator, length)
    overlap = min(int(round(overlap_seconds * model.sample_rate)), model.length // 2)
    tic = time.time()
    if mode == "chunked":
        if longest_gap_seconds(operator, length) * model.sample_rate > model.length / 4:
            log.info("a gap of %.3f s is long for the model's %.3f s context: restoring in chunked mode",
                     longest_gap_seconds(operator, length), model.length / model.sample_rate)
        x = restore_long(method, model.denoiser, operator, y, length=length, chunk_length=model.length,
                         overlap=overlap if length > model.length else 0, sigmas=sigmas, key=key,
                         sampler=sampler, **options)
    else:
        denoiser = windowed_denoiser(model.denoiser, length=length, chunk_length=model.length, overlap=overlap,
                                     chunks_per_call=chunks_per_call) if mode == "windowed" else model.denoiser
        restore = get_method(method)
        x_init = sigmas[0] * jax.random.normal(jax.random.fold_in(key, 1 << 20), (y.shape[0], length, y.shape[2]))
        x = jax.jit(lambda y, x_init: restore(denoiser, operator, y, x_init, sigmas, key=key,
                                              sampler=sampler, **options))(y, x_init)
    x = jnp.clip(jax.block_until_ready(x), -1.0, 1.0)
    seconds = time.time() - tic
    return x, {"nfe": total_nfe, "num_steps": num_steps, "seconds": seconds, "mode": mode,
               "seconds_per_audio_second": seconds / (x.shape[0] * length / model.sample_rate)}


def degraded_view(operator, y: jax.Array, x_shape: tuple) -> jax.Array:
    """The degraded input on the waveform grid (the band-limited upsampling of a decimated one)."""
    return y if tuple(y.shape) == tuple(x_shape) else operator.pinv(y)

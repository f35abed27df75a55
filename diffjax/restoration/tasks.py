"""Audio restoration tasks as data, and the restoration of a batch with a model: the library
behind `diffjax.jobs.restore` (experiments/restore.py).

    op = task_operator("declip", 16000, reference=x, clip_sdr=3.0)   # TASKS: task -> operator
    x_hat, info = restore_audio(model, model.denoiser(params), op, y, method="dps", sampler="heun", nfe=49)

A task is one registration in `TASKS`: a builder whose keyword parameters are the task's config
keys (`configs/restore.py`, section `task.<name>`), with the name of the operator it makes
(`operator=`) and which of its keys need the clean signal (`calibrated=`: SDR targets are solved
for on it). `snr` (noise at that SNR of the clean RMS) and `noise_sigma` apply to every task.
`EVAL_TASKS` are the fixed settings of the evaluation table (docs/restoration.md).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import sampling
from diffjax.registry import Registry
from diffjax.restoration.longform import restore_long, windowed_denoiser
from diffjax.restoration.methods import get_method, method_nfe, require_applicable
from diffjax.restoration.operators import get_operator, in_model_space

log = logging.getLogger("diffjax")

TASKS = Registry("restoration task", required_meta=("operator", "calibrated", "needs_simulation"))


def register_task(name: str, *, operator: str, calibrated: tuple[str, ...] = (), needs_simulation: bool = False,
                  keeps_input_band: bool = False):
    """Registers the builder of task `name`.

    Args:
      operator: the operator the task makes by default (`OPERATORS`).
      calibrated: keys that need the clean `reference` (the input is then degraded first).
      needs_simulation: the task restores only a signal it degraded itself (decimation).
      keeps_input_band: a model at a lower rate than the file restores its band, and the input's
        band above it is kept in the degraded stretches too (`fullband.compose`); False where that
        band is damaged (noise, reverb) or absent (a gap). Intact samples are kept either way.
    The builder is `f(*, sample_rate, noise_sigma, reference, degraded, **task_keys) -> operator`.
    """
    return TASKS.register(name, operator=operator, calibrated=tuple(calibrated), needs_simulation=needs_simulation,
                          keeps_input_band=keeps_input_band)


# --------------------------------------------------------------------------------------
# The tasks
# --------------------------------------------------------------------------------------


@register_task("inpaint", operator="gap")
def inpaint(*, sample_rate, noise_sigma=0.0, reference=None, degraded=None, gap_seconds: float = 0.2,
            start_seconds: Optional[float] = None, num_gaps: int = 1, period_seconds: Optional[float] = None):
    """One gap (at `start_seconds`, default centred), `num_gaps` evenly spread gaps, or periodic
    packet loss (a gap every `period_seconds`)."""
    common = dict(sample_rate=sample_rate, gap_seconds=float(gap_seconds), noise_sigma=noise_sigma)
    if period_seconds:
        return get_operator("packet_loss", period_seconds=float(period_seconds), **common)
    if int(num_gaps) > 1:
        return get_operator("gaps", num_gaps=int(num_gaps), **common)
    return get_operator("gap", start_seconds=start_seconds, **common)


def _clipping(name: str, *, noise_sigma, reference, degraded, clip_sdr, clip_threshold):
    """A clipping operator at `clip_threshold`, at the threshold giving `clip_sdr` dB on the clean
    `reference`, or (restoring a given input) at the input's peak."""
    if clip_threshold:
        return get_operator(name, threshold=float(clip_threshold), noise_sigma=noise_sigma)
    if clip_sdr and reference is not None:
        return get_operator(name, sdr_db=float(clip_sdr), reference=reference, noise_sigma=noise_sigma)
    if degraded is None:
        raise ValueError(f"{name}: pass clip_threshold, or clip_sdr with a clean reference")
    peak = np.max(np.abs(np.asarray(degraded).reshape(degraded.shape[0], -1)), axis=1)
    log.info("%s: clipping threshold estimated from the input's peak: %s", name, np.round(peak, 4))
    return get_operator(name, threshold=peak, noise_sigma=noise_sigma)


@register_task("declip", operator="hard_clip", calibrated=("clip_sdr",), keeps_input_band=True)
def declip(*, sample_rate, noise_sigma=0.0, reference=None, degraded=None, clip_sdr: Optional[float] = None,
           clip_threshold: Optional[float] = None):
    """Hard clipping (threshold from `clip_threshold`, `clip_sdr` or the input's peak)."""
    return _clipping("hard_clip", noise_sigma=noise_sigma, reference=reference, degraded=degraded,
                     clip_sdr=clip_sdr, clip_threshold=clip_threshold)


@register_task("softclip", operator="soft_clip", calibrated=("clip_sdr",), keeps_input_band=True)
def softclip(*, sample_rate, noise_sigma=0.0, reference=None, degraded=None, clip_sdr: Optional[float] = None,
             clip_threshold: Optional[float] = None):
    """tanh saturation (threshold as for `declip`)."""
    return _clipping("soft_clip", noise_sigma=noise_sigma, reference=reference, degraded=degraded,
                     clip_sdr=clip_sdr, clip_threshold=clip_threshold)


@register_task("bwe", operator="butterworth", keeps_input_band=True)
def bwe(*, sample_rate, noise_sigma=0.0, reference=None, degraded=None, cutoff: float = 4000.0,
        filter: str = "butterworth"):
    """Bandwidth extension: a low-pass `filter` (butterworth | chebyshev | fir | brickwall |
    stft_brickwall) at `cutoff` Hz."""
    return get_operator(filter, cutoff=float(cutoff), sample_rate=sample_rate, noise_sigma=noise_sigma)


@register_task("upsample", operator="decimate", needs_simulation=True, keeps_input_band=True)
def upsample(*, sample_rate, noise_sigma=0.0, reference=None, degraded=None, factor: int = 2):
    """Upsampling of a signal decimated by `factor`."""
    return get_operator("decimate", factor=int(factor), noise_sigma=noise_sigma)


@register_task("denoise", operator="identity")
def denoise(*, sample_rate, noise_sigma=0.0, reference=None, degraded=None):
    """Additive white noise (its level from `snr` with a clean reference, or `noise_sigma`)."""
    if noise_sigma <= 0:
        raise ValueError("denoise: pass noise_sigma (> 0), or snr with a clean reference")
    return get_operator("identity", noise_sigma=noise_sigma)


@register_task("dereverb", operator="reverb")
def dereverb(*, sample_rate, noise_sigma=0.0, reference=None, degraded=None, rt60: float = 0.5,
             drr_db: float = 0.0, rir_path: Optional[str] = None, seed: int = 0):
    """Reverberation by a synthetic RIR (`rt60`, `drr_db`, `seed`) or the RIR file `rir_path`."""
    return get_operator("reverb", sample_rate=sample_rate, rir_path=rir_path, rt60=float(rt60),
                        drr_db=float(drr_db), seed=int(seed), noise_sigma=noise_sigma)


# --------------------------------------------------------------------------------------
# A task's operator
# --------------------------------------------------------------------------------------


def measurement_noise(*, snr: Optional[float], noise_sigma: Optional[float], reference=None) -> float:
    """The measurement-noise std: `noise_sigma`, or RMS(reference) / 10^(snr / 20) with a reference."""
    if snr is not None and reference is not None:
        return float(np.sqrt(np.mean(np.square(np.asarray(reference))))) / 10 ** (float(snr) / 20)
    return float(noise_sigma or 0.0)


def needs_reference(task: str, params: Mapping[str, Any]) -> bool:
    """Whether `params` of `task` need the clean signal (`snr`, or a `calibrated` key, is set)."""
    keys = ("snr",) + TASKS.meta(task)["calibrated"]
    return any(params.get(k) is not None for k in keys)


def task_operator(task: str, sample_rate: int, *, reference=None, degraded=None, snr: Optional[float] = None,
                  noise_sigma: Optional[float] = None, **params):
    """The operator of `task` with the task's keys `params` (a key it does not take is an error
    naming the keys it takes).

    `reference` (clean, [B, L, C]) calibrates SDR/SNR targets (`snr` adds measurement noise at that
    SNR of the clean RMS to any task); without it (restoring a given degraded input) the clipping
    threshold is read off the input's peak and the noise level must be given as `noise_sigma`.
    """
    noise = measurement_noise(snr=snr, noise_sigma=noise_sigma, reference=reference)
    return TASKS.build({"name": task, **params}, sample_rate=sample_rate, noise_sigma=noise, reference=reference,
                       degraded=degraded)


@dataclasses.dataclass(frozen=True)
class EvalTask:
    """One row group of the evaluation table: a task, its keys, and the excerpt length in seconds
    (None: the model's context; longer where the context is too short for the degradation)."""

    task: str
    params: Mapping[str, Any]
    seconds: Optional[float] = None


# The evaluation table's tasks, in table order.
EVAL_TASKS: Mapping[str, EvalTask] = {
    "gap_50ms": EvalTask("inpaint", {"gap_seconds": 0.05}),
    "gap_200ms": EvalTask("inpaint", {"gap_seconds": 0.2}),
    "declip_3db": EvalTask("declip", {"clip_sdr": 3.0}),
    "bwe_4khz": EvalTask("bwe", {"cutoff": 4000.0}),
    "bwe_1khz": EvalTask("bwe", {"cutoff": 1000.0}),  # the embedded music has little energy above 4 kHz
    "denoise_10db": EvalTask("denoise", {"snr": 10.0}),
    # with 30 dB noise: noise-free, inverse filtering (projection, DDNM) recovers x exactly (126 dB)
    "dereverb_0.5s": EvalTask("dereverb", {"rt60": 0.5, "snr": 30.0}, seconds=1.0),
}


def eval_task(name: str) -> EvalTask:
    if name not in EVAL_TASKS:
        raise ValueError(f"unknown evaluation task {name!r}; valid: {', '.join(EVAL_TASKS)}")
    return EVAL_TASKS[name]


def context_length(model) -> int:
    """The model's context in samples: one training example (`model.spec.shape[0]`)."""
    return int(model.spec.shape[0])


def eval_length(task_name: str, model) -> int:
    """Samples of the excerpts restored for evaluation task `task_name`."""
    seconds = eval_task(task_name).seconds
    length = context_length(model)
    return length if seconds is None else max(length, int(round(seconds * model.spec.sample_rate)))


# --------------------------------------------------------------------------------------
# Restoration of a batch of waveforms
# --------------------------------------------------------------------------------------


def restorable_length(model) -> Optional[int]:
    """The longest input `restore_audio` takes: any (None) for a waveform model, which restores long
    inputs in chunks; the context for a model in a codec's space, which restores in one pass."""
    return None if model.codec.is_identity else context_length(model)


def restoration_mode(model, operator, length: int) -> str:
    """'single' (one pass at the input's length), 'chunked' (`longform.restore_long`: other lengths,
    or a gap longer than a quarter of the context), 'windowed' (longer inputs under a non-local
    operator, which cannot be cut: one pass with `longform.windowed_denoiser`) or 'decoded' (a model
    in a codec's space, e.g. a latent model: one pass over its context with the operator applied to
    `decode(z)`, `operators.in_model_space`; inputs up to the context)."""
    context = context_length(model)
    longest = restorable_length(model)
    if longest is not None:
        if length > longest:
            raise ValueError(f"this model works in a codec's space ({type(model.codec).__name__}) and restores at "
                             f"most its context of {longest} samples ({longest / model.spec.sample_rate:g} s) in "
                             f"one pass; got {length} samples. Cut the input, or restore with a waveform model "
                             "(long inputs are restored in chunks)")
        return "decoded"
    if not operator.local:
        return "windowed" if length > context else "single"
    long_gap = operator.longest_gap(length) > context / 4
    return "chunked" if length != context or long_gap else "single"


def check_restorable(model, operator, method: str, options: Mapping[str, Any], length: int) -> None:
    """Raises, before any work, unless `model` can restore `length` samples degraded by `operator`
    with `method` (`options`): the input fits (`restoration_mode`) and the operator, as the model
    sees it (`operators.in_model_space`), has what the method needs (`methods.require_applicable`)."""
    restoration_mode(model, operator, length)
    require_applicable(method, in_model_space(operator, model.codec, length), options)


def restore_audio(model, denoiser, operator, y: jax.Array, *, method: str = "dps", sampler: str = "heun",
                  nfe: int = 49, grid: str = "karras", seed: int = 0, length: Optional[int] = None,
                  overlap_seconds: float = 0.1, chunks_per_call: Optional[int] = None,
                  progress: Optional[Callable[[int, int], None]] = None, **options) -> tuple[jax.Array, dict]:
    """Restores `x` `[B, length, C]` from `y` with `denoiser` (`model.denoiser(params)`); `model`
    supplies the process, the context (`model.spec`) and the codec. A model in a codec's space
    (a latent model) samples z in `model.latent_shape` against `A(decode(z))` and returns
    `model.codec.decode(z, length)`; a method that needs the operator in the model's space is
    refused, naming the methods that work (`methods.require_applicable`).

    `nfe` is the sampler's budget on the base grid (RePaint multiplies it); a budget the sampler
    cannot spend exactly is an error naming the nearest valid ones (`sampling.steps_for_nfe`).
    Returns `(x, info)` with NFE, seconds and the `restoration_mode` used. `chunks_per_call` bounds
    the memory of windowed mode (`longform.windowed_denoiser`; 10 s of DPS: peak RSS 3.0 -> 2.0 GB
    with 8, 47 % slower). `progress(done, total)` is called after each chunk (chunked mode) or
    once (other modes).
    """
    length = y.shape[1] if length is None else length
    context, sample_rate = context_length(model), int(model.spec.sample_rate)
    num_steps = sampling.steps_for_nfe(sampler, nfe, **(options.get("sampler_options") or {}))
    sigmas = sampling.grid_for_process(model.process, grid, num_steps)
    total_nfe = method_nfe(method, sampler, num_steps, **options)
    key = jax.random.PRNGKey(seed)
    check_restorable(model, operator, method, options, length)
    mode = restoration_mode(model, operator, length)
    model_operator = in_model_space(operator, model.codec, length)
    overlap = min(int(round(overlap_seconds * sample_rate)), context // 2)
    tic = time.time()
    if mode == "chunked":
        gap = operator.longest_gap(length)
        if gap > context / 4:
            log.info("a gap of %.3f s is long for the model's %.3f s context: restoring in chunked mode",
                     gap / sample_rate, context / sample_rate)
        x = restore_long(method, denoiser, operator, y, length=length, chunk_length=context,
                         overlap=overlap if length > context else 0, sigmas=sigmas, key=key,
                         sampler=sampler, progress=progress, **options)
    else:
        if mode == "windowed":
            denoiser = windowed_denoiser(denoiser, length=length, chunk_length=context, overlap=overlap,
                                         chunks_per_call=chunks_per_call)
        restore = get_method(method)
        shape = tuple(model.latent_shape) if mode == "decoded" else (length, y.shape[2])
        x_init = sigmas[0] * jax.random.normal(jax.random.fold_in(key, 1 << 20), (y.shape[0],) + shape)
        x = jax.jit(lambda y, x_init: restore(denoiser, model_operator, y, x_init, sigmas, key=key,
                                              sampler=sampler, **options))(y, x_init)
        if mode == "decoded":
            x = model.codec.decode(x, length)
    x = jnp.clip(jax.block_until_ready(x), -1.0, 1.0)
    if progress is not None and mode != "chunked":
        progress(1, 1)
    seconds = time.time() - tic
    return x, {"nfe": total_nfe, "num_steps": num_steps, "seconds": seconds, "mode": mode,
               "seconds_per_audio_second": seconds / (x.shape[0] * length / sample_rate)}


def degraded_view(operator, y: jax.Array, x_shape: tuple) -> jax.Array:
    """The degraded input on the waveform grid (the band-limited upsampling of a decimated one)."""
    return y if tuple(y.shape) == tuple(x_shape) else operator.pinv(y)

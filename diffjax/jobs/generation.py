"""Generation from a model object and its parameters: what sample.py, the training evaluation and
the evaluation job call.

    loaded = load(workdir)
    out = generate(loaded.model, loaded.params, sampling=loaded.config.sampling, seeds=range(16),
                   sampler="dpmpp_2m", nfe=20)
    out.audio  # [16, L, C] waveforms (vectors [16, D] for toy data), out.nfe

Seeds are per example (`diffjax.sampling.initial_noise`, `seed_keys`), so example i is the same
whatever the batch size or device count; the batch is sharded over the mesh's devices. SDEdit of a
whole input lives in `diffjax.jobs.sdedit`.

Autoguidance (EDM2) takes a second, weaker model of the same data as the guide:

    bad = load(guide_workdir, step=1000)
    out = generate(loaded.model, loaded.params, ..., autoguide=AutoGuide(bad.model, bad.params, weight=2.0))
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import guidance, sampling
from diffjax.jobs.workdir import Loaded, load
from diffjax.model import DiffusionModel
from diffjax.training import parallel


@dataclasses.dataclass(frozen=True)
class Generated:
    audio: np.ndarray  # [B, L, C] waveforms, or [B, D] vectors
    latent: np.ndarray  # [B, ...] samples in model space (before the codec's decode)
    nfe: int
    num_steps: int
    seeds: tuple


@dataclasses.dataclass(frozen=True)
class AutoGuide:
    """Autoguidance's guiding model (`guidance.autoguidance`; Karras et al. 2024): a weaker model of
    the same data in the same model space (smaller, or trained for less; any network), its weights
    and the guidance weight w (1: the main model alone)."""

    model: DiffusionModel
    params: Any
    weight: float


def guide_mismatches(model: DiffusionModel, guide: DiffusionModel) -> list[str]:
    """What keeps `guide` from guiding `model` (empty: nothing): both denoisers must take the same
    `x [B, ...]` (data spec and model-space shape) and the same conditions."""
    found = []
    if model.spec != guide.spec:
        found.append(f"data spec {model.spec} vs {guide.spec}")
    if model.latent_shape != guide.latent_shape:
        found.append(f"model-space shape {model.latent_shape} vs {guide.latent_shape}")
    if sorted(model.conditioners) != sorted(guide.conditioners):
        found.append(f"conditions {sorted(model.conditioners)} vs {sorted(guide.conditioners)}")
    return found


def codec_section(config) -> tuple:
    """The codec a config builds: its name and its own keys (the 'latent' codec's autoencoder workdir)."""
    codec = config.get("codec") or {"name": "waveform"}
    own = codec.get(codec["name"])
    return codec["name"], (own.to_dict() if own is not None else None)


def load_autoguide(loaded: Loaded, workdir: str, guide_workdir: str, *, step: Optional[int], ema: int,
                   weight: float) -> tuple[AutoGuide, int]:
    """(the autoguidance guide of `loaded` (from `workdir`), its checkpoint step), loaded from
    `guide_workdir` like any model (`load`); a guide of other data, model space, codec or
    conditions is an error naming both workdirs."""
    guide = load(guide_workdir, step=step, ema=ema)
    mismatches = guide_mismatches(loaded.model, guide.model)
    if codec_section(loaded.config) != codec_section(guide.config):
        mismatches.append(f"codec {codec_section(loaded.config)} vs {codec_section(guide.config)}")
    if mismatches:
        raise ValueError(f"guide workdir {guide_workdir!r} cannot guide {workdir!r}: {'; '.join(mismatches)} "
                         "(workdir vs guide). The guide must model the same data in the same model space; only its "
                         "network may differ")
    return AutoGuide(model=guide.model, params=guide.params, weight=float(weight)), int(guide.step)


def resolve_steps(sampler: str, nfe: Optional[int], num_steps: Optional[int], default: int) -> int:
    """Grid levels for an NFE budget (impossible budgets raise, naming the nearest), else `num_steps`."""
    if nfe is not None:
        return sampling.steps_for_nfe(sampler, nfe)
    return default if num_steps is None else num_steps


def keep_known(latent: jax.Array, inpaint: Mapping) -> jax.Array:
    """`latent [B, T, ...]` with the frames the inpainting mask `[B, T]` marks known replaced by the
    known content (the model regenerates them only approximately)."""
    mask = jnp.asarray(inpaint["mask"]).reshape(inpaint["mask"].shape + (1,) * (latent.ndim - 2)) > 0
    return jnp.where(mask, jnp.asarray(inpaint["known"], latent.dtype), latent)


def guidance_reference(model: DiffusionModel, cond: Mapping, cfg_scale: Union[float, Mapping[str, float]],
                       negative: Optional[Mapping] = None) -> dict:
    """CFG's reference condition (`guidance.multi_condition_free`): the guided conditions (those named
    in a `{name: scale}` mapping; for one number, every conditioner with `guided`, i.e. all but the
    inpainting mask) set to their `negative` value, else their null value; the others as in `cond`."""
    batch = jax.tree.leaves(cond)[0].shape[0]
    negative = dict(negative or {})
    if isinstance(cfg_scale, Mapping):
        guided = list(cfg_scale)
    else:
        guided = [name for name in cond if model.conditioners[name].guided]
    unknown = sorted(set(negative) - set(cond))
    if unknown:
        raise ValueError(f"negative conditions {unknown} without a positive one; conditions given: {sorted(cond)}")
    ignored = sorted(set(negative) - set(guided))
    if ignored:
        raise ValueError(f"negative conditions {ignored} are not guided by cfg_scale={cfg_scale}; give them a scale")
    return {**cond, **{name: negative[name] if name in negative else model.conditioners[name].null(batch)
                       for name in guided if name in cond}}


def is_plain(cfg_scale: Union[None, float, Mapping[str, float]], negative: Optional[Mapping] = None) -> bool:
    """Whether a CFG setting is no guidance: no scale, or one scale of 1 without a negative condition."""
    return cfg_scale is None or (not isinstance(cfg_scale, Mapping) and cfg_scale == 1.0 and not negative)


def guided_denoiser(model: DiffusionModel, params: Any, cond: Optional[Mapping],
                    cfg_scale: Union[None, float, Mapping[str, float]], negative: Optional[Mapping] = None):
    """The sampling denoiser: unconditional (every condition null) when `cond` is None, conditional
    when `cfg_scale` is None (or 1 without a negative condition), else classifier-free guided: one
    scale for all guided conditions, or one per condition name (`guidance.multi_condition_free`)."""
    if cond is None or is_plain(cfg_scale, negative):
        return model.denoiser(params, cond)
    reference = guidance_reference(model, cond, cfg_scale, negative)
    return guidance.multi_condition_free(model.conditional_denoiser(params), dict(cond), reference, scales=cfg_scale)


@functools.lru_cache(maxsize=32)
def _compiled_sampler(model: DiffusionModel, sampler: str, grid: str, steps: int, grid_options: tuple,
                      options: tuple, cfg_scale, conditional: bool, guide_model, guide_weight, mesh):
    """The jitted `run((params, guide_params), x_init, keys, cond) -> latent`, built once per
    setting (so chunked calls compile once), and the grid's first level. `cond` is `{"cond": ...,
    "negative": ...}`; `cfg_scale` a number or a sorted tuple of `(name, scale)`; `guide_model`
    (None: no autoguidance) sees the same condition as `model`."""
    sigmas = sampling.grid_for_process(model.process, grid, steps, **dict(grid_options))
    sample, options = sampling.get_sampler(sampler), dict(options)
    scale = dict(cfg_scale) if isinstance(cfg_scale, tuple) else cfg_scale

    def run(weights, x_init, keys, cond):
        (params, guide_params), cond = weights, cond or {}
        if guide_model is None:
            denoiser = guided_denoiser(model, params, cond.get("cond"), scale, cond.get("negative"))
        else:  # generate() has ruled out CFG with a guide
            denoiser = guidance.autoguidance(model.conditional_denoiser(params), cond.get("cond"),
                                             guide=guide_model.conditional_denoiser(guide_params), weight=guide_weight)
        return sample(denoiser, x_init, sigmas, key=keys, **options)

    sharded, replicated = parallel.batch_sharding(mesh), parallel.replicated_sharding(mesh)
    in_shardings = (replicated, sharded, sharded, sharded if conditional else None)
    return jax.jit(run, in_shardings=in_shardings, out_shardings=replicated), float(sigmas[0])


def generate(model: DiffusionModel, params: Any, *, sampling_config: Mapping, seeds: Sequence[int],
             sampler: Optional[str] = None, nfe: Optional[int] = None, num_steps: Optional[int] = None,
             grid: Optional[str] = None, cond: Optional[Mapping] = None,
             cfg_scale: Union[None, float, Mapping[str, float]] = None, negative: Optional[Mapping] = None,
             sampler_options: Optional[dict] = None, autoguide: Optional[AutoGuide] = None,
             mesh=None) -> Generated:
    """Samples one example per seed with a registered sampler and grid over the process's range.

    Args:
      model, params: the model object and its (EMA) weights (`jobs.load`).
      sampling_config: the config's `sampling` section (defaults: sampler, grid, grid_options, num_steps).
      seeds: one integer seed per example.
      sampler, grid: registered names; default the config's.
      nfe: a budget of denoiser calls per example (impossible budgets raise); or `num_steps` levels.
      cond, cfg_scale: a condition pytree with leading `[B]` (e.g. `{"label": [B]}`) and the
        classifier-free guidance scale (1 or None: plain conditional), or one scale per condition
        name (`guidance_reference`).
      negative: conditions that replace the null value in CFG's reference branch (a negative prompt).
      autoguide: EDM2's autoguidance by a weaker model (`AutoGuide`, `guidance.autoguidance`); both
        denoisers get the same condition. It replaces CFG (Karras et al. 2024 guide the conditional
        model with a weaker conditional one), so a `cfg_scale` other than 1, or `negative`, with it
        is an error. One guided call counts as one NFE and runs both networks.
      mesh: a `training.parallel` mesh (default: this host's devices when the batch divides evenly).
    """
    if autoguide is not None:
        mismatches = guide_mismatches(model, autoguide.model)
        if mismatches:
            raise ValueError(f"the autoguidance guide does not match the model: {'; '.join(mismatches)}")
        if cond is not None and not is_plain(cfg_scale, negative):
            raise ValueError(f"classifier-free guidance (cfg_scale={cfg_scale}, negative={negative is not None}) and "
                             f"autoguidance (weight {autoguide.weight}) together: choose one (EDM2 uses autoguidance "
                             "instead of CFG); set cfg_scale to 1 or drop the guide")
    sampler = sampler or sampling_config["sampler"]
    configured_grid = sampling_config["grid"]
    grid = grid or configured_grid
    grid_options = dict(sampling_config.get("grid_options") or {}) if grid == configured_grid else {}
    steps = resolve_steps(sampler, nfe, num_steps, sampling_config["num_steps"])
    seeds = tuple(int(s) for s in seeds)
    options = dict(sampler_options or {})
    if mesh is None:
        local = jax.local_device_count()
        mesh = parallel.make_mesh(local if len(seeds) % local == 0 else 1, local=True)
    packed = None
    if cond is not None:
        packed = {"cond": dict(cond), **({"negative": dict(negative)} if negative else {})}
        packed = jax.tree.map(jnp.asarray, packed)
    static_scale = tuple(sorted(cfg_scale.items())) if isinstance(cfg_scale, Mapping) else cfg_scale
    run, sigma_max = _compiled_sampler(
        model, sampler, grid, steps, tuple(sorted(grid_options.items())), tuple(sorted(options.items())),
        static_scale, packed is not None, None if autoguide is None else autoguide.model, None if autoguide is None else float(autoguide.weight), mesh)
    x_init = sampling.initial_noise(np.asarray(seeds), model.latent_shape, sigma_max)
    keys = sampling.seed_keys(np.asarray(seeds))
    latent = run((params, None if autoguide is None else autoguide.params), x_init, keys, packed)
    if cond is not None and "inpaint" in cond:  # trained inpainting keeps the known frames exactly
        latent = keep_known(latent, cond["inpaint"])
    audio = model.codec.decode(latent, model.spec.shape[0])
    cost = sampling.nfe(sampler, steps, **options)
    return Generated(audio=np.asarray(audio), latent=np.asarray(latent), nfe=cost, num_steps=steps, seeds=seeds)

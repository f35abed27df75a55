"""Generation from a trained config and its parameters: the library behind experiments/sample.py.

    config, params, _ = checkpoint.load_for_sampling(workdir)
    out = generate(config, params, seeds=range(16), sampler="dpmpp_2m", nfe=20)
    out.audio  # [16, L, C] waveforms (vectors [16, D] for toy data), out.nfe

Seeds are per example (`diffjax.sampling.initial_noise`, `seed_keys`), so example i is the same
whatever the batch size or device count; the batch is sharded over the mesh's devices.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import json
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from diffjax import factory, guidance, sampling
from diffjax.precond import flax_net_fn, make_denoiser


def build_codec(config):
    """The representation the model works in (`config.codec`; waveform identity when absent).

    Keys the codec does not take are ignored (`factory.accepted_kwargs`, so
    `--config.codec.name=waveform` works on a mel config); a codec with a `sample_rate` gets the
    data's."""
    from diffjax.audio.codecs import CODECS

    if "codec" not in config:
        return CODECS.get("waveform")()
    builder = CODECS.get(config.codec.name)
    kwargs = factory.accepted_kwargs(builder, config.codec)
    if "sample_rate" in inspect.signature(builder).parameters and "sample_rate" in config.get("data", {}):
        kwargs.setdefault("sample_rate", int(config.data.sample_rate))
    return builder(**kwargs)


def require_waveform_model(config, task: str) -> None:
    """Raises for a model that does not work on waveforms (a codec other than 'waveform'): `task`
    (restoration operators, exact likelihoods) is defined on the audio itself."""
    codec = config.get("codec", {}).get("name", "waveform")
    if codec != "waveform":
        raise ValueError(f"{task} needs a waveform model, but this one works in the {codec!r} codec "
                         "(not a bijection of the audio). Train one with configs/waveform.py: "
                         "python experiments/train.py --config configs/waveform.py --workdir runs/waveform")


def is_audio(config) -> bool:
    return "sample_rate" in config.data


def example_shape(config, dataset=None) -> tuple[int, ...]:
    """Shape of one example in model space (after the codec), without the batch axis."""
    dataset = factory.build_dataset(config) if dataset is None else dataset
    if not is_audio(config):
        return (dataset.dim,)
    audio = jax.ShapeDtypeStruct((1, dataset.length, dataset.channels), jnp.float32)
    return tuple(jax.eval_shape(build_codec(config).encode, audio).shape[1:])


def make_sampling_denoiser(config, params, *, labels=None, cfg_scale: Optional[float] = None,
                           model=None, pc=None):
    """The denoiser of `params`: conditional (+ classifier-free guidance) when labels are given."""
    model = factory.build_model(config) if model is None else model
    pc = factory.build_precond(config, factory.build_process(config)) if pc is None else pc
    net_fn = flax_net_fn(model, params)
    num_classes = int(config.model.get("num_classes", 0))
    if labels is None:
        cond = {"label": None} if num_classes > 0 else None
        return make_denoiser(pc, net_fn, cond)
    if num_classes <= 0:
        raise ValueError("labels were given but the model is unconditional (model.num_classes = 0)")
    if cfg_scale is None or cfg_scale == 1.0:
        return make_denoiser(pc, net_fn, {"label": jnp.asarray(labels, jnp.int32)})
    return guidance.classifier_free(pc, net_fn, labels, null_label=num_classes, scale=cfg_scale)


@dataclasses.dataclass(frozen=True)
class Generated:
    audio: np.ndarray  # [B, L, C] waveforms, or [B, D] vectors
    latent: np.ndarray  # [B, ...] samples in model space (before the codec's decode)
    nfe: int
    num_steps: int
    seeds: tuple


def _resolve_steps(sampler: str, nfe: Optional[int], num_steps: Optional[int], default: int) -> int:
    if nfe is not None:
        return sampling.steps_for_nfe(sampler, nfe)
    return default if num_steps is None else num_steps


@functools.lru_cache(maxsize=32)
def _compiled_sampler(config_json: str, sampler: str, grid: str, steps: int, options: tuple,
                      cfg_scale, conditional: bool, sdedit_strength, mesh):
    """The jitted `run(params, x_init, keys, labels, guide) -> latent`, built once per setting (so
    repeated calls, e.g. chunked evaluation, compile once) and the grid's first level."""
    from diffjax.training import parallel

    config = ml_collections.ConfigDict(json.loads(config_json))
    process = factory.build_process(config)
    grid_options = factory.kwargs_of(config.sampling.grid_options) if "grid_options" in config.sampling else {}
    sigmas = sampling.grid_for_process(process, grid, steps, **(grid_options if grid == config.sampling.grid else {}))
    model, pc = factory.build_model(config), factory.build_precond(config, process)
    sample, options = sampling.get_sampler(sampler), dict(options)

    def run(params, x_init, keys, labels, guide):
        denoiser = make_sampling_denoiser(config, params, labels=labels, cfg_scale=cfg_scale,
                                          model=model, pc=pc)
        if guide is None:
            return sample(denoiser, x_init, sigmas, key=keys, **options)
        from diffjax.restoration import get_method, get_operator

        return get_method("sdedit")(denoiser, get_operator("identity"), guide, x_init, sigmas, key=keys,
                                    sampler=sampler, sampler_options=options, strength=sdedit_strength,
                                    guide=guide)

    sharded, replicated = parallel.batch_sharding(mesh), parallel.replicated_sharding(mesh)
    optional = sharded if conditional else None
    in_shardings = (replicated, sharded, sharded, optional, sharded if sdedit_strength is not None else None)
    return jax.jit(run, in_shardings=in_shardings, out_shardings=replicated), float(sigmas[0])


def generate(config, params, *, seeds: Sequence[int], sampler: Optional[str] = None,
             nfe: Optional[int] = None, num_steps: Optional[int] = None, grid: Optional[str] = None,
             labels: Optional[Sequence[int]] = None, cfg_scale: Optional[float] = None,
             sampler_options: Optional[dict] = None, init: Optional[np.ndarray] = None,
             strength: float = 1.0, mesh=None, dataset=None) -> Generated:
    """Samples one example per seed with a registered sampler and grid over the process's range.

    Args:
      config: the training config (from the workdir).
      params: network parameters (EMA by default, see `checkpoint.load_for_sampling`).
      seeds: one integer seed per example.
      sampler, grid: registered names; default `config.sampling`.
      nfe: a budget of denoiser calls per example (converted to steps; impossible budgets raise);
        or `num_steps` noise levels. Default `config.sampling.num_steps`.
      labels, cfg_scale: class labels and classifier-free guidance scale (1 = plain conditional).
      init, strength: SDEdit-style variation (Meng et al. 2022): waveforms `[B, L, C]` (one per seed)
        are encoded, noised to the level `strength` of the way up the grid, and denoised.
      mesh: a `training.parallel` mesh to shard the batch over (default: this host's devices when
        the batch divides evenly, else one device).
    """
    from diffjax.training import parallel

    sampler = sampler or config.sampling.sampler
    grid = grid or config.sampling.grid
    steps = _resolve_steps(sampler, nfe, num_steps, config.sampling.num_steps)
    seeds = tuple(int(s) for s in seeds)
    options = dict(sampler_options or {})
    if mesh is None:
        local = jax.local_device_count()
        mesh = parallel.make_mesh(local if len(seeds) % local == 0 else 1, local=True)
    label_array = None if labels is None else jnp.asarray(labels, jnp.int32)
    guide = None
    if init is not None:
        init = np.asarray(init, np.float32)
        if init.shape[0] != len(seeds):
            raise ValueError(f"init has {init.shape[0]} examples for {len(seeds)} seeds")
        guide = build_codec(config).encode(jnp.asarray(init)) if is_audio(config) else jnp.asarray(init)
    run, sigma_max = _compiled_sampler(
        config.to_json(), sampler, grid, steps, tuple(sorted(options.items())), cfg_scale,
        label_array is not None, None if guide is None else float(strength), mesh)
    shape = example_shape(config, dataset)
    x_init = sampling.initial_noise(np.asarray(seeds), shape, sigma_max)
    keys = sampling.seed_keys(np.asarray(seeds))
    latent = run(params, x_init, keys, label_array, guide)
    if is_audio(config):
        dataset = factory.build_dataset(config) if dataset is None else dataset
        audio = build_codec(config).decode(latent, dataset.length)
    else:
        audio = latent
    cost = sampling.nfe(sampler, steps, **options)
    if init is not None:
        from diffjax.restoration.schedules import method_nfe

        cost = method_nfe("sdedit", sampler, steps, strength=strength, sampler_options=options)
    return Generated(audio=np.asarray(audio), latent=np.asarray(latent), nfe=cost, num_steps=steps,
                     seeds=seeds)

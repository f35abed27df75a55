"""Config sections -> library objects. Each concept reads `config.<concept>.name` plus the rest of
its section as constructor keyword arguments (STYLE rules 7-8), so `--config.sde.name=vp` is a
one-line ablation: the process, and through it the grid range and time conditioning, change together.
"""
from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from diffjax import data as data_lib
from diffjax import losses, models, precond, sde
from diffjax.precond import flax_net_fn, make_denoiser


def kwargs_of(section: ml_collections.ConfigDict, *exclude: str) -> dict:
    """A config section as plain constructor kwargs, without `name` (and `exclude`)."""
    values = section.to_dict() if hasattr(section, "to_dict") else dict(section)
    return {k: v for k, v in values.items() if k != "name" and k not in exclude}


def build_process(config) -> sde.AbstractProcess:
    return sde.get_sde(config.sde.name, **kwargs_of(config.sde))


def build_precond(config, process: sde.AbstractProcess) -> precond.AbstractPrecond:
    return precond.get_precond(config.precond.name, process=process, **kwargs_of(config.precond))


def build_model(config):
    return models.get_model(config.model.name, **kwargs_of(config.model))


def build_loss(config, process, pc) -> losses.DenoisingLoss:
    return losses.make_loss(process=process, precond=pc, **kwargs_of(config.loss))


def accepted_kwargs(builder, section: ml_collections.ConfigDict) -> dict:
    """The keys of `section` (without `name`) that `builder` takes. One section then serves every
    registered choice (synth_music's `num_train` and folder's `root`; mel's `n_mels` and
    complex_stft's `alpha`), so switching `name` by one flag works; the other keys are ignored."""
    accepted = inspect.signature(builder).parameters
    return {k: v for k, v in kwargs_of(section).items() if k in accepted}


def build_dataset(config):
    """`config.data.name` with the section's keys that dataset takes (`accepted_kwargs`), so
    `--config.data.name=folder --config.data.root=DIR` switches datasets."""
    builder = data_lib.dataset_builder(config.data.name)
    return builder(**accepted_kwargs(builder, config.data))


def init_params(model, example: jax.Array, key: jax.Array, cond: Any = None):
    """Initialises the network on one example batch `[B, ...]` and returns its params."""
    c_noise = jnp.zeros(example.shape[:1], example.dtype)
    return jax.jit(model.init)(key, example, c_noise, cond)["params"]  # one compile, not one per op


def build_denoiser(config, params, *, cond: Any = None, model=None, pc=None):
    """`D(x~, sigma~)` of a trained network, for samplers, likelihoods and restoration."""
    model = build_model(config) if model is None else model
    pc = build_precond(config, build_process(config)) if pc is None else pc
    return make_denoiser(pc, flax_net_fn(model, params), cond)

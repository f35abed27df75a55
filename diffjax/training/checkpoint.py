"""orbax checkpoints in `<workdir>/checkpoints`, with the resolved config as JSON beside them.

A workdir is self-describing: `load_for_sampling(workdir)` needs nothing else.
"""
from __future__ import annotations

import json
import os
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def make_manager(workdir: str, *, max_to_keep: int = 3, keep_every: Optional[int] = None
                 ) -> ocp.CheckpointManager:
    """Keeps the last `max_to_keep` checkpoints plus every `keep_every`-th step. Saves are atomic."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, keep_period=keep_every or None, create=True,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(manager: ocp.CheckpointManager, step: int, items: dict) -> None:
    manager.save(step, args=ocp.args.StandardSave(items))
    manager.wait_until_finished()


def restore_latest(manager: ocp.CheckpointManager, target: dict) -> Optional[dict]:
    """Restores the latest checkpoint into the structure of `target`, or None if there is none."""
    step = manager.latest_step()
    if step is None:
        return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return manager.restore(step, args=ocp.args.StandardRestore(abstract))


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
        json.dump(config.to_dict(), f, indent=2, sort_keys=True)


def _tuples(value):
    """JSON arrays back to the tuples configs hold, so a loaded config equals the one saved."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The config saved by `save_config` (lists restored as tuples)."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {workdir!r} a diffjax training workdir?")
    with open(path) as f:
        return ml_collections.ConfigDict(_tuples(json.load(f)))


def abstract_items(config, *, with_opt_state: bool = True) -> dict:
    """Shapes and dtypes of a checkpoint of `config`, placed on this host's first device, so any
    checkpoint (also one saved by several hosts) restores on one host."""
    from diffjax import factory, generation
    from diffjax.training.state import build_optimizer

    model = factory.build_model(config)
    example = jax.ShapeDtypeStruct((1,) + generation.example_shape(config), jnp.float32)
    params = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, jnp.zeros((1,)))["params"], example)
    tx = build_optimizer(name=config.optim.name, **factory.kwargs_of(config.optim))
    items = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": params,
             "ema_params": tuple(params for _ in config.training.ema_halflife_examples)}
    if with_opt_state:
        items["opt_state"] = jax.eval_shape(tx.init, params)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), items)


def load_for_sampling(workdir: str, *, step: Optional[int] = None, ema_index: int = 0):
    """Returns `(config, params, step)` with the EMA weights (`ema_index`; -1 for the raw weights)."""
    config = load_config(workdir)
    manager = make_manager(workdir)
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(workdir)}: train first "
                                "(experiments/train.py --workdir ...)")
    target = abstract_items(config, with_opt_state=False)  # weights only; the optimiser is not needed
    restore_args = ocp.checkpoint_utils.construct_restore_args(target)
    items = manager.restore(step, args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args,
                                                              partial_restore=True))
    params = items["params"] if ema_index < 0 else items["ema_params"][ema_index]
    return config, params, step

"""orbax checkpoints in `<workdir>/checkpoints`, with the resolved config as JSON beside them.

A workdir is self-describing: `load_for_sampling(workdir)` needs nothing else.
"""
from __future__ import annotations

import json
import os
from typing import Optional

import jax
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


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {workdir!r} a diffjax training workdir?")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def load_for_sampling(workdir: str, *, step: Optional[int] = None, ema_index: int = 0):
    """Returns `(config, params, step)` with the EMA weights (`ema_index`; -1 for the raw weights)."""
    config = load_config(workdir)
    manager = make_manager(workdir)
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(workdir)}")
    items = manager.restore(step, args=ocp.args.StandardRestore())
    params = items["params"] if ema_index < 0 else items["ema_params"][ema_index]
    return config, params, step

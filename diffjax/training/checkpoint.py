"""orbax checkpoints: an atomic `CheckpointManager` over a directory the jobs layer chooses
(`<workdir>/checkpoints`), keep-last plus keep-every-N (STYLE rule 21)."""
from __future__ import annotations

import logging
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

log = logging.getLogger("diffjax")


def make_manager(directory: str, *, max_to_keep: int = 3, keep_every: Optional[int] = None
                 ) -> ocp.CheckpointManager:
    """Keeps the last `max_to_keep` checkpoints plus every `keep_every`-th step. Saves are atomic."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, keep_period=keep_every or None, create=True,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager(directory, options=options)


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


def restore_partial(manager: ocp.CheckpointManager, step: int, target: dict) -> dict:
    """Restores only the entries of `target` (abstract arrays with shardings) from checkpoint `step`."""
    restore_args = ocp.checkpoint_utils.construct_restore_args(target)
    return manager.restore(step, args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args,
                                                             partial_restore=True))


def on_first_local_device(tree: Any) -> Any:
    """Abstract arrays of `tree` placed on this host's first device, so any checkpoint (also one
    saved by several hosts) restores on one host."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), tree)

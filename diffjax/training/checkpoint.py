"""orbax checkpoints: an atomic `CheckpointManager` over a directory the jobs layer chooses
(`<workdir>/checkpoints`), keep-last plus keep-every-N (STYLE rule 21)."""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

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


def describe_error(error: Exception) -> str:
    """The first line of an error, with its type (orbax/TensorStore errors run to many lines)."""
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"


def restore_latest(manager: ocp.CheckpointManager, target: dict, *,
                   accept: Callable[[dict], bool] = lambda items: True) -> Optional[dict]:
    """Restores the newest checkpoint that reads and that `accept`s (e.g. finite) into the
    structure of `target`; each one skipped is logged with its step and reason. None if there is
    no checkpoint; an error naming every step if none is usable."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    problems = []
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            items = manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as error:  # noqa: BLE001  (orbax raises many types for a damaged checkpoint)
            problems.append(f"step {step}: unreadable ({describe_error(error)})")
        else:
            if accept(items):
                if problems:
                    log.warning("resuming from checkpoint %d; skipped newer ones: %s", step, "; ".join(problems))
                return items
            problems.append(f"step {step}: rejected (non-finite values)")
        log.warning("checkpoint %s", problems[-1])
    if problems:
        raise ValueError(f"no usable checkpoint in {manager.directory}: {'; '.join(problems)}. Delete the "
                         "damaged step directories to start over, or train into a new workdir.")
    return None


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

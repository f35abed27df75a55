"""Scanning a stack of identical layers (`flax.linen.scan`), and converting its parameters.

A network with `scan_layers=True` runs its `depth` identical blocks as one `lax.scan` (a while loop
in the HLO) over parameters stacked on a leading axis of length `depth`, so the traced and compiled
program holds one block whatever the depth: compile time stops growing with depth. The stacked
parameters carry the logical axis name `LAYERS_AXIS` first (replicated by
`diffjax.training.parallel.LOGICAL_AXIS_RULES`); with `remat` the block is rematerialised in the
backward pass (`nn.remat` inside the scan: one block's activations live at a time).

Parameter trees: an unscanned network names its blocks `<prefix><i>` (DiffWave `layer_0..`,
DiT `block_0..`); the scanned one holds them as one subtree `<stacked>` with leaves `[depth, ...]`.
`stack_layers` / `unstack_layers` convert between the two exactly (a stack and an index), so a
checkpoint of either layout loads into the other.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

LAYERS_AXIS = "layers"  # the logical axis name of the stacked (leading) parameter axis
# unscanned block prefix -> the scanned subtree's name, for the networks with `scan_layers`
SCANNED_NAMES = {"layer_": "layers", "block_": "blocks"}


def scan_blocks(body: Callable, *, length: int, in_axes: tuple, remat: bool = False,
                policy: Callable | None = None) -> Callable:
    """`nn.scan` of `body(block, carry, *xs) -> (carry, None)` over `length` blocks.

    Parameters are stacked on axis 0 (`variable_axes={'params': 0}`) and named `LAYERS_AXIS`;
    'params' and 'dropout' rngs are split per block. `in_axes` has one entry per `xs`: 0 for
    a per-block input `[length, ...]`, `nn.broadcast` for one shared by every block (conditioning).
    Call the result as `fn(Block(..., name=stacked), carry, *xs) -> (carry, None)`.

    `policy` (without `remat`): a `jax.checkpoint_policies` policy choosing the intermediates each
    block keeps for its backward pass; the rest is recomputed. A scan stacks every kept
    intermediate into a zero-initialised `[length, ...]` buffer, so keeping only what is costly to
    recompute (a matmul's output, not the concatenation feeding it) saves both memory and time.
    """
    if remat:  # prevent_cse=False: inside a scan CSE cannot merge recomputations
        body = nn.remat(body, prevent_cse=False)
    elif policy is not None:
        body = nn.remat(body, prevent_cse=False, policy=policy)
    return nn.scan(body, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
                   in_axes=in_axes, length=length, metadata_params={nn.PARTITION_NAME: LAYERS_AXIS})


def _indices(params: Mapping, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)$")
    found = sorted(int(m.group(1)) for k in params if (m := pattern.match(k)))
    if found and found != list(range(len(found))):
        raise ValueError(f"blocks {prefix}<i> must be numbered 0..n-1; found {found}")
    return found


def stack_layers(params: Mapping[str, Any], *, names: Mapping[str, str] = SCANNED_NAMES) -> dict:
    """Unscanned parameters -> scanned: `{prefix0: t0, .., prefix{n-1}: t_{n-1}, ..}` becomes
    `{stacked: stack(t0..t_{n-1}), ..}` (leaves `[n, ...]`) for each `prefix -> stacked` of
    `names` found at the top level of `params` (the network's parameters); the rest is kept."""
    out = dict(params)
    for prefix, stacked in names.items():
        idx = _indices(params, prefix)
        if not idx:
            continue
        if stacked in params:
            raise ValueError(f"parameters hold both {prefix}<i> and {stacked!r}: mixed layouts")
        blocks = [out.pop(f"{prefix}{i}") for i in idx]
        out[stacked] = jax.tree.map(lambda *xs: jnp.stack(xs), *blocks)
    return out


def unstack_layers(params: Mapping[str, Any], *, names: Mapping[str, str] = SCANNED_NAMES) -> dict:
    """Scanned parameters -> unscanned: the inverse of `stack_layers` (`stacked` with leaves
    `[n, ...]` becomes `prefix0..prefix{n-1}`)."""
    out = dict(params)
    for prefix, stacked in names.items():
        if stacked not in params:
            continue
        if _indices(params, prefix):
            raise ValueError(f"parameters hold both {prefix}<i> and {stacked!r}: mixed layouts")
        tree = out.pop(stacked)
        depth = {x.shape[0] for x in jax.tree.leaves(tree)}
        if len(depth) != 1:
            raise ValueError(f"{stacked!r} leaves disagree on the layer axis length: {sorted(depth)}")
        for i in range(depth.pop()):
            out[f"{prefix}{i}"] = jax.tree.map(lambda x: x[i], tree)
    return out

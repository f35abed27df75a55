"""The network registry (`MODELS`): each registered flax module is called as
`net.apply({"params": params}, x, c_noise, cond=None) -> F` (see `diffjax.models`)."""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
from jax.sharding import PartitionSpec

from diffjax.registry import Registry

MODELS = Registry("model")


def get_model(name: str, **kwargs):
    """Builds the network registered as `name` with its constructor keyword arguments."""
    return MODELS.get(name)(**kwargs)


def preset_parameters(module_class, *presets: str) -> frozenset:
    """The config keys of a builder `name(size=..., **overrides) -> module_class(...)`: the preset
    arguments plus every field of the flax module (registered as the metadata `parameters`)."""
    fields = {f.name for f in dataclasses.fields(module_class)} - {"parent", "name"}
    return frozenset(fields | set(presets))


def _is_box(x) -> bool:
    return isinstance(x, nn.meta.AxisMetadata)


def unbox(variables: Any) -> Any:
    """Initialised variables with their sharding annotations (`nn.LogicallyPartitioned`) removed:
    the plain arrays that are trained, checkpointed and passed to `apply`."""
    return nn.meta.unbox(variables)


def logical_axes(boxed: Any) -> Any:
    """The logical axis names of (abstract) initialised variables: a `PartitionSpec` per leaf, of
    the names in `diffjax.models.layers.kernel_axes` (empty for an unannotated leaf: replicated)."""
    return jax.tree.map(lambda x: PartitionSpec(*x.names) if isinstance(x, nn.LogicallyPartitioned) else PartitionSpec(),
                        boxed, is_leaf=_is_box)

"""The network registry (`MODELS`): each registered flax module is called as
`net.apply({"params": params}, x, c_noise, cond=None) -> F` (see `diffjax.models`)."""
from __future__ import annotations

import dataclasses

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

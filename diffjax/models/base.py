"""The network registry (`MODELS`): each registered flax module is called as
`net.apply({"params": params}, x, c_noise, cond=None) -> F` (see `diffjax.models`)."""
from __future__ import annotations

from diffjax.registry import Registry

MODELS = Registry("model")


def get_model(name: str, **kwargs):
    """Builds the network registered as `name` with its constructor keyword arguments."""
    return MODELS.get(name)(**kwargs)

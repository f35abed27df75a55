"""diffjax: diffusion models for music and sound in JAX/Flax.

Every process is `alpha(t), sigma(t)`; in the VE view `x/alpha, sigma/alpha` the denoiser
`D(x, sigma)` is the universal interface of samplers, losses, likelihoods and restoration.

    import diffjax
    diffjax.list_registries()   # {'sde': ['cosine', 'edm', ...], 'sampler': [...], ...}
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# (module, registry attribute) for every registered concept; modules that do not exist yet are skipped.
_REGISTRIES = [
    ("diffjax.sde", "SDES"),
    ("diffjax.precond", "PRECONDS"),
    ("diffjax.losses", "NOISE_LEVELS"),
    ("diffjax.losses", "WEIGHTINGS"),
    ("diffjax.sampling", "GRIDS"),
    ("diffjax.sampling", "SAMPLERS"),
    ("diffjax.likelihood", "DIVERGENCES"),
    ("diffjax.guidance", "GUIDANCE"),
    ("diffjax.restoration", "OPERATORS"),
    ("diffjax.restoration", "METHODS"),
    ("diffjax.models", "MODELS"),
    ("diffjax.audio", "CODECS"),
    ("diffjax.evaluation", "EMBEDDERS"),
    ("diffjax.data", "DATASETS"),
]


def list_registries() -> dict[str, list[str]]:
    """Every registry's concept name mapped to its registered names (one call lists them all)."""
    importlib.import_module("diffjax.toy")  # registers the toy datasets
    for module in ("diffjax.audio",):
        try:
            importlib.import_module(module)  # registers audio datasets and codecs
        except ModuleNotFoundError:
            pass
    listing = {}
    for module_name, attribute in _REGISTRIES:
        try:
            registry = getattr(importlib.import_module(module_name), attribute)
        except (ModuleNotFoundError, AttributeError):
            continue
        listing[registry.concept] = registry.names()
    return listing

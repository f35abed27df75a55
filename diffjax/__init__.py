"""diffjax: diffusion models for music and sound in JAX/Flax.

Every process is `alpha(t), sigma(t)`; in the VE view `x/alpha, sigma/alpha` the denoiser
`D(x, sigma)` is the universal interface of samplers, losses, likelihoods and restoration.

    import diffjax
    diffjax.list_registries()   # {'sde': ['cosine', 'edm', ...], 'sampler': [...], ...}

Importing `diffjax` imports the whole library (not the jobs layer, `diffjax.jobs`), so every
registry is filled.
"""
from __future__ import annotations

from diffjax import registry
from diffjax import sde, precond, losses, guidance, conditioners, data, toy  # noqa: F401
from diffjax import sampling, models, audio  # noqa: F401
from diffjax import likelihood, restoration, distillation, evaluation  # noqa: F401
from diffjax import model  # noqa: F401

__version__ = "0.2.0"


def list_registries() -> dict[str, list[str]]:
    """Every registry's concept name mapped to its registered names (one call lists them all)."""
    return {r.concept: r.names() for r in registry.all_registries()}

"""Shared data for the sampler tests: toy targets with exact denoisers (diffjax.toy)."""
import jax
import jax.numpy as jnp
import pytest

from diffjax import toy
from diffjax.sampling import SAMPLERS


def as_dtype(mixture, dtype):
    return jax.tree.map(lambda a: a.astype(dtype), mixture)


def own_samplers():
    """Samplers of the diffusion process, for any denoiser: all but those of distilled students
    (diffjax.sampling.consistency, tested in tests/distillation) and any a test registers."""
    return [n for n in SAMPLERS.names() if SAMPLERS.get(n).__module__.startswith("diffjax.sampling")
            and SAMPLERS.get(n).__module__ != "diffjax.sampling.consistency"]


def deterministic_samplers():
    return [n for n in own_samplers() if n in SAMPLERS.names(stochastic=False)]


def stochastic_samplers():
    return [n for n in own_samplers() if n in SAMPLERS.names(stochastic=True)]


@pytest.fixture(scope="session")
def gaussian():
    """An anisotropic 2-D Gaussian: its PF-ODE map is closed form (`ode_map`) and nonlinear in sigma."""
    return toy.gaussian(dim=2, mean=[0.3, -0.2], std=[0.5, 1.5])


@pytest.fixture(scope="session")
def mixture():
    """Eight well-separated modes on the unit circle (std 0.1)."""
    return toy.gmm(dim=2, num_modes=8, radius=1.0, std=0.1)

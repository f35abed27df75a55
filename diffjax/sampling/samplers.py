"""Samplers: `sample(denoiser, x_init, sigmas, *, key=None, **options) -> x`, one function each.

`denoiser(x, sigma) -> x0_hat` in the VE view; `sigmas` decreasing, ending in 0; `x_init` already
scaled by `sigmas[0]`. Loops are `lax.scan` over `(sigma_cur, sigma_next)` pairs.
"""
from __future__ import annotations

import jax

from diffjax.precond import denoiser_to_ode_derivative
from diffjax.registry import Registry

SAMPLERS = Registry("sampler")


def get_sampler(name: str):
    """The sampler function registered as `name`."""
    return SAMPLERS.get(name)


def _pairs(sigmas):
    return sigmas[:-1], sigmas[1:]


@SAMPLERS.register("euler")
def sample_euler(denoiser, x_init, sigmas, *, key=None, hook=None):
    """Euler on the PF-ODE `dx/dsigma = (x - D(x, sigma))/sigma` (Karras et al. 2022, Alg. 1 w/o 2nd order).

    NFE = len(sigmas) - 1.
    """
    del key

    def step(x, pair):
        sigma, sigma_next = pair
        d = denoiser_to_ode_derivative(x=x, x0=denoiser(x, sigma), sigma=sigma)
        x = x + (sigma_next - sigma) * d
        return (x if hook is None else hook(x, sigma_next)), None

    x, _ = jax.lax.scan(step, x_init, _pairs(sigmas))
    return x

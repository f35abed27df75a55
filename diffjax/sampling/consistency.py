"""Few-step sampling of distilled students: the sampler 'consistency' and the grid 'nested_karras'.

    sigmas = get_grid("nested_karras")(2, 0.002, 80.0)            # [80, sigma_mid, 0]
    x = get_sampler("consistency")(student, sigmas[0] * noise, sigmas, key=key)

Both are made for the students of `diffjax.distillation` (consistency models, Song et al. 2023;
progressive distillation, Salimans & Ho 2022), not for a plain diffusion denoiser: with an exact
denoiser the consistency sampler returns posterior means, not samples. `nested_karras` is also the
grid a progressive student samples on (with e.g. 'ddim').
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax.sampling.grids import GRIDS, append_zero, check_grid_args
from diffjax.sampling.loop import check_concrete_range, denoise_final, run
from diffjax.sampling.samplers import SAMPLERS, one_per_level


@GRIDS.register("nested_karras", process_time=False)
def nested_karras(num_steps: int, sigma_min: float, sigma_max: float, *, rho: float = 7.0) -> jax.Array:
    """EDM's rho-ramp from `sigma_max` towards `sigma_min`, sampled at `u = i/N`, `i = 0..N-1`, then 0.

    The end of the ramp (`u = 1`, `sigma_min`) is replaced by the exact 0, as in Salimans & Ho
    (2022)'s `t_i = i/N` grid. Two properties follow, which the few-step students rely on:

    - halving `N` keeps every other level (the grid of `N/2` steps is nested in that of `N`), so a
      progressively distilled student samples on exactly the levels it was trained on;
    - one step is `[sigma_max, 0]`, and a consistency model never wastes a call at `sigma_min`, where
      it is the identity.
    """
    check_grid_args(num_steps, sigma_min, sigma_max)
    u = jnp.arange(num_steps, dtype=jnp.float32) / num_steps
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return append_zero((hi + u * (lo - hi)) ** rho)


@SAMPLERS.register("consistency", nfe=one_per_level, stochastic=True, order=0)
def sample_consistency(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None,
                       sigma_min: float = 0.0):
    """Multistep consistency sampling (Song et al. 2023, Alg. 1) on the grid's levels.

    `x = f(x_init, sigmas[0])`; then at every further positive level `tau`:
    `x = f(x + sqrt(tau^2 - sigma_min^2) z, tau)`. With one positive level (`[sigma_max, 0]`) this
    is one-step generation and needs no key. NFE = N.

    Args:
      sigma_min: the student's boundary level (its output carries that much noise), so the
        re-noised state sits at exactly `tau`; 0 treats the output as clean (the difference is
        `sigma_min^2 / (2 tau)`, negligible on the usual grids).
    """
    check_concrete_range("consistency: sigma_min", sigma_min, 0.0, float("inf"))

    one_step = jnp.shape(sigmas)[0] == 2  # the scan body is traced but never run: no noise, no key

    def step(x, state, ctx):
        denoised = ctx.denoise(x, ctx.sigma)
        if one_step:
            return denoised, denoised, state
        std = jnp.sqrt(jnp.maximum(ctx.sigma_next**2 - sigma_min**2, 0.0))
        return denoised + std * ctx.noise(denoised), denoised, state

    return run(step, denoiser, x_init, sigmas, sampler="consistency", final=denoise_final, key=key,
               hook=hook, callback=callback)

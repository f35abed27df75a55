"""Few-step samplers for consistency students, registered in `diffjax.sampling.SAMPLERS`.

Importing this module (done by `diffjax.sampling`) registers

- the sampler 'consistency': one- and multistep consistency sampling (Song et al. 2023, Alg. 1);
- the grid 'nested_karras' (`diffjax.distillation.schedules`), whose levels are the multistep
  schedule: `num_steps=1` is one-step generation `[sigma_max, 0]`;
- the parameterisation 'consistency' (`diffjax.distillation.parameterisation`).

so `generation.generate(config, params, sampler="consistency", grid="nested_karras", num_steps=2)`,
sample.py, restore.py and the benchmarks reach them by name.
"""
from __future__ import annotations

import jax.numpy as jnp

from diffjax.distillation import parameterisation, schedules  # noqa: F401  (registrations)
from diffjax.sampling.loop import check_concrete_range, denoise_final, run
from diffjax.sampling.samplers import one_per_level, register_sampler


@register_sampler("consistency", nfe=one_per_level, stochastic=True, order=0)
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

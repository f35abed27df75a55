"""Samplers and noise-level grids, written once on the VE-view denoiser `D(x, sigma)`.

    sigmas = get_grid("karras")(num_steps, sigma_min, sigma_max)      # decreasing, ends in 0
    x = get_sampler("euler")(denoiser, sigmas[0] * noise, sigmas, key=key)
"""
from diffjax.sampling.grids import GRIDS, get_grid, validate_grid  # noqa: F401
from diffjax.sampling.samplers import SAMPLERS, get_sampler  # noqa: F401

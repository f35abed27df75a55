"""Samplers and noise-level grids, written once on the VE-view denoiser `D(x, sigma)`.

    sigmas = get_grid("karras")(num_steps, sigma_min, sigma_max)      # decreasing, ends in 0
    x = get_sampler("euler")(denoiser, sigmas[0] * noise, sigmas, key=key)
    SAMPLERS.meta("euler")                                            # {'nfe', 'stochastic', 'order'}

Every sampler is a module-level `def sample_<name>` (`grep "def sample_heun"` finds it) registered
with its metadata; every grid is a registered function. See docs/samplers.md for the full API, the
list of samplers and grids, and the benchmark.
"""
from diffjax.sampling.grids import GRIDS, get_grid, grid_for_process, validate_grid  # noqa: F401
from diffjax.sampling.loop import example_keys, initial_noise, seed_keys  # noqa: F401
from diffjax.sampling.samplers import SAMPLERS, get_sampler, nfe, steps_for_nfe  # noqa: F401
# Importing the implementations registers them.
from diffjax.sampling import ode, multistep, ancestral, sde_samplers, adaptive, consistency  # noqa: F401,E402
from diffjax.sampling.sde_samplers import CORRECTORS, PREDICTORS  # noqa: F401,E402
from diffjax.sampling.adaptive import ODE_SOLVERS  # noqa: F401,E402

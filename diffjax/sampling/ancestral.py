"""Ancestral samplers of k-diffusion: a deterministic step to `sigma_down`, then fresh noise `sigma_up`.

`ancestral_sigmas` splits `sigma -> sigma_next` with `sigma_down^2 + sigma_up^2 = sigma_next^2`;
eta = 1 is the DDPM posterior (so euler_ancestral with eta = 1 equals "ancestral"), eta = 0 the ODE.
The step to 0 is `D(x, sigma_last)`.
"""
from __future__ import annotations

from diffjax.sampling.loop import check_concrete_range, denoise_final, run
from diffjax.sampling.multistep import dpmpp_2s_step
from diffjax.sampling.ode import dpm_2_step
from diffjax.sampling.samplers import SAMPLERS, one_per_level, stages_per_level
from diffjax.sampling.steps import ancestral_sigmas, euler_step


def euler_move(x, denoised, ctx, sigma_down):
    """An Euler step from `ctx.sigma` to `sigma_down`."""
    return euler_step(x, denoised, ctx.sigma, sigma_down)


def ancestral(name: str, move, denoiser, x_init, sigmas, *, key, hook, callback, eta, s_noise):
    """Runs sampler `name`: `move(x, D, ctx, sigma_down)` to `sigma_down`, then `sigma_up s_noise z`."""
    check_concrete_range(f"{name}: eta", eta, 0.0, 1.0)  # eta <= 1 keeps sigma_down > 0

    def step(x, state, ctx):
        denoised = ctx.denoise(x, ctx.sigma)
        sigma_down, sigma_up = ancestral_sigmas(ctx.sigma, ctx.sigma_next, eta)
        x = move(x, denoised, ctx, sigma_down) + sigma_up * s_noise * ctx.noise(x)
        return x, denoised, state

    return run(step, denoiser, x_init, sigmas, sampler=name, final=denoise_final, key=key,
               hook=hook, callback=callback)


@SAMPLERS.register("euler_ancestral", nfe=one_per_level, stochastic=True, order=0)
def sample_euler_ancestral(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None, eta=1.0,
                           s_noise=1.0):
    """Euler ancestral (k-diffusion `sample_euler_ancestral`): an Euler step to sigma_down plus
    sigma_up noise; eta = 1 is DDPM's ancestral sampler (Ho et al. 2020), eta in (0, 1) DDIM's eta.
    NFE = N."""
    return ancestral("euler_ancestral", euler_move, denoiser, x_init, sigmas, key=key, hook=hook,
                     callback=callback, eta=eta, s_noise=s_noise)


@SAMPLERS.register("dpm_2_ancestral", nfe=stages_per_level(2), stochastic=True, order=0)
def sample_dpm_2_ancestral(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None, eta=1.0,
                           s_noise=1.0):
    """DPM-2 ancestral (k-diffusion `sample_dpm_2_ancestral`): a DPM-2 step to sigma_down plus
    sigma_up noise. NFE = 2N - 1."""
    return ancestral("dpm_2_ancestral", dpm_2_step, denoiser, x_init, sigmas, key=key, hook=hook,
                     callback=callback, eta=eta, s_noise=s_noise)


@SAMPLERS.register("dpmpp_2s_ancestral", nfe=stages_per_level(2), stochastic=True, order=0)
def sample_dpmpp_2s_ancestral(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None,
                              eta=1.0, s_noise=1.0):
    """DPM-Solver++(2S) ancestral (k-diffusion `sample_dpmpp_2s_ancestral`; Lu et al. 2022b, Alg. 1):
    a 2S step (r = 1/2) to sigma_down plus sigma_up noise. NFE = 2N - 1."""
    return ancestral("dpmpp_2s_ancestral", dpmpp_2s_step, denoiser, x_init, sigmas, key=key,
                     hook=hook, callback=callback, eta=eta, s_noise=s_noise)

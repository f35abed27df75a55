"""Ancestral samplers of k-diffusion: a deterministic step to `sigma_down`, then fresh noise `sigma_up`.

`ancestral_sigmas` splits `sigma -> sigma_next` with `sigma_down^2 + sigma_up^2 = sigma_next^2`;
eta = 1 is the DDPM posterior (so euler_ancestral with eta = 1 equals "ancestral"), eta = 0 the ODE.
The step to 0 is `D(x, sigma_last)`.
"""
from __future__ import annotations

from diffjax.sampling.loop import check_concrete_range, denoise_final, run
from diffjax.sampling.multistep import dpmpp_2s_step
from diffjax.sampling.ode import dpm_2_step
from diffjax.sampling.samplers import one_per_level, register_sampler, stages_per_level
from diffjax.sampling.steps import ancestral_sigmas, euler_step


def _euler_move(x, denoised, ctx, sigma_down):
    return euler_step(x, denoised, ctx.sigma, sigma_down)


def _ancestral(name: str, move, nfe, doc: str):
    """Registers `name`: `move(x, D, ctx, sigma_down)` to `sigma_down`, then `sigma_up s_noise z`."""

    @register_sampler(name, nfe=nfe, stochastic=True)
    def sample(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None, eta=1.0, s_noise=1.0):
        check_concrete_range(f"{name}: eta", eta, 0.0, 1.0)  # eta <= 1 keeps sigma_down > 0

        def step(x, state, ctx):
            denoised = ctx.denoise(x, ctx.sigma)
            sigma_down, sigma_up = ancestral_sigmas(ctx.sigma, ctx.sigma_next, eta)
            x = move(x, denoised, ctx, sigma_down) + sigma_up * s_noise * ctx.noise(x)
            return x, denoised, state

        return run(step, denoiser, x_init, sigmas, sampler=name, final=denoise_final, key=key,
                   hook=hook, callback=callback)

    sample.__name__, sample.__doc__ = f"sample_{name}", doc
    return sample


sample_euler_ancestral = _ancestral("euler_ancestral", _euler_move, one_per_level, """Euler ancestral
    (k-diffusion `sample_euler_ancestral`): an Euler step to sigma_down plus sigma_up noise; eta = 1
    is DDPM's ancestral sampler (Ho et al. 2020), eta in (0, 1) DDIM's eta. NFE = N.""")
sample_dpm_2_ancestral = _ancestral("dpm_2_ancestral", dpm_2_step, stages_per_level(2), """DPM-2
    ancestral (k-diffusion `sample_dpm_2_ancestral`): a DPM-2 step to sigma_down plus sigma_up noise.
    NFE = 2N - 1.""")
sample_dpmpp_2s_ancestral = _ancestral(
    "dpmpp_2s_ancestral", lambda x, d, ctx, sd: dpmpp_2s_step(x, d, ctx, sd), stages_per_level(2),
    """DPM-Solver++(2S) ancestral (k-diffusion `sample_dpmpp_2s_ancestral`; Lu et al. 2022b, Alg. 1):
    a 2S step to sigma_down plus sigma_up noise. NFE = 2N - 1.""")

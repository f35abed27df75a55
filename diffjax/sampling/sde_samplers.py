"""Reverse-SDE samplers of score_sde and EDM: Euler-Maruyama, reverse diffusion, ancestral (DDPM),
Langevin and annealed-Langevin correctors, predictor-corrector, and EDM's stochastic sampler.

In the VE view every process is the VE process indexed by `sigma~` (DESIGN.md), whose forward SDE
in "time" sigma is `dx = sqrt(d sigma^2/d sigma) dw = sqrt(2 sigma) dw`. Its reverse (Song et al.
2021, eq. 6, with `f = 0`, `g^2 = 2 sigma`) run from sigma down to sigma_next is

    dx = -2 sigma score(x, sigma) dsigma + sqrt(2 sigma) dw_bar,   score = (D(x, sigma) - x) / sigma^2

so these samplers are the same for every process: a process only changes the grid. The step to 0
of every sampler here is the denoised mean `D(x, sigma_last)`, score_sde's `noise_removal`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax.registry import Registry
from diffjax.sampling.loop import denoise_final, run
from diffjax.sampling.samplers import SAMPLERS, one_per_level, stages_per_level
from diffjax.sampling.steps import (ancestral_sigmas, churn, churn_gamma, euler_step,
                                    per_example_norm, to_d)

PREDICTORS = Registry("predictor")
CORRECTORS = Registry("corrector")


# --------------------------------------------------------------------------------------
# Predictors: (x, denoised at ctx.sigma, ctx) -> x at ctx.sigma_next, drawing noise from stream 1
# --------------------------------------------------------------------------------------


@PREDICTORS.register("euler_maruyama")
def euler_maruyama_move(x, denoised, ctx):
    """Euler-Maruyama on the reverse SDE (Song et al. 2021, App. G): with `ds = sigma - sigma_next`,
    `x + 2 sigma ds score + sqrt(2 sigma ds) z`."""
    ds = ctx.sigma - ctx.sigma_next
    score = (denoised - x) / ctx.sigma**2
    return x + 2.0 * ctx.sigma * ds * score + jnp.sqrt(2.0 * ctx.sigma * ds) * ctx.noise(x)


@PREDICTORS.register("reverse_diffusion")
def reverse_diffusion_move(x, denoised, ctx):
    """Reverse diffusion predictor (Song et al. 2021, eq. 46 for SMLD): the forward step's
    discretisation `x_i = x_(i-1) + sqrt(sigma_i^2 - sigma_(i-1)^2) z` reversed:
    `x + (sigma^2 - sigma_next^2) score + sqrt(sigma^2 - sigma_next^2) z`."""
    var = ctx.sigma**2 - ctx.sigma_next**2
    return x + var * (denoised - x) / ctx.sigma**2 + jnp.sqrt(var) * ctx.noise(x)


@PREDICTORS.register("ancestral")
def ancestral_move(x, denoised, ctx):
    """Ancestral sampling (Ho et al. 2020, Alg. 2; Song et al. 2021, eq. 47): the posterior
    `q(x_next | x, x0 = D)`, mean `(s'^2/s^2) x + (1 - s'^2/s^2) D`, std `s' sqrt(1 - s'^2/s^2)`."""
    sigma_down, sigma_up = ancestral_sigmas(ctx.sigma, ctx.sigma_next, 1.0)
    return euler_step(x, denoised, ctx.sigma, sigma_down) + sigma_up * ctx.noise(x)


@PREDICTORS.register("none")
def no_move(x, denoised, ctx):
    """Corrector-only sampling (score_sde's `NonePredictor`): the state moves to the next level as is."""
    return x


# --------------------------------------------------------------------------------------
# Correctors: Langevin MCMC at a fixed level, n steps, streams 2, 3, ...
# --------------------------------------------------------------------------------------


def _langevin(x, ctx, n_steps: int, step_size):
    """`n_steps` of `x + eps score + sqrt(2 eps) z` at level `ctx.sigma`, `eps = step_size(score, z)`."""

    def body(j, x):
        score = (ctx.denoise(x, ctx.sigma) - x) / ctx.sigma**2
        z = ctx.noise(x, stream=2 + j)
        eps = step_size(score, z)
        return x + eps * score + jnp.sqrt(2.0 * eps) * z

    return jax.lax.fori_loop(0, n_steps, body, x)


@CORRECTORS.register("langevin")
def langevin_correct(x, ctx, *, snr, n_steps):
    """Langevin corrector with a target signal-to-noise ratio (Song et al. 2021, Alg. 4):
    `eps = 2 (snr ||z|| / ||score||)^2`, the norms averaged over the batch as in score_sde.

    The batch average matters: with per-example norms the step size depends on the state and on
    the very noise it scales, and the chain no longer leaves `p_sigma` invariant (measured on a
    16-D Gaussian: +10-25% std after 200 steps, against < 2% with batch norms). This one scalar is
    therefore shared by the batch, the only place where a sample depends on the other examples;
    `annealed_langevin` is the batch-independent alternative.
    """
    def step_size(score, z):
        return 2.0 * (snr * jnp.mean(per_example_norm(z)) / jnp.mean(per_example_norm(score))) ** 2

    return _langevin(x, ctx, n_steps, step_size)


@CORRECTORS.register("annealed_langevin")
def annealed_langevin_correct(x, ctx, *, snr, n_steps):
    """Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1; score_sde `AnnealedLangevinDynamics`):
    `eps = 2 (snr sigma)^2`, i.e. NCSN's `eps sigma_i^2 / sigma_L^2` with `snr^2 = eps / (2 sigma_L^2)`."""
    return _langevin(x, ctx, n_steps, lambda score, z: 2.0 * (snr * ctx.sigma) ** 2)


@CORRECTORS.register("none")
def no_correct(x, ctx, *, snr, n_steps):
    return x


# --------------------------------------------------------------------------------------
# Predictor-corrector and its special cases
# --------------------------------------------------------------------------------------


def pc_nfe(n: int, *, predictor: str = "reverse_diffusion", corrector: str = "langevin",
           n_corrector_steps: int = 1) -> int:
    """`N (n_corrector_steps + 1)`; `N n_corrector_steps + 1` without a predictor."""
    per_level = 0 if corrector == "none" else n_corrector_steps
    return n * per_level + (1 if predictor == "none" else n)


def predictor_corrector(name, denoiser, x_init, sigmas, *, key, hook, callback, predictor, corrector,
                        snr, n_corrector_steps):
    """Runs sampler `name`: at each level the corrector, then the predictor to the next level."""
    move, correct = PREDICTORS.get(predictor), CORRECTORS.get(corrector)
    if int(n_corrector_steps) != n_corrector_steps or n_corrector_steps < 0:
        raise ValueError(f"{name}: n_corrector_steps must be a non-negative integer, got {n_corrector_steps}")

    def corrected(x, ctx):
        return correct(x, ctx, snr=snr, n_steps=int(n_corrector_steps))

    def step(x, state, ctx):
        x = corrected(x, ctx)
        if predictor == "none":
            return x, x, state
        denoised = ctx.denoise(x, ctx.sigma)
        return move(x, denoised, ctx), denoised, state

    def final(x, state, ctx):
        return denoise_final(corrected(x, ctx), state, ctx)

    return run(step, denoiser, x_init, sigmas, sampler=name, final=final, key=key, hook=hook,
               callback=callback)


@SAMPLERS.register("pc", nfe=pc_nfe, stochastic=True, order=0)
def sample_pc(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None,
              predictor: str = "reverse_diffusion",  # a name in PREDICTORS
              corrector: str = "langevin",  # a name in CORRECTORS
              snr: float = 0.16,  # score_sde's VE setting (Song et al. 2021, App. G)
              n_corrector_steps: int = 1):
    """Predictor-corrector sampling (Song et al. 2021, Alg. 1; score_sde `pc_sampler`): at each level,
    `n_corrector_steps` corrector steps, then one predictor step to the next level.
    NFE = N (n_corrector_steps + 1), or N n_corrector_steps + 1 with predictor 'none'."""
    return predictor_corrector("pc", denoiser, x_init, sigmas, key=key, hook=hook, callback=callback,
                               predictor=predictor, corrector=corrector, snr=snr,
                               n_corrector_steps=n_corrector_steps)


def predictor_only(name: str, denoiser, x_init, sigmas, *, key, hook, callback):
    """Runs the predictor `name` alone, then the denoised step to 0."""
    return predictor_corrector(name, denoiser, x_init, sigmas, key=key, hook=hook, callback=callback,
                               predictor=name, corrector="none", snr=0.0, n_corrector_steps=0)


@SAMPLERS.register("euler_maruyama", nfe=one_per_level, stochastic=True, order=0)
def sample_euler_maruyama(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None):
    """Euler-Maruyama on the reverse SDE (Song et al. 2021, App. G), then the denoised step to 0.
    NFE = N."""
    return predictor_only("euler_maruyama", denoiser, x_init, sigmas, key=key, hook=hook,
                          callback=callback)


@SAMPLERS.register("reverse_diffusion", nfe=one_per_level, stochastic=True, order=0)
def sample_reverse_diffusion(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None):
    """score_sde's reverse-diffusion predictor alone (Song et al. 2021, eq. 46). NFE = N."""
    return predictor_only("reverse_diffusion", denoiser, x_init, sigmas, key=key, hook=hook,
                          callback=callback)


@SAMPLERS.register("ancestral", nfe=one_per_level, stochastic=True, order=0)
def sample_ancestral(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None):
    """Ancestral (DDPM) sampling (Ho et al. 2020, Alg. 2), the posterior step `q(x_next | x, x0 = D)`;
    equal to euler_ancestral with eta = 1. NFE = N."""
    return predictor_only("ancestral", denoiser, x_init, sigmas, key=key, hook=hook, callback=callback)


def corrector_nfe(n: int, *, n_steps: int = 1) -> int:
    """`N n_steps + 1`: `n_steps` corrector calls per level, then the step to 0."""
    return n * n_steps + 1


def corrector_only(name: str, denoiser, x_init, sigmas, *, key, hook, callback, snr, n_steps):
    """Runs the corrector `name` alone, `n_steps` per level, then the denoised step to 0."""
    return predictor_corrector(name, denoiser, x_init, sigmas, key=key, hook=hook, callback=callback,
                               predictor="none", corrector=name, snr=snr, n_corrector_steps=n_steps)


@SAMPLERS.register("langevin", nfe=corrector_nfe, stochastic=True, order=0)
def sample_langevin(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None, snr=0.16,
                    n_steps: int = 1):
    """Langevin corrector alone, `n_steps` per level (Song et al. 2021, Alg. 4 with score_sde's
    `NonePredictor`), then the denoised step to 0. NFE = N n_steps + 1."""
    return corrector_only("langevin", denoiser, x_init, sigmas, key=key, hook=hook, callback=callback,
                          snr=snr, n_steps=n_steps)


@SAMPLERS.register("annealed_langevin", nfe=corrector_nfe, stochastic=True, order=0)
def sample_annealed_langevin(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None,
                             snr=0.16, n_steps: int = 1):
    """Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1): `n_steps` Langevin steps of size
    `2 (snr sigma)^2` per level, then the denoised step to 0. NFE = N n_steps + 1."""
    return corrector_only("annealed_langevin", denoiser, x_init, sigmas, key=key, hook=hook,
                          callback=callback, snr=snr, n_steps=n_steps)


# --------------------------------------------------------------------------------------
# EDM's stochastic sampler
# --------------------------------------------------------------------------------------


@SAMPLERS.register("edm_stochastic", nfe=stages_per_level(2), stochastic=True, order=0)
def sample_edm_stochastic(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None,
                          s_churn: float = 80.0,  # Table 5, ImageNet-64
                          s_tmin: float = 0.05,
                          s_tmax: float = 50.0,
                          s_noise: float = 1.0):  # Table 5 uses 1.003 against a network's
    # over-denoising; 1 is exact for an exact denoiser.
    """EDM's stochastic sampler (Karras et al. 2022, Alg. 2): churn the level up to
    `sigma_hat = (1 + gamma) sigma`, then a Heun step to `sigma_next` (Euler for the step to 0).
    NFE = 2N - 1."""
    num_steps = jnp.shape(sigmas)[0] - 1

    def churned(x, ctx):
        gamma = churn_gamma(ctx.sigma, num_steps, s_churn, s_tmin, s_tmax)
        x_hat, sigma_hat = churn(x, ctx.sigma, gamma, ctx.noise(x), s_noise)
        return x_hat, sigma_hat, ctx.denoise(x_hat, sigma_hat)

    def step(x, state, ctx):
        x_hat, sigma_hat, denoised = churned(x, ctx)
        d = to_d(x_hat, denoised, sigma_hat)
        x_euler = x_hat + (ctx.sigma_next - sigma_hat) * d
        d_next = to_d(x_euler, ctx.denoise(x_euler, ctx.sigma_next), ctx.sigma_next)
        return x_hat + (ctx.sigma_next - sigma_hat) * 0.5 * (d + d_next), denoised, state

    def final(x, state, ctx):
        _, _, denoised = churned(x, ctx)
        return denoised, denoised, state

    return run(step, denoiser, x_init, sigmas, sampler="edm_stochastic", final=final, key=key,
               hook=hook, callback=callback)

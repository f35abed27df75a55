"""Probability-flow ODE samplers on the grid: Euler, Heun, DPM-2, LMS, DDIM and DPM-Solver-1/2/3.

All integrate `dx/dsigma = (x - D(x, sigma)) / sigma` (Karras et al. 2022, eq. 4) from `sigmas[0]`
to the last positive level; the step to 0 is the denoised estimate `D(x, sigma_last)` (Euler's
step to 0) unless stated otherwise. In the VE view several classical methods coincide, and the
tests check that they do: DDIM (eta = 0) = DPM-Solver-1 = Euler, and DPM-Solver-2 (r1 = 1/2) = DPM-2.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax.sampling.loop import check_concrete_range, denoise_final, run
from diffjax.sampling.samplers import SAMPLERS, one_per_level, stages_per_level
from diffjax.sampling.steps import ancestral_sigmas, euler_step, log_step, to_d


@SAMPLERS.register("euler", nfe=one_per_level, stochastic=False, order=1)
def sample_euler(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None):
    """Euler on the PF-ODE (Karras et al. 2022, Alg. 1 without the 2nd-order correction). NFE = N."""
    del key

    def step(x, state, ctx):
        denoised = ctx.denoise(x, ctx.sigma)
        return euler_step(x, denoised, ctx.sigma, ctx.sigma_next), denoised, state

    return run(step, denoiser, x_init, sigmas, sampler="euler", hook=hook, callback=callback)


@SAMPLERS.register("heun", nfe=stages_per_level(2), stochastic=False, order=2)
def sample_heun(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None):
    """EDM's deterministic sampler: Heun's 2nd-order method (Karras et al. 2022, Alg. 1).

    The step to 0 is an Euler step (line 8's condition), so NFE = 2N - 1.
    """
    del key

    def step(x, state, ctx):
        sigma, sigma_next = ctx.sigma, ctx.sigma_next
        denoised = ctx.denoise(x, sigma)
        d = to_d(x, denoised, sigma)
        x_euler = x + (sigma_next - sigma) * d
        d_next = to_d(x_euler, ctx.denoise(x_euler, sigma_next), sigma_next)
        return x + (sigma_next - sigma) * 0.5 * (d + d_next), denoised, state

    return run(step, denoiser, x_init, sigmas, sampler="heun", final=denoise_final, hook=hook,
               callback=callback)


def log_midpoint(sigma, sigma_next, r=0.5):
    """The level at fraction `r` of the step in `log sigma`: `sigma^(1-r) sigma_next^r`."""
    return jnp.exp((1.0 - r) * jnp.log(sigma) + r * jnp.log(sigma_next))


def dpm_2_step(x, denoised, ctx, sigma_next):
    """One DPM-2 step from `ctx.sigma` to `sigma_next > 0`: an Euler half-step to the log-midpoint,
    then a full step with the midpoint's derivative (Karras et al. 2022, sec. 3 / k-diffusion)."""
    sigma = ctx.sigma
    sigma_mid = log_midpoint(sigma, sigma_next)
    x_mid = x + (sigma_mid - sigma) * to_d(x, denoised, sigma)
    d_mid = to_d(x_mid, ctx.denoise(x_mid, sigma_mid), sigma_mid)
    return x + (sigma_next - sigma) * d_mid


@SAMPLERS.register("dpm_2", nfe=stages_per_level(2), stochastic=False, order=2)
def sample_dpm_2(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None):
    """DPM-2: the midpoint method in sigma with the midpoint at the geometric mean of the levels
    (k-diffusion's `sample_dpm_2`, after Lu et al. 2022a's DPM-Solver-2). NFE = 2N - 1."""
    del key

    def step(x, state, ctx):
        denoised = ctx.denoise(x, ctx.sigma)
        return dpm_2_step(x, denoised, ctx, ctx.sigma_next), denoised, state

    return run(step, denoiser, x_init, sigmas, sampler="dpm_2", final=denoise_final, hook=hook,
               callback=callback)


# --------------------------------------------------------------------------------------
# Linear multistep (Adams-Bashforth in sigma)
# --------------------------------------------------------------------------------------

_GAUSS_2 = (-0.5773502691896258, 0.5773502691896258)  # 2-point Gauss-Legendre: exact to degree 3


def lms_coefficients(nodes, sigma, sigma_next, order: int):
    """`int_sigma^sigma_next l_j(s) ds` for the Lagrange basis `l_j` on the first `order` nodes.

    The basis has degree `order - 1 <= 3`, so 2-point Gauss-Legendre quadrature is exact (k-diffusion
    integrates the same polynomials with scipy's `quad` on the host). Returns `[len(nodes)]`, zero
    beyond `order`.
    """
    half, mid = 0.5 * (sigma_next - sigma), 0.5 * (sigma_next + sigma)
    coeffs = []
    for j in range(nodes.shape[0]):
        if j >= order:
            coeffs.append(jnp.zeros_like(sigma))
            continue
        total = 0.0
        for g in _GAUSS_2:
            s = mid + half * g
            basis = 1.0
            for m in range(order):
                if m != j:
                    basis = basis * (s - nodes[m]) / (nodes[j] - nodes[m])
            total = total + half * basis
        coeffs.append(total)
    return jnp.stack(coeffs)


@SAMPLERS.register("lms", nfe=one_per_level, stochastic=False, order=4)
def sample_lms(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None, order: int = 4):
    """Linear multistep (variable-step Adams-Bashforth) on `dx/dsigma` with the last `order`
    derivatives (k-diffusion `sample_lms`; Karras et al. 2022, sec. 3). Starts at order 1 and
    gains one order per step. The step to 0 is an LMS step too. NFE = N.
    """
    del key
    if order not in (1, 2, 3, 4):
        raise ValueError(f"lms: order must be 1, 2, 3 or 4, got {order}")
    branches = [lambda nodes, s, sn, k=k: lms_coefficients(nodes, s, sn, k) for k in range(1, order + 1)]

    def step(x, state, ctx):
        derivs, nodes = state
        denoised = ctx.denoise(x, ctx.sigma)
        derivs = jnp.concatenate([to_d(x, denoised, ctx.sigma)[None], derivs[:-1]])
        nodes = jnp.concatenate([ctx.sigma[None], nodes[:-1]])
        current = jnp.minimum(ctx.i + 1, order) - 1
        coeffs = jax.lax.switch(current, branches, nodes, ctx.sigma, ctx.sigma_next)
        x = x + jnp.tensordot(coeffs, derivs, axes=1)
        return x, denoised, (derivs, nodes)

    state = (jnp.zeros((order,) + x_init.shape, x_init.dtype), jnp.ones((order,), x_init.dtype))
    return run(step, denoiser, x_init, sigmas, sampler="lms", state=state, hook=hook,
               callback=callback)


# --------------------------------------------------------------------------------------
# DDIM and DPM-Solver (noise prediction, single-step)
# --------------------------------------------------------------------------------------


@SAMPLERS.register("ddim", nfe=one_per_level, stochastic=False, order=1)
def sample_ddim(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None, eta=0.0):
    """DDIM (Song et al. 2021a, eq. 12) in the VE view: `x_next = D + sigma_down eps_hat + sigma_up z`.

    `eps_hat = (x - D)/sigma`, and `sigma_up = eta sigma_next sqrt(1 - sigma_next^2/sigma^2)` is
    eq. 16's `sigma_t(eta)` divided by `sqrt(abar_(t-1))`; `sigma_down^2 = sigma_next^2 - sigma_up^2`.
    eta = 0 (default) is deterministic and equals Euler; eta > 0 needs `key`. NFE = N.
    """
    check_concrete_range("ddim: eta", eta, 0.0, 1.0)
    deterministic = isinstance(eta, (int, float)) and eta == 0

    def step(x, state, ctx):
        denoised = ctx.denoise(x, ctx.sigma)
        sigma_down, sigma_up = ancestral_sigmas(ctx.sigma, ctx.sigma_next, eta)
        x_next = denoised + sigma_down * (x - denoised) / ctx.sigma
        if not deterministic:
            x_next = x_next + sigma_up * ctx.noise(x)
        return x_next, denoised, state

    return run(step, denoiser, x_init, sigmas, sampler="ddim", final=denoise_final, key=key,
               hook=hook, callback=callback)


def _eps(x, denoised, sigma):
    return (x - denoised) / sigma


def dpm_solver_step(x, eps0, ctx, order: int, r1: float, r2: float):
    """One noise-prediction DPM-Solver step with alpha = 1 (Lu et al. 2022a, eqs. 3.7-3.8, Algs. 1-2).

    With `h = log(sigma/sigma_next)` and `sigma_s e^{r h} = sigma`, every `sigma_s (e^{r h} - 1)` of
    the paper is `sigma - sigma_s`, which keeps the update exact and overflow-free.
    """
    sigma, sigma_next = ctx.sigma, ctx.sigma_next
    base = x - (sigma - sigma_next) * eps0
    if order == 1:
        return base
    h = log_step(sigma, sigma_next)
    sigma_1 = log_midpoint(sigma, sigma_next, r1)
    u1 = x - (sigma - sigma_1) * eps0
    diff1 = _eps(u1, ctx.denoise(u1, sigma_1), sigma_1) - eps0
    if order == 2:
        return base - (sigma - sigma_next) / (2.0 * r1) * diff1
    sigma_2 = log_midpoint(sigma, sigma_next, r2)
    phi_2 = (sigma - sigma_2) / (r2 * h) - sigma_2  # sigma_2 ((e^{r2 h} - 1)/(r2 h) - 1)
    u2 = x - (sigma - sigma_2) * eps0 - (r2 / r1) * phi_2 * diff1
    diff2 = _eps(u2, ctx.denoise(u2, sigma_2), sigma_2) - eps0
    phi = (sigma - sigma_next) / h - sigma_next  # sigma_next ((e^h - 1)/h - 1)
    return base - phi / r2 * diff2


def dpm_solver(name: str, order: int, denoiser, x_init, sigmas, *, hook, callback, r1: float = 0.5,
               r2: float = 1.0):
    """Runs DPM-Solver-`order` (`dpm_solver_step` on every level) as sampler `name`."""

    def step(x, state, ctx):
        denoised = ctx.denoise(x, ctx.sigma)
        x_next = dpm_solver_step(x, _eps(x, denoised, ctx.sigma), ctx, order, r1, r2)
        return x_next, denoised, state

    return run(step, denoiser, x_init, sigmas, sampler=name, final=denoise_final, hook=hook,
               callback=callback)


@SAMPLERS.register("dpm_solver_1", nfe=stages_per_level(1), stochastic=False, order=1)
def sample_dpm_solver_1(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None):
    """DPM-Solver-1, noise prediction (Lu et al. 2022a, eq. 3.7): DDIM's step, i.e. Euler in the VE
    view. NFE = N."""
    del key
    return dpm_solver("dpm_solver_1", 1, denoiser, x_init, sigmas, hook=hook, callback=callback)


@SAMPLERS.register("dpm_solver_2", nfe=stages_per_level(2), stochastic=False, order=2)
def sample_dpm_solver_2(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None,
                        r1: float = 0.5):
    """DPM-Solver-2, single-step, noise prediction (Lu et al. 2022a, Alg. 1), with the intermediate
    level at fraction `r1` of each step in log sigma (r1 = 1/2: DPM-2). NFE = 2(N - 1) + 1."""
    del key
    return dpm_solver("dpm_solver_2", 2, denoiser, x_init, sigmas, hook=hook, callback=callback, r1=r1)


@SAMPLERS.register("dpm_solver_3", nfe=stages_per_level(3), stochastic=False, order=3)
def sample_dpm_solver_3(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None,
                        r1: float = 1.0 / 3.0, r2: float = 2.0 / 3.0):
    """DPM-Solver-3, single-step, noise prediction (Lu et al. 2022a, Alg. 2), with intermediate
    levels at fractions `r1`, `r2` of each step in log sigma. NFE = 3(N - 1) + 1."""
    del key
    return dpm_solver("dpm_solver_3", 3, denoiser, x_init, sigmas, hook=hook, callback=callback,
                      r1=r1, r2=r2)

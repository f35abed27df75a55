"""Data-prediction exponential integrators: DPM-Solver++ 2S / 2M / 3M, their SDE variants, and UniPC.

In the VE view with `lambda = -log sigma`, the PF-ODE is `dx/dlambda = D - x`, so

    x(lambda + h) = e^{-h} x(lambda) + int_0^h e^{-(h-u)} D(lambda + u) du          (Lu et al. 2022b, eq. 8)

and these solvers differ only in how they approximate `D` over the step: from extra evaluations
inside the step (single-step "S"), or from the previous steps' `D` values (multistep "M"). The
multistep methods start at order 1 and gain one order per step; their step to 0 is `D(x, sigma_last)`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax.sampling.loop import check_concrete_range, denoise_final, run
from diffjax.sampling.samplers import SAMPLERS, one_per_level, stages_per_level
from diffjax.sampling.steps import dpmpp_update
from diffjax.sampling.ode import log_midpoint


def dpmpp_2s_step(x, denoised, ctx, sigma_target, r: float = 0.5):
    """DPM-Solver++(2S) from `ctx.sigma` to `sigma_target > 0` (Lu et al. 2022b, Alg. 1): a DDIM step to
    the intermediate level at fraction `r` in log sigma, then the full step with
    `(1 - 1/(2r)) D + 1/(2r) D_mid`."""
    sigma_mid = log_midpoint(ctx.sigma, sigma_target, r)
    x_mid = dpmpp_update(x, denoised, ctx.sigma, sigma_mid)
    denoised_mid = ctx.denoise(x_mid, sigma_mid)
    mixed = (1.0 - 0.5 / r) * denoised + (0.5 / r) * denoised_mid
    return dpmpp_update(x, mixed, ctx.sigma, sigma_target)


@SAMPLERS.register("dpmpp_2s", nfe=stages_per_level(2), stochastic=False, order=2)
def sample_dpmpp_2s(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None, r: float = 0.5):
    """DPM-Solver++(2S), single-step 2nd order, deterministic (Lu et al. 2022b, Alg. 1). NFE = 2N - 1."""
    del key

    def step(x, state, ctx):
        denoised = ctx.denoise(x, ctx.sigma)
        return dpmpp_2s_step(x, denoised, ctx, ctx.sigma_next, r), denoised, state

    return run(step, denoiser, x_init, sigmas, sampler="dpmpp_2s", final=denoise_final, hook=hook,
               callback=callback)


# --------------------------------------------------------------------------------------
# DPM-Solver++ multistep (2M, 3M) and the SDE variants
# --------------------------------------------------------------------------------------


def lambda_derivatives(denoised, history, lambdas, i, order: int):
    """`D'` and `D''` (in lambda) at the current point from the interpolating polynomial through the
    current and up to `order - 1` previous `D` values (Newton divided differences, non-uniform steps).

    Returns `(d1, d2)`; `d2` is None for order < 3. Before enough history exists (step `i`), the
    estimates fall back to lower order (`d1 = 0` at step 0, `d2 = 0` at step 1).
    """
    if order < 2:
        return None, None
    h1 = lambdas[0] - lambdas[1]
    first = (denoised - history[0]) / h1
    d1 = jnp.where(i >= 1, first, 0.0)
    if order < 3:
        return d1, None
    h2 = lambdas[1] - lambdas[2]
    second = (first - (history[0] - history[1]) / h2) / (h1 + h2)
    d1 = jnp.where(i >= 2, first + h1 * second, d1)
    return d1, jnp.where(i >= 2, 2.0 * second, 0.0)


def _push(stack, value):
    return jnp.concatenate([value[None], stack[:-1]])


def dpmpp_multistep(name: str, order: int, denoiser, x_init, sigmas, *, key, hook, callback, eta,
                    s_noise):
    """Runs DPM-Solver++(kM), `k = order`, as sampler `name`: deterministic for `eta = 0`, the SDE
    variant for `eta > 0` (Lu et al. 2022b, Alg. 2 and App. D)."""
    check_concrete_range(f"{name}: eta", eta, 0.0, 10.0)
    noisy = not (isinstance(eta, (int, float)) and eta == 0)

    def step(x, state, ctx):
        history, lambdas = state
        denoised = ctx.denoise(x, ctx.sigma)
        lambdas = _push(lambdas, -jnp.log(ctx.sigma))
        d1, d2 = lambda_derivatives(denoised, history, lambdas, ctx.i, order)
        z = ctx.noise(x) if noisy else None
        x_next = dpmpp_update(x, denoised, ctx.sigma, ctx.sigma_next, d1=d1, d2=d2, eta=eta, z=z,
                              s_noise=s_noise, midpoint=order == 2)
        return x_next, denoised, (_push(history, denoised), lambdas)

    lam0 = -jnp.log(jnp.asarray(sigmas[0], x_init.dtype))
    state = (jnp.zeros((2,) + x_init.shape, x_init.dtype),
             lam0 + jnp.arange(1.0, 4.0, dtype=x_init.dtype))  # placeholders, masked at start
    return run(step, denoiser, x_init, sigmas, sampler=name, state=state, final=denoise_final,
               key=key if noisy else None, hook=hook, callback=callback)


@SAMPLERS.register("dpmpp_2m", nfe=one_per_level, stochastic=False, order=2)
def sample_dpmpp_2m(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None, eta=0.0,
                    s_noise=1.0):
    """DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2).

    `x_next = e^{-h} x + c0 ((1 + 1/2r) D - 1/2r D_prev)`, `r = h_prev / h`, i.e. the divided
    difference `D'` weighted by `c0 h / 2` (the paper's form, identical to k-diffusion's). `eta > 0`
    is dpmpp_2m_sde's noise and needs `key`. NFE = N.
    """
    return dpmpp_multistep("dpmpp_2m", 2, denoiser, x_init, sigmas, key=key, hook=hook,
                           callback=callback, eta=eta, s_noise=s_noise)


@SAMPLERS.register("dpmpp_3m", nfe=one_per_level, stochastic=False, order=3)
def sample_dpmpp_3m(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None, eta=0.0,
                    s_noise=1.0):
    """DPM-Solver++(3M) (Lu et al. 2022b, App. B).

    `D'` and `D''` from the quadratic through the last three `D` values, with the exact weights
    `c1 D' + c2 D''` of `exp_integrator_weights` (k-diffusion's and DPM-Solver's reference 3M use
    `c2 D''/2`, which is only 2nd order; see docs/samplers.md). NFE = N.
    """
    return dpmpp_multistep("dpmpp_3m", 3, denoiser, x_init, sigmas, key=key, hook=hook,
                           callback=callback, eta=eta, s_noise=s_noise)


@SAMPLERS.register("dpmpp_2m_sde", nfe=one_per_level, stochastic=True, order=0)
def sample_dpmpp_2m_sde(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None, eta=1.0,
                        s_noise=1.0):
    """DPM-Solver++(2M) SDE (Lu et al. 2022b, App. D; k-diffusion `sample_dpmpp_2m_sde`, "midpoint"
    form). `eta = 1` solves the reverse SDE, `eta = 0` is dpmpp_2m. Independent Gaussian noise per
    step. NFE = N.
    """
    return dpmpp_multistep("dpmpp_2m_sde", 2, denoiser, x_init, sigmas, key=key, hook=hook,
                           callback=callback, eta=eta, s_noise=s_noise)


@SAMPLERS.register("dpmpp_3m_sde", nfe=one_per_level, stochastic=True, order=0)
def sample_dpmpp_3m_sde(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None, eta=1.0,
                        s_noise=1.0):
    """DPM-Solver++(3M) SDE: dpmpp_3m's polynomial with the SDE variant's weights and noise
    (Lu et al. 2022b, App. D). NFE = N.
    """
    return dpmpp_multistep("dpmpp_3m_sde", 3, denoiser, x_init, sigmas, key=key, hook=hook,
                           callback=callback, eta=eta, s_noise=s_noise)


# --------------------------------------------------------------------------------------
# UniPC
# --------------------------------------------------------------------------------------


def _unipc_coefficients(rks, h, p: int, variant: str):
    """UniPC's `B(h)` and the solutions `rhos_p` (predictor, p - 1) and `rhos_c` (corrector, p).

    Order conditions (Zhao et al. 2023, Thm. 3.1, data prediction): `sum_k rho_k r_k^(j-1) = b_j` with
    `b_j = j! h phi_(j+1)(-h) / B(h)` over the nodes `r_k = (lambda_k - lambda) / h` and, for the
    corrector, the new point `r = 1`.
    """
    hh = -h
    b_h = hh if variant == "bh1" else jnp.expm1(hh)
    h_phi = jnp.expm1(hh) / hh - 1.0
    b, factorial = [], 1.0
    for j in range(1, p + 1):
        b.append(h_phi * factorial / b_h)
        factorial *= j + 1
        h_phi = h_phi / hh - 1.0 / factorial
    b = jnp.stack(b)
    nodes = jnp.concatenate([rks, jnp.ones((1,), h.dtype)])
    matrix = jnp.stack([nodes**j for j in range(p)])
    half = jnp.full((1,), 0.5, h.dtype)
    # A single coefficient is 1/2 (its h -> 0 limit), as in the paper's UniC-1 and the reference
    # code; only then does B(h) matter, since an exact solve makes `B(h) rho` independent of B.
    rhos_c = jnp.linalg.solve(matrix, b) if p > 1 else half
    rhos_p = (jnp.linalg.solve(matrix[:-1, :-1], b[:-1]) if p > 2 else
              half if p == 2 else jnp.zeros((0,), h.dtype))
    return b_h, rhos_p, rhos_c


def unipc_predict(x, history, lambdas, lambda_next, p: int, variant: str):
    """UniP-p from the newest history point to `lambda_next`, plus the pending UniC-p correction.

    Returns `(x_pred, pend, pend_coef)`: once `D_new = D(x_pred)` is known, the corrected state is
    `x_pred + pend + pend_coef (D_new - history[0])` (UniC; Zhao et al. 2023, Alg. 1).
    """
    h = lambda_next - lambdas[0]
    rks = jnp.stack([(lambdas[k] - lambdas[0]) / h for k in range(1, p)]) if p > 1 else jnp.zeros((0,), h.dtype)
    diffs = [(history[k] - history[0]) / rks[k - 1] for k in range(1, p)]
    b_h, rhos_p, rhos_c = _unipc_coefficients(rks, h, p, variant)
    x_pred = jnp.exp(-h) * x - jnp.expm1(-h) * history[0]
    pend = jnp.zeros_like(x)
    for k, diff in enumerate(diffs):
        x_pred = x_pred - b_h * rhos_p[k] * diff
        pend = pend - b_h * (rhos_c[k] - rhos_p[k]) * diff
    return x_pred, pend, -b_h * rhos_c[-1]


@SAMPLERS.register("unipc", nfe=one_per_level, stochastic=False, order=3)
def sample_unipc(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None, order: int = 3,
                 variant: str = "bh1",  # B(h) = h ('bh1') or e^h - 1 ('bh2'); bh1 for few steps
                 corrector: bool = True):
    """UniPC: the UniP-p multistep predictor with the UniC corrector (Zhao et al. 2023, Alg. 1-3),
    data prediction. The corrector reuses the next step's denoiser call, so NFE = N.

    The corrector of a step is applied at the start of the next one, on the (hooked) state; the
    last level's correction would need one more call, so the step to 0 is `D(x_pred, sigma_last)`
    (the official sampler also skips the last correction). Starts at order 1, gaining one per step.
    """
    del key
    if order not in (1, 2, 3):
        raise ValueError(f"unipc: order must be 1, 2 or 3, got {order}")
    if variant not in ("bh1", "bh2"):
        raise ValueError(f"unipc: variant must be one of ['bh1', 'bh2'], got {variant!r}")
    branches = [lambda *a, p=p: unipc_predict(*a, p, variant) for p in range(1, order + 1)]

    def step(x, state, ctx):
        history, lambdas, pend, pend_coef = state
        denoised = ctx.denoise(x, ctx.sigma)
        if corrector:
            x = x + pend + pend_coef * (denoised - history[0])
        history, lambdas = _push(history, denoised), _push(lambdas, -jnp.log(ctx.sigma))
        p_now = jnp.minimum(ctx.i + 1, order) - 1
        x_next, pend, pend_coef = jax.lax.switch(p_now, branches, x, history, lambdas,
                                                 -jnp.log(ctx.sigma_next))
        return x_next, denoised, (history, lambdas, pend, pend_coef)

    lam0 = -jnp.log(jnp.asarray(sigmas[0], x_init.dtype))
    state = (jnp.zeros((order,) + x_init.shape, x_init.dtype),
             lam0 - jnp.arange(1.0, order + 1.0, dtype=x_init.dtype),
             jnp.zeros_like(x_init), jnp.zeros((), x_init.dtype))
    return run(step, denoiser, x_init, sigmas, sampler="unipc", state=state, final=denoise_final,
               hook=hook, callback=callback)

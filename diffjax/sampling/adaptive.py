"""Adaptive probability-flow ODE sampling with diffrax (STYLE rule 13), reporting the NFE it used.

In `u = -log sigma` the PF-ODE is `dx/du = D(x, e^{-u}) - x` (Karras et al. 2022, eq. 4 with
`dsigma = -sigma du`), which is well scaled over the whole range of levels. The solve runs from
each grid level to the next with an embedded Runge-Kutta pair (Tsit5 by default) and a PID step
size controller, per example (`vmap`), so that one sample's steps never depend on the rest of the
batch. The grid's inner levels are only where the hook and callback act: `[sigma_max, sigma_min, 0]`
is one adaptive solve. The step to 0 is `D(x, sigma_min)`, as for every other sampler.

NFE of a solve, counted honestly from `Solution.stats['num_steps']` (accepted and rejected steps):
`(stages - fsal) * num_steps + fsal` (an FSAL pair such as Tsit5 reuses its last stage: 6 new calls
per step, plus the first call), plus 1 for the step to 0.

    x = get_sampler("adaptive")(denoiser, x_init, sigmas)
    x, info = get_sampler("adaptive")(denoiser, x_init, sigmas, return_info=True)   # info["nfe"]: [B]
"""
from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp

from diffjax.registry import Registry
from diffjax.sampling.loop import denoise_final, run
from diffjax.sampling.samplers import SAMPLERS

ODE_SOLVERS = Registry("ode solver")
ODE_SOLVERS.register("tsit5")(diffrax.Tsit5)  # Tsitouras 2011, 5(4), FSAL
ODE_SOLVERS.register("dopri5")(diffrax.Dopri5)  # Dormand & Prince 1980, 5(4), FSAL
ODE_SOLVERS.register("dopri8")(diffrax.Dopri8)  # 8(7), FSAL
ODE_SOLVERS.register("bosh3")(diffrax.Bosh3)  # Bogacki & Shampine 1989, 3(2), FSAL
ODE_SOLVERS.register("heun")(diffrax.Heun)  # 2(1)


def solver_nfe(solver, num_steps):
    """Vector-field calls of an explicit RK solve with `num_steps` attempted steps."""
    tableau = solver.tableau
    fsal = int(bool(tableau.fsal))
    return (tableau.num_stages - fsal) * num_steps + fsal


def solve_pf_ode(denoiser, x, sigma, sigma_next, *, solver="tsit5", rtol=1e-5, atol=1e-5,
                 max_steps=4096):
    """Integrates one example `x` `[...]` from `sigma` to `sigma_next > 0`. Returns `(x, nfe, steps)`."""
    ode_solver = ODE_SOLVERS.get(solver)()

    def vector_field(u, y, args):
        return denoiser(y[None], jnp.exp(-u))[0] - y

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field), ode_solver, -jnp.log(sigma), -jnp.log(sigma_next), None, x,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        saveat=diffrax.SaveAt(t1=True), max_steps=max_steps)
    steps = sol.stats["num_steps"]
    return sol.ys[0], solver_nfe(ode_solver, steps), steps


@SAMPLERS.register("adaptive", nfe=None, stochastic=False, order=5)
def sample_adaptive(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None,
                    solver: str = "tsit5",  # a name in ODE_SOLVERS
                    rtol: float = 1e-5,  # score_sde's ODE sampler tolerances
                    atol: float = 1e-5,
                    max_steps: int = 4096,  # per grid interval
                    return_info: bool = False):
    """Adaptive PF-ODE solve (module docstring). With `return_info=True` returns `(x, info)` with
    per-example `info['nfe']` `[B]` (denoiser calls, including the step to 0) and `info['num_steps']`."""
    del key
    ODE_SOLVERS.get(solver)  # unknown name -> error listing the valid ones
    solve = jax.vmap(lambda x, s, sn: solve_pf_ode(denoiser, x, s, sn, solver=solver, rtol=rtol,
                                                   atol=atol, max_steps=max_steps),
                     in_axes=(0, None, None))

    def step(x, state, ctx):
        nfe, steps = state
        x, used, taken = solve(x, ctx.sigma, ctx.sigma_next)
        return x, x, (nfe + used, steps + taken)

    def final(x, state, ctx):
        x, denoised, (nfe, steps) = denoise_final(x, state, ctx)
        return x, denoised, (nfe + 1, steps)

    batch = x_init.shape[0]
    state = (jnp.zeros((batch,), jnp.int32), jnp.zeros((batch,), jnp.int32))
    out = run(step, denoiser, x_init, sigmas, sampler="adaptive", state=state, final=final,
              hook=hook, callback=callback, return_state=return_info)
    if not return_info:
        return out
    x, (nfe, steps) = out
    return x, {"nfe": nfe, "num_steps": steps}

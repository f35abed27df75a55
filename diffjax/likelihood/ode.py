"""Exact log-likelihood through the probability-flow ODE, solved on device with diffrax.

In the VE view (Karras et al. 2022, eq. 4) the PF-ODE of any process is

    dx/dsigma = (x - D(x, sigma)) / sigma,           div = (N - tr dD/dx) / sigma,

and the instantaneous change of variables (Chen et al. 2018, Thm. 1; Song et al. 2021, eq. 39) gives

    log p_{sigma_min}(x) = log N(z; 0, sigma_max^2 I) + int_{sigma_min}^{sigma_max} div(x(s), s) ds,

where `x(sigma)` solves the ODE from `x(sigma_min) = x` up to `z = x(sigma_max)`. The state `(x, delta)`
is integrated jointly. By default the time variable is `t = log sigma`, in which the ODE reads
`dx/dt = x - D(x, e^t)`, `div = N - tr dD/dx`: the stiffness of the VE ODE near small sigma (its
`1/sigma` factor) disappears, and uniform steps in t are geometric in sigma.

The prior `N(0, sigma_max^2)` replaces the true `p_{sigma_max} = p_data * N(0, sigma_max^2)`. For data
of mean `mu` and variance `c^2` per dimension, the error in log p is `z mu / sigma_max^2 + O((mu^2 +
c^2) / sigma_max^2)` per dimension, i.e. O(mu / sigma_max) as `z ~ sigma_max`: centre the data.

NFE counts denoiser evaluations per example (each evaluation processes the whole batch at once).
Each evaluation also costs N (exact) or P (Hutchinson) Jacobian-vector products through the
denoiser. The batch is solved as one ODE: an adaptive solve takes the same steps for every example
of the batch (its error norm is taken over the batch), a fixed-step solve is exactly per-example.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Optional

import diffrax as dfx
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.likelihood.divergence import (DIVERGENCES, PROBES, check_exact_dimension,
                                           draw_probes)
from diffjax.registry import Registry
from diffjax.sde import AbstractProcess

Array = jax.Array
Denoiser = Callable[[Array, Array], Array]

SOLVERS = Registry("likelihood ODE solver")
TIME_VARIABLES = Registry("likelihood time variable")


class LikelihoodSolverError(RuntimeError):
    """The PF-ODE solve stopped before sigma_max (e.g. `max_steps` reached)."""


# --------------------------------------------------------------------------------------
# Solvers and time variables
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SolverSpec:
    """A diffrax Runge-Kutta solver and its cost: `NFE = evals_per_step * steps + fsal`."""

    make: Callable[[], dfx.AbstractSolver]
    evals_per_step: int
    fsal: bool  # first-same-as-last: one extra evaluation at the start, then `evals_per_step`
    adaptive: bool  # has an embedded error estimate


SOLVERS.register("euler")(SolverSpec(dfx.Euler, 1, False, False))
SOLVERS.register("heun")(SolverSpec(dfx.Heun, 2, False, True))
SOLVERS.register("midpoint")(SolverSpec(dfx.Midpoint, 2, False, True))
SOLVERS.register("bosh3")(SolverSpec(dfx.Bosh3, 3, True, True))
SOLVERS.register("tsit5")(SolverSpec(dfx.Tsit5, 6, True, True))
SOLVERS.register("dopri5")(SolverSpec(dfx.Dopri5, 6, True, True))


@dataclasses.dataclass(frozen=True)
class TimeVariable:
    """A reparameterisation `t(sigma)` of the ODE: `dx/dt = (dsigma/dt / sigma) (x - D)`."""

    t_of_sigma: Callable[[Array], Array]
    sigma_of_t: Callable[[Array], Array]
    dlog_sigma_dt: Callable[[Array], Array]


TIME_VARIABLES.register("log_sigma")(TimeVariable(jnp.log, jnp.exp, jnp.ones_like))
TIME_VARIABLES.register("sigma")(TimeVariable(lambda s: s, lambda t: t, lambda t: 1.0 / t))


# --------------------------------------------------------------------------------------
# Options and result
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LikelihoodOptions:
    """Knobs of the PF-ODE likelihood; every name is validated against its registry."""

    divergence: str = "exact"      # 'exact' (small N) or 'hutchinson'
    num_probes: int = 1            # Hutchinson probes per example, fixed along the trajectory
    probe: str = "rademacher"      # 'rademacher' or 'gaussian'
    max_exact_dim: int = 256       # the exact trace costs N JVPs per evaluation
    solver: str = "tsit5"          # see SOLVERS
    stepsize: str = "adaptive"     # 'adaptive' (PID on rtol/atol) or 'fixed' (num_steps, fixed NFE)
    rtol: float = 1e-5             # adaptive only
    atol: float = 1e-5             # adaptive only
    num_steps: int = 32            # fixed: number of steps; adaptive: initial step (t1 - t0)/num_steps
    max_steps: int = 4096          # adaptive only; exceeding it is a reported failure
    time: str = "log_sigma"        # 'log_sigma' or 'sigma'

    def __post_init__(self):
        for registry, name in ((DIVERGENCES, self.divergence), (PROBES, self.probe),
                               (TIME_VARIABLES, self.time)):
            registry.get(name)  # raises, listing the valid names
        spec = SOLVERS.get(self.solver)
        if self.stepsize not in ("adaptive", "fixed"):
            raise ValueError(f"stepsize must be one of ['adaptive', 'fixed'], got {self.stepsize!r}")
        if self.stepsize == "adaptive" and not spec.adaptive:
            adaptive = [n for n in SOLVERS.names() if SOLVERS.get(n).adaptive]
            raise ValueError(f"solver {self.solver!r} has no error estimate for stepsize='adaptive'; "
                             f"use one of {adaptive} or stepsize='fixed'")
        for name in ("num_probes", "num_steps", "max_steps", "max_exact_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rtol <= 0 or self.atol <= 0:
            raise ValueError(f"rtol and atol must be > 0, got rtol={self.rtol}, atol={self.atol}")


@flax.struct.dataclass
class LikelihoodResult:
    """Per-example log-density, in nats: `logp = prior_logp + delta_logp + log_det`.

    On a failed solve (`success` False) `logp` is NaN and `sigma_reached < sigma_max` says where the
    solver stopped; `log_likelihood` raises instead unless `on_failure='return'`.
    """

    logp: Array           # [B] log-density of x (VE view: under p_{sigma_min}; see log_det)
    prior_logp: Array     # [B] log N(z; 0, sigma_max^2 I)
    delta_logp: Array     # [B] int div dsigma
    log_det: Array        # [B] Jacobian of the map to the reported space (0 in the VE view)
    z: Array              # [B, ...] the latent x(sigma_max)
    nfe: Array            # [] int32: denoiser evaluations per example
    num_steps: Array      # [] int32: solver steps (accepted + rejected)
    sigma_reached: Array  # [] the last sigma the solver reached (sigma_max on success)
    success: Array        # [] bool

    def bits_per_dim(self) -> Array:
        """`-logp / (N ln 2)` `[B]`, N the dimension of an example (docs/likelihood.md: units)."""
        return -self.logp / (math.prod(self.z.shape[1:]) * math.log(2.0))


def ve_prior_logp(z: Array, sigma_max: float | Array) -> Array:
    """`log N(z; 0, sigma_max^2 I)` `[B]` for `z` `[B, ...]`."""
    dim = math.prod(z.shape[1:])
    sq = jnp.sum(z.reshape(z.shape[0], -1) ** 2, axis=-1)
    return -0.5 * sq / sigma_max**2 - dim * (jnp.log(sigma_max) + 0.5 * math.log(2 * math.pi))


# --------------------------------------------------------------------------------------
# The solve (pure, jittable, collective-free)
# --------------------------------------------------------------------------------------


def _vector_field(denoiser: Denoiser, time: TimeVariable, divergence: str, probes: Optional[Array]):
    estimator = DIVERGENCES.get(divergence)

    def vector_field(t, state, args):
        x, _ = state
        t = jnp.asarray(t, x.dtype)
        sigma, factor = time.sigma_of_t(t), time.dlog_sigma_dt(t)
        x0_hat, trace = estimator(lambda y: denoiser(y, sigma), x, probes)
        dim = math.prod(x.shape[1:])
        return factor * (x - x0_hat), factor * (dim - trace)

    return vector_field


def _controller(options: LikelihoodOptions, t0: Array, t1: Array, dtype):
    """`(stepsize_controller, dt0, max_steps)` for the fixed or adaptive mode."""
    if options.stepsize == "fixed":
        ts = jnp.linspace(t0, t1, options.num_steps + 1, dtype=dtype)
        return dfx.StepTo(ts=ts), None, options.num_steps
    controller = dfx.PIDController(rtol=options.rtol, atol=options.atol)
    return controller, (t1 - t0) / options.num_steps, options.max_steps


def solve_log_likelihood(denoiser: Denoiser, x: Array, key: Optional[Array] = None,
                         example_ids: Optional[Array] = None, *, sigma_min: float | Array,
                         sigma_max: float | Array,
                         options: LikelihoodOptions = LikelihoodOptions()) -> LikelihoodResult:
    """Pure, jittable core of `log_likelihood`: never raises on a failed solve (see `success`).

    Args:
      denoiser: `D(x, sigma) -> x0_hat` in the VE view, on a batch, `sigma` a scalar.
      x: `[B, ...]` points at noise level `sigma_min`.
      key: PRNG key for Hutchinson probes (unused by the exact trace).
      example_ids: `[B]` ints; example b's probes come from `fold_in(key, example_ids[b])`
        (default `arange(B)`), so estimates do not depend on batching or sharding.
      sigma_min, sigma_max: the integration range (scalars; may be traced).
      options: a `LikelihoodOptions`.
    Returns:
      A `LikelihoodResult` with `log_det = 0`.
    """
    time = TIME_VARIABLES.get(options.time)
    spec = SOLVERS.get(options.solver)
    probes = None
    if options.divergence == "hutchinson":
        if key is None:
            raise ValueError("divergence='hutchinson' needs a PRNG `key`")
        ids = jnp.arange(x.shape[0]) if example_ids is None else example_ids
        probes = draw_probes(key, ids, x, num_probes=options.num_probes, probe=options.probe)
    vector_field = _vector_field(denoiser, time, options.divergence, probes)
    sigma_min, sigma_max = jnp.asarray(sigma_min, x.dtype), jnp.asarray(sigma_max, x.dtype)
    t0, t1 = time.t_of_sigma(sigma_min), time.t_of_sigma(sigma_max)
    controller, dt0, max_steps = _controller(options, t0, t1, x.dtype)
    y0 = (x, jnp.zeros(x.shape[:1], x.dtype))
    # FSAL solvers: evaluate f(t0) here and start with first_step=False, so that a rejected first
    # step does not re-evaluate it and NFE = 1 + evals_per_step * steps holds exactly.
    solver_state = (jnp.array(False), vector_field(t0, y0, None)) if spec.fsal else None
    sol = dfx.diffeqsolve(dfx.ODETerm(vector_field), spec.make(), t0, t1, dt0, y0,
                          stepsize_controller=controller, saveat=dfx.SaveAt(t1=True),
                          max_steps=max_steps, throw=False, solver_state=solver_state)
    success = sol.result == dfx.RESULTS.successful
    z, delta = sol.ys[0][0], sol.ys[1][0]
    prior = ve_prior_logp(z, sigma_max)
    num_steps = jnp.asarray(sol.stats["num_steps"], jnp.int32)
    return LikelihoodResult(
            logp=jnp.where(success, prior + delta, jnp.nan),
            prior_logp=prior, delta_logp=delta, log_det=jnp.zeros_like(delta), z=z,
            nfe=spec.evals_per_step * num_steps + int(spec.fsal), num_steps=num_steps,
            sigma_reached=time.sigma_of_t(sol.ts[0]), success=success)


# --------------------------------------------------------------------------------------
# Host-level entry points
# --------------------------------------------------------------------------------------


def _check_range(sigma_min: float, sigma_max: float) -> None:
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, "
                         f"sigma_max={sigma_max}")


def check_result(result: LikelihoodResult, *, sigma_min: float, sigma_max: float,
                 options: LikelihoodOptions) -> None:
    """Raises `LikelihoodSolverError` on host if the solve stopped early, naming the sigma reached."""
    if bool(np.all(np.asarray(result.success))):
        return
    reached = float(np.min(np.asarray(result.sigma_reached)))
    limit = (f"max_steps={options.max_steps}" if options.stepsize == "adaptive"
             else f"num_steps={options.num_steps}")
    raise LikelihoodSolverError(
            f"PF-ODE likelihood solve did not converge: it stopped at sigma={reached:.6g} of "
            f"[sigma_min={sigma_min:.6g}, sigma_max={sigma_max:.6g}] after "
            f"{int(np.max(np.asarray(result.num_steps)))} steps ({limit}, solver={options.solver!r}, "
            f"rtol={options.rtol}, atol={options.atol}). Increase max_steps, loosen rtol/atol, or use "
            f"stepsize='fixed' for a fixed NFE.")


@functools.lru_cache(maxsize=32)
def _compiled(denoiser, options):
    return jax.jit(functools.partial(solve_log_likelihood, denoiser, options=options))


def _jitted(denoiser, options):
    """One compiled solve per (denoiser, options); sigma_min/sigma_max are traced arguments."""
    try:
        return _compiled(denoiser, options)
    except TypeError:  # an unhashable denoiser: compile without caching
        return jax.jit(functools.partial(solve_log_likelihood, denoiser, options=options))


def log_likelihood(denoiser: Denoiser, x: Array, *, sigma_min: float, sigma_max: float,
                   key: Optional[Array] = None, example_ids: Optional[Array] = None,
                   on_failure: str = "raise", **options) -> LikelihoodResult:
    """Per-example `log p_{sigma_min}(x)` in nats (VE view), with the NFE used.

    `result.logp` `[B]` is the log-density of `x` as a point of the noised marginal at `sigma_min`
    under the model "z ~ N(0, sigma_max^2 I), then the PF-ODE of `denoiser` from sigma_max down to
    sigma_min"; `result.nfe` is the number of denoiser evaluations per example.

    Args:
      denoiser: `D(x, sigma) -> x0_hat` in the VE view, on a batch, `sigma` a scalar.
      x: `[B, ...]`.
      sigma_min, sigma_max: the integration range.
      key, example_ids: Hutchinson probes (see `solve_log_likelihood`).
      on_failure: 'raise' (`LikelihoodSolverError` naming the sigma reached) or 'return' (the
        result has `success=False`, `logp=NaN` and `sigma_reached`).
      **options: fields of `LikelihoodOptions` (divergence, num_probes, probe, solver, stepsize,
        rtol, atol, num_steps, max_steps, time, max_exact_dim).
    Returns:
      A `LikelihoodResult` (fields `logp` [B] and `nfe` [], plus the terms of logp).
    """
    sigma_min, sigma_max = float(sigma_min), float(sigma_max)
    _check_range(sigma_min, sigma_max)
    if on_failure not in ("raise", "return"):
        raise ValueError(f"on_failure must be one of ['raise', 'return'], got {on_failure!r}")
    opts = LikelihoodOptions(**options)
    if jnp.ndim(x) < 2:
        raise ValueError(f"x must be batched, [B, ...]; got shape {jnp.shape(x)}")
    if opts.divergence == "exact":
        check_exact_dimension(jnp.shape(x), opts.max_exact_dim)
    result = _jitted(denoiser, opts)(x, key, example_ids, sigma_min=sigma_min, sigma_max=sigma_max)
    if on_failure == "raise":
        check_result(result, sigma_min=sigma_min, sigma_max=sigma_max, options=opts)
    return result


def process_log_likelihood(process: AbstractProcess, denoiser: Denoiser, x: Array, *,
                           t: Optional[float] = None, **kwargs) -> LikelihoodResult:
    """`log p_t(x)` `[B]` of the process state `x = alpha(t) x~` in data space, in nats.

    `log p_t(x) = log p~_{sigma~(t)}(x / alpha(t)) - N log alpha(t)`: the VE-view likelihood on
    `[sigma~(t), sigma~(T)]` plus the Jacobian of `x = alpha x~` (in `log_det`). The VE prior
    `N(0, sigma~(T)^2)` on `x~_T` is exactly the process prior `N(0, sigma(T)^2)` on `x_T`.
    `t` defaults to `process.t_min`: data is scored as the state at the first time step, as in
    Song et al. 2021 (App. D.2). kwargs go to `log_likelihood`.
    """
    t = process.t_min if t is None else t
    alpha = float(process.alpha(jnp.asarray(t)))
    sigma_min = float(process.sigma_tilde(jnp.asarray(t)))
    result = log_likelihood(denoiser, x / alpha, sigma_min=sigma_min,
                            sigma_max=process.sigma_range()[1], **kwargs)
    log_det = jnp.full_like(result.logp, -math.prod(x.shape[1:]) * math.log(alpha))
    return result.replace(logp=result.logp + log_det, log_det=log_det)

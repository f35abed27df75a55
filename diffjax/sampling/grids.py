"""Noise-level grids: `get_grid(name)(num_steps, sigma_min, sigma_max, **options) -> sigmas`.

Every grid is decreasing, has `num_steps` positive noise levels from `sigma_max` to `sigma_min`
(in the VE view, `sigma~`), and ends with an appended exact 0 (k-diffusion convention), so
`len(sigmas) == num_steps + 1`. Grids that are defined in process time (`uniform_t`,
`time_quadratic`) take the process as `process=` and are registered with `process_time=True`;
`grid_for_process` supplies it, together with `(sigma_min, sigma_max) = process.sigma_range()`
(STYLE rule 8: sigma bounds flow from the SDE).

    sigmas = get_grid("karras")(18, 0.002, 80.0)                       # EDM's grid
    sigmas = grid_for_process(get_sde("vp"), "uniform_t", 50)          # score_sde's grid
    GRIDS.names(process_time=True)                                     # ['time_quadratic', 'uniform_t']

A new grid is one registered function:

    @GRIDS.register("my_grid", process_time=False)
    def my_grid(num_steps, sigma_min, sigma_max, *, knob=1.0): ...   # -> [num_steps + 1], ends in 0
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.registry import Registry

GRIDS = Registry("grid", required_meta=("process_time",))  # process_time: the grid needs `process=`


def get_grid(name: str):
    """The grid function registered as `name`."""
    return GRIDS.get(name)


def append_zero(sigmas):
    """`[N]` levels -> `[N + 1]`, with the exact 0 appended (k-diffusion convention)."""
    return jnp.concatenate([sigmas, jnp.zeros((1,), sigmas.dtype)])


def check_grid_args(num_steps, sigma_min, sigma_max) -> None:
    """Raises a clear error unless `num_steps >= 1` is an integer and `0 < sigma_min <= sigma_max`."""
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got sigma_min={sigma_min}, "
                         f"sigma_max={sigma_max}")
    if num_steps > 1 and sigma_min == sigma_max:
        raise ValueError(f"{num_steps} distinct levels need sigma_min < sigma_max, both are {sigma_min}")


def _ramp(num_steps: int) -> jax.Array:
    """`i / (N - 1)` for `i = 0..N-1` (a single level sits at `sigma_max`)."""
    return jnp.linspace(0.0, 1.0, num_steps) if num_steps > 1 else jnp.zeros((1,))


def validate_grid(sigmas) -> None:
    """Raises a clear error unless `sigmas` is 1-D, strictly decreasing, positive, and ends in 0."""
    s = np.asarray(sigmas)
    if s.ndim != 1 or s.shape[0] < 2:
        raise ValueError(f"sigmas must be a 1-D array of at least 2 levels, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"sigmas must be finite, got {s.tolist()}")
    if s[-1] != 0:
        raise ValueError(f"sigmas must end with exactly 0 (k-diffusion convention), got {s[-1]!r}; "
                         "append a zero")
    if np.any(np.diff(s) >= 0):
        raise ValueError(f"sigmas must be strictly decreasing, got {s.tolist()}")


# --------------------------------------------------------------------------------------
# Grids in sigma
# --------------------------------------------------------------------------------------


@GRIDS.register("karras", process_time=False)
def karras(num_steps: int, sigma_min: float, sigma_max: float, *, rho: float = 7.0) -> jax.Array:
    """`sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho` (Karras et al. 2022, eq. 5)."""
    check_grid_args(num_steps, sigma_min, sigma_max)
    inv_rho_min, inv_rho_max = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return append_zero((inv_rho_max + _ramp(num_steps) * (inv_rho_min - inv_rho_max)) ** rho)


@GRIDS.register("log_snr", process_time=False)
@GRIDS.register("exponential", process_time=False)
def log_snr(num_steps: int, sigma_min: float, sigma_max: float) -> jax.Array:
    """Uniform in log-SNR `lambda = -2 log sigma~`, i.e. geometric in sigma (k-diffusion "exponential").

    The DPM-Solver default ("logSNR" step spacing; Lu et al. 2022a, sec. 3.3). In the VE view the
    log-SNR is `-2 log sigma~` for every process, so "log_snr" and "exponential" are one grid.
    """
    check_grid_args(num_steps, sigma_min, sigma_max)
    log_min, log_max = math.log(sigma_min), math.log(sigma_max)
    return append_zero(jnp.exp(log_max + _ramp(num_steps) * (log_min - log_max)))


@GRIDS.register("polyexponential", process_time=False)
def polyexponential(num_steps: int, sigma_min: float, sigma_max: float, *,
                    rho: float = 1.0) -> jax.Array:
    """`log sigma_i = log smin + (1 - i/(N-1))^rho (log smax - log smin)` (k-diffusion; rho=1: exponential)."""
    check_grid_args(num_steps, sigma_min, sigma_max)
    log_min, log_max = math.log(sigma_min), math.log(sigma_max)
    return append_zero(jnp.exp(log_min + (1.0 - _ramp(num_steps)) ** rho * (log_max - log_min)))


@GRIDS.register("vp_discrete", process_time=False)
def vp_discrete(num_steps: int, sigma_min: float, sigma_max: float, *,
                num_train_steps: int = 1000,  # DDPM's T
                beta_start: float = 1e-4,  # beta_1 of the linear schedule (Ho et al. 2020, sec. 4)
                beta_end: float = 0.02) -> jax.Array:  # beta_T
    """A subset of DDPM's discrete levels `sigma~_n = sqrt((1 - abar_n) / abar_n)`, `abar_n = prod (1 - beta)`.

    Ho et al. 2020 (linear betas, T = 1000), as used by score_sde's DDPM checkpoints and DDIM's
    "uniform" skip (Song et al. 2021a, App. D.2): the levels nearest to `sigma_max` and `sigma_min`
    and `num_steps` integer timesteps evenly spaced between them, so a discrete-time network is only
    queried at the levels it was trained on. `num_steps == num_train_steps` gives every level.
    """
    check_grid_args(num_steps, sigma_min, sigma_max)
    betas = np.linspace(beta_start, beta_end, num_train_steps, dtype=np.float64)
    table = np.sqrt(1.0 / np.cumprod(1.0 - betas) - 1.0)  # increasing in n
    n_hi = int(np.argmin(np.abs(np.log(table) - math.log(sigma_max))))
    n_lo = int(np.argmin(np.abs(np.log(table) - math.log(sigma_min))))
    available = n_hi - n_lo + 1
    if num_steps > available:
        raise ValueError(f"vp_discrete: only {available} discrete levels lie in "
                         f"[{sigma_min:g}, {sigma_max:g}]; asked for {num_steps}")
    index = np.round(np.linspace(n_hi, n_lo, num_steps)).astype(int) if num_steps > 1 else [n_hi]
    return append_zero(jnp.asarray(table[np.asarray(index)], jnp.float32))


# --------------------------------------------------------------------------------------
# Grids in process time
# --------------------------------------------------------------------------------------


def _time_grid(process, sigma_min, sigma_max, ramp):
    """Levels `sigma~(t)` for `t = t(smax) + ramp (t(smin) - t(smax))`, endpoints pinned exactly."""
    if process is None:
        raise ValueError("this grid is defined in process time: pass process= (e.g. get_sde('vp')), "
                         "or use grid_for_process")
    t_hi = float(process.t_from_sigma(jnp.asarray(sigma_max, jnp.float32)))
    t_lo = float(process.t_from_sigma(jnp.asarray(sigma_min, jnp.float32)))
    sigmas = process.sigma_tilde(t_hi + ramp * (t_lo - t_hi))
    sigmas = sigmas.at[0].set(sigma_max).at[-1].set(sigma_min) if ramp.shape[0] > 1 else sigmas
    return append_zero(sigmas.astype(jnp.float32))


@GRIDS.register("uniform_t", process_time=True)
def uniform_t(num_steps: int, sigma_min: float, sigma_max: float, *, process=None) -> jax.Array:
    """Uniform in the process time t, mapped through `sigma~(t)` (score_sde; Song et al. 2021, sec. 4)."""
    check_grid_args(num_steps, sigma_min, sigma_max)
    return _time_grid(process, sigma_min, sigma_max, _ramp(num_steps))


@GRIDS.register("time_quadratic", process_time=True)
def time_quadratic(num_steps: int, sigma_min: float, sigma_max: float, *, process=None) -> jax.Array:
    """Quadratic in process time: `t_i = t_min + (1 - i/(N-1))^2 (t_max - t_min)` (DDIM, Song et al.
    2021a, App. D.2 "quadratic" skip), denser near the data end."""
    check_grid_args(num_steps, sigma_min, sigma_max)
    return _time_grid(process, sigma_min, sigma_max, 1.0 - (1.0 - _ramp(num_steps)) ** 2)


# --------------------------------------------------------------------------------------
# Config-level helper
# --------------------------------------------------------------------------------------


def grid_for_process(process, name: str, num_steps: int, *, sigma_min: float | None = None,
                     sigma_max: float | None = None, **options) -> jax.Array:
    """The grid `name` over the process's VE noise range `process.sigma_range()`.

    Args:
      process: a `diffjax.sde` process; supplies `(sigma_min, sigma_max)` and, for grids in process
        time, `t_from_sigma` / `sigma_tilde`.
      name: a registered grid name.
      num_steps: number of positive levels (`len(sigmas) == num_steps + 1`).
      sigma_min, sigma_max: override the process's range (e.g. EDM's 0.002 for a VP model).
      **options: the grid's own knobs (e.g. `rho`).
    """
    grid = get_grid(name)
    low, high = process.sigma_range()
    sigma_min = low if sigma_min is None else sigma_min
    sigma_max = high if sigma_max is None else sigma_max
    if GRIDS.meta(name)["process_time"]:
        options = {"process": process, **options}
    return grid(num_steps, sigma_min, sigma_max, **options)

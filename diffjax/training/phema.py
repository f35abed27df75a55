"""Post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion
Models", EDM2, sec. 3.1 and appendix C): track a few power-function EMAs during training, save
them as snapshots now and then, and after training solve for the linear combination of snapshots
whose averaging profile best matches any other EMA length.

    gammas = tuple(sigma_rel_to_gamma(s) for s in (0.05, 0.10))
    phema = update_phema(phema, params, step, gammas)              # in the train step, each update
    c, residual = solve_coefficients(steps, snapshot_gammas, T, sigma_rel_to_gamma(0.07))
    params_007 = reconstruct(snapshots, c)                         # snapshots: one pytree per (step, gamma)

Notation. `t` counts optimiser updates (t >= 1 after the first); `theta_tau` are the parameters
after update tau. The power EMA with exponent gamma is the recursion (EDM2 eq. 2)

    ema_t = beta_t ema_{t-1} + (1 - beta_t) theta_t,    beta_t = (1 - 1/t)^(gamma + 1),

so ema_t = sum_tau w_tau theta_tau with the discrete profile (products of beta telescope)

    w_tau = (tau^(g+1) - (tau-1)^(g+1)) / t^(g+1) = integral_{tau-1}^{tau} p_t(x) dx,
    p_t(x) = (g + 1) x^g / t^(g+1) on [0, t]                   (the continuous profile, EDM2 eq. 1):

the discrete profile is the continuous one integrated over unit bins, exactly. Pure numpy/jax;
the snapshot files belong to the jobs layer (`diffjax.jobs.phema`).
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

SIGMA_REL_MAX = 1.0 / np.sqrt(12.0)  # sigma_rel at gamma = 0 (uniform average); larger is gamma < 0
DISCRETE_MAX_ELEMENTS = 2 ** 23  # 'auto': exact discrete profiles while [target_step, snapshots] fits (64 MiB)
_RESIDUAL_CHUNK = 2 ** 16  # steps per block when summing the residual (memory: chunk x snapshots)


# ----------------------------------------------------------------------------------------------
# sigma_rel <-> gamma
# ----------------------------------------------------------------------------------------------

def gamma_to_sigma_rel(gamma: float) -> float:
    """Relative standard deviation of the power profile p(x) ∝ x^gamma on [0, 1] (EDM2 eq. 3):
    sigma_rel = sqrt((g + 1) / ((g + 2)^2 (g + 3))). Valid for gamma >= 0."""
    gamma = float(gamma)
    if not gamma >= 0.0:
        raise ValueError(f"gamma={gamma}: the power EMA exponent must be >= 0 (sigma_rel in (0, {SIGMA_REL_MAX:.4f}])")
    return float(np.sqrt((gamma + 1.0) / ((gamma + 2.0) ** 2 * (gamma + 3.0))))


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """The exponent gamma >= 0 with the given sigma_rel: EDM2 eq. 3 squared and cleared of
    denominators is the cubic g^3 + 7 g^2 + (16 - s^-2) g + (12 - s^-2) = 0, whose largest real
    root is the branch on which sigma_rel falls as gamma grows (0.05 -> 16.97, 0.10 -> 6.94).

    Raises:
      ValueError: sigma_rel outside (0, 1/sqrt(12) ≈ 0.2887] (the range of gamma >= 0).
    """
    sigma_rel = float(sigma_rel)
    if not 0.0 < sigma_rel <= SIGMA_REL_MAX:
        raise ValueError(f"sigma_rel={sigma_rel}: valid values are in (0, {SIGMA_REL_MAX:.4f}] (gamma >= 0; "
                         "EDM2 uses 0.05 and 0.10 for the tracked EMAs)")
    inverse_square = sigma_rel ** -2
    roots = np.roots([1.0, 7.0, 16.0 - inverse_square, 12.0 - inverse_square])
    return float(max(0.0, roots.real.max()))  # max(0, .): the root at sigma_rel = SIGMA_REL_MAX is 0 +- rounding


# ----------------------------------------------------------------------------------------------
# The EMA update (inside jit)
# ----------------------------------------------------------------------------------------------

def _log_beta(step, gamma: float, dtype) -> jax.Array:
    """log beta_t = (gamma + 1) log(1 - 1/t); -inf at t = 1."""
    t = jnp.asarray(step).astype(dtype)
    return (gamma + 1.0) * jnp.log1p(-1.0 / t)


def power_beta(step, gamma: float) -> jax.Array:
    """Per-update decay of the power EMA, beta_t = (1 - 1/t)^(gamma + 1) (EDM2 eq. 2), where
    `step` = t is the number of updates done including this one (t >= 1; beta_1 = 0, so the
    first update copies the parameters). Traceable: `step` may be an int32 jnp scalar."""
    return jnp.exp(_log_beta(step, gamma, jnp.float32))


def update_phema(phema_params: tuple, params: Any, step, gammas: tuple) -> tuple:
    """One update of each power EMA: ema <- beta_t ema + (1 - beta_t) params (EDM2 eq. 2).

    Written as ema + (1 - beta_t) (params - ema) with 1 - beta_t = -expm1((g + 1) log1p(-1/t)),
    so the small weight of a long run (about (g + 1)/t) keeps full relative precision in float32.
    The arithmetic runs in the leaves' dtype (at least float32) and results keep the EMA dtype.

    Args:
      phema_params: one pytree like `params` per gamma.
      params: the parameters after this update.
      step: updates done after this one (t >= 1), an int32 jnp scalar or int.
      gammas: the exponents, static floats (`sigma_rel_to_gamma`).
    Returns:
      The updated tuple, same structure and dtypes as `phema_params`.
    """
    if len(phema_params) != len(gammas):
        raise ValueError(f"{len(phema_params)} EMAs but {len(gammas)} gammas")

    def one(ema, gamma):
        def leaf(e, p):
            dtype = jnp.promote_types(e.dtype, jnp.float32)
            weight = -jnp.expm1(_log_beta(step, gamma, dtype))  # 1 - beta_t
            e32 = e.astype(dtype)
            return (e32 + weight * (p.astype(dtype) - e32)).astype(e.dtype)
        return jax.tree.map(leaf, ema, params)

    return tuple(one(ema, float(gamma)) for ema, gamma in zip(phema_params, gammas))


# ----------------------------------------------------------------------------------------------
# Profiles
# ----------------------------------------------------------------------------------------------

def _profiles(taus: np.ndarray, steps: np.ndarray, gammas: np.ndarray) -> np.ndarray:
    """[len(taus), len(steps)] discrete profile weights w_tau of EMA (steps[i], gammas[i]), zero for
    tau > steps[i]: w_tau = (tau / t)^(g+1) (1 - (1 - 1/tau)^(g+1)), each factor in full precision."""
    taus = np.asarray(taus, np.float64)[:, None]
    steps, exponents = np.asarray(steps, np.float64)[None, :], np.asarray(gammas, np.float64)[None, :] + 1.0
    with np.errstate(divide="ignore"):  # log1p(-1) = -inf at tau = 1: the first update has weight 1 - 0
        first = -np.expm1(exponents * np.log1p(-1.0 / taus))
    scale = np.exp(exponents * (np.log(taus) - np.log(steps)))
    return np.where(taus <= steps, first * scale, 0.0)


def discrete_profile(t: int, gamma: float) -> np.ndarray:
    """[t] float64: the weights w_tau (tau = 1..t) that `update_phema`'s recursion puts on the
    parameters after update tau, after t updates: w_tau = (1 - beta_tau) prod_{s>tau} beta_s =
    (tau^(g+1) - (tau-1)^(g+1)) / t^(g+1) (the products telescope; EDM2 eq. 2). They sum to 1.
    O(t) time, in a cancellation-free form."""
    if int(t) < 1:
        raise ValueError(f"t={t}: a profile needs at least one update")
    return _profiles(np.arange(1, int(t) + 1), np.array([t]), np.array([gamma]))[:, 0]


def _continuous_gram(steps_a, gammas_a, steps_b, gammas_b) -> np.ndarray:
    """[len(a), len(b)] L2 inner products of continuous profiles p_{t,g}(x) = (g+1) x^g / t^(g+1)
    on [0, t] (EDM2 appendix C.3): with m = min(t_a, t_b),
    <p_a, p_b> = (g_a+1)(g_b+1) / (g_a+g_b+1) * (m/t_a)^(g_a+1) (m/t_b)^(g_b+1) / m."""
    ta, ga = np.asarray(steps_a, np.float64)[:, None], np.asarray(gammas_a, np.float64)[:, None]
    tb, gb = np.asarray(steps_b, np.float64)[None, :], np.asarray(gammas_b, np.float64)[None, :]
    m = np.minimum(ta, tb)
    return (ga + 1) * (gb + 1) / (ga + gb + 1) * (m / ta) ** (ga + 1) * (m / tb) ** (gb + 1) / m


def profile_residual(snapshot_steps, snapshot_gammas, coefficients, target_step: int, target_gamma: float) -> float:
    """L1 distance over steps 1..max(target_step, snapshots) between the reconstructed discrete
    profile sum_i c_i w^(i) and the target's. Since theta_rec - theta_target = sum_tau
    (sum_i c_i w^(i)_tau - w^target_tau) theta_tau exactly, |theta_rec - theta_target| <=
    residual * max_tau |theta_tau| elementwise. Costs (steps x snapshots) work, in blocks."""
    steps, gammas = np.asarray(snapshot_steps, np.int64), np.asarray(snapshot_gammas, np.float64)
    coefficients = np.asarray(coefficients, np.float64)
    used = coefficients != 0
    steps, gammas, coefficients = steps[used], gammas[used], coefficients[used]
    last = int(max([target_step, *steps.tolist()]))
    total = 0.0
    for start in range(1, last + 1, _RESIDUAL_CHUNK):
        taus = np.arange(start, min(start + _RESIDUAL_CHUNK, last + 1))
        target = _profiles(taus, [target_step], [target_gamma])[:, 0]
        total += float(np.abs(_profiles(taus, steps, gammas) @ coefficients - target).sum())
    return total


# ----------------------------------------------------------------------------------------------
# Solving for the coefficients (EDM2 appendix C.3)
# ----------------------------------------------------------------------------------------------

def resolve_method(method: str, target_step: int, num_snapshots: int) -> str:
    """'auto' -> 'discrete' while the exact [target_step, num_snapshots] design matrix has at most
    DISCRETE_MAX_ELEMENTS entries, else 'continuous'; other names are checked and returned."""
    if method == "auto":
        return "discrete" if int(target_step) * int(num_snapshots) <= DISCRETE_MAX_ELEMENTS else "continuous"
    if method not in ("discrete", "continuous"):
        raise ValueError(f"method={method!r}: choose 'auto', 'discrete' or 'continuous'")
    return method


def solve_coefficients(snapshot_steps: Sequence[int], snapshot_gammas: Sequence[float], target_step: int,
                       target_gamma: float, *, method: str = "auto") -> tuple[np.ndarray, float]:
    """Least-squares weights c with sum_i c_i profile_i ≈ profile_target (EDM2 appendix C.3).

    Snapshots taken after `target_step` get coefficient 0: they hold updates the target never saw,
    which other snapshots would have to cancel (ill-conditioned), so they are excluded.

    Args:
      snapshot_steps: [N] the step t_i of each snapshot EMA (one entry per (step, gamma) pair).
      snapshot_gammas: [N] its exponent gamma_i.
      target_step: the step T whose EMA to reconstruct (>= 1).
      target_gamma: the target exponent (`sigma_rel_to_gamma`).
      method: 'discrete': least squares on the exact discrete profiles w_tau, tau = 1..T, a
        [T, N] matrix (exact, but T x N memory); 'continuous': the normal equations of EDM2's
        closed-form L2 inner products of the continuous profiles (O(N^2), any T); 'auto':
        'discrete' while T x N <= DISCRETE_MAX_ELEMENTS (2^23, 64 MiB), else 'continuous'.
    Returns:
      (coefficients [N] float64, residual): the residual is `profile_residual`, the L1 norm of
      (reconstructed - target) discrete profile, so |theta_rec - theta_target| <= residual *
      max_tau |theta_tau| elementwise (plus float rounding, which grows with sum_i |c_i|).
    """
    steps, gammas = np.asarray(snapshot_steps, np.int64), np.asarray(snapshot_gammas, np.float64)
    target_step, target_gamma = int(target_step), float(target_gamma)
    if steps.shape != gammas.shape or steps.ndim != 1:
        raise ValueError(f"snapshot_steps {steps.shape} and snapshot_gammas {gammas.shape} must be equal-length 1-D")
    if target_step < 1 or (steps < 1).any():
        raise ValueError(f"steps count updates and start at 1; got target_step={target_step}, "
                         f"snapshots {steps.tolist()}")
    used = np.flatnonzero(steps <= target_step)
    if used.size == 0:
        raise ValueError(f"no snapshot at or before target_step={target_step} "
                         f"(snapshot steps: {sorted(set(steps.tolist()))})")
    method = resolve_method(method, target_step, used.size)
    if method == "discrete":
        taus = np.arange(1, target_step + 1)
        design = _profiles(taus, steps[used], gammas[used])
        target = _profiles(taus, [target_step], [target_gamma])[:, 0]
        solution = np.linalg.lstsq(design, target, rcond=None)[0]
    else:  # continuous
        gram = _continuous_gram(steps[used], gammas[used], steps[used], gammas[used])
        rhs = _continuous_gram(steps[used], gammas[used], [target_step], [target_gamma])[:, 0]
        solution = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    coefficients = np.zeros(steps.shape, np.float64)
    coefficients[used] = solution
    return coefficients, profile_residual(steps, gammas, coefficients, target_step, target_gamma)


def add_weighted(total: Any, snapshot: Any, coefficient: float) -> Any:
    """total + c * snapshot in float64 numpy (total None: start a sum); one step of `reconstruct`,
    so a job can stream snapshots from disk one at a time."""
    term = jax.tree.map(lambda x: float(coefficient) * np.asarray(x, np.float64), snapshot)
    return term if total is None else jax.tree.map(np.add, total, term)


def reconstruct(snapshots: Sequence[Any], coefficients) -> Any:
    """sum_i c_i snapshot_i (EDM2 appendix C.3), accumulated in float64 numpy and returned in the
    snapshots' leaf dtypes. Snapshots with c_i = 0 are skipped."""
    coefficients = np.asarray(coefficients, np.float64)
    if len(snapshots) != coefficients.shape[0]:
        raise ValueError(f"{len(snapshots)} snapshots but {coefficients.shape[0]} coefficients")
    total = None
    for snapshot, c in zip(snapshots, coefficients):
        if c != 0.0:
            total = add_weighted(total, snapshot, c)
    if total is None:
        raise ValueError("every coefficient is 0: nothing to reconstruct")
    return jax.tree.map(lambda t, x: t.astype(np.asarray(x).dtype), total, snapshots[0])

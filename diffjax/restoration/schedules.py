"""Methods that change the grid or the start, not the step: RePaint and SDEdit, and their NFE.

RePaint's resampling jumps (Lugmayr et al. 2022, Alg. 1 and sec. 4.2) go down `jump_length`
levels, renoise back up, and repeat `resamples` times before moving on. Each stretch
`sigma_a -> sigma_b > 0` is one call of ANY sampler, made possible by a change of variable:
the VE family of the noisy data `x_b = x0 + sigma_b z` is the same family shifted, `p_b,s =
p_sqrt(sigma_b^2 + s^2)`, with the exact denoiser (Tweedie, splitting the noise in two)

    D_b(x, s) = E[x_b | x] = D(x, sigma) + (sigma_b^2 / sigma^2) (x - D(x, sigma)),  sigma^2 = sigma_b^2 + s^2,

and PF-ODE `dx/ds = (x - D_b)/s` equal to `dx/dsigma = (x - D)/sigma` under `s ds = sigma dsigma`.
So a sampler run with `D_b` on the grid `s_i = sqrt(sigma_i^2 - sigma_b^2)`, which ends in exactly
0, lands at level sigma_b. The stretches share one compiled sampler (`lax.scan` over them).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import sampling
from diffjax.restoration.methods import (RENOISE_STREAM, register_method, replacement_hook,
                                         run_sampler)

Array = jax.Array


def shifted_denoiser(denoiser, sigma_b: Array):
    """`D_b(x, s) = D(x, sigma) + (sigma_b^2/sigma^2)(x - D(x, sigma))`, `sigma = sqrt(sigma_b^2 + s^2)`."""

    def wrapped(x, s):
        sigma = jnp.sqrt(sigma_b**2 + s**2)
        x0 = denoiser(x, sigma)
        return x0 + (sigma_b**2 / sigma**2) * (x - x0)

    return wrapped


def repaint_schedule(num_steps: int, jump_length: int, resamples: int) -> np.ndarray:
    """Stretches `[S, 3]` of (start level index, end index, renoise after?) over a grid of
    `num_steps` positive levels: each block of `jump_length` levels is sampled `resamples` times."""
    if jump_length < 1 or num_steps % jump_length:
        divisors = [d for d in range(1, num_steps + 1) if num_steps % d == 0]
        raise ValueError(f"repaint: jump_length must divide the {num_steps} levels; valid: {divisors}")
    if resamples < 1:
        raise ValueError(f"repaint: resamples must be >= 1, got {resamples}")
    rows = [(start, start + jump_length, int(r < resamples - 1))
            for start in range(0, num_steps, jump_length) for r in range(resamples)]
    return np.asarray(rows, np.int32)


def default_jump_length(num_steps: int, at_most: int = 10) -> int:
    """The largest divisor of `num_steps` not above `at_most` (RePaint's default jump is 10)."""
    return max(d for d in range(1, min(at_most, num_steps) + 1) if num_steps % d == 0)


def repaint_nfe(sampler: str, num_steps: int, *, jump_length=None, resamples: int = 5, sampler_options=None,
                **options) -> int:
    """RePaint runs `sampler` over `jump_length` levels once per row of `repaint_schedule`."""
    jump = jump_length or default_jump_length(num_steps)
    rows = repaint_schedule(num_steps, int(jump), int(resamples))
    return rows.shape[0] * sampling.nfe(sampler, int(jump), **(sampler_options or {}))


@register_method("repaint", nfe=repaint_nfe, requires=("model_space",))
def repaint(denoiser, operator, y, x_init, sigmas, *, key, sampler="euler", anchor=None,
            sampler_options=None, jump_length=None, resamples: int = 5):
    """RePaint: replacement plus resampling jumps (Lugmayr et al. 2022), on any sampler.

    Args:
      jump_length: levels per jump (must divide the number of levels; default: the largest
        divisor <= 10).
      resamples: passes over each block (RePaint's r; 1 is plain replacement).
    """
    num_steps = sigmas.shape[0] - 1
    jump_length = default_jump_length(num_steps) if jump_length is None else int(jump_length)
    rows = repaint_schedule(num_steps, jump_length, int(resamples))
    sigmas = jnp.asarray(sigmas, x_init.dtype)
    segments = sigmas[rows[:, 0:1] + np.arange(jump_length + 1)[None]]  # [S, j + 1]
    sigma_b = segments[:, -1]
    grids = jnp.sqrt(jnp.maximum(segments**2 - sigma_b[:, None] ** 2, 0.0)).at[:, -1].set(0.0)
    keys = sampling.example_keys(key, x_init.shape[0])

    def body(x, seg):
        grid, sb, sa, renoise, index = seg
        seg_keys = jax.vmap(lambda k: jax.random.fold_in(k, index))(keys)
        level = lambda s: jnp.sqrt(sb**2 + s**2)  # noqa: E731
        hook = replacement_hook(operator, y, seg_keys, level=level)
        x = run_sampler(shifted_denoiser(denoiser, sb), x, grid, key=seg_keys, sampler=sampler,
                        hook=hook, anchor=anchor, sampler_options=sampler_options, level=level)
        z = sampling.loop.example_normal(seg_keys, RENOISE_STREAM, 0, x.shape[1:], x.dtype)
        return x + renoise * jnp.sqrt(jnp.maximum(sa**2 - sb**2, 0.0)) * z, None

    inputs = (grids, sigma_b, segments[:, 0], jnp.asarray(rows[:, 2], x_init.dtype),
              jnp.arange(rows.shape[0], dtype=jnp.uint32))
    x, _ = jax.lax.scan(body, x_init, inputs)
    return x


def sdedit_start(num_steps: int, strength: float) -> int:
    """Index of the starting level: the last `round(strength N)` levels are run (at least one)."""
    if not 0 < strength <= 1:
        raise ValueError(f"sdedit: strength must be in (0, 1], got {strength}")
    return min(int(round((1 - strength) * num_steps)), num_steps - 1)


def sdedit_nfe(sampler: str, num_steps: int, *, strength: float = 0.5, sampler_options=None, **options) -> int:
    """SDEdit runs `sampler` over the last levels of the grid (`sdedit_start`)."""
    k = sdedit_start(num_steps, float(strength))
    return sampling.nfe(sampler, num_steps - k, **(sampler_options or {}))


@register_method("sdedit", nfe=sdedit_nfe, requires=("model_space",))
def sdedit(denoiser, operator, y, x_init, sigmas, *, key, sampler="euler", anchor=None,
           sampler_options=None, strength: float = 0.5, guide=None, consistency: str = "none"):
    """SDEdit (Meng et al. 2022): noise a guide to the level of `strength` and denoise.

    Args:
      strength: the fraction of the grid that is run (1 = sample from scratch); the guide is
        noised to `sigmas[k]`, `k = round((1 - strength) N)`.
      guide: the starting point in the model's space; default `project(0, y)`, the minimum-norm
        consistent signal (`A^+ y`; the input itself for clipping and denoising), which is why it
        requires 'model_space' (an explicit guide with consistency='none' needs no projection).
      consistency: 'none' (plain editing) or 'replacement' (SDEdit + replacement, for restoration).
    """
    if consistency not in ("none", "replacement"):
        raise ValueError(f"sdedit: consistency must be 'none' or 'replacement', got {consistency!r}")
    k = sdedit_start(sigmas.shape[0] - 1, strength)
    guide = operator.project(jnp.zeros_like(x_init), y) if guide is None else guide
    x_start = guide + sigmas[k] * (x_init / sigmas[0])
    keys = sampling.example_keys(key, x_init.shape[0])
    hook = replacement_hook(operator, y, keys) if consistency == "replacement" else None
    return run_sampler(denoiser, x_start, sigmas[k:], key=key, sampler=sampler, hook=hook,
                       anchor=anchor, sampler_options=sampler_options)

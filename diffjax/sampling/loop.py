"""The one sampler loop, per-example randomness, and the shared step context.

Every sampler is a `step(x, state, ctx) -> (x, denoised, state)` function over one pair
`(sigma, sigma_next)` of the grid, handed to `run`, which

- validates a concrete grid (decreasing, ending in exactly 0);
- scans `step` over the first `N - 1` pairs on device (`lax.scan`: compile time does not grow with
  the number of steps) and applies `final` (default: `step`) to the last pair, the step to 0;
- applies the optional restoration `hook(x, sigma_next) -> x` after every step, at the new level;
- calls the optional `callback(info)` after every step through `jax.debug.callback`, with
  `info = {'i', 'x', 'sigma', 'sigma_next', 'denoised'}` (`x` is the state at `sigma_next`).

Randomness is per example (DESIGN.md, "Randomness"). `key` is either

- a batch of keys, one per example: `[B, 2]` raw `uint32` keys or `[B]` typed keys, e.g.
  `seed_keys(seeds)`; or
- a single key, from which example `b` gets `fold_in(key, b)`.

The noise of step `i` and stream `s` (a step that draws several independent normals uses several
streams) for example `b` is `normal(fold_in(fold_in(key_b, s), i), x.shape[1:])`. Stream 0 is
reserved for `initial_noise`, so the starting noise and the step noise of one seed never coincide.
Example `b`'s sample therefore depends only on its own key: not on the batch size, the other
examples or the device count.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.sampling.grids import validate_grid

Array = jax.Array
Denoiser = Callable[[Array, Array], Array]
Hook = Callable[[Array, Array], Array]

INITIAL_NOISE_STREAM = 0


# --------------------------------------------------------------------------------------
# Per-example keys and noise
# --------------------------------------------------------------------------------------


def seed_keys(seeds) -> Array:
    """One raw PRNG key per integer seed: `[B]` seeds -> `[B, 2]` uint32 keys."""
    return jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))


def _is_typed(key: Array) -> bool:
    return jnp.issubdtype(key.dtype, jax.dtypes.prng_key)


def example_keys(key: Array, batch: int) -> Array:
    """Per-example keys `[B, ...]` from a batch of keys (returned as is) or a single key (folded)."""
    key = jnp.asarray(key) if not _is_typed(key) else key
    single = key.ndim == 0 if _is_typed(key) else key.ndim == 1
    if single:
        return jax.vmap(lambda b: jax.random.fold_in(key, b))(jnp.arange(batch, dtype=jnp.uint32))
    if key.shape[0] != batch:
        raise ValueError(f"got {key.shape[0]} per-example keys for a batch of {batch}")
    return key


def example_normal(keys: Array, stream: int, index: Array, shape: tuple, dtype) -> Array:
    """`N(0, I)` noise `[B, *shape]`: example b draws from `fold_in(fold_in(keys[b], stream), index)`."""

    def draw(k):
        k = jax.random.fold_in(jax.random.fold_in(k, stream), index)
        return jax.random.normal(k, shape, dtype)

    return jax.vmap(draw)(keys)


def initial_noise(seeds, shape: tuple, sigma_max: float, dtype=jnp.float32) -> Array:
    """`x_init = sigma_max * z` `[B, *shape]` with `z` drawn from each example's seed (EDM `--seeds`).

    Args:
      seeds: `[B]` integer seeds, one per example.
      shape: the shape of one example, without the batch axis.
      sigma_max: the first level of the grid.
    """
    keys = seed_keys(seeds)
    return sigma_max * example_normal(keys, INITIAL_NOISE_STREAM, 0, tuple(shape), dtype)


# --------------------------------------------------------------------------------------
# The step context and the loop
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StepContext:
    """What a step sees: its index, its pair of levels, the denoiser and a per-example noise source."""

    i: Array
    sigma: Array
    sigma_next: Array
    denoiser: Denoiser
    keys: Optional[Array]
    sampler: str

    def noise(self, like: Array, stream: int = 1) -> Array:
        """Per-example `N(0, I)` noise shaped like `like`; `stream >= 1` picks an independent draw."""
        if self.keys is None:
            raise ValueError(f"sampler {self.sampler!r} is stochastic: pass key= (one key, or one "
                             "key per example, e.g. seed_keys(seeds))")
        if isinstance(stream, int) and stream < 1:
            raise ValueError("stream 0 is reserved for initial_noise")
        return example_normal(self.keys, stream, self.i, like.shape[1:], like.dtype)

    def denoise(self, x: Array, sigma: Array) -> Array:
        return self.denoiser(x, sigma)


StepFn = Callable[[Array, Any, StepContext], tuple]


def is_concrete(value) -> bool:
    """True when `value` holds data (not a tracer under jit/vmap), so it can be checked in Python."""
    return not isinstance(value, jax.core.Tracer)


def _check_inputs(x_init, sigmas) -> None:
    if is_concrete(sigmas):
        validate_grid(sigmas)
    elif jnp.ndim(sigmas) != 1:
        raise ValueError(f"sigmas must be 1-D, got shape {jnp.shape(sigmas)}")
    if jnp.ndim(x_init) < 1:
        raise ValueError(f"x_init must be a batch [B, ...], got shape {jnp.shape(x_init)}")


def run(step: StepFn, denoiser: Denoiser, x_init: Array, sigmas: Array, *,
        sampler: str,
        state: Any = None,
        final: Optional[StepFn] = None,
        key: Optional[Array] = None,
        hook: Optional[Hook] = None,
        callback: Optional[Callable[[dict], Any]] = None,
        return_state: bool = False):
    """Runs `step` over the grid on device and returns the sample `x` at `sigmas[-1] = 0`.

    Args:
      step: `(x, state, ctx) -> (x_next, denoised, state)` for one pair `(ctx.sigma, ctx.sigma_next)`.
      denoiser: `D(x, sigma) -> x0_hat` in the VE view.
      x_init: `[B, ...]`, already scaled by `sigmas[0]`.
      sigmas: `[N + 1]` decreasing levels ending in 0.
      sampler: the sampler's name, for error messages.
      state: the initial carry of a multistep method (any pytree), or None.
      final: the step used for the last pair (to 0); defaults to `step`.
      key: one key, or one key per example (module docstring); None for deterministic samplers.
      hook: `(x, sigma_next) -> x`, applied after every step (restoration: projection, replacement).
      callback: `info -> None`, called after every step on the host.
      return_state: also return the final carry (e.g. the adaptive solver's NFE counts).
    """
    _check_inputs(x_init, sigmas)
    sigmas = jnp.asarray(sigmas, x_init.dtype)
    keys = None if key is None else example_keys(key, x_init.shape[0])
    final = step if final is None else final

    def advance(fn, x, st, i, sigma, sigma_next):
        ctx = StepContext(i, sigma, sigma_next, denoiser, keys, sampler)
        x, denoised, st = fn(x, st, ctx)
        if hook is not None:
            x = hook(x, sigma_next)
        if callback is not None:
            info = {"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised}
            jax.debug.callback(callback, info)
        return x, st

    def body(carry, inputs):
        x, st = advance(step, *carry, *inputs)
        return (x, st), None

    num_steps = sigmas.shape[0] - 1
    indices = jnp.arange(num_steps - 1, dtype=jnp.int32)
    (x, st), _ = jax.lax.scan(body, (x_init, state), (indices, sigmas[:-2], sigmas[1:-1]))
    x, st = advance(final, x, st, jnp.int32(num_steps - 1), sigmas[-2], sigmas[-1])
    return (x, st) if return_state else x


def denoise_final(x: Array, state: Any, ctx: StepContext):
    """The step to 0 of most samplers: `x = D(x, sigma_last)` (Tweedie; equal to an Euler step to 0)."""
    denoised = ctx.denoise(x, ctx.sigma)
    return denoised, denoised, state


def check_concrete_range(name: str, value, low: float, high: float) -> None:
    """Raises a clear error for a concrete knob outside `[low, high]`."""
    if is_concrete(value) and not (low <= float(np.asarray(value)) <= high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")

"""Noise-level grids: `get_grid(name)(num_steps, sigma_min, sigma_max, **options) -> sigmas`.

Every grid is decreasing, has `num_steps` noise levels from `sigma_max` to `sigma_min`, and ends
with an appended exact 0 (k-diffusion convention), so `len(sigmas) == num_steps + 1`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.registry import Registry

GRIDS = Registry("grid")


def get_grid(name: str):
    """The grid function registered as `name`."""
    return GRIDS.get(name)


def _append_zero(sigmas):
    return jnp.concatenate([sigmas, jnp.zeros((1,), sigmas.dtype)])


def validate_grid(sigmas) -> None:
    """Raises a clear error unless `sigmas` is 1-D, strictly decreasing, positive, and ends in 0."""
    s = np.asarray(sigmas)
    if s.ndim != 1 or s.shape[0] < 2:
        raise ValueError(f"sigmas must be a 1-D array of at least 2 levels, got shape {s.shape}")
    if s[-1] != 0:
        raise ValueError(f"sigmas must end with exactly 0 (k-diffusion convention), got {s[-1]!r}; "
                         "append a zero")
    if np.any(np.diff(s) >= 0):
        raise ValueError(f"sigmas must be strictly decreasing, got {s.tolist()}")


@GRIDS.register("karras")
def karras(num_steps: int, sigma_min: float, sigma_max: float, *, rho: float = 7.0) -> jax.Array:
    """`sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho` (Karras et al. 2022, eq. 5)."""
    ramp = jnp.linspace(0.0, 1.0, num_steps)
    inv_rho_min, inv_rho_max = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((inv_rho_max + ramp * (inv_rho_min - inv_rho_max)) ** rho)

"""Divergence of the PF-ODE vector field: exact trace, or Hutchinson's stochastic trace estimator.

The ODE `dx/dsigma = (x - D(x, sigma)) / sigma` has divergence `(N - tr dD/dx) / sigma`, so both
estimators reduce to `tr J` for the denoiser Jacobian `J = dD/dx` of each example (N = dimension).

    exact        tr J = sum_i e_i^T J e_i                  N Jacobian-vector products per evaluation
    hutchinson   tr J ~ (1/P) sum_p v_p^T J v_p,  E[v v^T] = I   P Jacobian-vector products

Hutchinson 1990 ("A stochastic estimator of the trace of the influence matrix"); its use for the
PF-ODE likelihood follows FFJORD (Grathwohl et al. 2019, eq. 7) and Song et al. 2021 (App. D.2),
where the probes are drawn once and kept fixed along the trajectory so the ODE stays deterministic.
Rademacher probes have the smaller variance, `2 sum_{i != j} J_ij^2` (the diagonal contributes
nothing), against `2 ||J||_F^2`-like terms for Gaussian probes (Hutchinson 1990, Prop. 1).

Each estimator is `fn(denoiser_fn, x, probes) -> (D(x), tr J [B])`, where `denoiser_fn` maps
`[B, ...] -> [B, ...]` at a fixed noise level; examples must not interact (no batch statistics).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from diffjax.registry import Registry

Array = jax.Array

DIVERGENCES = Registry("divergence estimator")
PROBES = Registry("Hutchinson probe distribution")


# --------------------------------------------------------------------------------------
# Probe distributions: sample(key, shape, dtype) with E[v] = 0 and E[v v^T] = I
# --------------------------------------------------------------------------------------


@PROBES.register("rademacher")
def rademacher_probes(key: Array, shape: tuple[int, ...], dtype) -> Array:
    """Entries +-1 with probability 1/2."""
    return jax.random.rademacher(key, shape, dtype=jnp.int8).astype(dtype)


@PROBES.register("gaussian")
def gaussian_probes(key: Array, shape: tuple[int, ...], dtype) -> Array:
    """Standard normal entries."""
    return jax.random.normal(key, shape, dtype)


def draw_probes(key: Array, example_ids: Array, x: Array, *, num_probes: int, probe: str) -> Array:
    """Probes `[P, B, ...]`, drawn per example from `fold_in(key, example_id)`.

    Per-example keys make an example's estimate independent of batch size, batch position and
    device count (DESIGN.md, "Randomness").
    """
    sample = PROBES.get(probe)

    def one(example_id):
        return sample(jax.random.fold_in(key, example_id), (num_probes,) + x.shape[1:], x.dtype)

    return jnp.moveaxis(jax.vmap(one)(example_ids), 0, 1)


# --------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------


def _per_example_dot(a: Array, b: Array) -> Array:
    """`sum over features` of `a * b` for `[..., B, features...]` arrays whose batch axis is -ndim_x."""
    return jnp.sum((a * b).reshape(a.shape[:2] + (-1,)), axis=-1)


@DIVERGENCES.register("exact")
def exact_trace(denoiser_fn: Callable[[Array], Array], x: Array, probes: Optional[Array] = None):
    """`(D(x), tr dD/dx [B])` from N forward-mode products with the basis vectors (one per dimension).

    Every basis tangent `e_i` is applied to all examples at once; `jax.linearize` evaluates `D` once.
    """
    del probes
    dim = math.prod(x.shape[1:])
    out, jvp_fn = jax.linearize(denoiser_fn, x)
    basis = jnp.eye(dim, dtype=x.dtype).reshape((dim, 1) + x.shape[1:])
    basis = jnp.broadcast_to(basis, (dim,) + x.shape)
    columns = jax.vmap(jvp_fn)(basis).reshape(dim, x.shape[0], dim)  # [i, B, j] = J_b[j, i]
    return out, jnp.einsum("ibi->b", columns)


@DIVERGENCES.register("hutchinson")
def hutchinson_trace(denoiser_fn: Callable[[Array], Array], x: Array, probes: Array):
    """`(D(x), (1/P) sum_p v_p^T (dD/dx) v_p [B])` for probes `[P, B, ...]` (Hutchinson 1990)."""
    out, jvp_fn = jax.linearize(denoiser_fn, x)
    jv = jax.vmap(jvp_fn)(probes)
    return out, jnp.mean(_per_example_dot(probes, jv), axis=0)


def check_exact_dimension(x_shape: tuple[int, ...], max_exact_dim: int) -> None:
    """Raises if the exact trace would need more than `max_exact_dim` JVPs per evaluation."""
    dim = math.prod(x_shape[1:])
    if dim > max_exact_dim:
        raise ValueError(
                f"divergence='exact' needs {dim} Jacobian-vector products per ODE evaluation for "
                f"examples of shape {tuple(x_shape[1:])} (dimension {dim} > max_exact_dim="
                f"{max_exact_dim}); use divergence='hutchinson' (with num_probes=...) for this "
                f"dimension, or raise max_exact_dim")

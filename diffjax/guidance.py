"""Guidance as wrappers with one signature: a conditional denoiser `D(x, sigma, cond)` and a
condition in, a denoiser `D(x, sigma)` out. It never forks the sampler loop (STYLE rule 14).

    D_cfg = classifier_free(model.conditional_denoiser(params), cond, null, scale=2.0)
    x = get_sampler("heun")(D_cfg, x_init, sigmas)
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from diffjax.registry import Registry
from diffjax.sde import expand_to

Array = jax.Array
Denoiser = Callable[[Array, Array], Array]
ConditionalDenoiser = Callable[[Array, Array, Any], Array]
GUIDANCE = Registry("guidance")


def _concat(a: Any, b: Any) -> Any:
    return jax.tree.map(lambda u, v: jnp.concatenate([jnp.asarray(u), jnp.asarray(v)]), a, b)


@GUIDANCE.register("cfg")
def classifier_free(conditional_denoiser: ConditionalDenoiser, cond: Any, null_cond: Any, *,
                    scale: float) -> Denoiser:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6), on the denoiser:

        D_w(x, s) = D(x, s | null) + w (D(x, s | c) - D(x, s | null))

    `w = 1` is the conditional model and `w = 0` the unconditional one (k-diffusion's `cond_scale`).
    `cond` and `null_cond` are condition pytrees with leading `[B]`. The two branches share one
    network call on a doubled batch, so one guided call (one NFE) costs two network evaluations.
    """
    both = _concat(cond, null_cond)

    def denoiser(x: Array, sigma: Array) -> Array:
        sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
        out = conditional_denoiser(jnp.concatenate([x, x]), jnp.concatenate([sigma, sigma]), both)
        conditional, unconditional = jnp.split(out, 2)
        return unconditional + scale * (conditional - unconditional)

    return denoiser


@GUIDANCE.register("classifier")
def classifier_guidance(conditional_denoiser: ConditionalDenoiser, cond: Any, *,
                        log_prob_fn: Callable[[Array, Array], Array], scale: float) -> Denoiser:
    """Classifier guidance (Dhariwal & Nichol 2021, Alg. 1) in the VE view:

        score_w = score + w grad_x log p(y | x, sigma)   =>   D_w = D + w sigma^2 grad_x log p(y | x, sigma)

    `log_prob_fn(x, sigma) -> [B]` is a noise-aware classifier's log-probability of the target
    labels; `cond` is the denoiser's own condition (None for an unconditional prior).
    """

    def guided(x: Array, sigma: Array) -> Array:
        grad = jax.grad(lambda u: jnp.sum(log_prob_fn(u, sigma)))(x)
        return conditional_denoiser(x, sigma, cond) + scale * expand_to(sigma, x) ** 2 * grad

    return guided


def get_guidance(name: str):
    return GUIDANCE.get(name)

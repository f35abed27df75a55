"""Guidance as `denoiser -> denoiser` wrappers: it never forks the sampler loop (STYLE rule 14).

    denoiser = classifier_free(precond, net_fn, labels, null_label=num_classes, scale=2.0)
    x = get_sampler("heun")(denoiser, x_init, sigmas)
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from diffjax.precond import AbstractPrecond, NetFn
from diffjax.registry import Registry
from diffjax.sde import expand_to

Array = jax.Array
GUIDANCE = Registry("guidance")


@GUIDANCE.register("cfg")
def classifier_free(precond: AbstractPrecond, net_fn: NetFn, labels: Array, *, null_label: int,
                    scale: float) -> Callable[[Array, Array], Array]:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6), on the denoiser:

        D_w(x, s) = D(x, s | null) + w (D(x, s | y) - D(x, s | null))

    `w = 1` is the conditional model and `w = 0` the unconditional one (k-diffusion's `cond_scale`).
    The conditional and unconditional halves share one network call on a doubled batch, so one
    guided denoiser call (one NFE) costs two network evaluations per example.
    """
    labels = jnp.asarray(labels, jnp.int32)

    def denoiser(x: Array, sigma: Array) -> Array:
        both = jnp.concatenate([labels, jnp.full_like(labels, null_label)])
        sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
        out = precond.denoise(net_fn, jnp.concatenate([x, x]), jnp.concatenate([sigma, sigma]),
                              {"label": both})
        cond, uncond = jnp.split(out, 2)
        return uncond + scale * (cond - uncond)

    return denoiser


@GUIDANCE.register("classifier")
def classifier_guidance(denoiser: Callable[[Array, Array], Array],
                        log_prob_fn: Callable[[Array, Array], Array], *,
                        scale: float) -> Callable[[Array, Array], Array]:
    """Classifier guidance (Dhariwal & Nichol 2021, Alg. 1) in the VE view:

        score_w = score + w grad_x log p(y | x, sigma)   =>   D_w = D + w sigma^2 grad_x log p(y | x, sigma)

    `log_prob_fn(x, sigma) -> [B]` is a noise-aware classifier's log-probability of the target labels.
    """

    def guided(x: Array, sigma: Array) -> Array:
        grad = jax.grad(lambda u: jnp.sum(log_prob_fn(u, sigma)))(x)
        return denoiser(x, sigma) + scale * expand_to(sigma, x) ** 2 * grad

    return guided


def get_guidance(name: str):
    return GUIDANCE.get(name)

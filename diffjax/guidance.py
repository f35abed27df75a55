"""Guidance as wrappers with one signature: a conditional denoiser `D(x, sigma, cond)` and a
condition in, a denoiser `D(x, sigma)` out. It never forks the sampler loop (STYLE rule 14).

    D_cfg = classifier_free(model.conditional_denoiser(params), cond, null, scale=2.0)
    D_auto = autoguidance(model.conditional_denoiser(params), cond, guide=small.conditional_denoiser(p), weight=2.0)
    x = get_sampler("heun")(D_cfg, x_init, sigmas)
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Union

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


@GUIDANCE.register("cfg_multi")
def multi_condition_free(conditional_denoiser: ConditionalDenoiser, cond: Mapping[str, Any],
                         reference: Mapping[str, Any], *, scales: Union[float, Mapping[str, float]]) -> Denoiser:
    """Classifier-free guidance over several conditions with one scale each (composable diffusion,
    Liu et al. 2022, eq. 10; a negative prompt as the reference, as in Stable Diffusion):

        D_w(x, s) = D(x, s | ref) + sum_j w_j (D(x, s | branch_j) - D(x, s | ref))

    `cond` and `reference` are condition dicts `{name: value [B, ...]}`; `reference` holds each guided
    condition's null (or negative) value and every other condition as in `cond` (an inpainting mask
    stays in all branches). `scales` a mapping `{name: w_j}`: branch_j is `reference` with condition
    `name` from `cond`; in score terms, with a null reference,
    `score_w = grad log p(x) + sum_j w_j grad log p(c_j | x)`: each condition's likelihood is raised
    to its own power. `scales` a number w: one branch, `cond` itself (plain CFG against `reference`).
    The `1 + #branches` evaluations share one network call on a stacked batch.
    """
    if isinstance(scales, Mapping):
        unknown = sorted(set(scales) - set(cond))
        if unknown:
            raise ValueError(f"guidance scales for {unknown}, which are not in the condition {sorted(cond)}")
        names = sorted(scales)
        branches = [{**reference, name: cond[name]} for name in names]
        weights = [float(scales[name]) for name in names]
    else:
        branches, weights = [dict(cond)], [float(scales)]
    stacked = dict(reference)
    for branch in branches:
        stacked = _concat(stacked, branch)
    copies = 1 + len(branches)

    def denoiser(x: Array, sigma: Array) -> Array:
        sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
        out = conditional_denoiser(jnp.concatenate([x] * copies), jnp.concatenate([sigma] * copies), stacked)
        parts = jnp.split(out, copies)
        return parts[0] + sum(w * (part - parts[0]) for w, part in zip(weights, parts[1:]))

    return denoiser


@GUIDANCE.register("auto")
def autoguidance(conditional_denoiser: ConditionalDenoiser, cond: Any, *, guide: ConditionalDenoiser,
                 weight: float) -> Denoiser:
    """Autoguidance (Karras et al. 2024, "Guiding a Diffusion Model with a Bad Version of Itself",
    eq. 1 and sec. 3), on the denoiser:

        D_w(x, s) = D_bad(x, s) + w (D_good(x, s) - D_bad(x, s))

    with D_good = `conditional_denoiser` and D_bad = `guide`, a weaker version of the same model
    (smaller, or trained for less); both see the same condition `cond` (None: unconditional).
    `w = 1` is the good model and `w = 0` the guide; w > 1 pushes samples away from where the
    guide errs, toward the good model's modes. Written as `D_good + (w - 1)(D_good - D_bad)`, equal
    to eq. 1, so `w = 1` returns D_good bitwise. One guided call (one NFE) evaluates both networks.
    """

    def denoiser(x: Array, sigma: Array) -> Array:
        good = conditional_denoiser(x, sigma, cond)
        return good + (weight - 1) * (good - guide(x, sigma, cond))

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

"""Denoising score matching = noise-level distribution x weighting x parameterisation (STYLE rule 4).

All objectives are written on the denoiser in the VE view, `x~ = x0 + sigma eps`:

    loss(x0) = E_{sigma ~ q} [ c(sigma) w(sigma) || D(x~, sigma) - x0 ||^2 / sigma^2 ]

`||D - x0||^2 / sigma^2 = ||eps_hat - eps||^2` is the eps-MSE, so every weighting `w` is stated in
eps-MSE units, as in Kingma & Gao 2023 (Table 1). `c(sigma)` is 1 for every distribution except
importance sampling, whose correction turns the estimate back into the uniform-in-t objective.

Likelihood weighting (Song et al. 2021b, Thm. 1): `w = g^2/sigma^2 = 2 d log sigma~/dt`, so

    -ELBO = (T - t_min)/2 * E_{t ~ U}[ g^2/sigma^2 * ||eps_hat - eps||^2 ] + const
          = int_{log sigma_min}^{log sigma_max} E ||eps_hat - eps||^2  d log sigma~ + const,

with sums over dimensions. Hence its importance distribution is log-uniform in sigma~, with constant
weight `w c = 2 log(sigma_max/sigma_min)/(T - t_min)` (`negative_elbo_diffusion_term` below).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from diffjax.precond import AbstractPrecond
from diffjax.registry import Registry
from diffjax.sde import AbstractProcess, expand_to

Array = jax.Array

NOISE_LEVELS = Registry("noise-level distribution")
WEIGHTINGS = Registry("loss weighting")

# --------------------------------------------------------------------------------------
# Noise-level distributions: sample(key, [B]) -> sigma~ [B]; correction(sigma) -> c [B]
# --------------------------------------------------------------------------------------


def _dlog_sigma_dt(process: AbstractProcess, t: Array) -> Array:
    return jax.jvp(lambda u: jnp.log(process.sigma_tilde(u)), (t,), (jnp.ones_like(t),))[1]


@NOISE_LEVELS.register("uniform_t")
@dataclasses.dataclass(frozen=True)
class UniformT:
    """`t ~ U[t_min, T]`, `sigma = sigma~(t)` (DDPM; Song et al. 2021)."""

    process: AbstractProcess

    def sample(self, key, shape):
        t = jax.random.uniform(key, shape, minval=self.process.t_min, maxval=self.process.T)
        return self.process.sigma_tilde(t)

    def correction(self, sigma):
        return jnp.ones_like(sigma)


@NOISE_LEVELS.register("log_normal")
@dataclasses.dataclass(frozen=True)
class LogNormal:
    """`ln sigma ~ N(p_mean, p_std^2)` (Karras et al. 2022, Table 1: P_mean = -1.2, P_std = 1.2)."""

    process: Optional[AbstractProcess] = None
    p_mean: float = -1.2
    p_std: float = 1.2

    def __post_init__(self):
        if self.p_std <= 0:
            raise ValueError(f"log_normal: p_std must be > 0, got {self.p_std}")

    def sample(self, key, shape):
        return jnp.exp(self.p_mean + self.p_std * jax.random.normal(key, shape))

    def correction(self, sigma):
        return jnp.ones_like(sigma)


def _sigma_bounds(process, sigma_min, sigma_max, name):
    lo, hi = process.sigma_range() if process is not None else (None, None)
    lo, hi = sigma_min if sigma_min is not None else lo, sigma_max if sigma_max is not None else hi
    if lo is None or hi is None:
        raise ValueError(f"{name}: give `process` or both sigma_min and sigma_max")
    if not 0 < lo < hi:
        raise ValueError(f"{name}: need 0 < sigma_min < sigma_max, got sigma_min={lo}, sigma_max={hi}")
    return lo, hi


@NOISE_LEVELS.register("log_uniform")
@dataclasses.dataclass(frozen=True)
class LogUniform:
    """`ln sigma ~ U[ln sigma_min, ln sigma_max]`; the range defaults to the process's."""

    process: Optional[AbstractProcess] = None
    sigma_min: Optional[float] = None
    sigma_max: Optional[float] = None

    def sample(self, key, shape):
        lo, hi = _sigma_bounds(self.process, self.sigma_min, self.sigma_max, "log_uniform")
        return jnp.exp(jax.random.uniform(key, shape, minval=math.log(lo), maxval=math.log(hi)))

    def correction(self, sigma):
        return jnp.ones_like(sigma)


@NOISE_LEVELS.register("likelihood_importance")
@dataclasses.dataclass(frozen=True)
class LikelihoodImportance:
    """Importance sampling for likelihood weighting (Song et al. 2021b, sec. 5).

    Draws t with density proportional to `g^2/sigma^2 = 2 d log sigma~/dt`, i.e. `log sigma~` uniform on
    the process's range, and `correction` = (uniform-t density) / (proposal density) in t, so that
    the estimate stays that of the uniform-t objective.
    """

    process: AbstractProcess

    def sample(self, key, shape):
        lo, hi = self.process.sigma_range()
        return jnp.exp(jax.random.uniform(key, shape, minval=math.log(lo), maxval=math.log(hi)))

    def correction(self, sigma):
        lo, hi = self.process.sigma_range()
        t = self.process.t_from_sigma(sigma)
        span = self.process.T - self.process.t_min
        return math.log(hi / lo) / (span * _dlog_sigma_dt(self.process, t))


def get_noise_levels(name: str, **kwargs):
    """Builds the noise-level distribution registered as `name`."""
    return NOISE_LEVELS.get(name)(**kwargs)


# --------------------------------------------------------------------------------------
# Weightings w(sigma~) in eps-MSE units. Each: fn(sigma, *, process, precond, **params) -> [B].
# --------------------------------------------------------------------------------------


@WEIGHTINGS.register("eps_mse")
def eps_mse_weight(sigma, **_):
    """Uniform eps-MSE (Ho et al. 2020, L_simple): `w = 1`."""
    return jnp.ones_like(sigma)


@WEIGHTINGS.register("snr")
def snr_weight(sigma, **_):
    """x0-MSE: `w = SNR = 1/sigma~^2`."""
    return sigma**-2


@WEIGHTINGS.register("v_mse")
def v_mse_weight(sigma, **_):
    """v-MSE (Salimans & Ho 2022): `w = 1 + 1/SNR = 1 + sigma~^2`."""
    return 1.0 + sigma**2


@WEIGHTINGS.register("min_snr")
def min_snr_weight(sigma, *, gamma: float = 5.0, **_):
    """Min-SNR-gamma (Hang et al. 2023, eq. 9, eps form): `w = min(SNR, gamma) / SNR`."""
    snr = sigma**-2
    return jnp.minimum(snr, gamma) / snr


@WEIGHTINGS.register("likelihood")
def likelihood_weight(sigma, *, process: AbstractProcess, **_):
    """Likelihood weighting (Song et al. 2021b, eq. 9): `w = g(t)^2 / sigma(t)^2` per unit time."""
    t = process.t_from_sigma(sigma)
    return process.diffusion_sq(t) / process.sigma(t) ** 2


@WEIGHTINGS.register("edm")
def edm_weight(sigma, *, sigma_data: float = 0.5, **_):
    """EDM `lambda(sigma) = (sigma^2 + sd^2)/(sigma sd)^2` on x0-MSE (Karras et al. 2022, eq. 8)."""
    return (sigma**2 + sigma_data**2) / sigma_data**2


@WEIGHTINGS.register("learned", learned=True)
def learned_weight(sigma, *, sigma_data: float = 0.5, **_):
    """EDM2's learned weighting (Karras et al. 2024, eq. 21): `lambda(sigma) / e^{u(sigma)}` with the
    log-variance `u` learned jointly (`diffjax.models.log_variance`), plus `u` in the loss. This
    function is its base, EDM's `lambda(sigma)`; `DenoisingLoss` divides by `e^u` and adds `u`."""
    return edm_weight(sigma, sigma_data=sigma_data)


@WEIGHTINGS.register("sigmoid")
def sigmoid_weight(sigma, *, bias: float = -3.0, **_):
    """Sigmoid weighting `w = sigmoid(b - lambda)`, `lambda = log SNR` (Kingma & Gao 2023, sec. 5.2)."""
    return jax.nn.sigmoid(bias + 2.0 * jnp.log(sigma))


@WEIGHTINGS.register("native")
def native_weight(sigma, *, precond: AbstractPrecond, **_):
    """Unit weight on the parameterisation's own target: `||F - target||^2` (eps-MSE for 'eps', ...).

    `D` is affine in `F` with slope `k(sigma)`, so `||D - x0||^2 = k^2 ||F - target||^2` and
    `w = sigma^2 / k^2`.
    """
    probe = jnp.ones((sigma.shape[0], 1), sigma.dtype)
    slope = (precond.output_to_x0(probe, probe, sigma) - precond.output_to_x0(0 * probe, probe, sigma))
    return sigma**2 / slope[:, 0] ** 2


def get_weighting(name: str, **params) -> Callable[..., Array]:
    """The weighting registered as `name`, with its paper-default parameters overridden by `params`.

    An unknown parameter is an error that lists the weighting's parameters.
    """
    fn = WEIGHTINGS.get(name)
    known = [p.name for p in inspect.signature(fn).parameters.values()
             if p.kind == inspect.Parameter.KEYWORD_ONLY and p.name not in ("process", "precond")]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"weighting {name!r} has no parameter(s) {unknown}; "
                         f"its parameters: {known or 'none'}")
    return functools.partial(fn, **params)


# --------------------------------------------------------------------------------------
# The objective
# --------------------------------------------------------------------------------------


def _reduce(values: Array, reduction: str) -> Array:
    axes = tuple(range(1, values.ndim))
    if reduction == "sum":
        return jnp.sum(values, axis=axes)
    if reduction == "mean":
        return jnp.mean(values, axis=axes)
    raise ValueError(f"reduction must be one of ['mean', 'sum'], got {reduction!r}")


@dataclasses.dataclass(frozen=True)
class DenoisingLoss:
    """Per-example denoising score matching.

    Attributes:
      noise_levels: a distribution from `NOISE_LEVELS`.
      weighting: a weighting from `get_weighting`, called as `weighting(sigma, process=, precond=)`.
      process, precond: handed to the weighting.
      reduction: 'mean' (per-dimension average; training default) or 'sum' (nats-compatible).
    """

    noise_levels: Any
    weighting: Callable[..., Array]
    process: Optional[AbstractProcess] = None
    precond: Optional[AbstractPrecond] = None
    reduction: str = "mean"
    learned: bool = False

    def per_example(self, denoiser, x0: Array, key: Array, mask: Optional[Array] = None,
                    log_variance: Optional[Callable[[Array], Array]] = None):
        """Returns `(loss [B], sigma [B])` for data `x0` `[B, ...]` and a denoiser `D(x~, sigma[B])`.

        `mask` (broadcastable to `x0`) zeroes padded positions; with 'mean' it averages over them only.
        A `learned` weighting needs `log_variance(sigma [B]) -> u [B]`: the loss is then
        `w c ||D - x0||^2 / sigma^2 / e^u + u` (EDM2 eq. 21).
        """
        key_sigma, key_eps = jax.random.split(key)
        sigma = self.noise_levels.sample(key_sigma, x0.shape[:1]).astype(x0.dtype)
        eps = jax.random.normal(key_eps, x0.shape, x0.dtype)
        x0_hat = denoiser(x0 + expand_to(sigma, x0) * eps, sigma)
        err = (x0_hat - x0) ** 2 / expand_to(sigma, x0) ** 2
        if mask is None:
            per_dim = _reduce(err, self.reduction)
        elif self.reduction == "sum":
            per_dim = _reduce(err * mask, "sum")
        else:
            mask = jnp.broadcast_to(mask, err.shape)
            per_dim = _reduce(err * mask, "sum") / jnp.maximum(_reduce(mask, "sum"), 1.0)
        weight = self.weighting(sigma, process=self.process, precond=self.precond)
        loss = weight * self.noise_levels.correction(sigma) * per_dim
        if self.learned:
            if log_variance is None:
                raise ValueError("the 'learned' weighting needs the model's log_variance(sigma) (EDM2's u(sigma))")
            u = log_variance(sigma).astype(loss.dtype)
            loss = loss * jnp.exp(-u) + u
        return loss, sigma

    def __call__(self, denoiser, x0, key, mask=None) -> Array:
        return self.per_example(denoiser, x0, key, mask)[0]


def make_loss(*, process: AbstractProcess, precond: AbstractPrecond, noise_levels: str = "log_normal",
              noise_levels_kwargs: Optional[dict] = None, weighting: str = "edm",
              weighting_kwargs: Optional[dict] = None, reduction: str = "mean") -> DenoisingLoss:
    """Builds a `DenoisingLoss` from config names (e.g. `config.loss`)."""
    levels = get_noise_levels(noise_levels, process=process, **(noise_levels_kwargs or {}))
    weights = dict(weighting_kwargs or {})
    if weighting in ("edm", "learned"):  # EDM's lambda(sigma) uses the parameterisation's sigma_data
        weights.setdefault("sigma_data", precond.sigma_data)
    weight_fn = get_weighting(weighting, **weights)
    return DenoisingLoss(levels, weight_fn, process=process, precond=precond, reduction=reduction,
                         learned=bool(WEIGHTINGS.meta(weighting).get("learned", False)))


def negative_elbo_diffusion_term(loss_value: Array, process: AbstractProcess) -> Array:
    """Converts a likelihood-weighted, 'sum'-reduced DSM estimate to the ELBO's diffusion term (nats).

    `-ELBO_diffusion = (T - t_min)/2 * E[loss]`; see the module docstring.
    """
    return 0.5 * (process.T - process.t_min) * loss_value

"""Discretisations, curricula and target-network schedules of consistency models.

All noise levels are `sigma~` (the VE view). Consistency models discretise `[sigma_min, sigma_max]`
with EDM's rho-ramp (Song et al. 2023, sec. 3 and App. C; Karras et al. 2022, eq. 5), indexed
*ascending* with 0-based `i = 0..N-1`:

    sigma_i = (sigma_min^(1/rho) + i/(N-1) (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho

so `sigma_0 = sigma_min` (the boundary, where the consistency function is the identity) and
`sigma_(N-1) = sigma_max`. `N` may be a traced integer: the curricula change it during training.

Curricula `N(k)` over training steps `k = 0..K-1`:

    'ct'   (Song et al. 2023, App. C, eq. 36 with s0=2, s1=150):
           N(k) = ceil(sqrt(k/K ((s1 + 1)^2 - s0^2) + s0^2) - 1) + 1
           and the adaptive target decay  mu(k) = exp(s0 log(mu0) / N(k))
    'ict'  (Song & Dhariwal 2023, sec. 3.4, eq. 7 with s0=10, s1=1280):
           N(k) = min(s0 2^floor(k/K'), s1) + 1,  K' = floor(K / (log2 floor(s1/s0) + 1))
           and the target decay mu = 0 (the target is the stop-gradient of the online network)
    'fixed' (consistency distillation, Song et al. 2023, Alg. 2): N(k) = num_scales.

Level distributions over the adjacent pairs `(sigma_n, sigma_(n+1))`, `n = 0..N-2`:

    'uniform'     n ~ U{0, ..., N-2} (Song et al. 2023, Algs. 2-3)
    'lognormal'   p(n) ∝ erf((ln sigma_(n+1) - P_mean)/(sqrt 2 P_std)) - erf((ln sigma_n - P_mean)/(sqrt 2 P_std)),
                  P_mean = -1.1, P_std = 2.0 (Song & Dhariwal 2023, sec. 3.5, eq. 10)

and pair weightings `lambda`: 'uniform' (1) and 'inverse_gap', `1/(sigma_(n+1) - sigma_n)`
(Song & Dhariwal 2023, sec. 3.3).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.registry import Registry
from diffjax.sampling.consistency import nested_karras  # noqa: F401  (re-exported)

Array = jax.Array

CURRICULA = Registry("consistency curriculum")
LEVEL_SAMPLINGS = Registry("consistency level distribution")
PAIR_WEIGHTINGS = Registry("consistency pair weighting")


# --------------------------------------------------------------------------------------
# The discretisation
# --------------------------------------------------------------------------------------


def karras_level(i: Array, num_scales: Array, sigma_min: float, sigma_max: float,
                 rho: float = 7.0) -> Array:
    """`sigma_i` of the ascending rho-ramp with `num_scales` levels; `i` and `num_scales` may be traced."""
    frac = jnp.asarray(i, jnp.float32) / (jnp.asarray(num_scales, jnp.float32) - 1.0)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return (lo + frac * (hi - lo)) ** rho


# --------------------------------------------------------------------------------------
# Curricula N(k) and target decays mu(k)
# --------------------------------------------------------------------------------------


@CURRICULA.register("fixed")
@dataclasses.dataclass(frozen=True)
class Fixed:
    """`N(k) = num_scales`; the target decay is the one configured (CD: mu = 0.95)."""

    num_scales: int = 18

    def __post_init__(self):
        if self.num_scales < 2:
            raise ValueError(f"fixed curriculum: num_scales must be >= 2, got {self.num_scales}")

    def num_scales_at(self, step: Array, total_steps: int) -> Array:
        return jnp.full((), self.num_scales, jnp.int32)

    def max_scales(self) -> int:
        return self.num_scales

    def target_decay(self, step: Array, total_steps: int):
        return None  # the configured `distill.target_decay` decides


@CURRICULA.register("ct")
@dataclasses.dataclass(frozen=True)
class CT:
    """Song et al. (2023), App. C: N grows like sqrt(k) from s0 + 1 to s1 + 1, adaptive target decay."""

    s0: int = 2
    s1: int = 150
    mu0: float = 0.9

    def num_scales_at(self, step: Array, total_steps: int) -> Array:
        k = jnp.asarray(step, jnp.float32)
        inner = jnp.sqrt(k / total_steps * ((self.s1 + 1) ** 2 - self.s0**2) + self.s0**2)
        return jnp.maximum(jnp.ceil(inner - 1.0), 1.0).astype(jnp.int32) + 1

    def max_scales(self) -> int:
        return self.s1 + 1

    def target_decay(self, step: Array, total_steps: int) -> Array:
        """`mu(k) = exp(s0 log mu0 / N(k))` (App. C; openai/consistency_models divides by N(k) - 1)."""
        scales = self.num_scales_at(step, total_steps).astype(jnp.float32)
        return jnp.exp(self.s0 * math.log(self.mu0) / scales)


@CURRICULA.register("ict")
@dataclasses.dataclass(frozen=True)
class ICT:
    """Song & Dhariwal (2023), eq. 7: N doubles from s0 + 1 every K' steps, up to s1 + 1; mu = 0."""

    s0: int = 10
    s1: int = 1280

    def __post_init__(self):
        if not 1 <= self.s0 <= self.s1:
            raise ValueError(f"ict curriculum: need 1 <= s0 <= s1, got s0={self.s0}, s1={self.s1}")

    def stage_length(self, total_steps: int) -> int:
        """`K' = floor(K / (log2 floor(s1/s0) + 1))`."""
        return max(int(math.floor(total_steps / (math.log2(math.floor(self.s1 / self.s0)) + 1))), 1)

    def num_scales_at(self, step: Array, total_steps: int) -> Array:
        doublings = jnp.asarray(step, jnp.int32) // self.stage_length(total_steps)
        scales = self.s0 * jnp.exp2(jnp.minimum(doublings, 30).astype(jnp.float32))
        return jnp.minimum(scales, self.s1).astype(jnp.int32) + 1

    def max_scales(self) -> int:
        return self.s1 + 1

    def target_decay(self, step: Array, total_steps: int) -> Array:
        return jnp.zeros((), jnp.float32)


def get_curriculum(name: str, **kwargs):
    """Builds the curriculum registered as `name` ('fixed', 'ct', 'ict') with its paper defaults."""
    return CURRICULA.get(name)(**kwargs)


# --------------------------------------------------------------------------------------
# Distributions over the adjacent pairs, and their weightings
# --------------------------------------------------------------------------------------


@LEVEL_SAMPLINGS.register("uniform")
@dataclasses.dataclass(frozen=True)
class UniformPairs:
    """`n ~ U{0, ..., N-2}` (Song et al. 2023, Algs. 2 and 3)."""

    def logits(self, levels: Array, valid: Array) -> Array:
        return jnp.where(valid, 0.0, -jnp.inf)


@LEVEL_SAMPLINGS.register("lognormal")
@dataclasses.dataclass(frozen=True)
class LogNormalPairs:
    """The log-normal mass of `[sigma_n, sigma_(n+1)]` (Song & Dhariwal 2023, eq. 10)."""

    p_mean: float = -1.1
    p_std: float = 2.0

    def logits(self, levels: Array, valid: Array) -> Array:
        cdf = jax.scipy.special.erf((jnp.log(levels) - self.p_mean) / (math.sqrt(2.0) * self.p_std))
        mass = jnp.maximum(cdf[1:] - cdf[:-1], 1e-30)
        return jnp.where(valid, jnp.log(mass), -jnp.inf)


def _pair_logits(sampling, num_scales: Array, max_scales: int, sigma_min: float, sigma_max: float,
                 rho: float) -> Array:
    """Unnormalised log-probabilities `[max_scales - 1]` of the pairs (-inf beyond `N - 2`)."""
    i = jnp.arange(max_scales)
    levels = karras_level(jnp.minimum(i, num_scales - 1), num_scales, sigma_min, sigma_max, rho)
    valid = jnp.arange(max_scales - 1) < num_scales - 1
    return sampling.logits(levels, valid)


def pair_probabilities(sampling, num_scales: Array, max_scales: int, sigma_min: float, sigma_max: float,
                       rho: float = 7.0) -> Array:
    """`p(n)` `[max_scales - 1]` over the pairs of a `num_scales`-level ramp (0 beyond `N - 2`)."""
    return jax.nn.softmax(_pair_logits(sampling, num_scales, max_scales, sigma_min, sigma_max, rho))


def sample_pairs(key: Array, shape: tuple, sampling, num_scales: Array, max_scales: int,
                 sigma_min: float, sigma_max: float, rho: float = 7.0) -> tuple[Array, Array]:
    """Draws pair indices `n` of `shape` and returns `(sigma_n, sigma_(n+1))`.

    `num_scales` may be traced (a curriculum); `max_scales` is its static upper bound.
    """
    logits = _pair_logits(sampling, num_scales, max_scales, sigma_min, sigma_max, rho)
    n = jax.random.categorical(key, logits, shape=shape)
    return (karras_level(n, num_scales, sigma_min, sigma_max, rho),
            karras_level(n + 1, num_scales, sigma_min, sigma_max, rho))


@PAIR_WEIGHTINGS.register("uniform")
def uniform_weight(sigma: Array, sigma_next: Array) -> Array:
    """`lambda = 1` (Song et al. 2023)."""
    return jnp.ones_like(sigma)


@PAIR_WEIGHTINGS.register("inverse_gap")
def inverse_gap_weight(sigma: Array, sigma_next: Array) -> Array:
    """`lambda(sigma_n) = 1/(sigma_(n+1) - sigma_n)` (Song & Dhariwal 2023, sec. 3.3)."""
    return 1.0 / (sigma_next - sigma)


def get_level_sampling(name: str, **kwargs):
    return LEVEL_SAMPLINGS.get(name)(**kwargs)


def get_pair_weighting(name: str):
    return PAIR_WEIGHTINGS.get(name)


# --------------------------------------------------------------------------------------
# EMA helpers (STYLE rule 10: half-lives in examples)
# --------------------------------------------------------------------------------------


def halflife_for_decay(decay: float, batch_size: int) -> float:
    """The EMA half-life in examples of a per-step decay at `batch_size` (inverse of `ema_decay`).

    CD's target decay mu = 0.95 (Song et al. 2023, App. C) at batch 512 is 6920 examples.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be in (0, 1), got {decay}")
    return float(batch_size * np.log(0.5) / np.log(decay))

"""Forward processes `x_t = alpha(t) x_0 + sigma(t) eps`, defined by `alpha(t)` and `sigma(t)` alone.

Everything else is derived once, in `AbstractProcess` (DESIGN.md, "the one idea"):

    f(t)     = d log alpha / dt                              (drift coefficient)
    g(t)^2   = d sigma^2 / dt - 2 f(t) sigma(t)^2            (diffusion)
    sigma~   = sigma / alpha,   lambda = log(alpha / sigma)  (VE view; Karras et al. 2022, sec. 4)
    score(x, t) = (alpha D(x / alpha, sigma~) - x) / sigma^2  for a denoiser D in the VE view

so the forward SDE is `dx = f(t) x dt + g(t) dw` (Song et al. 2021, eq. 5), its reverse
`dx = [f x - g^2 score] dt + g dw_bar` (eq. 6) and the probability-flow ODE
`dx/dt = f x - g^2 score / 2` (eq. 13).

Concrete processes only state `alpha`, `sigma`, the closed-form inverse `t_from_sigma` of
`sigma~(t)`, and their time range `[t_min, T]`. Time derivatives come from `jax.jvp`, which is exact.

    process = get_sde("vp")               # paper defaults: beta_min=0.1, beta_max=20
    process = get_sde("ve", sigma_max=80)
"""
from __future__ import annotations

import abc
import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from diffjax.registry import Registry

Array = jax.Array
Denoiser = Callable[[Array, Array], Array]

SDES = Registry("sde")


def get_sde(name: str, **kwargs) -> "AbstractProcess":
    """Builds the process registered as `name`; kwargs override the paper defaults."""
    return SDES.get(name)(**kwargs)


def expand_to(values: Array, x: Array) -> Array:
    """Reshapes a scalar or per-example `[B]` array so it broadcasts against `x` `[B, ...]`."""
    values = jnp.asarray(values, dtype=x.dtype)
    return values.reshape(values.shape + (1,) * (x.ndim - values.ndim))


def _sum_over_example(x: Array) -> Array:
    return jnp.sum(x, axis=tuple(range(1, x.ndim)))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class AbstractProcess(abc.ABC):
    """A Gaussian forward process on `[t_min, T]`. Subclasses are frozen dataclasses.

    Abstract: `alpha(t)`, `sigma(t)`, `t_from_sigma(sigma~)`, and the fields `t_min`, `T`.
    Everything below them is final.
    """

    t_min: float
    T: float

    # ----- abstract -----
    @abc.abstractmethod
    def alpha(self, t: Array) -> Array:
        """Signal scale of the marginal."""

    @abc.abstractmethod
    def sigma(self, t: Array) -> Array:
        """Noise scale of the marginal."""

    @abc.abstractmethod
    def t_from_sigma(self, sigma_tilde: Array) -> Array:
        """Inverse of `sigma_tilde(t) = sigma(t) / alpha(t)` (closed form)."""

    # ----- derived, final -----
    def _check_range(self) -> None:
        _require(self.t_min > 0, f"{type(self).__name__}: t_min must be > 0, got {self.t_min}")
        _require(self.T > self.t_min,
                 f"{type(self).__name__}: need t_min < T, got t_min={self.t_min}, T={self.T}")

    def sigma_tilde(self, t: Array) -> Array:
        """Noise level in the VE view, `sigma(t) / alpha(t)`."""
        return self.sigma(t) / self.alpha(t)

    def log_snr(self, t: Array) -> Array:
        """`lambda(t) = log(alpha^2 / sigma^2) = -2 log sigma~`."""
        return -2.0 * jnp.log(self.sigma_tilde(t))

    def sigma_range(self) -> tuple[float, float]:
        """`(sigma~(t_min), sigma~(T))`: the VE noise range that grids and samplers cover."""
        with jax.ensure_compile_time_eval():  # plain floats, also while tracing under jit
            return (float(self.sigma_tilde(jnp.asarray(self.t_min))),
                    float(self.sigma_tilde(jnp.asarray(self.T))))

    def dalpha_dt(self, t: Array) -> Array:
        return jax.jvp(self.alpha, (t,), (jnp.ones_like(t),))[1]

    def dsigma_dt(self, t: Array) -> Array:
        return jax.jvp(self.sigma, (t,), (jnp.ones_like(t),))[1]

    def drift_coef(self, t: Array) -> Array:
        """`f(t) = d log alpha / dt`."""
        return self.dalpha_dt(t) / self.alpha(t)

    def diffusion_sq(self, t: Array) -> Array:
        """`g(t)^2 = d sigma^2/dt - 2 f(t) sigma^2`."""
        sigma = self.sigma(t)
        return 2.0 * sigma * self.dsigma_dt(t) - 2.0 * self.drift_coef(t) * sigma**2

    def marginal(self, x0: Array, t: Array) -> tuple[Array, Array]:
        """Mean `alpha(t) x0` and std `sigma(t)` of `p(x_t | x0)`; `t` scalar or `[B]`."""
        return expand_to(self.alpha(t), x0) * x0, expand_to(self.sigma(t), x0)

    def marginal_sample(self, key: Array, x0: Array, t: Array) -> Array:
        mean, std = self.marginal(x0, t)
        return mean + std * jax.random.normal(key, x0.shape, x0.dtype)

    def sde(self, x: Array, t: Array) -> tuple[Array, Array]:
        """Forward SDE coefficients: drift `f(t) x` and diffusion `g(t)` (Song et al. 2021, eq. 5)."""
        return expand_to(self.drift_coef(t), x) * x, expand_to(jnp.sqrt(self.diffusion_sq(t)), x)

    def score(self, denoiser: Denoiser, x: Array, t: Array) -> Array:
        """Data-space score `(alpha D(x/alpha, sigma~) - x) / sigma^2` of a VE-view denoiser."""
        alpha, sigma = expand_to(self.alpha(t), x), expand_to(self.sigma(t), x)
        x0_hat = denoiser(x / alpha, self.sigma_tilde(t))
        return (alpha * x0_hat - x) / sigma**2

    def reverse_sde(self, denoiser: Denoiser, x: Array, t: Array) -> tuple[Array, Array]:
        """Reverse-time SDE drift `f x - g^2 score` and diffusion `g` (Song et al. 2021, eq. 6)."""
        g2 = expand_to(self.diffusion_sq(t), x)
        drift = expand_to(self.drift_coef(t), x) * x - g2 * self.score(denoiser, x, t)
        return drift, jnp.sqrt(g2)

    def ode_drift(self, denoiser: Denoiser, x: Array, t: Array) -> Array:
        """Probability-flow ODE `dx/dt = f x - g^2 score / 2` (Song et al. 2021, eq. 13)."""
        g2 = expand_to(self.diffusion_sq(t), x)
        return expand_to(self.drift_coef(t), x) * x - 0.5 * g2 * self.score(denoiser, x, t)

    def prior_std(self) -> float:
        """Std of the prior `N(0, sigma(T)^2)`, the marginal at T with the `alpha(T) x0` term dropped."""
        with jax.ensure_compile_time_eval():
            return float(self.sigma(jnp.asarray(self.T)))

    def prior_sample(self, key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        """`x_T ~ N(0, sigma(T)^2 I)` in data space."""
        return self.prior_std() * jax.random.normal(key, shape, dtype)

    def prior_logp(self, x: Array) -> Array:
        """Per-example log-density `[B]` of `x` `[B, ...]` under `N(0, sigma(T)^2 I)`, in nats."""
        std = self.prior_std()
        dim = math.prod(x.shape[1:])
        return (-0.5 * _sum_over_example(x**2) / std**2
                - dim * (math.log(std) + 0.5 * math.log(2 * math.pi)))


# --------------------------------------------------------------------------------------
# Concrete processes
# --------------------------------------------------------------------------------------


@SDES.register("ve")
@dataclasses.dataclass(frozen=True)
class VE(AbstractProcess):
    """Variance exploding (SMLD): `alpha = 1`, `sigma = sigma_min (sigma_max/sigma_min)^t`.

    Song et al. 2021, eq. 30 and App. C; defaults from score_sde's CIFAR-10 configs.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    t_min: float = 1e-5
    T: float = 1.0

    def __post_init__(self):
        _require(self.sigma_min > 0, f"VE: sigma_min must be > 0, got {self.sigma_min}")
        _require(self.sigma_max > self.sigma_min,
                 f"VE: need sigma_min < sigma_max, got {self.sigma_min} >= {self.sigma_max}")
        self._check_range()

    def alpha(self, t):
        return jnp.ones_like(t)

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def t_from_sigma(self, sigma_tilde):
        return jnp.log(sigma_tilde / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)


def _check_betas(name: str, beta_min: float, beta_max: float) -> None:
    _require(beta_min > 0, f"{name}: beta_min must be > 0, got {beta_min}")
    _require(beta_max > beta_min,
             f"{name}: beta_min must be < beta_max, got beta_min={beta_min} > beta_max={beta_max}")


def _integrated_beta(t, beta_min, beta_max):
    """`B(t) = int_0^t beta(s) ds` for the linear schedule `beta(t) = b_min + t (b_max - b_min)`."""
    return beta_min * t + 0.5 * (beta_max - beta_min) * t**2


def _t_from_integrated_beta(b, beta_min, beta_max):
    """Inverse of `_integrated_beta` (positive root of the quadratic; EDM's `VPPrecond.sigma_inv`)."""
    delta = beta_max - beta_min
    return (jnp.sqrt(beta_min**2 + 2.0 * delta * b) - beta_min) / delta


@SDES.register("vp")
@dataclasses.dataclass(frozen=True)
class VP(AbstractProcess):
    """Variance preserving (DDPM, linear beta): `alpha = exp(-B(t)/2)`, `sigma = sqrt(1 - alpha^2)`.

    Song et al. 2021, eqs. 11 and 29 (`dx = -beta x/2 dt + sqrt(beta) dw`); beta in [0.1, 20].
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-3
    T: float = 1.0

    def __post_init__(self):
        _check_betas("VP", self.beta_min, self.beta_max)
        self._check_range()

    def alpha(self, t):
        return jnp.exp(-0.5 * _integrated_beta(t, self.beta_min, self.beta_max))

    def sigma(self, t):
        return jnp.sqrt(-jnp.expm1(-_integrated_beta(t, self.beta_min, self.beta_max)))

    def t_from_sigma(self, sigma_tilde):
        # alpha^2 = 1 / (1 + sigma~^2)  =>  B(t) = log(1 + sigma~^2).
        return _t_from_integrated_beta(jnp.log1p(sigma_tilde**2), self.beta_min, self.beta_max)


@SDES.register("subvp")
@dataclasses.dataclass(frozen=True)
class SubVP(AbstractProcess):
    """Sub-VP: `alpha = exp(-B(t)/2)`, `sigma = 1 - exp(-B(t))` (Song et al. 2021, eqs. 17 and 29).

    Its diffusion is `g^2 = beta(t) (1 - exp(-2 B(t)))`, below VP's at every t.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-3
    T: float = 1.0

    def __post_init__(self):
        _check_betas("SubVP", self.beta_min, self.beta_max)
        self._check_range()

    def alpha(self, t):
        return jnp.exp(-0.5 * _integrated_beta(t, self.beta_min, self.beta_max))

    def sigma(self, t):
        return -jnp.expm1(-_integrated_beta(t, self.beta_min, self.beta_max))

    def t_from_sigma(self, sigma_tilde):
        # sigma~ = (1 - a^2) / a  =>  a^2 + sigma~ a - 1 = 0  =>  a = (sqrt(sigma~^2 + 4) - sigma~) / 2.
        a = 2.0 / (jnp.sqrt(sigma_tilde**2 + 4.0) + sigma_tilde)
        return _t_from_integrated_beta(-2.0 * jnp.log(a), self.beta_min, self.beta_max)


@SDES.register("edm")
@dataclasses.dataclass(frozen=True)
class EDM(AbstractProcess):
    """EDM: `alpha = 1`, `sigma = t` on `[0.002, 80]` (Karras et al. 2022, Table 1)."""

    t_min: float = 0.002
    T: float = 80.0

    def __post_init__(self):
        self._check_range()

    def alpha(self, t):
        return jnp.ones_like(t)

    def sigma(self, t):
        return t

    def t_from_sigma(self, sigma_tilde):
        return sigma_tilde


@SDES.register("cosine")
@dataclasses.dataclass(frozen=True)
class Cosine(AbstractProcess):
    """Cosine VP (iDDPM): `alpha^2 = f(t)/f(0)`, `f(t) = cos^2((t + s)/(1 + s) pi/2)`, `sigma^2 = 1 - alpha^2`.

    Nichol & Dhariwal 2021, eq. 17 with s = 0.008. The schedule reaches `alpha = 0` at t = 1, so T
    defaults to 0.9946 as in DPM-Solver's continuous cosine schedule (sigma~(T) ~ 119).
    """

    s: float = 0.008
    t_min: float = 1e-3
    T: float = 0.9946

    def __post_init__(self):
        _require(self.s >= 0, f"Cosine: s must be >= 0, got {self.s}")
        _require(self.T < 1.0, f"Cosine: T must be < 1 (alpha(1) = 0), got T={self.T}")
        self._check_range()

    def _angle(self, t):
        return (t + self.s) / (1.0 + self.s) * (math.pi / 2)

    def alpha(self, t):
        return jnp.cos(self._angle(t)) / math.cos(self.s / (1.0 + self.s) * math.pi / 2)

    def sigma(self, t):
        return jnp.sqrt(1.0 - self.alpha(t) ** 2)

    def t_from_sigma(self, sigma_tilde):
        alpha = 1.0 / jnp.sqrt(1.0 + sigma_tilde**2)
        cos_angle = alpha * math.cos(self.s / (1.0 + self.s) * math.pi / 2)
        return jnp.arccos(cos_angle) * (2 / math.pi) * (1.0 + self.s) - self.s


@SDES.register("flow")
@dataclasses.dataclass(frozen=True)
class Flow(AbstractProcess):
    """Linear interpolant of flow matching / rectified flow: `alpha = 1 - t`, `sigma = t`.

    Lipman et al. 2023 (optimal-transport path with sigma_min = 0); Liu et al. 2023. `sigma~ = t/(1-t)`
    diverges at t = 1, so T defaults to 0.999 (sigma~(T) = 999), below which the prior N(0, T^2)
    differs from the marginal by the negligible `0.001 x0`.
    """

    t_min: float = 1e-3
    T: float = 0.999

    def __post_init__(self):
        _require(self.T < 1.0, f"Flow: T must be < 1 (alpha(1) = 0), got T={self.T}")
        self._check_range()

    def alpha(self, t):
        return 1.0 - t

    def sigma(self, t):
        return t

    def t_from_sigma(self, sigma_tilde):
        return sigma_tilde / (1.0 + sigma_tilde)

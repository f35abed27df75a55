"""Parameterisations: a raw network `F(x_in, c_noise, cond)` becomes a denoiser `D(x~, sigma~)`.

Everything here works in the VE view `x~ = x0 + sigma~ eps` (Karras et al. 2022, sec. 4), where a
denoiser `D(x~, sigma~) ~ E[x0 | x~]` is the universal model interface. Each parameterisation is

    D(x~, s) = output_to_x0(F(c_in(s) x~, c_noise(s), cond), x~, s)

The input scaling and noise conditioning are shared fields, so that every output parameterisation
(eps, x0, v, score, flow velocity, EDM) can be combined with every input convention:

    input_scaling='unit'     c_in = 1 / sqrt(sigma_data^2 + s^2)   (EDM; unit-variance net input)
    input_scaling='process'  x_in = alpha(t) x~ = x_t               (DDPM / score_sde: the process state)
    noise_conditioning='log_sigma'  c_noise = ln(s) / 4             (EDM)
    noise_conditioning='time'       c_noise = t(s)                  (score_sde; the network's noise
                                                                     embedding scales it, as DDPM's 999 t)

The conversions between predictions are the keyword-only functions below: the only place where
eps, x0, v and score are related.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from diffjax.registry import Registry
from diffjax.sde import AbstractProcess, expand_to

Array = jax.Array
NetFn = Callable[[Array, Array, Any], Array]  # (x_in, c_noise [B], cond) -> F

PRECONDS = Registry("parameterisation")

# --------------------------------------------------------------------------------------
# Prediction conversions (VE view: x = x0 + sigma eps; v as in Salimans & Ho 2022, eq. 13,
# for the variance-preserving equivalent alpha = 1/sqrt(1 + sigma^2)).
# --------------------------------------------------------------------------------------


def x0_from_eps(*, x: Array, eps: Array, sigma: Array) -> Array:
    """`x0 = x - sigma eps`."""
    return x - expand_to(sigma, x) * eps


def eps_from_x0(*, x: Array, x0: Array, sigma: Array) -> Array:
    """`eps = (x - x0) / sigma`."""
    return (x - x0) / expand_to(sigma, x)


def score_from_x0(*, x: Array, x0: Array, sigma: Array) -> Array:
    """Tweedie: `grad log p_sigma(x) = (x0 - x) / sigma^2` (Efron 2011)."""
    return (x0 - x) / expand_to(sigma, x) ** 2


def x0_from_score(*, x: Array, score: Array, sigma: Array) -> Array:
    """`x0 = x + sigma^2 score`."""
    return x + expand_to(sigma, x) ** 2 * score


def v_from_x0(*, x: Array, x0: Array, sigma: Array) -> Array:
    """`v = alpha eps - sigma_vp x0 = (eps - sigma x0) / sqrt(1 + sigma^2)`."""
    s = expand_to(sigma, x)
    eps = (x - x0) / s
    return (eps - s * x0) / jnp.sqrt(1.0 + s**2)


def x0_from_v(*, x: Array, v: Array, sigma: Array) -> Array:
    """`x0 = alpha x_vp - sigma_vp v = x / (1 + sigma^2) - sigma v / sqrt(1 + sigma^2)`."""
    s = expand_to(sigma, x)
    return x / (1.0 + s**2) - s * v / jnp.sqrt(1.0 + s**2)


def denoiser_to_ode_derivative(*, x: Array, x0: Array, sigma: Array) -> Array:
    """PF-ODE in the VE view: `dx/dsigma = (x - D(x, sigma)) / sigma` (Karras et al. 2022, eq. 4)."""
    return (x - x0) / expand_to(sigma, x)


# --------------------------------------------------------------------------------------
# Parameterisations
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AbstractPrecond(abc.ABC):
    """Shared input scaling and noise conditioning; subclasses define the output map only.

    Attributes:
      process: the forward process; needed by 'process' input scaling, 'time' conditioning and 'flow'.
      sigma_data: data standard deviation used by 'unit' input scaling (and by EDM's output map).
      input_scaling: 'unit' or 'process' (see module docstring).
      noise_conditioning: 'log_sigma' or 'time'.
    """

    process: Optional[AbstractProcess] = None
    sigma_data: float = 0.5
    input_scaling: str = "unit"
    noise_conditioning: str = "log_sigma"

    def __post_init__(self):
        if self.input_scaling not in ("unit", "process"):
            raise ValueError(f"input_scaling must be one of ['process', 'unit'], got {self.input_scaling!r}")
        if self.noise_conditioning not in ("log_sigma", "time"):
            raise ValueError("noise_conditioning must be one of ['log_sigma', 'time'], "
                             f"got {self.noise_conditioning!r}")
        if self.sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0, got {self.sigma_data}")
        needs_process = (self.input_scaling == "process" or self.noise_conditioning == "time"
                         or self._needs_process())
        if needs_process and self.process is None:
            raise ValueError(f"{type(self).__name__} with input_scaling={self.input_scaling!r}, "
                             f"noise_conditioning={self.noise_conditioning!r} needs `process`")

    def _needs_process(self) -> bool:
        return False

    @abc.abstractmethod
    def output_to_x0(self, out: Array, x: Array, sigma: Array) -> Array:
        """Maps the raw network output to `x0_hat` in the VE view."""

    @abc.abstractmethod
    def target(self, *, x0: Array, eps: Array, sigma: Array) -> Array:
        """The network's regression target (what `out` should equal), for `x = x0 + sigma eps`."""

    def c_in(self, sigma: Array) -> Array:
        if self.input_scaling == "unit":
            return 1.0 / jnp.sqrt(self.sigma_data**2 + sigma**2)
        return self.process.alpha(self.process.t_from_sigma(sigma))

    def c_noise(self, sigma: Array) -> Array:
        if self.noise_conditioning == "log_sigma":
            return 0.25 * jnp.log(sigma)
        return self.process.t_from_sigma(sigma)

    def denoise(self, net_fn: NetFn, x: Array, sigma: Array, cond: Any = None) -> Array:
        """`D(x~, sigma~)` for `x` `[B, ...]` and `sigma` scalar or `[B]`. Returns `[B, ...]`."""
        sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
        out = net_fn(expand_to(self.c_in(sigma), x) * x, self.c_noise(sigma), cond)
        return self.output_to_x0(out, x, sigma)


@PRECONDS.register("eps")
@dataclasses.dataclass(frozen=True)
class EpsPrecond(AbstractPrecond):
    """Noise prediction (Ho et al. 2020): `D = x~ - sigma~ F`."""

    def output_to_x0(self, out, x, sigma):
        return x0_from_eps(x=x, eps=out, sigma=sigma)

    def target(self, *, x0, eps, sigma):
        return eps


@PRECONDS.register("x0")
@dataclasses.dataclass(frozen=True)
class X0Precond(AbstractPrecond):
    """Data prediction: `D = F`."""

    def output_to_x0(self, out, x, sigma):
        return out

    def target(self, *, x0, eps, sigma):
        return x0


@PRECONDS.register("v")
@dataclasses.dataclass(frozen=True)
class VPrecond(AbstractPrecond):
    """Velocity prediction (Salimans & Ho 2022, sec. 4), on the VP-equivalent of sigma~."""

    def output_to_x0(self, out, x, sigma):
        return x0_from_v(x=x, v=out, sigma=sigma)

    def target(self, *, x0, eps, sigma):
        return v_from_x0(x=x0 + expand_to(sigma, x0) * eps, x0=x0, sigma=sigma)


@PRECONDS.register("score")
@dataclasses.dataclass(frozen=True)
class ScorePrecond(AbstractPrecond):
    """Score prediction `F = grad log p(x~)` in the VE view (Song & Ermon 2019): `D = x~ + sigma~^2 F`."""

    def output_to_x0(self, out, x, sigma):
        return x0_from_score(x=x, score=out, sigma=sigma)

    def target(self, *, x0, eps, sigma):
        return -eps / expand_to(sigma, eps)


@PRECONDS.register("flow")
@dataclasses.dataclass(frozen=True)
class FlowPrecond(AbstractPrecond):
    """Velocity of the process path, `F = dx_t/dt = alpha' x0 + sigma' eps` (Lipman et al. 2023).

    For the 'flow' process this is rectified flow's `eps - x0`. Inverting the 2x2 system
    `x_t = alpha x0 + sigma eps`, `F = alpha' x0 + sigma' eps` gives
    `x0 = (sigma' x_t - sigma F) / (alpha sigma' - sigma alpha')`.
    """

    def _needs_process(self):
        return True

    def _coefficients(self, sigma, like):
        t = self.process.t_from_sigma(sigma)
        return [expand_to(c(t), like) for c in (self.process.alpha, self.process.sigma,
                                                 self.process.dalpha_dt, self.process.dsigma_dt)]

    def output_to_x0(self, out, x, sigma):
        alpha, sig, dalpha, dsig = self._coefficients(sigma, x)
        return (dsig * alpha * x - sig * out) / (alpha * dsig - sig * dalpha)

    def target(self, *, x0, eps, sigma):
        _, _, dalpha, dsig = self._coefficients(sigma, x0)
        return dalpha * x0 + dsig * eps


@dataclasses.dataclass(frozen=True)
class AbstractSkipPrecond(AbstractPrecond):
    """`D = c_skip(s) x~ + c_out(s) F`; subclasses give `skip_out(sigma, x) -> (c_skip, c_out)`."""

    @abc.abstractmethod
    def skip_out(self, sigma: Array, x: Array) -> tuple[Array, Array]:
        """`(c_skip, c_out)` shaped to broadcast against `x`."""

    def output_to_x0(self, out, x, sigma):
        c_skip, c_out = self.skip_out(sigma, x)
        return c_skip * x + c_out * out

    def target(self, *, x0, eps, sigma):
        """`(x0 - c_skip x)/c_out`, the effective training target (Karras et al. 2022, eq. 8)."""
        x = x0 + expand_to(sigma, x0) * eps
        c_skip, c_out = self.skip_out(sigma, x0)
        return (x0 - c_skip * x) / c_out


@PRECONDS.register("edm")
@dataclasses.dataclass(frozen=True)
class EDMPrecond(AbstractSkipPrecond):
    """EDM preconditioning (Karras et al. 2022, Table 1 and eq. 7):

    `c_skip = sd^2/(s^2+sd^2)`, `c_out = s sd/sqrt(s^2+sd^2)`, `c_in = 1/sqrt(s^2+sd^2)`,
    `c_noise = ln(s)/4`, and `D = c_skip x~ + c_out F`.
    """

    def skip_out(self, sigma, x):
        s, sd = expand_to(sigma, x), self.sigma_data
        return sd**2 / (s**2 + sd**2), s * sd / jnp.sqrt(s**2 + sd**2)


def get_precond(name: str, **kwargs) -> AbstractPrecond:
    """Builds the parameterisation registered as `name` (kwargs: process, sigma_data, ...)."""
    return PRECONDS.get(name)(**kwargs)


def make_denoiser(precond: AbstractPrecond, net_fn: NetFn, cond: Any = None):
    """Closes `precond` over a raw network: returns `D(x~, sigma~) -> x0_hat`."""

    def denoiser(x: Array, sigma: Array) -> Array:
        return precond.denoise(net_fn, x, sigma, cond)

    return denoiser


def flax_net_fn(model, params) -> NetFn:
    """Adapts a flax module from `diffjax.models` to `NetFn`: `model.apply({'params': params}, ...)`."""
    return lambda x_in, c_noise, cond: model.apply({"params": params}, x_in, c_noise, cond)


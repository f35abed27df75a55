"""The continuous-time variational bound (VDM) on `log p_{sigma_min}(x)`, beside the ODE likelihood.

Model (VE view). `z_{sigma_max} ~ N(0, sigma_max^2 I)`; the reverse-time SDE of the denoiser D takes it
down to the level `s_d = r sigma_min` (`0 < r < 1`, default `1/sqrt(2)`); a Gaussian decoder
`x ~ N(z_{s_d}, (sigma_min^2 - s_d^2) I)` adds the rest of the noise. With the exact denoiser (and
the exact prior) this model's density of x is exactly `p_{sigma_min}`, the quantity the PF-ODE
computes, since `p_{s_d} * N(0, sigma_min^2 - s_d^2) = p_{sigma_min}`.

Bound (Kingma et al. 2021, eqs. 11 and 17, with `SNR = 1/s^2`, so `-SNR' dt = 2 d log s / s^2`):
the variational posterior `q(z_s | x) = N(x, s^2 I)` gives, for every x,

    log p(x) >= ELBO(x) = - KL(N(x, sigma_max^2) || N(0, sigma_max^2))      (prior: -||x||^2 / (2 sigma_max^2))
                          - int_{log s_d}^{log sigma_max} E ||eps_hat - eps||^2 d log s      (diffusion)
                          + E_eps log N(x; x + s_d eps, sigma_min^2 - s_d^2)              (reconstruction)

with `eps_hat = (z - D(z, s)) / s`, `z = x + s eps`, sums over the N dimensions, and the
reconstruction term `-(N/2) log(2 pi v) - N s_d^2 / (2 v)`, `v = sigma_min^2 - s_d^2`. Where
`E||eps_hat - eps||^2 ~ N` below sigma_min (features finer than sigma_min are not resolved),
`r = 1/sqrt(2)` maximises the bound.

The diffusion integral is `diffjax.losses`' likelihood-weighted objective (Song et al. 2021b, Thm. 1)
with its importance distribution, `log sigma` uniform, and constant weight `log(sigma_max / s_d)`:
a `DenoisingLoss` with 'log_uniform' levels, 'eps_mse' weighting and 'sum' reduction. Its Monte-Carlo
error is reported as a standard error; the other two terms are exact.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import flax.struct
import jax
import jax.numpy as jnp

from diffjax.losses import DenoisingLoss, LogUniform, get_weighting
from diffjax.sde import AbstractProcess

Array = jax.Array
Denoiser = Callable[[Array, Array], Array]


@flax.struct.dataclass
class ElboResult:
    """Per-example bound in nats: `elbo = prior + diffusion + reconstruction (+ log_det)`."""

    elbo: Array            # [B]
    stderr: Array          # [B] Monte-Carlo standard error of elbo (from the diffusion term)
    prior: Array           # [B] -KL(q(z_{sigma_max} | x) || N(0, sigma_max^2 I))
    diffusion: Array       # [B] -int E||eps_hat - eps||^2 d log s
    reconstruction: Array  # [B] E log N(x; z_{s_d}, sigma_min^2 - s_d^2)
    log_det: Array         # [B] Jacobian to the reported space (0 in the VE view)
    nfe: int = flax.struct.field(pytree_node=False, default=0)  # denoiser calls per example


def _check(sigma_min, sigma_max, decoder_ratio, num_samples):
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    if not 0 < decoder_ratio < 1:
        raise ValueError(f"decoder_ratio must lie in (0, 1), got {decoder_ratio}")
    if num_samples < 2:
        raise ValueError(f"num_samples must be >= 2 (for a standard error), got {num_samples}")


def elbo(denoiser: Denoiser, x: Array, key: Array, *, sigma_min: float, sigma_max: float,
         num_samples: int = 64, decoder_ratio: float = 1 / math.sqrt(2),
         example_ids: Optional[Array] = None) -> ElboResult:
    """Monte-Carlo ELBO on `log p_{sigma_min}(x)` `[B]` in nats (VE view; module docstring).

    Args:
      denoiser: `D(x, sigma) -> x0_hat` on a batch, with `sigma` `[B]` (as in training).
      x: `[B, ...]`.
      key: PRNG key; sample k of example b uses `fold_in(fold_in(key, example_ids[b]), k)`.
      sigma_min, sigma_max: the noise range; the bound is on the density at sigma_min.
      num_samples: (sigma, eps) draws per example.
      decoder_ratio: `r = s_d / sigma_min`.
      example_ids: `[B]` ints (default `arange(B)`).
    """
    _check(sigma_min, sigma_max, decoder_ratio, num_samples)
    s_dec = decoder_ratio * sigma_min
    span = math.log(sigma_max / s_dec)
    loss = DenoisingLoss(LogUniform(sigma_min=s_dec, sigma_max=sigma_max), get_weighting("eps_mse"),
                         reduction="sum")
    ids = jnp.arange(x.shape[0]) if example_ids is None else example_ids
    example_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(ids)

    def one_draw(_, k):
        keys = jax.vmap(lambda kb: jax.random.fold_in(kb, k))(example_keys)
        per_example = jax.vmap(lambda xb, kb: loss(denoiser, xb[None], kb)[0])(x, keys)
        return None, per_example

    _, draws = jax.lax.scan(one_draw, None, jnp.arange(num_samples))  # [K, B]
    dim = math.prod(x.shape[1:])
    var = sigma_min**2 - s_dec**2
    prior = -0.5 * jnp.sum(x.reshape(x.shape[0], -1) ** 2, axis=-1) / sigma_max**2
    diffusion = -span * jnp.mean(draws, axis=0)
    stderr = span * jnp.std(draws, axis=0, ddof=1) / math.sqrt(num_samples)
    recon = jnp.full_like(prior, -0.5 * dim * math.log(2 * math.pi * var) - 0.5 * dim * s_dec**2 / var)
    return ElboResult(elbo=prior + diffusion + recon, stderr=stderr, prior=prior, diffusion=diffusion,
                      reconstruction=recon, log_det=jnp.zeros_like(prior), nfe=num_samples)


def process_elbo(process: AbstractProcess, denoiser: Denoiser, x: Array, key: Array, *,
                 t: Optional[float] = None, **kwargs) -> ElboResult:
    """ELBO on `log p_t(x)` of the process state `x = alpha(t) x~` (data space, nats).

    The continuous-time ELBO is invariant to the noise schedule (Kingma et al. 2021, sec. 5.1), so
    only its endpoints `sigma~(t)`, `sigma~(T)` and the Jacobian `-N log alpha(t)` depend on the process.
    """
    t = process.t_min if t is None else t
    alpha = float(process.alpha(jnp.asarray(t)))
    result = elbo(denoiser, x / alpha, key, sigma_min=float(process.sigma_tilde(jnp.asarray(t))),
                  sigma_max=process.sigma_range()[1], **kwargs)
    log_det = jnp.full_like(result.elbo, -math.prod(x.shape[1:]) * math.log(alpha))
    return result.replace(elbo=result.elbo + log_det, log_det=log_det)


def gaussian_diffusion_integral(mean: Array, std: Array, x: Array, s_lo: float, s_hi: float) -> Array:
    """`int_{log s_lo}^{log s_hi} E_eps ||eps_hat - eps||^2 d log s` `[B]` for the exact Gaussian denoiser.

    See `gaussian_elbo` for the derivation; x is `[B, D]`, mean and std `[D]`.
    """
    c2 = jnp.asarray(std, x.dtype)[None] ** 2
    dx2 = (x - jnp.asarray(mean, x.dtype)[None]) ** 2

    def antiderivative(u):
        return -dx2 / (2 * (c2 + u)) + 0.5 * jnp.log(u / (c2 + u)) + c2 / (2 * (c2 + u))

    return jnp.sum(antiderivative(s_hi**2) - antiderivative(s_lo**2), axis=-1)


def gaussian_elbo(mean: Array, std: Array, x: Array, *, sigma_min: float, sigma_max: float,
                  decoder_ratio: float = 1 / math.sqrt(2)) -> Array:
    """Closed-form ELBO `[B]` for data `N(mean, diag(std^2))` `[D]` and its exact denoiser.

    With `k = c^2/(c^2 + s^2)`, `eps_hat - eps = (s (x - mu) - c^2 eps) / (c^2 + s^2)`, so per dimension
    `E||eps_hat - eps||^2 = (s^2 (x - mu)^2 + c^4) / (c^2 + s^2)^2`, whose integral in `d log s`
    (with `u = s^2`) is `[-(x - mu)^2 / (2 (c^2 + u)) + log(u / (c^2 + u)) / 2 + c^2 / (2 (c^2 + u))]`.
    Averaged over `x ~ N(mu, c^2)` the first and last terms cancel, leaving the I-MMSE form
    `log(s_max / s_d) - log((c^2 + s_max^2) / (c^2 + s_d^2)) / 2`.
    """
    s_dec = decoder_ratio * sigma_min
    dim = x.shape[-1]
    var = sigma_min**2 - s_dec**2
    diffusion = gaussian_diffusion_integral(mean, std, x, s_dec, sigma_max)
    prior = -0.5 * jnp.sum(x**2, axis=-1) / sigma_max**2
    recon = -0.5 * dim * math.log(2 * math.pi * var) - 0.5 * dim * s_dec**2 / var
    return prior - diffusion + recon

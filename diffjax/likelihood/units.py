"""Units: nats, bits per dimension, and bits per audio sample of quantised (PCM, mu-law) data.

A density reported in another space needs the Jacobian of the map: for `y = T(u)`,
`log p_u(u) = log p_y(T(u)) + log |det dT/du|` (`log_det` below), and

    bits per dim = -(log p_y + log_det) / (N ln 2).

**Continuous data** (no quantisation): `log_det` is the scaling of the data into model space, e.g.
`N log a` for `y = a u + b`. A density can exceed 1, so these bits can be negative.

**Discrete data** (Theis et al. 2016, sec. 3.1; Ho et al. 2019, eq. 2): codes `c` in `{0..K-1}` are
dequantised with uniform noise, `u = c + U`, `U ~ U[0, 1)^N`, mapped to model space `y = T(u)`,
and Jensen's inequality gives a lower bound on the probability mass:

    log P(c) >= E_U [ log p_y(T(c + U)) + log |det dT/du| ],

so `-(log p_y + log_det) / (N ln 2)`, with one draw of U, is an unbiased estimate of an upper bound
on the bits per code; its expectation is >= 0 whenever the model's mass on the bins is <= 1.

Quantisers (`QUANTISERS`):
  uniform  K levels partitioning [low, high): `y = low + (c + U) w`, `w = (high - low)/K`,
           `log_det = N log w`.
  pcm16    uniform, K = 65536 on [-1, 1): 16-bit PCM read as float, `y = int16 / 32768`;
           bits per sample = `-log p_y / (N ln 2) + 15`.
  pcm8     uniform, K = 256 on [-1, 1) (8-bit linear PCM); `+ 7` bits.
  mulaw8   8-bit mu-law with the model on the *linear* waveform: the companded value
           `m = F(y) = sign(y) ln(1 + mu |y|) / ln(1 + mu)` (mu = 255, the continuous curve of
           WaveNet, van den Oord et al. 2016, not G.711's segments) is cut into 256 equal bins of
           [-1, 1]; dequantisation is uniform in m, and `y = F^-1(m)` adds the companding Jacobian
           `dy/dm = ln(1 + mu) / mu * (1 + mu |y|)` (plus `log w` per sample).
  A model trained on companded values directly is scored with 'uniform' (256 levels on [-1, 1)).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.registry import Registry

Array = jax.Array

QUANTISERS = Registry("quantiser")


def bits_per_dim(logp: Array, dim: int, *, log_det: Array | float = 0.0) -> Array:
    """`-(logp + log_det) / (dim ln 2)`: nats per example `[B]` to bits per dimension `[B]`."""
    return -(logp + log_det) / (dim * math.log(2.0))


def _sum_per_example(x: Array) -> Array:
    return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def _uniform_noise(key: Array, example_ids: Array, shape: tuple[int, ...], dtype) -> Array:
    """`U[0, 1)` noise `[B, ...]` drawn per example from `fold_in(key, example_id)`."""
    return jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i), shape, dtype))(example_ids)


def _check_codes(codes, levels: int, name: str) -> None:
    codes = np.asarray(codes)
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"{name}: codes must be integers in [0, {levels - 1}], got dtype {codes.dtype}")
    if codes.size and (codes.min() < 0 or codes.max() >= levels):
        raise ValueError(f"{name}: codes must lie in [0, {levels - 1}]; got min={codes.min()}, "
                         f"max={codes.max()}")


@dataclasses.dataclass(frozen=True)
class UniformQuantiser:
    """`levels` equal bins partitioning `[low, high)`; code c is the bin `[low + c w, low + (c+1) w)`."""

    levels: int = 256
    low: float = -1.0
    high: float = 1.0
    name: str = "uniform"

    def __post_init__(self):
        if self.levels < 2 or not self.low < self.high:
            raise ValueError(f"{self.name}: need levels >= 2 and low < high, got levels={self.levels}, "
                             f"low={self.low}, high={self.high}")

    @property
    def width(self) -> float:
        return (self.high - self.low) / self.levels

    def encode(self, y) -> np.ndarray:
        """Codes `int32` of grid values `y = low + c w` (rounded to the nearest grid point).

        Raises naming the range if a value lies outside `[low, high - w]` (by more than w/2).
        """
        y = np.asarray(y, np.float64)
        top = self.high - self.width
        if y.size and (y.min() < self.low - 0.5 * self.width or y.max() >= top + 0.5 * self.width):
            raise ValueError(
                    f"{self.name}: values must lie in [{self.low:g}, {top:.8g}] (the {self.levels} levels "
                    f"low + c (high - low)/{self.levels} of [{self.low:g}, {self.high:g})); got "
                    f"min={y.min():.8g}, max={y.max():.8g}")
        return np.rint((y - self.low) / self.width).astype(np.int32)

    def dequantise(self, key: Array, codes, example_ids: Optional[Array] = None):
        """`(y, log_det)`: `y = low + (c + U) w` `[B, ...]` and `log |det dy/du| = N log w` `[B]`."""
        _check_codes(codes, self.levels, self.name)
        codes = jnp.asarray(codes)
        ids = jnp.arange(codes.shape[0]) if example_ids is None else example_ids
        noise = _uniform_noise(key, ids, codes.shape[1:], jnp.result_type(float))
        y = self.low + (codes + noise) * self.width
        log_det = jnp.full(codes.shape[:1], math.prod(codes.shape[1:]) * math.log(self.width), y.dtype)
        return y, log_det


@dataclasses.dataclass(frozen=True)
class MuLawQuantiser:
    """8-bit mu-law on a linear-waveform model (module docstring): bins uniform in `m = F(y)`."""

    mu: float = 255.0
    levels: int = 256
    name: str = "mulaw8"

    @property
    def width(self) -> float:
        return 2.0 / self.levels

    def compand(self, y):
        """`F(y) = sign(y) ln(1 + mu |y|) / ln(1 + mu)` on [-1, 1]."""
        return jnp.sign(y) * jnp.log1p(self.mu * jnp.abs(y)) / math.log1p(self.mu)

    def expand(self, m):
        """`F^-1(m) = sign(m) ((1 + mu)^|m| - 1) / mu`."""
        return jnp.sign(m) * jnp.expm1(jnp.abs(m) * math.log1p(self.mu)) / self.mu

    def encode(self, y) -> np.ndarray:
        """Codes `int32` in [0, levels): the bin of `F(y)`; raises naming [-1, 1] for values outside."""
        y = np.asarray(y, np.float64)
        if y.size and (y.min() < -1.0 or y.max() > 1.0):
            raise ValueError(f"{self.name}: waveform values must lie in [-1, 1]; got min={y.min():.8g}, "
                             f"max={y.max():.8g}")
        m = np.sign(y) * np.log1p(self.mu * np.abs(y)) / math.log1p(self.mu)
        return np.clip(np.floor((m + 1.0) / self.width), 0, self.levels - 1).astype(np.int32)

    def dequantise(self, key: Array, codes, example_ids: Optional[Array] = None):
        """`(y, log_det)`: `y = F^-1(-1 + (c + U) w)` and `sum log(w dF^-1/dm)` `[B]`."""
        _check_codes(codes, self.levels, self.name)
        codes = jnp.asarray(codes)
        ids = jnp.arange(codes.shape[0]) if example_ids is None else example_ids
        noise = _uniform_noise(key, ids, codes.shape[1:], jnp.result_type(float))
        y = self.expand(-1.0 + (codes + noise) * self.width)
        log_dy_dm = math.log(math.log1p(self.mu) / self.mu) + jnp.log1p(self.mu * jnp.abs(y))
        return y, _sum_per_example(math.log(self.width) + log_dy_dm)


QUANTISERS.register("uniform")(UniformQuantiser)
QUANTISERS.register("pcm16")(functools.partial(UniformQuantiser, levels=65536, name="pcm16"))
QUANTISERS.register("pcm8")(functools.partial(UniformQuantiser, levels=256, name="pcm8"))
QUANTISERS.register("mulaw8")(MuLawQuantiser)


def get_quantiser(name: str, **kwargs):
    """Builds the quantiser registered as `name` ('uniform', 'pcm16', 'pcm8', 'mulaw8')."""
    return QUANTISERS.get(name)(**kwargs)


def dequantised_log_likelihood(likelihood_fn: Callable, codes, *, quantiser, key: Array,
                               example_ids: Optional[Array] = None):
    """A lower bound on `log P(codes)` `[B]` (nats) by uniform dequantisation (module docstring).

    Args:
      likelihood_fn: `(y, key, example_ids) -> LikelihoodResult` in model space, e.g.
        `functools.partial(process_log_likelihood, process, denoiser, divergence='hutchinson')`.
      codes: integer codes `[B, ...]` in `[0, quantiser.levels)` (from `quantiser.encode`).
      quantiser: from `get_quantiser`.
      key: PRNG key; the dequantisation noise and the probes use independent streams of it.
      example_ids: `[B]` ints for per-example randomness (default `arange(B)`).
    Returns:
      The `LikelihoodResult` with the dequantisation Jacobian added to `log_det` and `logp`;
      `bits_per_dim(result.logp, N)` is then in bits per code (per audio sample).
    """
    key_u, key_probe = jax.random.split(key)
    y, log_det = quantiser.dequantise(key_u, codes, example_ids)
    result = likelihood_fn(y, key=key_probe, example_ids=example_ids)
    return result.replace(logp=result.logp + log_det, log_det=result.log_det + log_det)

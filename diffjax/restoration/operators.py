"""Degradation operators `y = A(x) + noise_sigma * n`, registered in `OPERATORS` by name.

Every operator is a pytree (`flax.struct`) with

    apply(x)        the noise-free degradation A(x); x is [B, L, C] audio or [B, D] toy vectors
    measure(x, key) A(x) + noise_sigma * n, with n white on the measured entries of y
    project(x, y)   data consistency: the point nearest x with A(x') = y (nearest in the
                    least-squares sense for linear A: x + A^+ (y - A x))
    support(y)      y restricted to the measured entries (masks zero the missing ones)

Linear operators (`is_linear`) add `adjoint(y)` (exact: <A x, y> = <x, A^T y>) and `pinv(y)`;
those with a cheap singular value decomposition (`has_svd`) add `svd(x_shape)`, on which DDRM,
noisy DDNM and noisy PiGDM run. Masks keep y in the shape of x with zeros where nothing was
measured, so A = diag(m) = A^T = A^+.

Every registered operator acts on the space it measures (capability 'model_space'). A model that
works in a codec's space z (a latent autoencoder's, a complex STFT) sees the operator through the
codec's differentiable `decode`: `in_model_space` wraps it as `DecodedOperator`, `A(decode(z))`,
which has `apply`, `measure`, `support` and (through `jax.vjp`) the gradients DPS and PiGDM need,
but no projection, pseudo-inverse or SVD.

This file holds the interfaces, the masks, the identity (denoising), a dense matrix (toy) and the
decoded view; clipping is in `clipping.py`; Fourier-domain filters, decimation and reverberation in
`filters.py`.
"""
from __future__ import annotations

import abc
import dataclasses
import functools
from typing import Any, Callable, ClassVar, Optional

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.audio.codecs import CODECS
from diffjax.registry import Registry

Array = jax.Array

OPERATORS = Registry("operator")


def get_operator(name: str, **params):
    """Builds the operator registered as `name`; an unknown name lists the valid ones."""
    return OPERATORS.get(name)(**params)


def register_operator(name: str, *, builds: Optional[type] = None):
    """Registers an operator class, or a factory of the operator class `builds`, under `name`.

    The registered metadata `builds` is the class, so what an operator offers (`has_svd`,
    `is_lowpass`, ...) is read off its class attributes before one is built: one place only.
    """

    def decorate(obj):
        return OPERATORS.register(name, builds=obj if builds is None else builds)(obj)

    return decorate


def svd_operator_names() -> list[str]:
    """Names of the registered operators with a known SVD (for DDRM and noisy DDNM/PiGDM)."""
    return [n for n in OPERATORS.names() if OPERATORS.meta(n)["builds"].has_svd]


# What a restoration method may require of an operator (`AbstractOperator.capabilities`).
CAPABILITIES = {
    "linear": "a linear A",
    "svd": "a known singular value decomposition of A",
    "lowpass": "a low-pass filter with a sample rate",
    "noise_free": "a noise-free measurement (noise_sigma = 0)",
    "model_space": "A acting on the model's own space, where its projection, pseudo-inverse, SVD and "
                   "replacement exist (not A(decode(z)) through a codec)",
}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def expand_batch(values, x: Array) -> Array:
    """A scalar or per-example `[B]` array shaped to broadcast against `x` `[B, ...]`."""
    values = jnp.asarray(values, x.dtype)
    return values.reshape(values.shape + (1,) * (x.ndim - values.ndim))


# --------------------------------------------------------------------------------------
# Interfaces
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SVD:
    """`A = U diag(s) V^T` as functions on batches (Kawar et al. 2022, sec. 3).

    `vt(x)` maps `x` to spectral coefficients `c` (complex for Fourier operators), `v` is its
    inverse (V is orthonormal: `v(vt(x)) = x`), `ut(y)` maps a measurement to coefficients of the
    same layout, `u(c)` back, and `s` (real, >= 0, broadcastable to `c`) holds the singular values,
    0 on the null space. So `A x = u(s * vt(x))`.
    """

    vt: Callable[[Array], Array]
    v: Callable[[Array], Array]
    ut: Callable[[Array], Array]
    u: Callable[[Array], Array]
    s: Array


class AbstractOperator(abc.ABC):
    """A degradation. Concrete operators are `flax.struct` dataclasses with a `noise_sigma` field."""

    is_linear: ClassVar[bool] = False
    has_svd: ClassVar[bool] = False
    is_lowpass: ClassVar[bool] = False  # a low-pass filter with a `sample_rate` (blind_bwe fits its own)
    time_invariant: ClassVar[bool] = True  # False: depends on the position (masks), see longform
    local: ClassVar[bool] = True  # False: spreads samples further than a chunk overlap (reverb)
    acts_in_model_space: ClassVar[bool] = True  # False: A(decode(z)) (`DecodedOperator`)
    noise_sigma: float

    def capabilities(self) -> frozenset[str]:
        """What a restoration method may require of this operator (`METHODS.meta(m)["requires"]`):
        the names of `CAPABILITIES` that hold."""
        facts = {"linear": self.is_linear, "svd": self.has_svd, "lowpass": self.is_lowpass,
                 "noise_free": self.noise_sigma == 0, "model_space": self.acts_in_model_space}
        return frozenset(name for name, holds in facts.items() if holds)

    def longest_gap(self, length: int) -> int:
        """The longest stretch of samples of a `[1, length, 1]` signal that `y` does not observe
        (0 for time-invariant operators; for masks the longest run of zeros of `support`)."""
        if self.time_invariant:
            return 0
        observed = np.asarray(self.support(jnp.ones((1, length, 1), jnp.float32))).reshape(length, -1)
        longest = run = 0
        for seen in np.any(observed != 0, axis=1):
            run = 0 if seen else run + 1
            longest = max(longest, run)
        return longest

    @abc.abstractmethod
    def apply(self, x: Array) -> Array:
        """The noise-free degradation `A(x)`."""

    @abc.abstractmethod
    def project(self, x: Array, y: Array) -> Array:
        """The point nearest `x` that is consistent with `y` (`A(x') = y`)."""

    @abc.abstractmethod
    def support(self, y: Array) -> Array:
        """`y` restricted to its measured entries."""

    def intact(self, y: Array, x_shape: tuple) -> np.ndarray:
        """`[B, L, C]` True where `y` holds the sample of x undamaged (`fullband.compose` keeps
        those of the input). None here: every sample is damaged (filters, reverb, noise)."""
        return np.zeros(tuple(x_shape), bool)

    def measure(self, x: Array, key: Array) -> Array:
        """`y = A(x) + noise_sigma * n`, `n ~ N(0, I)` on the measured entries."""
        y = self.apply(x)
        if self.noise_sigma == 0:
            return y
        return y + self.noise_sigma * self.support(jax.random.normal(key, y.shape, y.dtype))


class AbstractLinearOperator(AbstractOperator):
    """A linear `A`; `project(x, y) = x + A^+ (y - A x)` (Wang et al. 2023, eq. 10)."""

    is_linear: ClassVar[bool] = True

    @abc.abstractmethod
    def adjoint(self, y: Array) -> Array:
        """`A^T y`."""

    @abc.abstractmethod
    def pinv(self, y: Array) -> Array:
        """The Moore-Penrose pseudo-inverse `A^+ y` (regularised where stated)."""

    def project(self, x: Array, y: Array) -> Array:
        return x + self.pinv(y - self.apply(x))

    def svd(self, x_shape: tuple) -> SVD:
        raise ValueError(f"operator {type(self).__name__} has no known SVD; operators with one: "
                         f"{', '.join(svd_operator_names())}")


# --------------------------------------------------------------------------------------
# Masks: coordinate masks (toy data) and gaps in audio
# --------------------------------------------------------------------------------------


class AbstractMask(AbstractLinearOperator):
    """`A = diag(m)` with `m` in {0, 1}; y keeps the shape of x. Self-adjoint, its own pinv."""

    has_svd: ClassVar[bool] = True
    time_invariant: ClassVar[bool] = False

    @abc.abstractmethod
    def mask_for(self, x_shape: tuple) -> Array:
        """The 0/1 mask for one example, broadcastable to `x_shape[1:]`."""

    def _mask(self, x: Array) -> Array:
        return jnp.asarray(self.mask_for(x.shape), x.dtype)[None]

    def apply(self, x):
        return self._mask(x) * x

    def adjoint(self, y):
        return self._mask(y) * y

    def pinv(self, y):
        return self._mask(y) * y

    def support(self, y):
        return self._mask(y) * y

    def intact(self, y, x_shape):
        """The observed samples (all damaged under measurement noise)."""
        if self.noise_sigma > 0:
            return np.zeros(tuple(x_shape), bool)
        return np.broadcast_to(np.asarray(self.mask_for(x_shape)) > 0, tuple(x_shape))

    def svd(self, x_shape):
        identity = lambda a: a  # noqa: E731
        m = jnp.broadcast_to(jnp.asarray(self.mask_for(x_shape)), tuple(x_shape[1:]))
        return SVD(vt=identity, v=identity, ut=identity, u=identity, s=m[None])


@flax.struct.dataclass
class CoordinateMask(AbstractMask):
    """Observes the entries where `mask` is 1; `mask` broadcasts to one example (`[D]`, `[L, 1]`)."""

    mask: Array
    noise_sigma: float = flax.struct.field(pytree_node=False, default=0.0)

    def mask_for(self, x_shape):
        return self.mask


@register_operator("mask", builds=CoordinateMask)
def coordinate_mask(*, mask=None, observed=None, dim: Optional[int] = None,
                    drop_fraction: Optional[float] = None, seed: int = 0,
                    noise_sigma: float = 0.0) -> CoordinateMask:
    """A coordinate mask for toy vectors `[B, D]` (or any explicit per-example mask).

    Args:
      mask: an explicit 0/1 array for one example; or
      observed, dim: indices observed out of `dim` coordinates; or
      drop_fraction, dim, seed: drop a random (seeded) fraction of the `dim` coordinates.
    """
    if mask is None:
        _require(dim is not None and dim >= 1, "mask: pass mask=, or dim= with observed= or drop_fraction=")
        m = np.zeros(dim, np.float32)
        if observed is not None:
            m[np.asarray(observed, int)] = 1.0
        else:
            _require(drop_fraction is not None and 0 <= drop_fraction < 1,
                     f"mask: drop_fraction must be in [0, 1), got {drop_fraction}")
            m[np.random.default_rng(seed).permutation(dim)[int(round(drop_fraction * dim)):]] = 1.0
        mask = m
    _require(noise_sigma >= 0, f"noise_sigma must be >= 0, got {noise_sigma}")
    return CoordinateMask(mask=jnp.asarray(mask, jnp.float32), noise_sigma=float(noise_sigma))


@functools.lru_cache(maxsize=64)
def gap_mask(length: int, sample_rate: int, gap_seconds: float, num_gaps: int,
             period_seconds: Optional[float], start_seconds: Optional[float]) -> np.ndarray:
    """The 0/1 mask `[length]` of a gap layout (see `GapMask`)."""
    gap = int(round(gap_seconds * sample_rate))
    m = np.ones(length, np.float32)
    if period_seconds is not None:
        period = int(round(period_seconds * sample_rate))
        starts = np.arange((period - gap) // 2, length, period)
    elif start_seconds is not None:
        starts = np.asarray([int(round(start_seconds * sample_rate))])
    else:
        centres = (np.arange(num_gaps) + 0.5) * length / num_gaps
        starts = np.round(centres - gap / 2).astype(int)
    for s in starts:
        m[max(s, 0):max(s + gap, 0)] = 0.0
    return m


@flax.struct.dataclass
class GapMask(AbstractMask):
    """Missing stretches of audio `[B, L, C]`, in seconds (Moliner et al. 2023, sec. 5.2).

    Layouts: `num_gaps` gaps of `gap_seconds`, centred in equal parts of the clip (one long gap by
    default); or one gap starting at `start_seconds`; or periodic packet loss, a gap every
    `period_seconds`.
    """

    sample_rate: int = flax.struct.field(pytree_node=False)
    gap_seconds: float = flax.struct.field(pytree_node=False)
    num_gaps: int = flax.struct.field(pytree_node=False, default=1)
    period_seconds: Optional[float] = flax.struct.field(pytree_node=False, default=None)
    start_seconds: Optional[float] = flax.struct.field(pytree_node=False, default=None)
    noise_sigma: float = flax.struct.field(pytree_node=False, default=0.0)

    def mask_for(self, x_shape):
        _require(len(x_shape) == 3, f"gap masks act on audio [B, L, C], got shape {tuple(x_shape)}")
        m = gap_mask(int(x_shape[1]), self.sample_rate, self.gap_seconds, self.num_gaps,
                     self.period_seconds, self.start_seconds)
        return m[:, None]

    def total_gap_seconds(self, length: int) -> float:
        return float(np.sum(1 - self.mask_for((1, length, 1)))) / self.sample_rate


def _gap(sample_rate, gap_seconds, num_gaps=1, period_seconds=None, start_seconds=None,
         noise_sigma=0.0) -> GapMask:
    _require(sample_rate is not None and sample_rate > 0, f"gaps need sample_rate > 0, got {sample_rate}")
    _require(gap_seconds > 0, f"gap_seconds must be > 0, got {gap_seconds}")
    _require(num_gaps >= 1, f"num_gaps must be >= 1, got {num_gaps}")
    if period_seconds is not None:
        _require(period_seconds > gap_seconds,
                 f"period_seconds ({period_seconds}) must exceed gap_seconds ({gap_seconds})")
    _require(noise_sigma >= 0, f"noise_sigma must be >= 0, got {noise_sigma}")
    return GapMask(sample_rate=int(sample_rate), gap_seconds=float(gap_seconds), num_gaps=int(num_gaps),
                   period_seconds=period_seconds, start_seconds=start_seconds,
                   noise_sigma=float(noise_sigma))


@register_operator("gap", builds=GapMask)
def gap(*, sample_rate: int, gap_seconds: float = 0.2, start_seconds: Optional[float] = None,
        noise_sigma: float = 0.0) -> GapMask:
    """One long gap (centred unless `start_seconds` is given)."""
    return _gap(sample_rate, gap_seconds, start_seconds=start_seconds, noise_sigma=noise_sigma)


@register_operator("gaps", builds=GapMask)
def gaps(*, sample_rate: int, gap_seconds: float = 0.05, num_gaps: int = 4,
         noise_sigma: float = 0.0) -> GapMask:
    """Several short gaps, evenly spread."""
    return _gap(sample_rate, gap_seconds, num_gaps=num_gaps, noise_sigma=noise_sigma)


@register_operator("packet_loss", builds=GapMask)
def packet_loss(*, sample_rate: int, gap_seconds: float = 0.02, period_seconds: float = 0.1,
                noise_sigma: float = 0.0) -> GapMask:
    """Periodic packet loss: `gap_seconds` lost every `period_seconds` (default 20 % loss)."""
    return _gap(sample_rate, gap_seconds, period_seconds=period_seconds, noise_sigma=noise_sigma)


# --------------------------------------------------------------------------------------
# Identity (denoising) and a dense matrix (toy data)
# --------------------------------------------------------------------------------------


@register_operator("identity")
@flax.struct.dataclass
class Identity(AbstractLinearOperator):
    """`A = I`: with `noise_sigma > 0` restoration is denoising."""

    has_svd: ClassVar[bool] = True
    noise_sigma: float = flax.struct.field(pytree_node=False, default=0.0)

    def apply(self, x):
        return x

    def adjoint(self, y):
        return y

    def pinv(self, y):
        return y

    def support(self, y):
        return y

    def intact(self, y, x_shape):
        """The observed samples (all damaged under measurement noise)."""
        if self.noise_sigma > 0:
            return np.zeros(tuple(x_shape), bool)
        return np.broadcast_to(np.asarray(self.mask_for(x_shape)) > 0, tuple(x_shape))

    def svd(self, x_shape):
        identity = lambda a: a  # noqa: E731
        return SVD(vt=identity, v=identity, ut=identity, u=identity, s=jnp.ones((1,) + tuple(x_shape[1:])))


@flax.struct.dataclass
class Matrix(AbstractLinearOperator):
    """A dense `A` `[M, D]` on toy vectors `[B, D]`: `y = x A^T` `[B, M]`, `M <= D`."""

    has_svd: ClassVar[bool] = True
    matrix: Array
    noise_sigma: float = flax.struct.field(pytree_node=False, default=0.0)

    def apply(self, x):
        return x @ self.matrix.T.astype(x.dtype)

    def adjoint(self, y):
        return y @ self.matrix.astype(y.dtype)

    def pinv(self, y):
        return y @ jnp.linalg.pinv(self.matrix).T.astype(y.dtype)

    def support(self, y):
        return y

    def svd(self, x_shape):
        m, d = self.matrix.shape
        u, s, vt = jnp.linalg.svd(self.matrix, full_matrices=True)  # u [M, M], s [M], vt [D, D]
        s_full = jnp.zeros((d,), s.dtype).at[:s.shape[0]].set(s)
        return SVD(vt=lambda x: x @ vt.T.astype(x.dtype), v=lambda c: c @ vt.astype(c.dtype),
                   ut=lambda y: jnp.pad(y @ u.astype(y.dtype), ((0, 0), (0, d - m))),
                   u=lambda c: c[:, :m] @ u.T.astype(c.dtype), s=s_full[None])


@register_operator("linear", builds=Matrix)
def linear(*, matrix, noise_sigma: float = 0.0) -> Matrix:
    """A generic linear operator from a dense matrix `[M, D]` (M <= D) for toy vectors."""
    matrix = jnp.asarray(matrix)
    _require(matrix.ndim == 2 and matrix.shape[0] <= matrix.shape[1],
             f"linear: matrix must be [M, D] with M <= D, got shape {matrix.shape}")
    _require(noise_sigma >= 0, f"noise_sigma must be >= 0, got {noise_sigma}")
    return Matrix(matrix=matrix, noise_sigma=float(noise_sigma))


# --------------------------------------------------------------------------------------
# The operator seen from a codec's space: A(decode(z))
# --------------------------------------------------------------------------------------


@flax.struct.dataclass
class DecodedOperator(AbstractOperator):
    """`z -> A(decode(z, length))`: the waveform operator `inner` seen by a model that works in a
    codec's space z (`[B, T, D]` latents of an autoencoder, a complex STFT).

    `apply`, `measure` and `support` are the inner operator's on the decoded audio, and `jax.vjp`
    of `apply` is the adjoint of the linearised composite (DPS, noise-free PiGDM). It lacks the
    capability 'model_space': a projection, pseudo-inverse, SVD or replacement in z would need the
    inverse of the decoder, so `project` raises and every method that needs one declares it.
    """

    acts_in_model_space: ClassVar[bool] = False
    time_invariant: ClassVar[bool] = False  # `longest_gap` asks the inner operator's support
    local: ClassVar[bool] = False  # a decoder spreads each latent frame over many samples
    inner: AbstractOperator
    codec: Any = flax.struct.field(pytree_node=False)
    length: int = flax.struct.field(pytree_node=False)

    @property
    def noise_sigma(self) -> float:
        return self.inner.noise_sigma

    def decode(self, z: Array) -> Array:
        """z `[B, ...]` -> audio `[B, length, C]` (the codec's differentiable decode)."""
        return self.codec.decode(z, self.length)

    def apply(self, z):
        return self.inner.apply(self.decode(z))

    def project(self, z, y):
        raise ValueError(f"{type(self.inner).__name__} through the {type(self.codec).__name__} codec's decode has "
                         "no projection, pseudo-inverse or SVD in the model's space (the capability "
                         "'model_space'): use a method that needs only A(decode(z)) and its gradient "
                         "(`diffjax.restoration.applicable_methods(operator)` lists them)")

    def support(self, y):
        return self.inner.support(y)


def differentiable_codecs() -> list[str]:
    """Names of the registered codecs whose `decode` is differentiable (restoration works in them)."""
    return [n for n in CODECS.names() if CODECS.get(n).decode_is_differentiable]


def in_model_space(operator: AbstractOperator, codec, length: int) -> AbstractOperator:
    """The operator on the space of a model that works in `codec`: `operator` itself for the
    identity codec, `DecodedOperator(operator)` for a codec whose `decode` is differentiable.

    Args:
      operator: a degradation of audio `[B, length, C]`.
      codec: the model's codec (its facts `is_identity`, `decode_is_differentiable` are asked).
      length: samples of the audio the operator measures (`decode(z, length)`).
    """
    if codec.is_identity:
        return operator
    if not codec.decode_is_differentiable:
        raise ValueError(f"the {type(codec).__name__} codec's decode is not differentiable, so no restoration "
                         f"method can guide a model in its space by a measurement of the audio; codecs that "
                         f"work: {', '.join(differentiable_codecs())}")
    return DecodedOperator(inner=operator, codec=codec, length=int(length))

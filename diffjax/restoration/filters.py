"""Fourier-domain operators: low-pass filters, reverberation, decimation; and an STFT brick-wall.

A filter with frequency response `H` acts as the circulant `A = F^-1 diag(H) F` on axis 1 of
`x` (`[B, L, C]` audio or `[B, D]` vectors), computed with the orthonormal real FFT. Circulant
(wrap-around) convolution keeps the linear algebra exact and cheap:

    A^T = F^-1 diag(conj H) F,   A^+ = F^-1 diag(H^+) F,   SVD: V = F^-1, s = |H|, U = V diag(H/|H|)

with `H^+ = conj(H)/|H|^2` where `|H| > rcond max|H|` and 0 elsewhere (a truncated SVD, so
`A A^+ A = A` up to the discarded singular values). Low-pass filters are zero phase: `H` is the
*magnitude* response of the designed filter (scipy.signal), so the stated cutoff is where the
applied gain is that of the design (-3 dB for Butterworth, -ripple_db for Chebyshev I, -6 dB for
the windowed-sinc FIR, a step for the brick-wall).
"""
from __future__ import annotations

import abc
import functools
from typing import ClassVar, Optional

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from diffjax.audio import codecs, io
from diffjax.restoration.operators import SVD, AbstractLinearOperator, _require, register_operator

Array = jax.Array


def _rfft(x):
    return jnp.fft.rfft(x, axis=1, norm="ortho")


def _irfft(c, length):
    return jnp.fft.irfft(c, n=length, axis=1, norm="ortho")


def _bins(h, x_ndim: int):
    """A per-bin response `[F]` shaped `[1, F, 1, ...]` against coefficients of an `x_ndim` array."""
    return jnp.asarray(h).reshape((1, -1) + (1,) * (x_ndim - 2))


class AbstractFourierOperator(AbstractLinearOperator):
    """`A = F^-1 diag(H) F` on axis 1; subclasses give `response(length) -> H [length // 2 + 1]`."""

    has_svd: ClassVar[bool] = True
    rcond: float

    @abc.abstractmethod
    def response(self, length: int) -> Array:
        """The complex (or real) frequency response on the rfft grid of `length` samples."""

    def _filter(self, x, h):
        return _irfft(_bins(h, x.ndim).astype(jnp.result_type(h, jnp.complex64)) * _rfft(x),
                      x.shape[1]).astype(x.dtype)

    def _h(self, length):
        return jnp.asarray(self.response(length))

    def _h_pinv(self, length):
        h = self._h(length)
        keep = jnp.abs(h) > self.rcond * jnp.max(jnp.abs(h))
        return jnp.where(keep, jnp.conj(h) / jnp.where(keep, jnp.abs(h) ** 2, 1.0), 0.0)

    def apply(self, x):
        return self._filter(x, self._h(x.shape[1]))

    def adjoint(self, y):
        return self._filter(y, jnp.conj(self._h(y.shape[1])))

    def pinv(self, y):
        return self._filter(y, self._h_pinv(y.shape[1]))

    def support(self, y):
        return y

    def svd(self, x_shape):
        length, ndim = int(x_shape[1]), len(x_shape)
        h = self._h(length)
        mag = jnp.abs(h)
        phase = _bins(jnp.where(mag > 0, h / jnp.where(mag > 0, mag, 1.0), 1.0), ndim)
        return SVD(vt=_rfft, v=lambda c: _irfft(c, length),
                   ut=lambda y: _rfft(y) * jnp.conj(phase), u=lambda c: _irfft(c * phase, length),
                   s=_bins(mag, ndim))


# --------------------------------------------------------------------------------------
# Low-pass filters (bandwidth extension)
# --------------------------------------------------------------------------------------

LOWPASS_KINDS = ("butterworth", "chebyshev", "fir", "brickwall")


@functools.lru_cache(maxsize=64)
def lowpass_response(kind: str, cutoff: float, sample_rate: int, order: int, ripple_db: float,
                     numtaps: int, length: int) -> np.ndarray:
    """Zero-phase response `[length // 2 + 1]` of a low-pass design on the rfft grid."""
    freqs = np.fft.rfftfreq(length, 1.0 / sample_rate)
    if kind == "brickwall":
        return (freqs < cutoff).astype(np.float32)
    if kind == "fir":
        _require(numtaps <= length, f"fir: numtaps {numtaps} exceeds the signal length {length}")
        taps = scipy.signal.firwin(numtaps, cutoff, fs=sample_rate)  # windowed sinc (Hamming)
        kernel = np.roll(np.pad(taps, (0, length - numtaps)), -(numtaps // 2))  # centred at 0
        return np.real(np.fft.rfft(kernel)).astype(np.float32)  # real: symmetric kernel
    if kind == "butterworth":
        sos = scipy.signal.butter(order, cutoff, btype="low", fs=sample_rate, output="sos")
    else:
        sos = scipy.signal.cheby1(order, ripple_db, cutoff, btype="low", fs=sample_rate, output="sos")
    _, h = scipy.signal.sosfreqz(sos, worN=freqs, fs=sample_rate)
    return np.abs(h).astype(np.float32)


@flax.struct.dataclass
class LowPass(AbstractFourierOperator):
    """A zero-phase low-pass filter at `cutoff` Hz (see `LOWPASS_KINDS`)."""

    is_lowpass: ClassVar[bool] = True

    kind: str = flax.struct.field(pytree_node=False)
    cutoff: float = flax.struct.field(pytree_node=False)
    sample_rate: int = flax.struct.field(pytree_node=False)
    order: int = flax.struct.field(pytree_node=False, default=8)
    ripple_db: float = flax.struct.field(pytree_node=False, default=1.0)
    numtaps: int = flax.struct.field(pytree_node=False, default=255)
    rcond: float = flax.struct.field(pytree_node=False, default=1e-3)
    noise_sigma: float = flax.struct.field(pytree_node=False, default=0.0)

    def response(self, length):
        return lowpass_response(self.kind, self.cutoff, self.sample_rate, self.order,
                                self.ripple_db, self.numtaps, length)


def _lowpass(kind: str):
    def build(*, cutoff: float, sample_rate: int, order: int = 8, ripple_db: float = 1.0,
              numtaps: int = 255, rcond: float = 1e-3, noise_sigma: float = 0.0) -> LowPass:
        _require(sample_rate is not None and sample_rate > 0, f"{kind}: sample_rate must be > 0")
        nyquist = sample_rate / 2
        _require(0 < cutoff < nyquist, f"{kind}: cutoff must be in (0, {nyquist:g}) Hz, the Nyquist "
                 f"frequency of sample_rate={sample_rate}; got {cutoff:g} Hz")
        _require(order >= 1 and numtaps >= 3 and numtaps % 2 == 1,
                 f"{kind}: need order >= 1 and an odd numtaps >= 3; got order={order}, numtaps={numtaps}")
        _require(ripple_db > 0 and 0 < rcond < 1 and noise_sigma >= 0,
                 f"{kind}: need ripple_db > 0, 0 < rcond < 1, noise_sigma >= 0")
        return LowPass(kind=kind, cutoff=float(cutoff), sample_rate=int(sample_rate), order=int(order),
                       ripple_db=float(ripple_db), numtaps=int(numtaps), rcond=float(rcond),
                       noise_sigma=float(noise_sigma))

    build.__doc__ = f"Zero-phase {kind} low-pass at `cutoff` Hz (< sample_rate / 2)."
    return build


for _kind in LOWPASS_KINDS:
    register_operator(_kind, builds=LowPass)(_lowpass(_kind))


# --------------------------------------------------------------------------------------
# Reverberation
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def synthetic_rir(sample_rate: int, rt60: float, drr_db: float, seed: int,
                  predelay_seconds: float = 0.0025) -> np.ndarray:
    """A room impulse response: a unit direct path and an exponentially decaying Gaussian tail.

    The tail's energy envelope falls by 60 dB in `rt60` seconds (Sabine decay; the amplitude is
    `exp(-3 ln(10) t / rt60)`), it starts `predelay_seconds` after the direct path, and it is scaled
    so that the direct-to-reverberant energy ratio is `drr_db`. Deterministic in `seed`.
    """
    n = int(round(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EB]))
    tail = rng.normal(size=n) * np.exp(-3 * np.log(10) * t / rt60)
    start = int(round(predelay_seconds * sample_rate))
    tail[:start] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    tail[0] = 1.0
    return tail.astype(np.float32)


@flax.struct.dataclass
class Reverb(AbstractFourierOperator):
    """Circular convolution with a room impulse response `rir` `[K]` (K <= L; Eq. of a LTI room)."""

    local: ClassVar[bool] = False
    rir: Array
    rcond: float = flax.struct.field(pytree_node=False, default=1e-2)
    noise_sigma: float = flax.struct.field(pytree_node=False, default=0.0)

    def response(self, length):
        _require(self.rir.shape[0] <= length, f"reverb: the RIR ({self.rir.shape[0]} samples) is longer "
                 f"than the signal ({length}); trim it or restore longer excerpts")
        return jnp.fft.rfft(self.rir, n=length, norm="backward")


@register_operator("reverb", builds=Reverb)
def reverb(*, sample_rate: int, rir_path: Optional[str] = None, rt60: float = 0.5, drr_db: float = 0.0,
           seed: int = 0, rcond: float = 1e-2, noise_sigma: float = 0.0) -> Reverb:
    """Reverberation by a RIR from a wav file (`rir_path`, resampled to `sample_rate`), or a
    synthetic one from `rt60` seconds and a direct-to-reverberant ratio `drr_db`."""
    if rir_path is not None:
        rir = io.read_audio(rir_path, sample_rate=sample_rate, channels=1)[:, 0]
        peak = int(np.argmax(np.abs(rir)))
        rir = rir[peak:] / rir[peak]  # direct path at t = 0 with unit gain
    else:
        _require(0.01 <= rt60 <= 10, f"reverb: rt60 must be in [0.01, 10] s, got {rt60}")
        _require(-30 <= drr_db <= 30, f"reverb: drr_db must be in [-30, 30] dB, got {drr_db}")
        rir = synthetic_rir(int(sample_rate), float(rt60), float(drr_db), int(seed))
    return Reverb(rir=jnp.asarray(rir), rcond=float(rcond), noise_sigma=float(noise_sigma))


# --------------------------------------------------------------------------------------
# Decimation (resampling down by an integer factor) and its band-limited upsampling inverse
# --------------------------------------------------------------------------------------


@register_operator("decimate")
@flax.struct.dataclass
class Decimate(AbstractLinearOperator):
    """Ideal decimation by `factor`: keep the rfft bins below the new Nyquist, `y` `[B, L/r, ...]`.

    With the orthonormal FFT, `Y_k = X_k / sqrt(r)` for `k < M/2` (M = L/r; the new Nyquist bin is
    dropped), so the singular values are `1/sqrt(r)` on the kept bins and `A A^T = I/r` on the range:
    `pinv = r A^T`, band-limited (sinc) upsampling.
    """

    has_svd: ClassVar[bool] = True
    factor: int = flax.struct.field(pytree_node=False, default=2)
    noise_sigma: float = flax.struct.field(pytree_node=False, default=0.0)

    def __post_init__(self):
        _require(int(self.factor) == self.factor and self.factor >= 2,
                 f"decimate: factor must be an integer >= 2, got {self.factor}")

    def _sizes(self, length_x: int):
        _require(length_x % self.factor == 0, f"decimate: length {length_x} is not a multiple of "
                 f"factor {self.factor}")
        m = length_x // self.factor
        return m, (m + 1) // 2  # output length, kept bins

    def _embed(self, c, size):
        pad = [(0, 0)] * c.ndim
        pad[1] = (0, size - c.shape[1])
        return jnp.pad(c, pad)

    def apply(self, x):
        m, kept = self._sizes(x.shape[1])
        c = _rfft(x)[:, :kept] / np.sqrt(self.factor)
        return _irfft(self._embed(c, m // 2 + 1), m).astype(x.dtype)

    def adjoint(self, y):
        m = y.shape[1]
        length, kept = m * self.factor, (m + 1) // 2
        c = _rfft(y)[:, :kept] / np.sqrt(self.factor)
        return _irfft(self._embed(c, length // 2 + 1), length).astype(y.dtype)

    def pinv(self, y):
        return self.factor * self.adjoint(y)

    def support(self, y):
        return y

    def svd(self, x_shape):
        length, ndim = int(x_shape[1]), len(x_shape)
        m, kept = self._sizes(length)
        s = np.zeros(length // 2 + 1, np.float32)
        s[:kept] = 1 / np.sqrt(self.factor)
        return SVD(vt=_rfft, v=lambda c: _irfft(c, length),
                   ut=lambda y: self._embed(_rfft(y)[:, :kept], length // 2 + 1),
                   u=lambda c: _irfft(self._embed(c[:, :kept], m // 2 + 1), m), s=_bins(s, ndim))


# --------------------------------------------------------------------------------------
# STFT brick-wall
# --------------------------------------------------------------------------------------


@register_operator("stft_brickwall")
@flax.struct.dataclass
class STFTBrickwall(AbstractLinearOperator):
    """Zeroes the STFT bins at and above `cutoff` Hz: `A = S^+ M S` (audio `[B, L, C]`).

    The adjoint is exact (`jax.linear_transpose`). No cheap exact pseudo-inverse exists: `S S^+` is
    not the identity on masked spectrograms, so `pinv` returns `A y`, which is exact on the range
    up to the bins straddling the cutoff. Use the FFT `brickwall` where exactness matters.
    """

    cutoff: float = flax.struct.field(pytree_node=False, default=4000.0)
    sample_rate: int = flax.struct.field(pytree_node=False, default=16000)
    n_fft: int = flax.struct.field(pytree_node=False, default=1024)
    hop: int = flax.struct.field(pytree_node=False, default=256)
    noise_sigma: float = flax.struct.field(pytree_node=False, default=0.0)

    def __post_init__(self):
        nyquist = self.sample_rate / 2
        _require(0 < self.cutoff < nyquist, f"stft_brickwall: cutoff must be in (0, {nyquist:g}) Hz, "
                 f"the Nyquist frequency of sample_rate={self.sample_rate}; got {self.cutoff:g} Hz")
        _require(self.hop <= self.n_fft // 2, "stft_brickwall: need hop <= n_fft / 2")

    def apply(self, x):
        spec = codecs.stft(x, n_fft=self.n_fft, hop=self.hop)
        freqs = np.fft.rfftfreq(self.n_fft, 1.0 / self.sample_rate)
        keep = jnp.asarray((freqs < self.cutoff).astype(np.float32))[None, None, :, None]
        return codecs.istft(spec * keep, n_fft=self.n_fft, hop=self.hop, length=x.shape[1]).astype(x.dtype)

    def adjoint(self, y):
        (out,) = jax.linear_transpose(self.apply, jax.ShapeDtypeStruct(y.shape, y.dtype))(y)
        return out

    def pinv(self, y):
        return self.apply(y)

    def support(self, y):
        return y

"""Representations the diffusion model works in, registered in `CODECS` by config name.

A codec is a frozen dataclass implementing `AbstractCodec`:
    encode(audio [B, L, C]) -> z                  (jittable)
    decode(z, length) -> audio [B, length, C]     (exact inverse where invertible)
    sigma_data(z, mask=None) -> float             (RMS of z, the EDM sigma_data)
    latent_shape(length, channels) -> shape of one encoded example
    is_identity, decode_is_differentiable         (class-level facts; ask these, not the name)

- 'waveform': identity, z = audio [B, L, C].
- 'complex_stft': amplitude-compressed complex STFT (SGMSE, Welker et al. 2022, eq. 1;
  Richter et al. 2023): z = beta |c|^alpha e^{i angle c}, real and imaginary parts as channels,
  z [B, T, F, 2C] with channels [Re_0..Re_{C-1}, Im_0..Im_{C-1}]. Invertible to float precision.
- 'mel': log-mel spectrogram (log(max(mel, floor)) - offset) / scale, [B, T, n_mels, C] or
  frames [B, T, n_mels * C], with librosa's (Slaney) mel filter bank: conditioning, metrics, and a
  magnitude-domain generative representation whose `decode` is approximate (NNLS to linear
  magnitude, then fast Griffin-Lim phase retrieval, both in jnp).

STFT framing is centred (n_fft // 2 zeros each side), periodic Hann window; the inverse is
windowed overlap-add divided by the summed squared window (Griffin & Lim 1984, eq. 6), which is
exact wherever that sum is non-zero (everywhere, for hop <= n_fft / 2).
"""
from __future__ import annotations

import abc
import dataclasses
import functools
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.registry import Registry

CODECS = Registry("codec")


def get_codec(name: str, **kwargs) -> "AbstractCodec":
    """Builds the codec registered as `name` with its keyword arguments."""
    return CODECS.get(name)(**kwargs)


# ---------------------------------------------------------------------------------------------
# STFT / ISTFT in jnp
# ---------------------------------------------------------------------------------------------

def hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window [n_fft] (scipy/librosa `get_window('hann', n, fftbins=True)`)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def num_frames(length: int, hop: int) -> int:
    """Frames of a centred STFT of `length` samples: 1 + length // hop."""
    return 1 + length // hop


def _frame_index(frames: int, n_fft: int, hop: int) -> np.ndarray:
    return np.arange(frames)[:, None] * hop + np.arange(n_fft)[None, :]


def stft(x: jax.Array, *, n_fft: int, hop: int, normalized: bool = True) -> jax.Array:
    """Centred STFT. x [B, L, C] -> complex [B, T, F, C], T = 1 + L // hop, F = n_fft // 2 + 1.

    `normalized` divides by sqrt(sum window^2), so white noise keeps its variance per bin.
    """
    b, length, c = x.shape
    pad = n_fft // 2
    xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)))
    frames = xp[:, _frame_index(num_frames(length, hop), n_fft, hop), :]  # [B, T, n_fft, C]
    win = hann(n_fft)
    spec = jnp.fft.rfft(frames * win[None, None, :, None], axis=2)
    if normalized:
        spec = spec / np.sqrt(np.sum(win.astype(np.float64) ** 2))
    return spec


def istft(spec: jax.Array, *, n_fft: int, hop: int, length: int,
          normalized: bool = True) -> jax.Array:
    """Inverse of `stft`: windowed overlap-add / sum of squared windows. -> [B, length, C]."""
    b, frames, _, c = spec.shape
    win = hann(n_fft)
    if normalized:
        spec = spec * np.sqrt(np.sum(win.astype(np.float64) ** 2))
    seg = jnp.fft.irfft(spec, n=n_fft, axis=2) * win[None, None, :, None]  # [B, T, n_fft, C]
    idx = _frame_index(frames, n_fft, hop)
    total = (frames - 1) * hop + n_fft
    out = jnp.zeros((b, total, c), seg.dtype).at[:, idx.reshape(-1), :].add(
            seg.reshape(b, -1, c))
    wsum = np.zeros(total)
    np.add.at(wsum, idx.reshape(-1), np.tile(win.astype(np.float64) ** 2, frames))
    pad = n_fft // 2
    out = out / jnp.asarray(np.maximum(wsum, 1e-10), out.dtype)[None, :, None]
    out = out[:, pad:pad + length, :]
    if out.shape[1] < length:
        out = jnp.pad(out, ((0, 0), (0, length - out.shape[1]), (0, 0)))
    return out


def rms(z: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """sqrt(mean z^2) over all entries (over mask > 0 only, if given; mask broadcasts to z)."""
    z = jnp.asarray(z, jnp.float32)
    if mask is None:
        return jnp.sqrt(jnp.mean(z ** 2))
    m = jnp.broadcast_to(jnp.asarray(mask, jnp.float32), z.shape)
    return jnp.sqrt(jnp.sum(m * z ** 2) / jnp.maximum(jnp.sum(m), 1.0))


# ---------------------------------------------------------------------------------------------
# Codecs
# ---------------------------------------------------------------------------------------------

_FACTS = ("is_identity", "decode_is_differentiable")


class AbstractCodec(abc.ABC):
    """The representation the network works in: waveform [B, L, C] <-> z.

    Class-level facts every codec states (restoration and likelihood ask these, never the name):
      is_identity: `encode` returns the waveform itself (z = audio [B, L, C]).
      decode_is_differentiable: `jax.grad` flows through `decode` and gives a useful gradient,
        so posterior samplers such as DPS can differentiate a waveform-domain loss through it.
      encode_once (default False): `encode` is a trained network, so the training data is encoded
        once into a cache (`diffjax.jobs.latents`) and batches carry 'z' instead of 'x'.
    """

    is_identity: ClassVar[bool]
    decode_is_differentiable: ClassVar[bool]
    encode_once: ClassVar[bool] = False  # a costly encoder: training reads a pre-encoded cache

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        missing = [f for f in _FACTS if type(vars(cls).get(f)) is not bool]
        if missing:
            raise TypeError(f"codec {cls.__name__} must state {missing} as bool class attributes")

    @abc.abstractmethod
    def encode(self, audio: jax.Array) -> jax.Array:
        """audio [B, L, C] -> z [B, ...] (jittable)."""

    @abc.abstractmethod
    def decode(self, z: jax.Array, length: int | None = None) -> jax.Array:
        """z [B, ...] -> audio [B, length, C] (`length` defaults to what z covers)."""

    def sigma_data(self, z: jax.Array, mask: jax.Array | None = None) -> float:
        """RMS of z over all entries (over mask > 0 only, if given): EDM's sigma_data. A sine of
        amplitude A gives A / sqrt(2) as a waveform."""
        return float(rms(z, mask))

    def latent_shape(self, length: int, channels: int) -> tuple[int, ...]:
        """The shape of one encoded example of `length` samples and `channels` channels (no compute)."""
        audio = jax.ShapeDtypeStruct((1, int(length), int(channels)), jnp.float32)
        return tuple(jax.eval_shape(self.encode, audio).shape[1:])


@CODECS.register("waveform")
@dataclasses.dataclass(frozen=True)
class Waveform(AbstractCodec):
    """Identity codec: z = audio [B, L, C]."""

    is_identity: ClassVar[bool] = True
    decode_is_differentiable: ClassVar[bool] = True

    def encode(self, audio: jax.Array) -> jax.Array:
        return audio

    def decode(self, z: jax.Array, length: int | None = None) -> jax.Array:
        return z if length is None else z[:, :length]


@CODECS.register("complex_stft")
@dataclasses.dataclass(frozen=True)
class ComplexSTFT(AbstractCodec):
    """Compressed complex STFT, z = beta |c|^alpha e^{i angle c} (SGMSE, Welker et al. 2022).

    [B, L, C] -> [B, T, F, 2C] (layout 'tf', for UNet2D) or [B, T, F * 2C] (layout 'frames':
    each frame's bins are channels, for a UNet1D over time, as audio-diffusion-pytorch's STFT
    mode), T = 1 + L // hop, F = n_fft // 2 + 1. SGMSE's 16 kHz setting is
    n_fft=510 (F = 256), hop=128, alpha=0.5. Our STFT is normalised to unit gain per bin (see
    `stft`; with alpha = beta = 1 a sine of amplitude A has z-RMS A / 2), so `beta` here is not
    SGMSE's 0.15 for an unnormalised STFT; beta = 1 keeps the synth dataset at z-RMS ~ 0.17.
    """

    n_fft: int = 510
    hop: int = 128
    alpha: float = 0.5
    beta: float = 1.0
    layout: str = "tf"  # tf: [B, T, F, 2C] | frames: [B, T, F * 2C]

    is_identity: ClassVar[bool] = False
    decode_is_differentiable: ClassVar[bool] = True  # the inverse is a jnp ISTFT

    def __post_init__(self):
        if self.layout not in ("tf", "frames"):
            raise ValueError(f"unknown complex_stft layout {self.layout!r}; valid: tf, frames")
        if self.alpha <= 0 or self.beta <= 0:
            raise ValueError(f"complex_stft needs alpha > 0 and beta > 0; got alpha={self.alpha}, "
                             f"beta={self.beta}")

    def encode(self, audio: jax.Array) -> jax.Array:
        c = stft(audio, n_fft=self.n_fft, hop=self.hop)
        mag = jnp.abs(c)
        gain = jnp.where(mag > 0, jnp.maximum(mag, 1e-30) ** (self.alpha - 1.0), 0.0)
        z = self.beta * c * gain
        z = jnp.concatenate([z.real, z.imag], axis=-1).astype(jnp.float32)
        return z.reshape(z.shape[:2] + (-1,)) if self.layout == "frames" else z

    def decode(self, z: jax.Array, length: int | None = None) -> jax.Array:
        """Inverse of `encode`; `length` defaults to (T - 1) * hop."""
        if self.layout == "frames":
            z = z.reshape(z.shape[:2] + (self.n_fft // 2 + 1, -1))
        c = z.shape[-1] // 2
        zc = jax.lax.complex(z[..., :c], z[..., c:]) / self.beta
        mag = jnp.abs(zc)
        gain = jnp.where(mag > 0, jnp.maximum(mag, 1e-30) ** (1.0 / self.alpha - 1.0), 0.0)
        length = (z.shape[1] - 1) * self.hop if length is None else length
        return istft(zc * gain, n_fft=self.n_fft, hop=self.hop, length=length)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
                   fmax: float | None) -> np.ndarray:
    """librosa's Slaney-normalised mel filter bank, transposed: [F, n_mels] float32."""
    import librosa  # Imported lazily: it is slow to import and only this needs it.

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                               fmax=fmax).T.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Magnitude inversion in jnp: NNLS and fast Griffin-Lim
# ---------------------------------------------------------------------------------------------

def nnls(a: np.ndarray, b: jax.Array, *, iters: int) -> jax.Array:
    """Non-negative least squares, argmin_{x >= 0} 1/2 ||a x - b||^2 for each row of b, by FISTA.

    Accelerated projected gradient (Beck & Teboulle 2009, FISTA with constant step, sec. 4; the
    proximal step of the constraint x >= 0 is the projection max(0, .)), step 1/L with
    L = ||a||_2^2 the Lipschitz constant of the gradient a^T (a x - b):
        x_k     = max(0, y_k - a^T (a y_k - b) / L)
        t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2
        y_{k+1} = x_k + (t_k - 1) / t_{k+1} (x_k - x_{k-1})
    from x_0 = y_1 = max(0, a^+ b) (the pseudo-inverse clipped at 0, librosa.util.nnls's start),
    t_1 = 1, for `iters` steps. Objective error decays as O(1 / k^2) (Beck & Teboulle, thm. 4.4).

    Args:
        a: [M, N] the (constant) basis, e.g. a mel filter bank.
        b: [..., M] targets.
        iters: number of FISTA steps (0 returns the clipped pseudo-inverse).

    Returns:
        x [..., N], x >= 0.
    """
    a64 = np.asarray(a, np.float64)
    u, s, vt = np.linalg.svd(a64, full_matrices=False)  # one SVD gives a^+ and ||a||_2
    lipschitz = float(s[0] ** 2)
    s_inv = np.where(s > s[0] * max(a64.shape) * np.finfo(np.float64).eps, 1.0 / s, 0.0)
    pinv_t = (u * s_inv) @ vt                             # (a^+)^T [M, N], as np.linalg.pinv
    at = jnp.asarray(a64.T, b.dtype)                      # [N, M]
    a = jnp.asarray(a64, b.dtype)                         # [M, N]
    x0 = jnp.maximum(b @ jnp.asarray(pinv_t, b.dtype), 0.0)  # [..., N]

    def step(_, carry):
        x, y, t = carry
        x_next = jnp.maximum(y - ((y @ at - b) @ a) / lipschitz, 0.0)
        t_next = (1.0 + jnp.sqrt(1.0 + 4.0 * t * t)) / 2.0
        return x_next, x_next + ((t - 1.0) / t_next) * (x_next - x), t_next

    x, _, _ = jax.lax.fori_loop(0, iters, step, (x0, x0, jnp.ones((), b.dtype)))
    return x


def griffin_lim(magnitude: jax.Array, phase: jax.Array, *, n_fft: int, hop: int, length: int,
                iters: int, momentum: float = 0.99) -> jax.Array:
    """Fast Griffin-Lim phase retrieval: magnitude [B, T, F, C] -> audio [B, length, C].

    Griffin & Lim 1984 alternate the projection onto consistent spectrograms,
    P_1(c) = stft(istft(c)) (unnormalised, centred, periodic Hann; see `stft`), and onto the
    target magnitude S, P_2(c) = S c / |c|. The fast variant (Perraudin, Balazs & Sondergaard
    2013, Algorithm 2) adds momentum alpha; in librosa.griffinlim's form, which this matches
    step for step:
        r_n = P_1(c_{n-1}),   c_n = P_2(r_n - alpha / (1 + alpha) r_{n-1})   (r_0 = 0)
    from c_0 = S e^{i phase}, for `iters` steps; returns istft(c_iters).

    Args:
        magnitude: [B, T, F, C] target magnitude, F = n_fft // 2 + 1.
        phase: initial phase in radians, broadcastable to `magnitude` (e.g. [T, F, C], numpy).
        n_fft, hop: the STFT's frame and hop.
        length: samples of the returned audio.
        iters: Griffin-Lim iterations.
        momentum: alpha (0: plain Griffin-Lim; 0.99, librosa's and Perraudin et al.'s choice).
    """
    tiny = np.finfo(np.float32).tiny
    rebuild = functools.partial(istft, n_fft=n_fft, hop=hop, length=length, normalized=False)

    def step(_, carry):
        angles, previous = carry
        rebuilt = stft(rebuild(angles), n_fft=n_fft, hop=hop, normalized=False)
        proposal = rebuilt - (momentum / (1.0 + momentum)) * previous
        return magnitude * proposal / (jnp.abs(proposal) + tiny), rebuilt

    angles = magnitude * jnp.exp(1j * jnp.broadcast_to(jnp.asarray(phase, magnitude.dtype),
                                                       magnitude.shape))
    angles, _ = jax.lax.fori_loop(0, iters, step, (angles, jnp.zeros_like(angles)))
    return rebuild(angles)


@CODECS.register("mel")
@dataclasses.dataclass(frozen=True)
class LogMel(AbstractCodec):
    """Log-mel spectrogram z = (log(max(M |STFT|^2, floor)) - offset) / scale.

    [B, L, C] -> [B, T, n_mels, C] (layout 'tf') or [B, T, n_mels * C] (layout 'frames': mel
    bands as channels, for a UNet1D over time). T = 1 + L // hop.

    The STFT is unnormalised (as librosa's), with a periodic Hann window and zero-padded centred
    frames, so with offset 0 and scale 1 `exp(z)` equals `librosa.feature.melspectrogram(y=x, sr,
    n_fft, hop_length, n_mels, fmin, fmax, pad_mode='constant')` above the floor. Defaults follow
    DiffWave at 16 kHz (conditioning and metrics).

    As a generative representation (Riffusion-style magnitude diffusion) `decode` inverts it
    approximately, in jnp (jittable, batched, on any device): `nnls` (FISTA, `nnls_iters` steps)
    from mel power to linear power, as `librosa.feature.inverse.mel_to_stft` does with L-BFGS-B,
    then `griffin_lim` (Griffin & Lim 1984 with the momentum 0.99 of Perraudin et al. 2013, as
    `librosa.griffinlim`) for `griffin_lim_iters` iterations from one fixed random phase. It is
    deterministic but not differentiable (differentiating it raises). With 128 mels, n_fft 1024,
    hop 256 the round trip of 16 embedded clips keeps their pitch (pYIN confidence 0.30 vs 0.31
    for the original; 0.29 with librosa's NNLS and Griffin-Lim), and 16 clips of 1 s decode in
    ~1 s on 2 CPU cores (~3.4 s the first time, compiling; librosa's host path took 7-8 s).
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 80
    fmin: float = 20.0
    fmax: float | None = None  # None: the Nyquist frequency, sample_rate / 2 (8 kHz at 16 kHz)
    floor: float = 1e-5
    offset: float = 0.0  # z = (log mel - offset) / scale; -7 and 4.5 map the embedded music's
    scale: float = 1.0   # log-mel range [log 1e-5, 7] to [-1.0, 3.1], mean ~0 and RMS 1.02
    layout: str = "tf"   # tf: [B, T, n_mels, C] | frames: [B, T, n_mels * C]
    griffin_lim_iters: int = 32  # fast Griffin-Lim iterations in `decode`
    nnls_iters: int = 50         # NNLS (FISTA) iterations in `decode`, mel power -> linear power

    is_identity: ClassVar[bool] = False
    decode_is_differentiable: ClassVar[bool] = False  # Griffin-Lim: see `_invert_mel_jvp`

    def __post_init__(self):
        if self.layout not in ("tf", "frames"):
            raise ValueError(f"unknown mel layout {self.layout!r}; valid: tf, frames")
        if self.scale <= 0:
            raise ValueError(f"mel scale must be > 0, got {self.scale}")

    def encode(self, audio: jax.Array) -> jax.Array:
        spec = stft(audio, n_fft=self.n_fft, hop=self.hop, normalized=False)
        power = jnp.abs(spec) ** 2  # [B, T, F, C]
        fb = jnp.asarray(mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin,
                                        self.fmax))
        mel = jnp.einsum("btfc,fm->btmc", power, fb)
        z = (jnp.log(jnp.maximum(mel, self.floor)) - self.offset) / self.scale
        return z.reshape(z.shape[:2] + (-1,)) if self.layout == "frames" else z

    def mel_power(self, z: jax.Array) -> jax.Array:
        """The mel power spectrogram of z, [B, T, n_mels, C] (jnp, float32)."""
        z = jnp.asarray(z, jnp.float32)
        if self.layout == "frames":
            z = z.reshape(z.shape[:2] + (self.n_mels, -1))
        return jnp.exp(jnp.minimum(z * self.scale + self.offset, 50.0))  # no overflow to inf

    def magnitude(self, z: jax.Array) -> jax.Array:
        """Linear STFT magnitude [B, T, F, C] whose mel spectrogram is closest to z's: `nnls` of
        the mel power over `nnls_iters` FISTA steps, then the square root."""
        fb = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax)
        mel = jnp.swapaxes(self.mel_power(z), 2, 3)  # [B, T, C, n_mels]
        power = nnls(fb.T, mel, iters=self.nnls_iters)  # [B, T, C, F]
        return jnp.sqrt(jnp.swapaxes(power, 2, 3))

    def decode(self, z: jax.Array, length: int | None = None) -> jax.Array:
        """Approximate inverse (NNLS, fast Griffin-Lim; see the class docstring): [B, length, C]."""
        length = (z.shape[1] - 1) * self.hop if length is None else int(length)
        return _decode_mel(self, z, length)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 2))
def _invert_mel(codec: LogMel, z: jax.Array, length: int) -> jax.Array:
    """`LogMel.decode`: z -> audio [B, length, C] (NNLS, then fast Griffin-Lim)."""
    magnitude = codec.magnitude(z)  # [B, T, F, C]
    # One fixed random phase [T, F, C] for every clip, independent of the batch. A numpy constant
    # (seed 0) is the same on every device and compiles in no time (threefry took 40% of the
    # decode's compile).
    phase = np.random.default_rng(0).uniform(0.0, 2 * np.pi, magnitude.shape[1:])
    return griffin_lim(magnitude, phase, n_fft=codec.n_fft, hop=codec.hop, length=length,
                       iters=codec.griffin_lim_iters)


@_invert_mel.defjvp
def _invert_mel_jvp(codec, length, primals, tangents):
    # The jnp graph would differentiate, but to no use: sqrt and |.| at the zeros of the NNLS
    # magnitude make every entry of the gradient NaN, and the momentum iteration is so sensitive
    # that central differences of a waveform loss vary 5x between steps 1e-1, 1e-2 and 1e-3.
    raise TypeError("LogMel.decode is not differentiable (decode_is_differentiable = False): "
                    "Griffin-Lim phase retrieval has no useful derivative; differentiate through "
                    "a codec whose decode_is_differentiable is True.")


_decode_mel = jax.jit(_invert_mel, static_argnums=(0, 2))


# ---------------------------------------------------------------------------------------------
# sigma_data and sigma_max from data
# ---------------------------------------------------------------------------------------------

def _round_up(x: float, digits: int = 2) -> float:
    """Rounds up to `digits` significant digits (e.g. 53.2 -> 54)."""
    if x <= 0:
        return 0.0
    scale = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return math.ceil(x / scale) * scale


def estimate_sigma_data(dataset, codec: AbstractCodec, *, num_batches: int = 4,
                        batch_size: int = 32, seed: int = 0) -> dict:
    """Estimates `sigma_data` and suggests `sigma_max` for `codec` on `dataset`'s training data.

    sigma_data = RMS of z = codec.encode(audio) over `num_batches` batches (EDM, Karras et al.
    2022, sec. 5: the data std the preconditioning assumes; RMS, since the noise is centred at 0).
    sigma_max = the largest Euclidean distance between two examples of a batch, rounded up to two
    significant digits (Song & Ermon 2020, "Technique 1": sigma_max as large as the maximum
    pairwise distance of training data, so the prior covers the whole data set; EDM's 80 for
    CIFAR-10 follows the same rule).

    Returns:
        dict with 'sigma_data', 'sigma_max', 'max_pairwise_distance', 'dim' (per example),
        'num_examples'.
    """
    encode = jax.jit(codec.encode)
    sq, count, dmax, dim = 0.0, 0, 0.0, 0
    for step in range(num_batches):
        batch = dataset.batch(step, batch_size, seed=seed)
        z = np.asarray(encode(jnp.asarray(batch["x"])), np.float64).reshape(batch_size, -1)
        sq += float(np.sum(z ** 2))
        count += z.size
        dim = z.shape[1]
        g = z @ z.T
        n2 = np.diag(g)
        d2 = np.maximum(n2[:, None] + n2[None, :] - 2 * g, 0.0)
        dmax = max(dmax, float(np.sqrt(d2.max())))
    return {"sigma_data": math.sqrt(sq / count), "sigma_max": _round_up(dmax),
            "max_pairwise_distance": dmax, "dim": dim, "num_examples": num_batches * batch_size}

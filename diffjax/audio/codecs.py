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
  magnitude, then Griffin-Lim phase retrieval, on the host).

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
      decode_is_differentiable: `jax.grad` flows through `decode` (it is jnp, not a host callback),
        so posterior samplers such as DPS can differentiate a waveform-domain loss through it.
    """

    is_identity: ClassVar[bool]
    decode_is_differentiable: ClassVar[bool]

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
    approximately: non-negative least squares from mel to linear magnitude
    (`librosa.feature.inverse.mel_to_stft`), then Griffin-Lim phase retrieval (Griffin & Lim
    1984; `librosa.griffinlim` with momentum, Perraudin et al. 2013) for `griffin_lim_iters`
    iterations from a fixed random phase. It runs on the host (a `jax.pure_callback`), so it works
    under `jit` but is not differentiable. With 128 mels, n_fft 1024, hop 256 the round trip of the
    embedded music keeps most of its pitch (pYIN confidence 0.28 vs 0.31 for the original).
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 80
    fmin: float = 20.0
    fmax: float | None = 8000.0
    floor: float = 1e-5
    offset: float = 0.0  # z = (log mel - offset) / scale; -7 and 4.5 map the embedded music's
    scale: float = 1.0   # log-mel range [log 1e-5, 7] to [-1.0, 3.1], mean ~0 and RMS 1.02
    layout: str = "tf"   # tf: [B, T, n_mels, C] | frames: [B, T, n_mels * C]
    griffin_lim_iters: int = 32
    nnls_iters: int = 50

    is_identity: ClassVar[bool] = False
    decode_is_differentiable: ClassVar[bool] = False  # NNLS + Griffin-Lim on the host

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

    def mel_power(self, z: np.ndarray) -> np.ndarray:
        """The mel power spectrogram of z, [B, T, n_mels, C] (numpy)."""
        z = np.asarray(z, np.float64)
        if self.layout == "frames":
            z = z.reshape(z.shape[:2] + (self.n_mels, -1))
        return np.exp(np.minimum(z * self.scale + self.offset, 50.0))  # no overflow to inf

    def _griffin_lim(self, z: np.ndarray, length: int) -> np.ndarray:
        import librosa

        mel = self.mel_power(z).transpose(0, 3, 2, 1)  # [B, C, n_mels, T], librosa's layout
        basis = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax).T
        # librosa.feature.inverse.mel_to_stft, with the L-BFGS-B iterations capped: on data it
        # converges in < 50, on half-trained samples it can take minutes.
        power = librosa.util.nnls(basis.astype(np.float64), mel, maxiter=self.nnls_iters)
        magnitude = np.sqrt(power)
        audio = librosa.griffinlim(magnitude, n_iter=self.griffin_lim_iters, hop_length=self.hop,
                                   n_fft=self.n_fft, center=True, pad_mode="constant", length=length,
                                   random_state=0)
        return np.ascontiguousarray(audio.transpose(0, 2, 1), np.float32)  # [B, length, C]

    def decode(self, z: jax.Array, length: int | None = None) -> jax.Array:
        """Approximate inverse (NNLS + Griffin-Lim, see the class docstring) -> [B, length, C]."""
        length = (z.shape[1] - 1) * self.hop if length is None else int(length)
        channels = z.shape[-1] if self.layout == "tf" else z.shape[-1] // self.n_mels
        out = jax.ShapeDtypeStruct((z.shape[0], length, channels), jnp.float32)
        return jax.pure_callback(functools.partial(self._griffin_lim, length=length), out, z)


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

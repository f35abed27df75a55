"""The audio autoencoder: an Oobleck/DAC-style 1-D convolutional encoder and decoder (flax.linen,
channels-last [B, L, C]), registered in `AUTOENCODERS`.

Architecture (DAC, Kumar et al. 2023, sec. 3 and fig. 1; stable-audio-tools `OobleckEncoder` /
`OobleckDecoder`, reimplemented):
- `Snake`: x + 1/(alpha + eps) sin^2(alpha x) with a learned per-channel alpha (Ziyin et al.
  2020; DAC sec. 3.1), stored in log scale by default (alpha = exp(log_alpha), initially 1);
  sin^2 from a vectorisable polynomial (`sin_squared`).
- `WNConv` / `WNConvTranspose`: convolutions with weight normalisation w = g v / ||v|| (Salimans
  & Kingma 2016, eq. 2), the norm taken per output channel as torch's `weight_norm(dim=0)`.
- `ResidualUnit(dilation)`: x + conv1x1(snake(conv7_dilated(snake(x)))); dilations (1, 3, 9).
- `EncoderBlock(stride)`: three residual units, snake, then a conv of kernel 2s, stride s.
  `DecoderBlock(stride)`: snake, a transposed conv of kernel 2s, stride s, then three residual
  units. Each stride s changes the length exactly by s (padding ceil(s/2) as the reference on the
  encoder side; on the decoder side padding that gives exactly L * s for any s, computed in
  polyphase form, `transposed_conv`).
- Encoder: conv7 -> EncoderBlocks with channels `channels * (1,) + c_mults` -> snake -> conv3 to
  the bottleneck's input channels (2 * latent_dim for the VAE). Decoder: conv7 from latent_dim ->
  DecoderBlocks in reverse -> snake -> conv7 (no bias) to `io_channels`, no tanh (Stable Audio
  Open's `final_tanh: false`).

Sizes (`AUTOENCODER_SIZES`; parameter counts from `parameter_count`, via `jax.eval_shape`):

    size   io  channels  c_mults           strides          hop   latent  parameters
    tiny   1   8         (1, 2)            (2, 4)           8     4            10,433
    small  1   8         (2, 4, 8, 16)     (4, 4, 4, 4)     256   32          494,497
    large  2   128       (1, 2, 4, 8, 16)  (2, 4, 4, 8, 8)  2048  64      156,077,826

`large` is the shape of Stable Audio Open 1.0's autoencoder (model_config.json "pretransform":
oobleck encoder and decoder, channels 128, c_mults [1, 2, 4, 8, 16], strides [2, 4, 4, 8, 8],
latent_dim 64, io_channels 2, VAE; Evans et al. 2024 report 156M parameters): 156.08M here, 0.05%
from the published figure. The torch model has 34,688 more: SnakeBeta's second per-channel
parameter (32,768) and the weight-norm gain of a transposed conv per input rather than output
channel (1,920), 156.11M in all.

`small` is the CPU quick start at 16 kHz mono: 1 s -> 63 latent frames of 32 channels (62.5
frames/s, 8x fewer values than samples). The residual units at the full sample rate dominate the
cost, so it keeps only 8 channels there and downsamples by 4 at once. Measured jitted Adam steps
on MR-STFT + 2e-4 KL, batch 16 of 1 s at 16 kHz, on a shared 2-core CPU (load ~3, about one core
free; float32):

    channels  c_mults        strides        parameters  s/step  steps/s
    8         (2, 4, 8, 16)  (4, 4, 4, 4)      494,497    1.8     0.57   <- small
    16        (1, 2, 4, 8)   (4, 4, 4, 4)      506,209    2.3     0.43
    8         (1, 2, 4, 8)   (2, 4, 4, 8)      173,809    2.3     0.44
    16        (1, 2, 4, 8)   (2, 4, 4, 8)      635,233    3.6     0.28
    32        (1, 2, 4, 8)   (2, 4, 4, 8)    2,421,313    8.1     0.12

A few steps per second at this batch is out of reach for an Oobleck network on two CPU cores:
one 7-tap conv of 16 channels over 16 x 16000 samples takes ~130 ms forward and backward on
XLA:CPU. Shorter clips or smaller batches scale the cost down linearly.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.autoencoder.bottleneck import BOTTLENECKS, AbstractBottleneck
from diffjax.models.base import preset_parameters
from diffjax.registry import Registry

Dtype = Any

AUTOENCODERS = Registry("autoencoder")

DILATIONS = (1, 3, 9)  # per residual unit (WaveNet-style growth, DAC sec. 3.1)


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------

def weight_norm(v: jax.Array, g: jax.Array) -> jax.Array:
    """w = g v / ||v|| (Salimans & Kingma 2016, eq. 2), the norm over every axis but the last
    (output channels). v [*kernel, C_in, C_out], g [C_out] -> w like v."""
    norm = jnp.sqrt(jnp.sum(v ** 2, axis=tuple(range(v.ndim - 1)), keepdims=True))
    return _per_channel(g, v.ndim) * v / jnp.maximum(norm, 1e-12)


def _per_channel(a: jax.Array, ndim: int) -> jax.Array:
    """A [C] vector shaped to broadcast over the last axis of a rank-`ndim` array."""
    return a.reshape((1,) * (ndim - 1) + (-1,))


_PI_HI, _PI_LO = 3.140625, float(np.pi - 3.140625)  # Cody-Waite: k * _PI_HI exact for |k| < 2^16


def sin_squared(y: jax.Array) -> jax.Array:
    """sin^2(y) from multiplies and adds only: y = k pi + r with |r| <= pi/2 (Cody-Waite range
    reduction, pi split in two), then sin(r) by its Taylor series to r^11 (remainder
    <= (pi/2)^13 / 13! = 6e-8). In float32 it is within 5e-7 of float64 sin^2 for |y| <= 200 (the
    rounding of jnp.sin's is 6e-8), and its gradient 2 sin cos within 2e-6. XLA:CPU evaluates
    `jnp.sin` element by element; this vectorises: Snake's forward and backward ran 6x faster
    ([4, 2000, 8]: 0.36 vs 2.1 ms), the tiny model's forward and backward 1.7x (32 vs 54 ms).
    """
    k = jnp.round(y * (1 / np.pi))
    r = (y - k * _PI_HI) - k * _PI_LO
    r2 = r * r
    sin_r = r * (1 + r2 * (-1 / 6 + r2 * (1 / 120 + r2 * (-1 / 5040 + r2 * (1 / 362880
                                                                           - r2 / 39916800)))))
    return sin_r * sin_r


class Snake(nn.Module):
    """snake(x) = x + 1/(alpha + 1e-9) sin^2(alpha x), one learned alpha per channel (last axis).

    `logscale`: alpha = exp(param), initialised at 1 either way. sin^2 is evaluated in float32
    (`sin_squared`) whatever the compute dtype."""

    logscale: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = nn.initializers.zeros if self.logscale else nn.initializers.ones
        alpha = self.param("alpha", init, (x.shape[-1],), jnp.float32)
        alpha = _per_channel(jnp.exp(alpha) if self.logscale else alpha, x.ndim)
        wave = sin_squared(alpha * x.astype(jnp.float32)) / (alpha + 1e-9)
        return x.astype(self.dtype) + wave.astype(self.dtype)


# torch's default conv init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)),
# as the reference models start from. LeCun-normal's 3x larger variance compounds through the
# residual stacks: the tiny model's initial output had ~9x the RMS of its input (0.04x with this).
_TORCH_DEFAULT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def _wn_kernel(module: nn.Module, shape: tuple[int, ...]) -> jax.Array:
    """Creates the weight-normalised kernel's parameters `v` and `g` (g = ||v|| initially, so the
    initial weight is `v`'s draw) and returns w = g v / ||v||."""
    v = module.param("v", nn.with_logical_partitioning(_TORCH_DEFAULT, (None,) * (len(shape) - 2) + ("conv_in", "conv_out")),
                     shape, jnp.float32)
    g = module.param("g", lambda _: jnp.sqrt(jnp.sum(v ** 2, axis=tuple(range(v.ndim - 1)))))
    return weight_norm(v, g)


class WNConv(nn.Module):
    """Weight-normalised N-d convolution, channels-last ([B, L, C] or [B, T, F, C]).

    `padding` is lax's: "SAME" or one (low, high) pair per spatial axis."""

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] | None = None
    dilation: Sequence[int] | None = None
    padding: str | Sequence[tuple[int, int]] = "SAME"
    use_bias: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        nd = len(self.kernel_size)
        kernel = _wn_kernel(self, (*self.kernel_size, x.shape[-1], self.features))
        spatial = "HWD"[:nd] if nd > 1 else "W"
        y = jax.lax.conv_general_dilated(
                x.astype(self.dtype), kernel.astype(self.dtype),
                window_strides=tuple(self.strides or (1,) * nd),
                padding=self.padding if isinstance(self.padding, str) else tuple(self.padding),
                rhs_dilation=tuple(self.dilation or (1,) * nd),
                dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"))
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (self.features,))
            y = y + _per_channel(bias, y.ndim).astype(self.dtype)
        return y


def upsample_taps(stride: int) -> np.ndarray:
    """Which kernel tap of a transposed conv (kernel 2s, stride s) feeds output phase r from input
    offset e - 1: int [3, s], -1 where none (see `transposed_conv`)."""
    s, low = stride, transposed_padding(stride)
    taps = -np.ones((3, s), np.int64)
    for r in range(s):
        # y[m s + r] = w[k0] x[m + e0] + w[k0 + s] x[m + e0 + 1]
        k0, e0 = (low - r) % s, -((low - r) // s)
        taps[e0 + 1, r], taps[e0 + 2, r] = k0, k0 + s
    return taps


def transposed_padding(stride: int) -> int:
    """Low padding of the input-dilated form of the transposed conv, kernel 2s - 1 - ceil(s/2)
    (torch's ConvTranspose1d(kernel 2s, stride s, padding ceil(s/2)) for even s); the high
    padding is 3s - 2 - low, so the output has exactly L * s samples."""
    return 2 * stride - 1 - math.ceil(stride / 2)


def transposed_conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Transposed 1-d conv, kernel [2s, C_in, C_out], stride s: x [B, L, C_in] -> [B, L s, C_out].

    Equal to `lax.conv_general_dilated(x, kernel, (1,), ((low, 3s - 2 - low),), lhs_dilation=(s,))`
    but computed in polyphase (sub-pixel) form: each output phase r = t mod s reads two taps, at
    input offsets in {-1, 0, 1}, so one stride-1 conv of kernel 3 with s * C_out outputs followed
    by interleaving gives it without multiplying the s - 1 inserted zeros. On XLA:CPU the
    input-dilated conv's gradient took 7x longer (447 vs 61 ms, s = 2, [16, 8000, 16] -> 8).
    """
    s, (_, c_in, c_out) = stride, kernel.shape
    taps = upsample_taps(s)
    w3 = jnp.where(jnp.asarray(taps >= 0)[:, :, None, None], kernel[np.maximum(taps, 0)], 0)
    w3 = jnp.transpose(w3, (0, 2, 1, 3)).reshape(3, c_in, s * c_out)  # [3, C_in, s * C_out]
    y = jax.lax.conv_general_dilated(x, w3, (1,), ((1, 1),), dimension_numbers=("NWC", "WIO", "NWC"))
    b, length, _ = y.shape
    return y.reshape(b, length * s, c_out)


class WNConvTranspose(nn.Module):
    """Weight-normalised 1-d transposed convolution, kernel 2s and stride s: [B, L, C] ->
    [B, L * s, features] exactly (`transposed_conv`)."""

    features: int
    stride: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = _wn_kernel(self, (2 * self.stride, x.shape[-1], self.features))
        y = transposed_conv(x.astype(self.dtype), kernel.astype(self.dtype), self.stride)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return y + _per_channel(bias, y.ndim).astype(self.dtype)


class ResidualUnit(nn.Module):
    """x + conv1(snake(conv7_dilated(snake(x)))), channels kept (DAC sec. 3.1)."""

    dilation: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        h = Snake(dtype=self.dtype)(x)
        pad = 3 * self.dilation
        h = WNConv(c, (7,), dilation=(self.dilation,), padding=((pad, pad),), dtype=self.dtype)(h)
        h = Snake(dtype=self.dtype)(h)
        h = WNConv(c, (1,), dtype=self.dtype)(h)
        return x + h


class EncoderBlock(nn.Module):
    """Residual units (dilations 1, 3, 9), snake, conv of kernel 2s and stride s: [B, L, C] ->
    [B, L / s, features] (L a multiple of s)."""

    features: int
    stride: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for d in DILATIONS:
            x = ResidualUnit(d, dtype=self.dtype)(x)
        x = Snake(dtype=self.dtype)(x)
        p = math.ceil(self.stride / 2)
        return WNConv(self.features, (2 * self.stride,), strides=(self.stride,),
                      padding=((p, p),), dtype=self.dtype)(x)


class DecoderBlock(nn.Module):
    """Snake, transposed conv of kernel 2s and stride s, residual units (dilations 1, 3, 9):
    [B, L, C] -> [B, L * s, features]."""

    features: int
    stride: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Snake(dtype=self.dtype)(x)
        x = WNConvTranspose(self.features, self.stride, dtype=self.dtype)(x)
        for d in DILATIONS:
            x = ResidualUnit(d, dtype=self.dtype)(x)
        return x


class Encoder(nn.Module):
    """[B, L, io] -> [B, L / prod(strides), out_channels] (L a multiple of prod(strides))."""

    channels: int
    c_mults: Sequence[int]
    strides: Sequence[int]
    out_channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        widths = [self.channels * m for m in (1, *self.c_mults)]
        x = WNConv(widths[0], (7,), padding=((3, 3),), dtype=self.dtype)(x)
        for width, stride in zip(widths[1:], self.strides):
            x = EncoderBlock(width, stride, dtype=self.dtype)(x)
        x = Snake(dtype=self.dtype)(x)
        return WNConv(self.out_channels, (3,), padding=((1, 1),), dtype=self.dtype)(x)


class Decoder(nn.Module):
    """[B, T, latent] -> [B, T * prod(strides), io_channels]."""

    channels: int
    c_mults: Sequence[int]
    strides: Sequence[int]
    io_channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        widths = [self.channels * m for m in (1, *self.c_mults)]
        x = WNConv(widths[-1], (7,), padding=((3, 3),), dtype=self.dtype)(z)
        for width, stride in zip(widths[-2::-1], self.strides[::-1]):
            x = DecoderBlock(width, stride, dtype=self.dtype)(x)
        x = Snake(dtype=self.dtype)(x)
        return WNConv(self.io_channels, (7,), padding=((3, 3),), use_bias=False,
                      dtype=self.dtype)(x)


# ---------------------------------------------------------------------------------------------
# The autoencoder
# ---------------------------------------------------------------------------------------------

class AudioAutoencoder(nn.Module):
    """Waveform [B, L, C] <-> latent [B, T, D], T = ceil(L / hop), hop = prod(strides).

    Methods (called as `module.apply({"params": p}, ..., method=...)`):
        encode_moments(audio [B, L, C]) -> (mean, std), each [B, T, D]
        decode(z [B, T, D]) -> audio [B, T * hop, C]  (the caller crops to its length)
        __call__(audio [B, L, C], key) -> (reconstruction [B, L, C], aux)
    Parameters are float32; `dtype` is the compute dtype; outputs are float32.
    """

    io_channels: int = 1
    channels: int = 8
    c_mults: Sequence[int] = (2, 4, 8, 16)
    strides: Sequence[int] = (4, 4, 4, 4)
    latent_dim: int = 32
    bottleneck: str = "vae"  # a BOTTLENECKS name: 'vae' | 'none'
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        if len(self.c_mults) != len(self.strides):
            raise ValueError(f"c_mults {tuple(self.c_mults)} and strides {tuple(self.strides)} "
                             "need one entry per encoder block each")
        BOTTLENECKS.get(self.bottleneck)  # an unknown name lists the valid ones
        super().__post_init__()

    @property
    def hop(self) -> int:
        """Samples per latent frame: prod(strides)."""
        return math.prod(self.strides)

    @property
    def bottleneck_impl(self) -> AbstractBottleneck:
        return BOTTLENECKS.get(self.bottleneck)()

    def setup(self):
        self.encoder = Encoder(self.channels, tuple(self.c_mults), tuple(self.strides),
                               self.bottleneck_impl.encoder_channels(self.latent_dim),
                               dtype=self.dtype)
        self.decoder = Decoder(self.channels, tuple(self.c_mults), tuple(self.strides),
                               self.io_channels, dtype=self.dtype)

    def encode_moments(self, audio: jax.Array) -> tuple[jax.Array, jax.Array]:
        """audio [B, L, C] (zero-padded to T * hop) -> (mean, std) [B, T, D]; std = 0 for 'none'."""
        length = audio.shape[1]
        frames = -(-length // self.hop)
        audio = jnp.pad(audio, ((0, 0), (0, frames * self.hop - length), (0, 0)))
        h = self.encoder(audio).astype(jnp.float32)
        return self.bottleneck_impl.moments(h)

    def decode(self, z: jax.Array) -> jax.Array:
        """z [B, T, D] -> audio [B, T * hop, C] (float32)."""
        return self.decoder(z).astype(jnp.float32)

    def __call__(self, audio: jax.Array, key: jax.Array) -> tuple[jax.Array, dict]:
        """Reconstruction [B, L, C] of audio [B, L, C] through a latent drawn with `key` (the
        VAE's z = mean + std eps; 'none': z = mean), and aux {'kl' [B], 'mean', 'std' [B, T, D]}."""
        mean, std = self.encode_moments(audio)
        z = self.bottleneck_impl.sample(mean, std, key)
        reconstruction = self.decode(z)[:, :audio.shape[1]]
        return reconstruction, {"kl": self.bottleneck_impl.kl(mean, std), "mean": mean, "std": std}


# ---------------------------------------------------------------------------------------------
# Registered sizes
# ---------------------------------------------------------------------------------------------

AUTOENCODER_SIZES = {
        # Tests: hop 8.
        "tiny": dict(io_channels=1, channels=8, c_mults=(1, 2), strides=(2, 4), latent_dim=4),
        # CPU quick start, 16 kHz mono: hop 256 (62.5 latent frames/s), 32 latent channels;
        # 8 channels at the full rate (see the module docstring's timings).
        "small": dict(io_channels=1, channels=8, c_mults=(2, 4, 8, 16), strides=(4, 4, 4, 4),
                      latent_dim=32),
        # Stable Audio Open 1.0's autoencoder (44.1 kHz stereo, hop 2048, 64 latent channels).
        "large": dict(io_channels=2, channels=128, c_mults=(1, 2, 4, 8, 16),
                      strides=(2, 4, 4, 8, 8), latent_dim=64),
}


@AUTOENCODERS.register("oobleck", parameters=preset_parameters(AudioAutoencoder, "size"))
def autoencoder(size: str = "small", **overrides) -> AudioAutoencoder:
    """The Oobleck autoencoder of `size` (AUTOENCODER_SIZES) with any field overridden; `dtype`
    may be a string ('bfloat16')."""
    if size not in AUTOENCODER_SIZES:
        raise ValueError(f"unknown autoencoder size {size!r}; valid sizes: "
                         f"{', '.join(AUTOENCODER_SIZES)}")
    kw = {**AUTOENCODER_SIZES[size], **overrides}
    kw["dtype"] = jnp.dtype(kw.get("dtype", "float32"))
    kw["c_mults"], kw["strides"] = tuple(kw["c_mults"]), tuple(kw["strides"])
    return AudioAutoencoder(**kw)


def init_params(module: AudioAutoencoder, key: jax.Array, length: int | None = None) -> dict:
    """The module's parameters, initialised on a zero clip of `length` samples (default one hop)."""
    audio = jnp.zeros((1, length or module.hop, module.io_channels), jnp.float32)
    return nn.meta.unbox(module.init(key, audio, jax.random.PRNGKey(0))["params"])


def parameter_count(size: str = "small", **overrides) -> int:
    """Number of parameters of `autoencoder(size, **overrides)`, from `jax.eval_shape` (allocates
    nothing, so `large` is cheap to count)."""
    module = autoencoder(size, **overrides)
    shapes = jax.eval_shape(lambda: init_params(module, jax.random.PRNGKey(0)))
    return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(shapes))

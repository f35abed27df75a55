"""EnCodec's multi-scale STFT discriminator and the adversarial losses of the autoencoder.

`MultiScaleSTFTDiscriminator` (Défossez et al. 2022, "High Fidelity Neural Audio Compression",
sec. 3.4): one sub-discriminator per STFT resolution. Each takes the complex STFT (unit-gain Hann
window, hop n_fft / 4) with real and imaginary parts as channels, [B, T, F, 2C], and applies
weight-normalised 2-D convolutions with LeakyReLU(0.2): a (3, 9) conv, three (3, 9) convs with
stride 2 along frequency and dilations 1, 2, 4 along time, a (3, 3) conv, and a (3, 3) conv to
one logit channel. It returns, per scale, (logits [B, T', F', 1], feature maps: the five
activations). Our STFT is centred (EnCodec's is not); filters stay constant with depth
(EnCodec's `filters_scale=1`).

Losses (each [B]; K scales, L feature maps per scale; means over positions per example):

    hinge_discriminator_loss = 1/K sum_k mean[ max(0, 1 - D_k(x)) + max(0, 1 + D_k(x_hat)) ]
    hinge_generator_loss     = 1/K sum_k mean[ max(0, 1 - D_k(x_hat)) ]
    feature_matching_loss    = 1/(KL) sum_{k,l} mean|D_k^l(x) - D_k^l(x_hat)| / mean|D_k^l(x)|

(EnCodec sec. 3.4: l_d, l_g and the relative feature loss l_feat). stable-audio-tools' generator
term is the unbounded -D_k(x_hat) instead; EnCodec's hinge is used here.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.audio.codecs import stft
from diffjax.autoencoder.networks import WNConv

Dtype = Any
ScaleOutput = tuple[jax.Array, Sequence[jax.Array]]  # (logits [B, T', F', 1], feature maps)


class STFTDiscriminator(nn.Module):
    """One EnCodec STFT sub-discriminator: audio [B, L, C] -> (logits, feature maps)."""

    n_fft: int
    hop: int
    filters: int = 32
    kernel_size: tuple[int, int] = (3, 9)  # (time, frequency)
    dilations: tuple[int, ...] = (1, 2, 4)  # along time, one strided conv each
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, audio: jax.Array) -> ScaleOutput:
        spec = stft(audio, n_fft=self.n_fft, hop=self.hop, normalized=True)  # [B, T, F, C]
        h = jnp.concatenate([jnp.real(spec), jnp.imag(spec)], axis=-1)    # [B, T, F, 2C]
        kt, kf = self.kernel_size
        same = lambda k, d=1: (d * (k - 1) // 2, d * (k - 1) // 2)  # noqa: E731
        features = []
        convs = [WNConv(self.filters, (kt, kf), padding=(same(kt), same(kf)), dtype=self.dtype)]
        convs += [WNConv(self.filters, (kt, kf), strides=(1, 2), dilation=(d, 1),
                         padding=(same(kt, d), same(kf)), dtype=self.dtype) for d in self.dilations]
        convs += [WNConv(self.filters, (kt, kt), padding=(same(kt), same(kt)), dtype=self.dtype)]
        for conv in convs:
            h = nn.leaky_relu(conv(h), negative_slope=0.2)
            features.append(h.astype(jnp.float32))
        logits = WNConv(1, (kt, kt), padding=(same(kt), same(kt)), dtype=self.dtype)(h)
        return logits.astype(jnp.float32), tuple(features)


class MultiScaleSTFTDiscriminator(nn.Module):
    """One `STFTDiscriminator` per n_fft (hop n_fft / 4): audio [B, L, C] -> [(logits, features)]
    per scale. EnCodec's defaults at 24 kHz: n_ffts (1024, 2048, 512), 32 filters."""

    n_ffts: Sequence[int] = (2048, 1024, 512)
    filters: int = 32
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, audio: jax.Array) -> list[ScaleOutput]:
        return [STFTDiscriminator(n, n // 4, self.filters, dtype=self.dtype)(audio)
                for n in self.n_ffts]


def _mean_per_example(x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=tuple(range(1, x.ndim)))


def hinge_discriminator_loss(real: Sequence[ScaleOutput], fake: Sequence[ScaleOutput]) -> jax.Array:
    """1/K sum_k mean[max(0, 1 - D_k(x)) + max(0, 1 + D_k(x_hat))] (EnCodec sec. 3.4). -> [B].

    `real`, `fake`: the discriminator's outputs on x and x_hat (stop x_hat's gradient yourself)."""
    terms = [_mean_per_example(jax.nn.relu(1.0 - r) + jax.nn.relu(1.0 + f))
             for (r, _), (f, _) in zip(real, fake)]
    return sum(terms) / len(terms)


def hinge_generator_loss(fake: Sequence[ScaleOutput]) -> jax.Array:
    """1/K sum_k mean[max(0, 1 - D_k(x_hat))] (EnCodec sec. 3.4). -> [B]."""
    terms = [_mean_per_example(jax.nn.relu(1.0 - f)) for f, _ in fake]
    return sum(terms) / len(terms)


def feature_matching_loss(real: Sequence[ScaleOutput], fake: Sequence[ScaleOutput], *,
                          eps: float = 1e-8) -> jax.Array:
    """Relative feature matching, 1/(KL) sum_{k,l} mean|D_k^l(x) - D_k^l(x_hat)| / mean|D_k^l(x)|
    (EnCodec sec. 3.4). -> [B]; zero on identical features."""
    terms = [_mean_per_example(jnp.abs(a - b)) / (_mean_per_example(jnp.abs(a)) + eps)
             for (_, fa), (_, fb) in zip(real, fake) for a, b in zip(fa, fb)]
    return sum(terms) / len(terms)

"""UNets for audio: 'unet1d' on waveforms [B, L, C] and 'unet2d' on spectrograms [B, T, F, C].

One dimension-agnostic `UNet` (DDPM, Ho et al. 2020, appendix B; with ADM/NCSN++ choices:
BigGAN-style residual blocks with GroupNorm and scale-shift time conditioning, Dhariwal & Nichol
2021; skip connections scaled by 1/sqrt(2), Song et al. 2021 "NCSN++"). Per level:
`num_res_blocks` ResBlocks (+ self-attention at the levels in `attn_levels`), then a strided
downsampling conv; the decoder mirrors it with nearest upsampling + conv, concatenating the
encoder activations. Inputs are zero-padded to a multiple of the total stride and cropped back.

Conditioning (`cond` dict, see `diffjax.models`): 'label' int32 [B] through a class embedding
with null class `num_classes` (0 = unconditional); 'features' [B, T', ...] (e.g. log-mel),
linearly resized along the first spatial axis, broadcast over the others, and concatenated to
the input channels.

`train=True` (keyword) enables dropout, which then needs a 'dropout' rng in `apply`.

Registered factories take `size` ('tiny' for tests, 'small' for the CPU quick start, 'base')
plus any field as an override; every argument is a plain config value (dtype as a string).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.models.base import MODELS, preset_parameters
from diffjax.models import layers, magnitude_blocks

Dtype = Any


class UNet(nn.Module):
    """A UNet on [B, *spatial, C] for 1 or 2 spatial axes; returns the same shape as x."""

    channels: int = 64                  # width of the first level
    channel_mults: Sequence[int] = (1, 2, 2, 4)  # width multiplier per level
    strides: Sequence[Sequence[int]] = ((4,), (4,), (4,))  # downsampling after level i (len-1)
    kernel: Sequence[int] = (3,)        # conv kernel, one entry per spatial axis
    num_res_blocks: int = 2
    attn_levels: Sequence[int] = (3,)   # levels with self-attention after each ResBlock
    num_heads: int = 4
    dropout: float = 0.0
    num_classes: int = 0                # > 0 adds a class embedding (null class = num_classes)
    emb_dim: int | None = None          # noise/class embedding width; None = 4 * channels
    dtype: Dtype = jnp.float32          # compute dtype; parameters stay float32
    remat: bool = False                 # rematerialise ResBlocks (nn.remat) to save memory
    patch: int = 1                      # > 1: non-overlapping patches of `patch` samples along the
                                        # first spatial axis become channels (space-to-depth)
    magnitude_preserving: bool = False  # EDM2's MP layers (magnitude_blocks.py); needs
                                        # force_weight_norm after each optimiser step

    @nn.compact
    def __call__(self, x: jax.Array, c_noise: jax.Array, cond: dict | None = None, *,
                 train: bool = False) -> jax.Array:
        levels = len(self.channel_mults)
        if len(self.strides) != levels - 1:
            raise ValueError(f"need {levels - 1} strides for {levels} levels; got {self.strides}")
        audio_shape = x.shape
        x = patchify(x, self.patch)
        spatial, out_ch = x.shape[1:-1], x.shape[-1]
        total = np.prod(np.asarray(self.strides, int).reshape(levels - 1, -1), axis=0) \
            if levels > 1 else np.ones(len(spatial), int)
        padded = [int(-(-s // t) * t) for s, t in zip(spatial, total)]
        h = jnp.pad(x, [(0, 0)] + [(0, p - s) for s, p in zip(spatial, padded)] + [(0, 0)])
        h = h.astype(self.dtype)
        if cond is not None and cond.get("features") is not None:
            feats = layers.resize_features(cond["features"], spatial[0])  # [B, L0, F]
            feats = jnp.pad(feats, ((0, 0), (0, padded[0] - spatial[0]), (0, 0)))
            feats = feats.reshape(feats.shape[:2] + (1,) * (len(spatial) - 1) + feats.shape[-1:])
            feats = jnp.broadcast_to(feats, h.shape[:-1] + feats.shape[-1:])
            h = jnp.concatenate([h, feats.astype(self.dtype)], axis=-1)
        if self.magnitude_preserving:
            h = magnitude_blocks.unet_trunk(self, h, c_noise, cond, out_ch=out_ch, train=train)
            h = h[(slice(None),) + tuple(slice(0, s) for s in spatial)]
            return unpatchify(h, self.patch, audio_shape).astype(x.dtype)
        emb = layers.conditioning_embedding(c_noise, cond, dim=self.emb_dim or 4 * self.channels,
                                            num_classes=self.num_classes, dtype=self.dtype)
        block = nn.remat(layers.ResBlock, static_argnums=(3,)) if self.remat else layers.ResBlock
        kernel = tuple(self.kernel)

        h = nn.Conv(self.channels, kernel, dtype=self.dtype, kernel_init=layers.conv_axes(kernel), name="conv_in")(h)
        skips = [h]
        for i, mult in enumerate(self.channel_mults):
            for j in range(self.num_res_blocks):
                h = block(self.channels * mult, kernel, self.dropout, self.dtype,
                          name=f"down_{i}_res_{j}")(h, emb, train)
                if i in self.attn_levels:
                    h = layers.SelfAttention(self.num_heads, self.dtype,
                                             name=f"down_{i}_attn_{j}")(h)
                skips.append(h)
            if i < levels - 1:
                s = tuple(self.strides[i])
                pool = tuple(2 * t if t > 1 else k for t, k in zip(s, kernel))
                h = nn.Conv(h.shape[-1], pool, strides=s, dtype=self.dtype, kernel_init=layers.conv_axes(pool),
                            name=f"down_{i}_pool")(h)
                skips.append(h)

        h = block(h.shape[-1], kernel, self.dropout, self.dtype, name="mid_res_0")(h, emb, train)
        h = layers.SelfAttention(self.num_heads, self.dtype, name="mid_attn")(h)
        h = block(h.shape[-1], kernel, self.dropout, self.dtype, name="mid_res_1")(h, emb, train)

        for i in reversed(range(levels)):
            for j in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = block(self.channels * self.channel_mults[i], kernel, self.dropout, self.dtype,
                          name=f"up_{i}_res_{j}")(h, emb, train)
                if i in self.attn_levels:
                    h = layers.SelfAttention(self.num_heads, self.dtype,
                                             name=f"up_{i}_attn_{j}")(h)
            if i > 0:
                s = tuple(self.strides[i - 1])
                for ax, t in enumerate(s):
                    h = jnp.repeat(h, t, axis=1 + ax)
                h = nn.Conv(h.shape[-1], kernel, dtype=self.dtype, kernel_init=layers.conv_axes(kernel),
                            name=f"up_{i}_upsample")(h)
        assert not skips

        h = nn.silu(layers.group_norm(h.shape[-1], self.dtype, "norm_out")(h))
        h = nn.Conv(out_ch, kernel, dtype=self.dtype, kernel_init=layers.conv_axes(kernel, init=nn.initializers.zeros),
                    name="conv_out")(h)
        h = h[(slice(None),) + tuple(slice(0, s) for s in spatial)]
        return unpatchify(h, self.patch, audio_shape).astype(x.dtype)


def patchify(x: jax.Array, p: int) -> jax.Array:
    """[B, L, *rest, C] -> [B, ceil(L / p), *rest, p * C]: patches of p steps along the first
    spatial axis become channels (zero-padded at the end; space-to-depth, as in "simple
    diffusion", Hoogeboom et al. 2023, and audio-diffusion-pytorch's patching)."""
    if p == 1:
        return x
    length = x.shape[1]
    padded = -(-length // p) * p
    h = jnp.pad(x, [(0, 0), (0, padded - length)] + [(0, 0)] * (x.ndim - 2))
    h = h.reshape((x.shape[0], padded // p, p) + x.shape[2:])
    return jnp.moveaxis(h, 2, -2).reshape(h.shape[:2] + x.shape[2:-1] + (p * x.shape[-1],))


def unpatchify(h: jax.Array, p: int, shape: tuple) -> jax.Array:
    """Inverse of `patchify` for an input of `shape` [B, L, *rest, C]."""
    if p == 1:
        return h
    h = h.reshape(h.shape[:-1] + (p, shape[-1]))
    h = jnp.moveaxis(h, -2, 2).reshape((shape[0], h.shape[1] * p) + tuple(shape[2:]))
    return h[:, :shape[1]]


# ---------------------------------------------------------------------------------------------
# Registered variants and sizes
# ---------------------------------------------------------------------------------------------

UNET1D_SIZES = {
        # 16 kHz waveforms. Attention cost grows with the square of the positions, so it is only
        # used at coarse levels: 1 s -> 1000 (tiny, mid only), 250 (small), 63 (base).
        "tiny": dict(channels=8, channel_mults=(1, 2, 2), strides=((4,), (4,)), num_res_blocks=1,
                     attn_levels=()),
        "small": dict(channels=32, channel_mults=(1, 2, 2, 4), strides=((4,), (4,), (4,)),
                      num_res_blocks=1, attn_levels=(3,)),
        "base": dict(channels=64, channel_mults=(1, 2, 2, 4, 4), strides=((4,), (4,), (4,), (4,)),
                     num_res_blocks=2, attn_levels=(3, 4)),
}

UNET2D_SIZES = {
        # Compressed complex STFT [B, T, F=256, 2C] (1 s: T = 126). NCSN++ as used by SGMSE has
        # 128 channels and 6 levels (~65M parameters); "base" here is a modest version of it.
        "tiny": dict(channels=8, channel_mults=(1, 2, 2), strides=((2, 2),) * 2, num_res_blocks=1,
                     attn_levels=()),
        "small": dict(channels=32, channel_mults=(1, 2, 2, 2), strides=((2, 2),) * 3,
                      num_res_blocks=1, attn_levels=(3,)),
        "base": dict(channels=64, channel_mults=(1, 1, 2, 2, 2, 2),
                     strides=((2, 2),) * 5, num_res_blocks=2, attn_levels=(4, 5)),
}


def _build(sizes: dict, size: str, kernel: tuple, overrides: dict) -> UNet:
    if size not in sizes:
        raise ValueError(f"unknown size {size!r}; valid sizes: {', '.join(sizes)}")
    kw = {"kernel": kernel, **sizes[size], **overrides}
    kw["dtype"] = jnp.dtype(kw.get("dtype", "float32"))
    kw["strides"] = tuple(tuple(s) if isinstance(s, (tuple, list)) else (s,) * len(kernel)
                          for s in kw["strides"])
    return UNet(**kw)


@MODELS.register("unet1d", parameters=preset_parameters(UNet, "size"))
def unet1d(size: str = "small", **overrides) -> UNet:
    """Waveform UNet on [B, L, C]; `strides` may be ints (e.g. (4, 4, 4)). Sizes: UNET1D_SIZES."""
    return _build(UNET1D_SIZES, size, (3,), overrides)


@MODELS.register("unet2d", parameters=preset_parameters(UNet, "size"))
def unet2d(size: str = "small", **overrides) -> UNet:
    """Time-frequency UNet on [B, T, F, C] (e.g. 'complex_stft'). Sizes: UNET2D_SIZES."""
    return _build(UNET2D_SIZES, size, (3, 3), overrides)

"""EDM2's magnitude-preserving networks: the `magnitude_preserving=True` paths of `DiT` and `UNet`.

Karras et al. 2024 (EDM2), Fig. 21 and appendix B, built from `diffjax.models.magnitude`. Common
choices (EDM2's): no biases (a constant ones channel is appended to the input instead), no
GroupNorm/LayerNorm (pixel norm of the encoder path), MP weights (`MPDense`/`MPConv`, to be
projected by `force_weight_norm` after every optimiser step), residuals
`mp_sum(x, branch, t=0.3)`, skips `mp_cat(x, skip, t=0.5)`, cosine attention (q, k, v pixel-normed
per head), and a learned output gain that starts at 0, so the network outputs 0 at initialisation.

Embedding (`mp_embedding`, Fig. 21): `emb = mp_silu(MP-sum of MPDense(MPFourier(c_noise)),
MPDense(one_hot(label) sqrt(K + 1)) and MPDense(cond['global']))`, equal weights (two terms: EDM2's
`mp_sum(., ., t=0.5)`). The label's one-hot has K + 1 entries: the null class `num_classes` has its
own embedding, as in `layers.ClassEmbedding`.

`MPResBlock` (EDM2's U-Net block, Fig. 21), flavor 'enc' | 'dec':

    x = resample(x)                                  (box average down / nearest up, any stride)
    enc: x = pixel_norm(MPDense(x) if C_in != C_out else x)
    y  = MPConv(mp_silu(x)); y = mp_silu(y * (g MPDense(emb) + 1)); y = MPConv(dropout(y))
    dec: x = MPDense(x) if C_in != C_out
    x = mp_sum(x, y, 0.3); [x = mp_sum(x, CosineAttention(x), 0.3)]; clip to [-256, 256]

with g the block's embedding gain (init 0, so the modulation starts at 1).

`MPDiTBlock`: the same block as a transformer layer on tokens (the 1x1 convolutions of EDM2's
block are per-token MPDense; an 'enc' block, so the residual stream is pixel-normed at entry):

    x = pixel_norm(h)
    x = mp_sum(x, SelfAttn(x), 0.3)                   (cosine attention, RoPE, key padding mask)
    x = mp_sum(x, CrossAttn(x, tokens), 0.3)          (only for examples with a valid token)
    y = MPDense(mp_silu(x)); y = mp_silu(y * (g MPDense(emb) + 1)); x = mp_sum(x, MPDense(y), 0.3)

Modulation choice: adaLN's shift/scale/gate act on a LayerNorm output, which the MP stream lacks,
and an additive shift or a gate would break unit magnitude; EDM2's per-channel scale
`h (g emb + 1)` of the hidden layer is magnitude-neutral at init (g = 0) and is the only place the
conditioning enters each block, as in EDM2. So the DiT fields `modulation`, `mlp` and `qk_norm`
have no effect here (q and k are always normalised). RoPE rotates the normalised q and k (a
rotation keeps their norm).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.models.magnitude import (MPConv, MPDense, MPFourier, mp_cat, mp_silu, mp_sum,
                                      pixel_norm)

Dtype = Any
RES_BALANCE = 0.3     # EDM2 res_balance: main path (0) vs residual branch (1)
ATTN_BALANCE = 0.3    # EDM2 attn_balance
CONCAT_BALANCE = 0.5  # EDM2 concat_balance: decoder path (0) vs encoder skip (1)
CLIP_ACT = 256.0      # EDM2 clip_act: block outputs are clipped to [-256, 256]
_zeros = nn.initializers.zeros


def mp_embedding(c_noise: jax.Array, *, label: jax.Array | None, global_cond: jax.Array | None,
                 dim: int, noise_dim: int, num_classes: int, dtype: Dtype) -> jax.Array:
    """EDM2's MP embedding of the noise level, label and global vector: [B, dim] (module doc).

    Must be called inside a compact module (it creates 'noise_embedding', 'class_embedding' and
    'global_embedding'). A missing label is the null class `num_classes`; `global_cond` [B, G]
    enters as given (feed features of unit scale) or is skipped when None.
    """
    terms = [MPDense(dim, dtype=dtype, axes=(None, "embed"), name="noise_embedding")(
            MPFourier(noise_dim)(c_noise).astype(dtype))]
    batch = terms[0].shape[0]
    if num_classes > 0:
        if label is None:
            label = jnp.full((batch,), num_classes, jnp.int32)
        onehot = jax.nn.one_hot(label, num_classes + 1, dtype=dtype) * math.sqrt(num_classes + 1)
        terms.append(MPDense(dim, dtype=dtype, axes=(None, "embed"), name="class_embedding")(onehot))
    if global_cond is not None:
        terms.append(MPDense(dim, dtype=dtype, axes=("mlp", "embed"),
                             name="global_embedding")(global_cond.astype(dtype)))
    return mp_silu(sum(terms) / math.sqrt(len(terms)))


def _modulation(module: nn.Module, emb: jax.Array, features: int, dtype: Dtype) -> jax.Array:
    """EDM2's `g MPDense(emb) + 1` [B, features], g a learned scalar 'emb_gain' starting at 0."""
    gain = module.param("emb_gain", _zeros, ())
    return MPDense(features, dtype=dtype, axes=("embed", "mlp"), name="modulation")(emb, gain) + 1


class CosineAttention(nn.Module):
    """EDM2's cosine attention: `softmax(q k^T / sqrt(Dh)) v` with q, k, v pixel-normed per head.

    x [B, N, D] attends to context [B, S, Dc] (self-attention: context = x), keys masked where
    `mask` [B, S] is False; `rope(q_or_k, positions)` rotates the normalised q and k when given.
    No biases; MPDense projections. Returns [B, N, D].
    """

    num_heads: int
    rope: Callable | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array, mask: jax.Array | None = None,
                 positions: jax.Array | None = None) -> jax.Array:
        d = x.shape[-1]
        heads = self.num_heads

        def project(name, inputs):
            y = MPDense(d, dtype=self.dtype, axes=("embed", "heads"), name=name)(inputs)
            return pixel_norm(y.reshape(y.shape[:-1] + (heads, d // heads)))

        q, k, v = project("query", x), project("key", context), project("value", context)
        if self.rope is not None:
            q, k = self.rope(q, positions), self.rope(k, positions)
        mask = None if mask is None else mask[:, None, None, :]
        out = jax.nn.dot_product_attention(q, k, v, mask=mask)  # [B, N, H, Dh]
        out = out.reshape(out.shape[:-2] + (d,))
        return MPDense(d, dtype=self.dtype, axes=("heads", "embed"), name="out")(out)


def _resample(x: jax.Array, factor: Sequence[int], mode: str) -> jax.Array:
    """EDM2's resampling with its [1, 1] filter, generalised to any stride per spatial axis:
    'down' averages boxes of `factor` (sizes must divide), 'up' repeats (nearest), 'keep'."""
    if mode == "keep":
        return x
    for ax, f in enumerate(factor):
        axis = 1 + ax
        if mode == "up":
            x = jnp.repeat(x, f, axis=axis)
        else:
            shape = x.shape[:axis] + (x.shape[axis] // f, f) + x.shape[axis + 1:]
            x = jnp.mean(x.reshape(shape), axis=axis + 1)
    return x


class MPResBlock(nn.Module):
    """EDM2's U-Net block (Fig. 21; the equations in the module doc), any spatial rank.

    Call args: h [B, *spatial, C_in], emb [B, E], train (enables dropout; needs a 'dropout' rng).
    Returns [B, *spatial', out_ch] (spatial' resampled by `factor`).
    """

    out_ch: int
    kernel: Sequence[int] = (3,)
    flavor: str = "enc"             # enc: pixel norm of the main path | dec: none
    resample: str = "keep"          # keep | down | up
    factor: Sequence[int] = (1,)    # resampling factor per spatial axis
    attention: bool = False
    num_heads: int = 4
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, h: jax.Array, emb: jax.Array, train: bool = False) -> jax.Array:
        x = _resample(h, self.factor, self.resample)
        skip = MPDense(self.out_ch, dtype=self.dtype, axes=("conv_in", "conv_out"), name="skip") \
            if x.shape[-1] != self.out_ch else None
        if self.flavor == "enc":
            x = pixel_norm(skip(x) if skip else x)
        conv_axes = (None,) * len(self.kernel) + ("conv_in", "conv_out")
        y = MPConv(self.out_ch, self.kernel, self.dtype, conv_axes, name="conv_0")(mp_silu(x))
        c = _modulation(self, emb, self.out_ch, self.dtype)
        y = mp_silu(y * c.reshape((c.shape[0],) + (1,) * (y.ndim - 2) + (self.out_ch,)))
        y = nn.Dropout(self.dropout, deterministic=not train)(y)
        y = MPConv(self.out_ch, self.kernel, self.dtype, conv_axes, name="conv_1")(y)
        if self.flavor == "dec" and skip:
            x = skip(x)
        x = mp_sum(x, y, RES_BALANCE)
        if self.attention:
            b, ch = x.shape[0], x.shape[-1]
            flat = x.reshape(b, -1, ch)
            y = CosineAttention(math.gcd(self.num_heads, ch), dtype=self.dtype, name="attn")(flat, flat)
            x = mp_sum(x, y.reshape(x.shape), ATTN_BALANCE)
        return jnp.clip(x, -CLIP_ACT, CLIP_ACT)


def unet_trunk(module: nn.Module, h: jax.Array, c_noise: jax.Array, cond: dict | None, *,
               out_ch: int, train: bool) -> jax.Array:
    """The MP UNet (EDM2 Fig. 21) on padded inputs [B, *spatial, C_in] -> [B, *spatial, out_ch].

    Reads the `UNet` fields of `module` and must be called inside its `__call__`. The layout of
    `UNet`: per level `num_res_blocks` 'enc' blocks (attention at `attn_levels`), then an 'enc'
    block that averages down by the level's stride; two 'dec' middle blocks (the first with
    attention); per level `num_res_blocks + 1` 'dec' blocks, each on `mp_cat(h, skip)`, then a
    'dec' block that upsamples (nearest). Output: `MPConv` with a learned gain starting at 0.
    """
    m, kernel = module, tuple(module.kernel)
    emb = mp_embedding(c_noise, label=None if cond is None else cond.get("label"), global_cond=None,
                       dim=m.emb_dim or 4 * m.channels, noise_dim=m.channels,
                       num_classes=m.num_classes, dtype=m.dtype)
    block_cls = nn.remat(MPResBlock, static_argnums=(3,)) if m.remat else MPResBlock
    block = functools.partial(block_cls, kernel=kernel, num_heads=m.num_heads, dropout=m.dropout,
                              dtype=m.dtype)
    levels = len(m.channel_mults)
    h = jnp.concatenate([h, jnp.ones(h.shape[:-1] + (1,), h.dtype)], axis=-1)
    conv_axes = (None,) * len(kernel) + ("conv_in", "conv_out")
    h = MPConv(m.channels, kernel, m.dtype, conv_axes, name="conv_in")(h)
    skips = [h]
    for i, mult in enumerate(m.channel_mults):
        for j in range(m.num_res_blocks):
            h = block(m.channels * mult, flavor="enc", attention=i in m.attn_levels,
                      name=f"down_{i}_res_{j}")(h, emb, train)
            skips.append(h)
        if i < levels - 1:
            h = block(h.shape[-1], flavor="enc", resample="down", factor=tuple(m.strides[i]),
                      name=f"down_{i}_pool")(h, emb, train)
            skips.append(h)
    h = block(h.shape[-1], flavor="dec", attention=True, name="mid_res_0")(h, emb, train)
    h = block(h.shape[-1], flavor="dec", name="mid_res_1")(h, emb, train)
    for i in reversed(range(levels)):
        for j in range(m.num_res_blocks + 1):
            h = mp_cat(h, skips.pop(), t=CONCAT_BALANCE)
            h = block(m.channels * m.channel_mults[i], flavor="dec", attention=i in m.attn_levels,
                      name=f"up_{i}_res_{j}")(h, emb, train)
        if i > 0:
            h = block(h.shape[-1], flavor="dec", resample="up", factor=tuple(m.strides[i - 1]),
                      name=f"up_{i}_upsample")(h, emb, train)
    gain = module.param("out_gain", _zeros, ())
    return MPConv(out_ch, kernel, m.dtype, conv_axes, name="conv_out")(h, gain)


class MPDiTBlock(nn.Module):
    """EDM2's block as a transformer layer (the equations in the module doc).

    Call args: h [B, N, D]; emb [B, D] the MP embedding; positions [N] (RoPE); mask [B, N] bool
    (valid keys); tokens [B, S, Dc] or None; tokens_mask [B, S] bool. Returns [B, N, D].
    """

    num_heads: int
    mlp_ratio: float = 4.0
    rope: Callable | None = None
    cross_attention: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, h: jax.Array, emb: jax.Array, positions: jax.Array, mask: jax.Array,
                 tokens: jax.Array | None = None, tokens_mask: jax.Array | None = None
                 ) -> jax.Array:
        d, hidden = h.shape[-1], int(self.mlp_ratio * h.shape[-1])
        x = pixel_norm(h)
        attn = CosineAttention(self.num_heads, rope=self.rope, dtype=self.dtype, name="attn")
        x = mp_sum(x, attn(x, x, mask, positions), ATTN_BALANCE)
        if self.cross_attention:
            y = CosineAttention(self.num_heads, dtype=self.dtype, name="cross_attn")(x, tokens, tokens_mask)
            any_token = jnp.any(tokens_mask, axis=-1)[:, None, None]  # no valid token: no branch
            x = jnp.where(any_token, mp_sum(x, y, ATTN_BALANCE), x)
        y = MPDense(hidden, dtype=self.dtype, axes=("embed", "mlp"), name="fc_in")(mp_silu(x))
        y = mp_silu(y * _modulation(self, emb, hidden, self.dtype)[:, None, :])
        y = MPDense(d, dtype=self.dtype, axes=("mlp", "embed"), name="fc_out")(y)
        return jnp.clip(mp_sum(x, y, RES_BALANCE), -CLIP_ACT, CLIP_ACT)


def dit_trunk(module: nn.Module, patches: jax.Array, mask: jax.Array, c_noise: jax.Array,
              cond: dict, tokens: jax.Array | None, tokens_mask: jax.Array | None, *,
              out_features: int, rope: Callable) -> jax.Array:
    """The MP DiT from patches [B, N, p C'] (padded frames zeroed) to [B, N, out_features].

    Reads the `DiT` fields of `module` and must be called inside its `__call__`: patch embedding
    `MPDense` of the patches plus a ones channel; `num_global_tokens` tokens `MPDense(emb)`
    prepended (dropped again at the end); `depth` `MPDiTBlock`s; `MPDense` with a learned gain
    starting at 0. `mask` [B, N]: valid patches; `tokens`, `tokens_mask`: the cross-attention
    context (`dit._context`); `rope(x, positions, rope_dim=, theta=)`: `dit.apply_rope`.
    """
    m, (b, n) = module, patches.shape[:2]
    d, g = m.width, m.num_global_tokens
    global_cond = None
    if m.global_dim > 0:
        global_cond = cond.get("global")
        global_cond = jnp.zeros((b, m.global_dim), m.dtype) if global_cond is None \
            else jnp.asarray(global_cond, m.dtype)
        if global_cond.shape != (b, m.global_dim):
            raise ValueError(f"cond['global'] must be [B, {m.global_dim}]; got {global_cond.shape}")
    emb = mp_embedding(c_noise, label=cond.get("label"), global_cond=global_cond, dim=d,
                       noise_dim=d, num_classes=m.num_classes, dtype=m.dtype)
    h = jnp.concatenate([patches, jnp.ones((b, n, 1), patches.dtype)], axis=-1)
    h = MPDense(d, dtype=m.dtype, axes=(None, "embed"), name="patch_embed")(h)
    if g > 0:
        prefix = MPDense(g * d, dtype=m.dtype, axes=("embed", "mlp"), name="global_tokens")(emb)
        h = jnp.concatenate([prefix.reshape(b, g, d), h], axis=1)
        mask = jnp.concatenate([jnp.ones((b, g), bool), mask], axis=1)
    positions = jnp.arange(h.shape[1])
    rotate = functools.partial(rope, rope_dim=m.rope_dim, theta=m.rope_theta) if m.rope_dim else None
    block = nn.remat(MPDiTBlock) if m.remat else MPDiTBlock
    for i in range(m.depth):
        h = block(m.num_heads, m.mlp_ratio, rotate, m.cross_attention_dim > 0, m.dtype,
                  name=f"block_{i}")(h, emb, positions, mask, tokens, tokens_mask)
    gain = module.param("out_gain", _zeros, ())
    return MPDense(out_features, dtype=m.dtype, axes=("embed", None), name="final_proj")(h[:, g:], gain)

"""Layers shared by the score networks (flax.linen, channels-last).

- `NoiseEmbedding(dim)(c_noise [B]) -> [B, dim]`: sinusoidal features of the noise conditioning,
  then a 2-layer MLP (DDPM, Ho et al. 2020 sec. 4; EDM, Karras et al. 2022 Table 7).
- `ClassEmbedding`: label embedding with a learned null class `num_classes` for classifier-free
  guidance (Ho & Salimans 2022).
- `FiLM`: scale-shift modulation `h * (1 + s) + b` (Perez et al. 2018; Dhariwal & Nichol 2021).
- `ResBlock`: GroupNorm -> SiLU -> conv -> FiLM -> SiLU -> dropout -> conv, plus skip, for any
  number of spatial dimensions (kernel size tuple decides 1-D or 2-D).
- `SelfAttention`: multi-head self-attention over all spatial positions, with a residual.

Every module takes `dtype` (compute dtype, e.g. bfloat16) and keeps float32 parameters.

Sharding annotations: large weights carry logical axis names (`kernel_axes`, flax
`with_logical_partitioning`): 'embed' (model-width rows), 'mlp' and 'heads' (hidden columns),
'conv_in' / 'conv_out' (convolution channels). `diffjax.training.parallel.LOGICAL_AXIS_RULES` maps
them onto the mesh; without a mesh they mean nothing. `model.init` returns the unboxed arrays and
`DiffusionModel.logical_axes()` the names.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
_default_kernel = nn.linear.default_kernel_init


def kernel_axes(*names: str | None, init=_default_kernel):
    """`init` annotated with one logical axis name per kernel axis (e.g. a Dense kernel
    `("embed", "mlp")`; None: never sharded)."""
    return nn.with_logical_partitioning(init, names)


def conv_axes(kernel: Sequence[int], init=_default_kernel):
    """A convolution kernel `[*kernel, C_in, C_out]` annotated `(None, ..., 'conv_in', 'conv_out')`."""
    return kernel_axes(*(None,) * len(kernel), "conv_in", "conv_out", init=init)


BATCH_MESH_AXES = ("data", "fsdp")  # the mesh axes the batch is split over (`training.parallel`)


def activation_constraint(h: jax.Array) -> jax.Array:
    """Keeps activations `[B, ...]` sharded over the batch axes only (replicated over 'tensor')
    between blocks, when traced under a mesh with those axes (`parallel.sharding_context`); a
    no-op elsewhere (sampling, tests, one device)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or not set(BATCH_MESH_AXES) <= set(mesh.axis_names):
        return h
    return jax.lax.with_sharding_constraint(h, jax.sharding.PartitionSpec(BATCH_MESH_AXES))


def sinusoidal_features(c_noise: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
    """Transformer-style sinusoidal features of a [B] scalar: [B, dim] = [cos(c w_k), sin(c w_k)].

    Frequencies `w_k = max_period^(-k / (dim/2))`, k = 0..dim/2-1 (Vaswani et al. 2017, sec. 3.5).
    """
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(c_noise, jnp.float32).reshape(-1, 1) * freqs[None, :]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class NoiseEmbedding(nn.Module):
    """Embeds the noise conditioning `c_noise` [B] into [B, dim].

    Sinusoidal features of `scale * c_noise` (`freq_dim` of them) followed by
    Dense(dim) -> SiLU -> Dense(dim). With EDM's `c_noise = log(sigma) / 4` in roughly [-3, 3],
    `scale=1000` spreads the features like DDPM's integer time steps (the default below).
    """

    dim: int
    freq_dim: int = 128
    scale: float = 1000.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, c_noise: jax.Array) -> jax.Array:
        c_noise = jnp.reshape(jnp.asarray(c_noise, jnp.float32), (-1,))
        h = sinusoidal_features(self.scale * c_noise, self.freq_dim)
        h = nn.Dense(self.dim, dtype=self.dtype, kernel_init=kernel_axes(None, "embed"), name="dense_0")(h)
        h = nn.Dense(self.dim, dtype=self.dtype, kernel_init=kernel_axes("embed", "mlp"), name="dense_1")(nn.silu(h))
        return h


class ClassEmbedding(nn.Module):
    """Embeds int labels [B] in {0..num_classes} into [B, dim]; `num_classes` is the null class.

    Classifier-free guidance (Ho & Salimans 2022) trains with labels randomly replaced by the
    null class; at sampling time the null class gives the unconditional model.
    """

    num_classes: int
    dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, label: jax.Array) -> jax.Array:
        emb = nn.Embed(self.num_classes + 1, self.dim, name="embed",
                       embedding_init=kernel_axes(None, "embed", init=nn.linear.default_embed_init))(jnp.asarray(label, jnp.int32))
        return emb.astype(self.dtype)


def conditioning_embedding(
        c_noise: jax.Array,
        cond: dict | None,
        *,
        dim: int,
        num_classes: int,
        dtype: Dtype,
) -> jax.Array:
    """Noise embedding plus (optional) class embedding, then SiLU: the per-example vector [B, dim].

    Must be called inside a compact module. If `num_classes > 0` and `cond` has no 'label', the
    null class is used (unconditional).
    """
    emb = NoiseEmbedding(dim, dtype=dtype, name="noise_embedding")(c_noise)
    if num_classes > 0:
        label = None if cond is None else cond.get("label")
        if label is None:
            label = jnp.full((emb.shape[0],), num_classes, jnp.int32)
        emb = emb + ClassEmbedding(num_classes, dim, dtype=dtype, name="class_embedding")(label)
    return nn.silu(emb)


class FiLM(nn.Module):
    """Scale-shift from an embedding: `h * (1 + scale) + shift`, broadcast over spatial axes.

    Args (call): h [B, ..., C]; emb [B, E]. Zero-initialised, so it starts as the identity.
    """

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, h: jax.Array, emb: jax.Array) -> jax.Array:
        ch = h.shape[-1]
        ss = nn.Dense(2 * ch, dtype=self.dtype, kernel_init=kernel_axes("embed", "mlp", init=nn.initializers.zeros),
                      name="dense")(emb)
        scale, shift = jnp.split(ss, 2, axis=-1)
        bshape = (h.shape[0],) + (1,) * (h.ndim - 2) + (ch,)
        return h * (1 + scale.reshape(bshape)) + shift.reshape(bshape)


def group_norm(ch: int, dtype: Dtype, name: str | None = None) -> nn.GroupNorm:
    """GroupNorm with min(32, ch) groups, reduced to a divisor of ch."""
    groups = min(32, ch)
    while ch % groups:
        groups -= 1
    return nn.GroupNorm(num_groups=groups, dtype=dtype, name=name)


class ResBlock(nn.Module):
    """Residual block with time conditioning (BigGAN-style, as in DDPM/NCSN++/ADM).

    GroupNorm -> SiLU -> Conv -> FiLM(emb) -> GroupNorm -> SiLU -> Dropout -> Conv, plus a
    (1x1-projected) skip, scaled by 1/sqrt(2). Shapes: h [B, *spatial, C_in], emb [B, E]
    -> [B, *spatial, out_ch]. `kernel` is a tuple, one entry per spatial axis.
    """

    out_ch: int
    kernel: Sequence[int] = (3,)
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, h: jax.Array, emb: jax.Array, train: bool = False) -> jax.Array:
        x = h
        h = nn.silu(group_norm(h.shape[-1], self.dtype, "norm_0")(h))
        h = nn.Conv(self.out_ch, tuple(self.kernel), dtype=self.dtype, kernel_init=conv_axes(self.kernel),
                    name="conv_0")(h)
        h = group_norm(self.out_ch, self.dtype, "norm_1")(h)
        h = FiLM(dtype=self.dtype, name="film")(h, emb)
        h = nn.Dropout(self.dropout, deterministic=not train)(nn.silu(h))
        h = nn.Conv(self.out_ch, tuple(self.kernel), dtype=self.dtype,
                    kernel_init=conv_axes(self.kernel, init=nn.initializers.zeros), name="conv_1")(h)
        if x.shape[-1] != self.out_ch:
            x = nn.Dense(self.out_ch, dtype=self.dtype, kernel_init=kernel_axes("conv_in", "conv_out"), name="skip")(x)
        return (x + h) / math.sqrt(2.0)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all spatial positions, residual: h + Attn(GroupNorm(h)).

    Shapes: h [B, *spatial, C] -> same. The output projection starts at zero.
    """

    num_heads: int = 4
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        b, *spatial, ch = h.shape
        heads = math.gcd(self.num_heads, ch)
        x = group_norm(ch, self.dtype, "norm")(h).reshape(b, -1, ch)
        qkv = nn.Dense(3 * ch, dtype=self.dtype, kernel_init=kernel_axes("embed", "heads"), name="qkv")(x)
        q, k, v = (t.reshape(b, -1, heads, ch // heads) for t in jnp.split(qkv, 3, axis=-1))
        out = nn.dot_product_attention(q, k, v, dtype=self.dtype).reshape(b, -1, ch)
        out = nn.Dense(ch, dtype=self.dtype, kernel_init=kernel_axes("heads", "embed", init=nn.initializers.zeros),
                       name="proj")(out)
        return h + out.reshape(h.shape)


def resize_features(features: jax.Array, length: int) -> jax.Array:
    """Resizes conditioning features to `length` along the time axis (linear interpolation).

    Args:
        features: [B, T, F] or [B, T, F, C] (e.g. a log-mel spectrogram); trailing axes are
            flattened into channels.
    Returns:
        [B, length, F*C] float.
    """
    b, t = features.shape[:2]
    feats = features.reshape(b, t, -1)
    return jax.image.resize(feats, (b, length, feats.shape[-1]), method="linear")

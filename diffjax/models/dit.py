"""DiT: a diffusion transformer on sequences `[B, T, C]` (model name 'dit').

Peebles & Xie 2023, "Scalable Diffusion Models with Transformers" (DiT), with the audio choices of
Stable Audio Open (Evans et al. 2024; stable-audio-tools' `DiffusionTransformer`): rotary positions,
cross-attention to conditioning tokens and prepended global tokens. For x `[B, T, C]` (mel frames,
autoencoder latents, or a waveform `[B, L, C]`; the trailing axes of `[B, T, *rest]` are flattened
into C and restored at the end), with D = `width` and p = `patch_size`:

  1. `cond['concat']` `[B, T, C']` (frame-aligned conditions: an inpainting mask and its known
     frames, a piano roll) is appended to the channels, as stable-audio-tools' input-concat
     conditioning. Frames outside `cond['sequence_mask']` are zeroed; T is zero-padded to N p frames, and each
     patch of p frames is one token: `[B, N, p C] -> Dense -> [B, N, D]` (DiT sec. 3.1).
  2. The conditioning vector `c [B, D] = NoiseEmbedding(c_noise) + Dense(cond['global'])
     + ClassEmbedding(cond['label'])` (DiT sec. 3.2; null class = `num_classes`).
  3. Optionally `num_global_tokens` tokens `Dense(c)` are prepended: `[B, G + N, D]`. Like Stable
     Audio Open's "prepend" conditioning, whose prepended token is its timestep embedding plus its
     projected global condition, i.e. our `c`.
  4. `depth` adaLN-Zero blocks (DiT sec. 3.2, Fig. 3), with `LN` a LayerNorm without parameters:

        h += gate_a * SelfAttn(LN(h) * (1 + scale_a) + shift_a)    (RoPE, key padding mask)
        h += CrossAttn(LN'(h), tokens)                              (if cross_attention_dim > 0)
        h += gate_m * MLP(LN(h) * (1 + scale_m) + shift_m)

     `(shift, scale, gate)_{a, m}` come from `SiLU(c)` through a zero-initialised Dense (or, with
     `modulation='single'`, PixArt-alpha's adaLN-single, Chen et al. 2023 sec. 2.3: one shared
     zero-initialised Dense plus a zero-initialised per-block table `[6 D]`). The cross-attention
     output projection is zero-initialised too, so every block is the identity at initialisation.
  5. Final layer: `LN(h) * (1 + scale) + shift` (adaLN, zero-initialised) and a zero-initialised
     `Dense(p C)`, so the network outputs 0 at initialisation; the prepended tokens are dropped,
     patches unfolded, T cropped back, and the output is 0 at padded frames.

Attention: `jax.nn.dot_product_attention` (logits and softmax in float32 whatever `dtype`), with
optional RMSNorm of q and k per head (`qk_norm`; Dehghani et al. 2023, "Scaling Vision Transformers
to 22 Billion Parameters", sec. 2.1). Rotary position embeddings (Su et al. 2021, RoFormer eq. 34)
rotate the first `rope_dim = 2 floor(rope_fraction * head_dim / 2)` features of each
self-attention query and key head by `m theta_i`, `theta_i = rope_theta^(-2i / rope_dim)`, with m
the token index in patches (prepended tokens at 0..G-1). `rope_fraction=1` rotates the whole
head; Stable Audio Open rotates 32 of 64 (0.5, GPT-J's partial rotary). Cross-attention keys carry
no positions.

Masks (`cond` keys, 1 = valid):
  - 'sequence_mask' `[B, T]`: a patch is valid if any of its frames is valid; padded patches are
    masked as keys in every self-attention. Padded frames are zeroed before patching (a partly
    valid patch sees zeros, as in the padding up to N p), so outputs at valid frames do not depend
    on padded content and, RoPE being relative, equal those of the unpadded sequence.
  - 'tokens_mask' `[B, S]` for 'tokens' `[B, S, cross_attention_dim]`: masked tokens are masked
    keys. An example with no valid token (or no 'tokens' at all: the null condition) gets no
    cross-attention (its branch output is 0), so masked token values never matter.
  - 'global' `[B, global_dim]` missing: zeros. 'label' `[B]` missing: the null class.

Parameter counts (`parameter_count(size, io_channels)`, from `jax.eval_shape`):

    size    width depth heads patch   io     parameters
    tiny       32     2     2     2    8         46,192  (tests)
    small     256     6     4     1  128      7,397,248  (CPU quick start, 128-band mel frames)
    base      768    12    12     1  128    129,608,576  (DiT-B's shape; DiT-B/2 has 130M)
    large    1536    24    24     1   64  1,103,126,080  (Stable Audio Open 1.0's shape)

`large` takes the shape of Stable Audio Open 1.0's DiT (its model_config.json: embed_dim 1536,
depth 24, num_heads 24, io_channels 64, patch_size 1 (the default), cond_token_dim 768,
global_cond_dim 1536, "prepend" global conditioning; stable-audio-tools' defaults: SwiGLU
feed-forward of inner width 4 D, rotary embedding on 32 of the 64 features of each head).
Published: 1.06B. stable-audio-tools' code gives exactly 1,056,828,544 = 24 blocks x 43,665,408
+ 8,858,752 outside the blocks (derived in tests/models/test_dit.py). Ours has 46,297,536 (4.4%)
more:
  + 19,107,840  adaLN: the adaLN-single shared Dense (14,164,992), 24 per-block tables (221,184)
                and the final layer's adaLN (4,721,664). Stable Audio Open has no adaLN: time and
                global condition enter only through its prepended token.
  + 28,385,280  cross-attention keys and values projected 768 -> 1536 (stable-audio-tools keeps
                them at 768: 12 grouped key/value heads, no biases).
  +    184,320  biases on the attention projections, and an affine cross-attention LayerNorm
                instead of three scale-only LayerNorms.
  -  1,179,648  its 2-layer MLP on the conditioning tokens (ours: none; the key/value projections
                take the tokens as they are).
  -    200,256  its 256 Fourier timestep features and MLP (ours: 128) and its 1x1 pre/post
                convolutions, less our biases; the global path costs the same (+3,072): its 2-layer
                MLP G -> D -> D against our Dense G -> D plus the prepended token's Dense D -> D.
With `modulation='block'` (DiT's per-block adaLN-Zero, the other sizes' default) the large model
has 1,428,699,712 parameters: adaLN-Zero costs 6 D^2 per block, 24% of the total here, which is
why PixArt-alpha introduced adaLN-single.
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.models import layers, magnitude_blocks, scan
from diffjax.models.base import MODELS, preset_parameters
from diffjax.models.unet import patchify, unpatchify

Dtype = Any
MLP_KINDS = ("gelu", "swiglu")
MODULATIONS = ("block", "single")
_zeros = nn.initializers.zeros
_in_init = layers.kernel_axes("embed", "mlp")  # D -> hidden: rows over fsdp, columns over tensor
_zero_in = layers.kernel_axes("embed", "mlp", init=_zeros)


def apply_rope(x: jax.Array, positions: jax.Array, *, rope_dim: int,
               theta: float = 10000.0) -> jax.Array:
    """Rotary position embedding (Su et al. 2021, RoFormer eq. 34) of the first `rope_dim` features.

    Features `(x_{2i}, x_{2i+1})`, i < rope_dim / 2, are rotated by the angle `m theta_i`, with
    `theta_i = theta^(-2i / rope_dim)` and m the position:
    `(x_{2i} cos - x_{2i+1} sin, x_{2i} sin + x_{2i+1} cos)`. Then `<R_m q, R_n k>` depends on the
    positions only through `n - m` (RoFormer eq. 16). Computed in float32, returned in x's dtype.

    Args:
        x: [B, N, H, Dh] queries or keys.
        positions: [N] positions (any real numbers; token indices here).
        rope_dim: even, <= Dh; 0 returns x.
        theta: the base of the frequencies.
    Returns:
        [B, N, H, Dh].
    """
    if rope_dim == 0:
        return x
    if rope_dim % 2 or rope_dim > x.shape[-1]:
        raise ValueError(f"rope_dim must be even and <= {x.shape[-1]}; got {rope_dim}")
    freqs = theta ** (-jnp.arange(0, rope_dim, 2, dtype=jnp.float32) / rope_dim)  # [rope_dim / 2]
    angles = jnp.asarray(positions, jnp.float32)[:, None] * freqs[None, :]  # [N, rope_dim / 2]
    cos = jnp.cos(angles)[None, :, None, :]
    sin = jnp.sin(angles)[None, :, None, :]
    rot = x[..., :rope_dim].astype(jnp.float32).reshape(x.shape[:-1] + (rope_dim // 2, 2))
    x1, x2 = rot[..., 0], rot[..., 1]
    rot = jnp.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    rot = rot.reshape(x.shape[:-1] + (rope_dim,)).astype(x.dtype)
    return jnp.concatenate([rot, x[..., rope_dim:]], axis=-1)


def patch_mask(frame_mask: jax.Array, patch_size: int) -> jax.Array:
    """Frame mask [B, T] (bool) -> patch mask [B, ceil(T / p)]: a patch is valid if any frame is."""
    b, t = frame_mask.shape
    n = -(-t // patch_size)
    padded = jnp.pad(frame_mask, ((0, 0), (0, n * patch_size - t)))
    return jnp.any(padded.reshape(b, n, patch_size), axis=-1)


def modulate(h: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    """adaLN (DiT sec. 3.2): `h * (1 + scale) + shift`; h [B, N, D], shift and scale [B, 1, D]."""
    return h * (1 + scale) + shift


def _plain_norm(dtype: Dtype, name: str) -> nn.LayerNorm:
    """LayerNorm without scale or bias (eps 1e-6), as DiT's adaLN blocks."""
    return nn.LayerNorm(epsilon=1e-6, use_bias=False, use_scale=False, dtype=dtype, name=name)


class Attention(nn.Module):
    """Multi-head attention of x [B, N, D] to context [B, S, Dc] (self-attention: context = x).

    `softmax(q k^T / sqrt(Dh) + mask) v` (Vaswani et al. 2017, eq. 1) through
    `jax.nn.dot_product_attention` (float32 logits and softmax), keys masked where `mask` [B, S] is
    False. Optional RMSNorm of q and k per head (`qk_norm`) and RoPE of q and k (`rope_dim` > 0,
    needs `positions` [N]; self-attention only). Returns [B, N, D]; the output projection starts at
    zero when `zero_init`.
    """

    num_heads: int
    qk_norm: bool = False
    rope_dim: int = 0
    rope_theta: float = 10000.0
    zero_init: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array, mask: jax.Array,
                 positions: jax.Array | None = None) -> jax.Array:
        d = x.shape[-1]
        head_dim = d // self.num_heads
        features = (self.num_heads, head_dim)
        qkv_init = layers.kernel_axes("embed", "heads", None)
        q = nn.DenseGeneral(features, dtype=self.dtype, kernel_init=qkv_init, name="query")(x)
        k = nn.DenseGeneral(features, dtype=self.dtype, kernel_init=qkv_init, name="key")(context)
        v = nn.DenseGeneral(features, dtype=self.dtype, kernel_init=qkv_init, name="value")(context)
        if self.qk_norm:
            q = nn.RMSNorm(dtype=self.dtype, name="query_norm")(q)
            k = nn.RMSNorm(dtype=self.dtype, name="key_norm")(k)
        if self.rope_dim:
            q = apply_rope(q, positions, rope_dim=self.rope_dim, theta=self.rope_theta)
            k = apply_rope(k, positions, rope_dim=self.rope_dim, theta=self.rope_theta)
        out = jax.nn.dot_product_attention(q, k, v, mask=mask[:, None, None, :])  # [B, N, H, Dh]
        init = _zeros if self.zero_init else nn.linear.default_kernel_init
        out = nn.DenseGeneral(d, axis=(-2, -1), dtype=self.dtype, kernel_init=layers.kernel_axes(
            "heads", None, "embed", init=init), name="out")(out)
        return out


class MLP(nn.Module):
    """Token-wise feed-forward [B, N, D] -> [B, N, D] with `hidden` inner features.

    'gelu': `Dense(GELU(Dense(x)))` (DiT; tanh GELU). 'swiglu': `Dense(u * SiLU(g))` with
    `[u, g] = Dense(x)` (Shazeer 2020, "GLU Variants Improve Transformer", eq. 6; as Stable Audio
    Open).
    """

    hidden: int
    kind: str = "gelu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.kind == "swiglu":
            u, g = jnp.split(nn.Dense(2 * self.hidden, dtype=self.dtype, kernel_init=_in_init, name="fc_in")(x), 2, -1)
            h = u * nn.silu(g)
        else:
            h = nn.Dense(self.hidden, dtype=self.dtype, kernel_init=_in_init, name="fc_in")(x)
            h = nn.gelu(h, approximate=True)
        return nn.Dense(x.shape[-1], dtype=self.dtype, kernel_init=layers.kernel_axes("mlp", "embed"), name="fc_out")(h)


class DiTBlock(nn.Module):
    """One adaLN-Zero transformer block (DiT sec. 3.2, Fig. 3; the equations in the module doc).

    Call args:
        h: [B, N, D] tokens.
        c: [B, E] the SiLU of the conditioning vector; with `shared_modulation` (adaLN-single) the
            shared modulation [B, 6 D], to which the block adds its own table.
        positions: [N] token positions for RoPE.
        mask: [B, N] bool, valid tokens (keys of the self-attention).
        tokens: [B, S, Dc] cross-attention context, or None without cross-attention.
        tokens_mask: [B, S] bool.
    Returns [B, N, D]; equal to h at initialisation (zero modulation, so the gates are 0).
    """

    num_heads: int
    mlp_ratio: float = 4.0
    mlp: str = "gelu"
    qk_norm: bool = False
    rope_dim: int = 0
    rope_theta: float = 10000.0
    cross_attention: bool = False
    shared_modulation: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, h: jax.Array, c: jax.Array, positions: jax.Array, mask: jax.Array,
                 tokens: jax.Array | None = None, tokens_mask: jax.Array | None = None
                 ) -> jax.Array:
        d = h.shape[-1]
        if self.shared_modulation:
            table = self.param("modulation", layers.kernel_axes("mlp", init=_zeros), (6 * d,))
            mod = c + table[None, :].astype(c.dtype)
        else:
            mod = nn.Dense(6 * d, dtype=self.dtype, kernel_init=_zero_in, name="modulation")(c)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = jnp.split(mod[:, None, :], 6, -1)

        u = modulate(_plain_norm(self.dtype, "norm_attn")(h), shift_a, scale_a)
        attn = Attention(self.num_heads, qk_norm=self.qk_norm, rope_dim=self.rope_dim,
                         rope_theta=self.rope_theta, dtype=self.dtype, name="attn")
        h = h + gate_a * attn(u, u, mask, positions)
        if self.cross_attention:
            u = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm_cross")(h)
            out = Attention(self.num_heads, qk_norm=self.qk_norm, zero_init=True,
                            dtype=self.dtype, name="cross_attn")(u, tokens, tokens_mask)
            any_token = jnp.any(tokens_mask, axis=-1)[:, None, None]  # no valid token: no branch
            h = h + jnp.where(any_token, out, jnp.zeros_like(out))
        u = modulate(_plain_norm(self.dtype, "norm_mlp")(h), shift_m, scale_m)
        hidden = int(self.mlp_ratio * d)
        return h + gate_m * MLP(hidden, kind=self.mlp, dtype=self.dtype, name="mlp")(u)


def _conditioning_vector(module: "DiT", c_noise: jax.Array, cond: dict, batch: int) -> jax.Array:
    """`c [B, D]`: noise embedding + projected 'global' + class embedding (before the SiLU).

    Must be called inside `DiT.__call__` (it creates submodules there)."""
    dim, dtype = module.width, module.dtype
    c = layers.NoiseEmbedding(dim, dtype=dtype, name="noise_embedding")(c_noise)
    if module.global_dim > 0:
        g = cond.get("global")
        g = jnp.zeros((batch, module.global_dim), dtype) if g is None else jnp.asarray(g, dtype)
        if g.shape != (batch, module.global_dim):
            raise ValueError(f"cond['global'] must be [B, {module.global_dim}]; got {g.shape}")
        c = c + nn.Dense(dim, dtype=dtype, kernel_init=layers.kernel_axes("mlp", "embed"), name="global_embedding")(g)
    if module.num_classes > 0:
        label = cond.get("label")
        if label is None:
            label = jnp.full((batch,), module.num_classes, jnp.int32)
        c = c + layers.ClassEmbedding(module.num_classes, dim, dtype=dtype,
                                      name="class_embedding")(label)
    return c


def _context(module: "DiT", cond: dict, batch: int) -> tuple[jax.Array | None, jax.Array | None]:
    """(tokens [B, S, Dc], tokens_mask [B, S] bool); without tokens one masked zero token (null)."""
    dim = module.cross_attention_dim
    if dim == 0:
        return None, None
    tokens = cond.get("tokens")
    if tokens is None:
        return jnp.zeros((batch, 1, dim), module.dtype), jnp.zeros((batch, 1), bool)
    tokens = jnp.asarray(tokens, module.dtype)
    if tokens.ndim != 3 or tokens.shape[0] != batch or tokens.shape[-1] != dim:
        raise ValueError(f"cond['tokens'] must be [B={batch}, S, {dim}]; got {tokens.shape}")
    mask = cond.get("tokens_mask")
    mask = jnp.ones(tokens.shape[:2], bool) if mask is None else jnp.asarray(mask, bool)
    return tokens, mask


class DiT(nn.Module):
    """A diffusion transformer on [B, T, C] (or [B, T, *rest]); returns the same shape as x.

    Attributes are the config keys (see the module docstring for the maths and the masks).
    """

    width: int = 256                  # D, the token width (and the conditioning vector's)
    depth: int = 6                    # number of blocks
    num_heads: int = 4                # attention heads; head_dim = width / num_heads
    patch_size: int = 1               # frames per token along T
    mlp_ratio: float = 4.0            # MLP inner width / width
    mlp: str = "gelu"                 # gelu (DiT) | swiglu (Stable Audio Open)
    modulation: str = "block"         # block: adaLN-Zero per block (DiT) | single: adaLN-single
    rope_fraction: float = 1.0        # share of each head's features rotated by RoPE (0: none)
    rope_theta: float = 10000.0       # RoPE frequency base
    qk_norm: bool = False             # RMSNorm of q and k per head
    cross_attention_dim: int = 0      # Dc of cond['tokens'] [B, S, Dc]; 0: no cross-attention
    global_dim: int = 0               # G of cond['global'] [B, G], added to c; 0: off
    num_global_tokens: int = 0        # tokens Dense(c) prepended to the sequence; 0: none
    num_classes: int = 0              # > 0: cond['label'] [B] embedded, null class = num_classes
    dtype: Dtype = jnp.float32        # compute dtype; parameters stay float32
    remat: bool = False               # rematerialise blocks (nn.remat) to save memory
    scan_layers: bool = False         # one nn.scan over the blocks: parameters [depth, ...] under
                                      # 'blocks' (diffjax.models.scan); compile time flat in depth
    magnitude_preserving: bool = False  # EDM2's MP layers (magnitude_blocks.py; ignores
                                        # modulation, mlp, qk_norm); needs force_weight_norm

    def _check(self) -> None:
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not a multiple of num_heads {self.num_heads}")
        if self.mlp not in MLP_KINDS:
            raise ValueError(f"unknown mlp {self.mlp!r}; valid: {', '.join(MLP_KINDS)}")
        if self.modulation not in MODULATIONS:
            raise ValueError(f"unknown modulation {self.modulation!r}; "
                             f"valid: {', '.join(MODULATIONS)}")
        if not 0.0 <= self.rope_fraction <= 1.0:
            raise ValueError(f"rope_fraction must be in [0, 1]; got {self.rope_fraction}")
        if self.scan_layers and self.magnitude_preserving:
            raise ValueError("scan_layers=True is not implemented for magnitude_preserving=True; "
                             "set scan_layers=False")

    @property
    def rope_dim(self) -> int:
        """Features rotated per head: `2 floor(rope_fraction * head_dim / 2)`."""
        return 2 * int(self.rope_fraction * (self.width // self.num_heads) / 2)

    @nn.compact
    def __call__(self, x: jax.Array, c_noise: jax.Array, cond: dict | None = None) -> jax.Array:
        self._check()
        cond = dict(cond or {})
        b, t = x.shape[:2]
        h = x.reshape(b, t, -1).astype(self.dtype)  # [B, T, C]
        channels, p, g = h.shape[-1], self.patch_size, self.num_global_tokens
        frames = cond.get("sequence_mask")
        frames = jnp.ones((b, t), bool) if frames is None else jnp.asarray(frames, bool)
        if frames.shape != (b, t):
            raise ValueError(f"cond['sequence_mask'] must be [B, T] = {(b, t)}; got {frames.shape}")
        extra = cond.get("concat")  # frame-aligned conditions (inpainting, piano roll): more input channels
        if extra is not None:
            extra = jnp.asarray(extra, self.dtype)
            if extra.shape[:2] != (b, t):
                raise ValueError(f"cond['concat'] must be [B, T, ...] = [{b}, {t}, ...]; got {extra.shape}")
            h = jnp.concatenate([h, extra.reshape(b, t, -1)], axis=-1)
        h = jnp.where(frames[:, :, None], h, jnp.zeros_like(h))
        if self.magnitude_preserving:  # same masks, tokens and output contract
            h = magnitude_blocks.dit_trunk(self, patchify(h, p), patch_mask(frames, p), c_noise, cond,
                                           *_context(self, cond, b), out_features=p * channels, rope=apply_rope)
            out = unpatchify(h, p, (b, t, channels))
            return jnp.where(frames[:, :, None], out, 0).reshape(x.shape).astype(x.dtype)
        h = nn.Dense(self.width, dtype=self.dtype, kernel_init=layers.kernel_axes(None, "embed"),
                     name="patch_embed")(patchify(h, p))  # [B, N, D]
        mask = patch_mask(frames, p)  # [B, N]

        c = _conditioning_vector(self, c_noise, cond, b)  # [B, D]
        if g > 0:
            prefix = nn.Dense(g * self.width, dtype=self.dtype, kernel_init=_in_init, name="global_tokens")(c)
            h = jnp.concatenate([prefix.reshape(b, g, self.width), h], axis=1)
            mask = jnp.concatenate([jnp.ones((b, g), bool), mask], axis=1)
        positions = jnp.arange(h.shape[1])
        tokens, tokens_mask = _context(self, cond, b)

        block_c = nn.silu(c)
        if self.modulation == "single":
            block_c = nn.Dense(6 * self.width, dtype=self.dtype, kernel_init=_zero_in,
                               name="modulation")(block_c)
        block_kw = dict(num_heads=self.num_heads, mlp_ratio=self.mlp_ratio, mlp=self.mlp,
                        qk_norm=self.qk_norm, rope_dim=self.rope_dim, rope_theta=self.rope_theta,
                        cross_attention=self.cross_attention_dim > 0,
                        shared_modulation=self.modulation == "single", dtype=self.dtype)
        if self.scan_layers:
            # Keep the projections' outputs, recompute attention logits and probabilities
            # [B, H, N, N] in the backward pass (benchmarks/compile.py: faster than keeping them).
            run = scan.scan_blocks(_scan_body, length=self.depth, in_axes=(nn.broadcast,) * 5,
                                   remat=self.remat,
                                   policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
            h, _ = run(DiTBlock(**block_kw, name="blocks"), h, block_c, positions, mask, tokens,
                       tokens_mask)
        else:
            block = nn.remat(DiTBlock) if self.remat else DiTBlock
            for i in range(self.depth):
                h = block(**block_kw, name=f"block_{i}")(h, block_c, positions, mask, tokens, tokens_mask)
                h = layers.activation_constraint(h)

        final = nn.Dense(2 * self.width, dtype=self.dtype, kernel_init=_zero_in,
                         name="final_modulation")(nn.silu(c))
        shift, scale = jnp.split(final[:, None, :], 2, -1)
        h = modulate(_plain_norm(self.dtype, "final_norm")(h), shift, scale)
        h = nn.Dense(p * channels, dtype=self.dtype, kernel_init=layers.kernel_axes("embed", None, init=_zeros),
                     name="final_proj")(h)
        out = unpatchify(h[:, g:], p, (b, t, channels))  # [B, T, C]
        out = jnp.where(frames[:, :, None], out, jnp.zeros_like(out))
        return out.reshape(x.shape).astype(x.dtype)


def _scan_body(block: DiTBlock, h, *args):
    """One scanned DiT block (`DiT.scan_layers`): h [B, N, D] -> (h', None)."""
    return layers.activation_constraint(block(h, *args)), None


# ---------------------------------------------------------------------------------------------
# Registered sizes
# ---------------------------------------------------------------------------------------------

DIT_SIZES = {
        "tiny": dict(width=32, depth=2, num_heads=2, patch_size=2),  # tests
        # The CPU quick start on 128-band mel frames (63 tokens per second of 16 kHz audio).
        "small": dict(width=256, depth=6, num_heads=4),
        "base": dict(width=768, depth=12, num_heads=12),  # DiT-B (Peebles & Xie 2023, Table 1)
        # Stable Audio Open 1.0 (model_config.json; see the module docstring for the count).
        "large": dict(width=1536, depth=24, num_heads=24, patch_size=1, mlp="swiglu",
                      modulation="single", rope_fraction=0.5, cross_attention_dim=768,
                      global_dim=1536, num_global_tokens=1),
}


@MODELS.register("dit", parameters=preset_parameters(DiT, "size"))
def dit(size: str = "small", **overrides) -> DiT:
    """The DiT preset `size` (DIT_SIZES: tiny | small | base | large) with any field overridden;
    `dtype` may be a string ('bfloat16')."""
    if size not in DIT_SIZES:
        raise ValueError(f"unknown size {size!r}; valid sizes: {', '.join(DIT_SIZES)}")
    kw = {**DIT_SIZES[size], **overrides}
    kw["dtype"] = jnp.dtype(kw.get("dtype", "float32"))
    return DiT(**kw)


def parameter_count(size: str, io_channels: int, **overrides) -> int:
    """Parameters of the preset `size` for inputs with `io_channels` channels, from `jax.eval_shape`
    of `init` (allocates nothing). Every parameter exists whether or not `cond` is given."""
    model = dit(size, **overrides)
    x = jax.ShapeDtypeStruct((1, model.patch_size, io_channels), jnp.float32)
    c_noise = jax.ShapeDtypeStruct((1,), jnp.float32)
    shapes = jax.eval_shape(lambda x, c: model.init(jax.random.PRNGKey(0), x, c), x, c_noise)
    return sum(math.prod(v.shape) for v in jax.tree.leaves(shapes))

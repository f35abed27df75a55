"""DiffWave (Kong et al. 2021, sec. 3 and Fig. 2): a non-causal WaveNet for waveforms [B, L, C].

`residual_layers` layers with dilation 2^(i mod dilation_cycle); each adds the projected
diffusion-step embedding, applies a kernel-3 dilated conv (C -> 2C), adds the projected mel
conditioner (if 'features' is given), gates with tanh * sigmoid, and splits a 1x1 conv into a
residual (scaled by 1/sqrt(2)) and a skip output. The skips are summed / sqrt(layers) and
projected to the output. Base (30 layers, 64 channels, mel-conditioned) has ~2.62M parameters,
the paper's 2.64M.

Mel conditioning: cond['features'] [B, T_mel, n_mels] (or [..., 1], as the 'mel' codec gives)
is upsampled by two transposed 2-D convs with strides (16, 1) over (time, mel) and leaky ReLU 0.4
(the paper's upsampler; hop 256 = 16 * 16; `TransposedConv`, written as a matmul because XLA's
CPU transposed convolutions are slow), then cropped or zero-padded to L.

Dilated convolutions (`conv_impl`): 'xla' is `lax.conv_general_dilated`; 'shifted' writes the
kernel-3 dilated conv as three shifted slices concatenated into one [B*L, 3C] x [3C, 2C] matmul,
which XLA's CPU backend runs faster (see benchmarks/models.py). Both use the same parameters.
The layer also folds the mel projection into that matmul ([B*L, 3C + M] x [3C + M, 2C]); the
parameters stay the paper's ([3, C, 2C] and [M, 2C]).

`scan_layers=True` runs the layers as one `nn.scan` (`diffjax.models.scan`): parameters stacked
`[layers, ...]` under 'layers', the skip sum a scan carry, and the dilation 2^(i mod cycle) a
scanned input, so the 'shifted' conv slices at a traced offset (needs conv_impl='shifted'). Each
layer keeps only its input and the gate's pre-activation (`PREACTIVATION`) for the backward
pass. Same function as the unscanned network with `scan.stack_layers` of its parameters.
Before and after these changes: benchmarks/diffwave_profile.py and README's peers table.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from diffjax.models.base import MODELS, preset_parameters
from diffjax.models import layers, scan

Dtype = Any


def shifted_taps(x: jax.Array, max_dilation: int, dilation: jax.Array | int) -> jax.Array:
    """The three taps of a kernel-3 'SAME' dilated conv, concatenated on channels: x [B, L, C] ->
    [B, L, 3C] = (x[l - d], x[l], x[l + d]), zero outside [0, L). `dilation` d <= `max_dilation`
    may be a traced int32 scalar (a scanned stack of layers); the padding is `max_dilation`."""
    length, m = x.shape[1], max_dilation
    xp = jnp.pad(x, ((0, 0), (m, m), (0, 0)))
    return jnp.concatenate([jax.lax.dynamic_slice_in_dim(xp, m + (k - 1) * dilation, length, axis=1)
                            for k in range(3)], axis=-1)


class DilatedConv3(nn.Module):
    """Kernel-3 'SAME' dilated conv over [B, L, C] -> [B, L, features]; kernel param [3, C, F].

    `impl`: 'shifted' is `shifted_taps` and one [B L, 3C] x [3C, F] matmul, which XLA's CPU
    backend runs faster (see benchmarks/models.py); 'xla' is `lax.conv_general_dilated`.
    Call options:
    - `dilation`: a traced int32 scalar <= the field `dilation` (which then only bounds the
      padding), as a scanned stack of layers gives; 'shifted' only.
    - `extra` = (features [B, L, M], kernel [M, F]): adds `features @ kernel` in the same matmul
      ([B L, 3C + M] x [3C + M, F]); DiffWave folds its mel projection in.
    """

    features: int
    dilation: int
    impl: str = "shifted"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, dilation: jax.Array | None = None,
                 extra: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
        c, d = x.shape[-1], self.dilation
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, c, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        kernel = kernel.reshape(3 * c, self.features)
        if self.impl not in ("shifted", "xla"):
            raise ValueError(f"unknown conv_impl {self.impl!r}; valid: 'shifted', 'xla'")
        if self.impl == "xla" and dilation is not None:
            raise ValueError(f"a traced dilation (scan_layers=True) needs conv_impl='shifted'; "
                             f"got {self.impl!r}")
        inputs, kernels = [], []  # one matmul: concatenated inputs [B, L, K_i] x rows [K_i, F]
        if self.impl == "shifted":
            inputs.append(shifted_taps(x, d, d if dilation is None else dilation))
            kernels.append(kernel)
        if extra is not None:
            inputs.append(extra[0].astype(self.dtype))
            kernels.append(extra[1].astype(self.dtype))
        y = 0.0
        if inputs:
            y = jnp.concatenate(inputs, axis=-1) @ jnp.concatenate(kernels)
        if self.impl == "xla":
            y = y + jax.lax.conv_general_dilated(x, kernel.reshape(3, c, -1), (1,), [(d, d)],
                                                 rhs_dilation=(d,),
                                                 dimension_numbers=("NWC", "WIO", "NWC"))
        return y + bias.reshape(1, 1, -1)


class Affine(nn.Module):
    """The parameters of a dense map, `kernel` [in, out] (LeCun normal, as `nn.Dense`) and `bias`
    [out] (zeros), for a layer that folds them into another matmul; returns them in `dtype`."""

    features_in: int
    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self) -> tuple[jax.Array, jax.Array]:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (self.features_in, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return kernel.astype(self.dtype), bias.astype(self.dtype)


class TransposedConv(nn.Module):
    """DiffWave's upsampling layer: a transposed conv over (time, mel) of a one-channel image.

    Kernel [2s, 3] with stride (s, 1), as torch's ConvTranspose2d(1, 1, [3, 2s], [1, s],
    padding=[1, s/2]): out_full[t s + k, m] = sum_d x[t, m + 1 - d] K[k, d], cropped to
    [s/2, s/2 + T s). Written as one [6] x [6, s] matmul per (frame, mel bin): output frame
    q s + r takes x[q] K[r] + x[q - 1] K[r + s]. [B, T, M] -> [B, T s, M].
    """

    stride: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s = self.stride
        b, t, m = x.shape
        kernel = self.param("kernel", nn.initializers.lecun_normal(in_axis=1, out_axis=0),
                            (2 * s, 3))
        bias = self.param("bias", nn.initializers.zeros, ())
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        xm = jnp.pad(x, ((0, 0), (1, 1), (1, 1)))  # zero frame each side; mel 'SAME' padding
        taps = jnp.stack([xm[:, :, 2 - d:2 - d + m] for d in range(3)], axis=-1)  # x[m + 1 - d]
        feats = jnp.concatenate([taps[:, 1:t + 2], taps[:, 0:t + 1]], axis=-1)  # [B, T+1, M, 6]
        w = jnp.concatenate([kernel[:s].T, kernel[s:].T], axis=0)  # [6, s]
        y = (feats @ w).transpose(0, 1, 3, 2).reshape(b, (t + 1) * s, m)
        return y[:, s // 2:s // 2 + t * s] + bias


PREACTIVATION = "diffwave_preactivation"  # what a layer keeps for its backward pass
KEEP_PREACTIVATIONS = jax.checkpoint_policies.save_only_these_names(PREACTIVATION)


class ResidualLayer(nn.Module):
    """One DiffWave residual layer (Kong et al. 2021, Fig. 2). Returns (residual out, skip).

    Written for XLA's CPU backend (benchmarks/diffwave_profile.py): the mel projection is folded
    into the dilated conv's matmul (`conditioner_projection` keeps the paper's [M, 2C] kernel), and
    the gate's pre-activation is tagged `PREACTIVATION`: with `KEEP_PREACTIVATIONS` a layer keeps
    only it and its input for the backward pass and recomputes the taps and the gate.
    """

    channels: int
    dilation: int
    conv_impl: str = "shifted"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, emb, mel, dilation=None):
        """x [B, L, C], emb [B, E], mel [B, L, M] or None; `dilation`: see `DilatedConv3`."""
        c = self.channels
        y = x + nn.Dense(c, dtype=self.dtype, name="diffusion_projection")(emb)[:, None, :]
        conv = DilatedConv3(2 * c, self.dilation, self.conv_impl, self.dtype, name="dilated_conv")
        if mel is None:
            y = conv(y, dilation)
        else:
            mel_kernel, mel_bias = Affine(mel.shape[-1], 2 * c, self.dtype,
                                          name="conditioner_projection")()
            y = conv(y, dilation, (mel, mel_kernel)) + mel_bias.reshape(1, 1, -1)
        y = checkpoint_name(y, PREACTIVATION)
        y = nn.sigmoid(y[..., :c]) * jnp.tanh(y[..., c:])
        out = nn.Dense(2 * c, dtype=self.dtype, name="output_projection")(y)
        residual, skip = jnp.split(out, 2, axis=-1)
        return (x + residual) / math.sqrt(2.0), skip


class DiffWave(nn.Module):
    """DiffWave network: x [B, L, C], c_noise [B], cond {'features': mel} -> [B, L, C]."""

    residual_layers: int = 30
    residual_channels: int = 64
    dilation_cycle: int = 10
    emb_dim: int = 512
    upsample_strides: Sequence[int] = (16, 16)  # product = the mel hop length
    conv_impl: str = "shifted"      # 'shifted' (three slices, one matmul) or 'xla'
    num_classes: int = 0            # > 0 adds a class embedding (null class = num_classes)
    dtype: Dtype = jnp.float32
    remat: bool = False             # rematerialise each layer (nn.remat) in the backward pass
    scan_layers: bool = False       # one nn.scan over the layers (parameters under 'layers')

    def _upsample(self, feats: jax.Array, length: int) -> jax.Array:
        """Mel [B, T, n_mels(, 1)] -> [B, length, n_mels] by the paper's upsampler."""
        h = feats.reshape(feats.shape[:3]).astype(self.dtype)  # [B, T, M]
        for i, s in enumerate(self.upsample_strides):
            h = nn.leaky_relu(TransposedConv(s, self.dtype, name=f"upsample_{i}")(h), 0.4)
        h = h[:, :length]
        return jnp.pad(h, ((0, 0), (0, length - h.shape[1]), (0, 0)))

    @nn.compact
    def __call__(self, x: jax.Array, c_noise: jax.Array, cond: dict | None = None, *,
                 train: bool = False) -> jax.Array:
        length, out_ch, c = x.shape[1], x.shape[-1], self.residual_channels
        emb = layers.conditioning_embedding(c_noise, cond, dim=self.emb_dim,
                                            num_classes=self.num_classes, dtype=self.dtype)
        mel = None
        if cond is not None and cond.get("features") is not None:
            mel = self._upsample(cond["features"], length)
        h = nn.relu(nn.Dense(c, dtype=self.dtype, name="input_projection")(x.astype(self.dtype)))
        if self.scan_layers:
            skip = self._scanned_layers(h, emb, mel)
        else:
            layer = nn.remat(ResidualLayer, policy=None if self.remat else KEEP_PREACTIVATIONS)
            skip = 0.0
            for i in range(self.residual_layers):
                h, s = layer(c, 2 ** (i % self.dilation_cycle), self.conv_impl, self.dtype,
                             name=f"layer_{i}")(h, emb, mel)
                skip = skip + s
        h = skip / math.sqrt(self.residual_layers)
        h = nn.relu(nn.Dense(c, dtype=self.dtype, name="skip_projection")(h))
        h = nn.Dense(out_ch, dtype=self.dtype, kernel_init=nn.initializers.zeros,
                     name="output_projection")(h)
        return h.astype(x.dtype)

    def _scanned_layers(self, h: jax.Array, emb: jax.Array, mel: jax.Array | None) -> jax.Array:
        """The residual stack as one scan; carry (h, skip sum) [B, L, C] each. Returns the sum.
        Each layer keeps only its input and `PREACTIVATION` for the backward pass."""
        if self.conv_impl != "shifted":
            raise ValueError(f"scan_layers=True needs conv_impl='shifted' (a traced dilation); "
                             f"got {self.conv_impl!r}")
        dilations = 2 ** (jnp.arange(self.residual_layers, dtype=jnp.int32) % self.dilation_cycle)
        run = scan.scan_blocks(_scan_body, length=self.residual_layers,
                               in_axes=(0, nn.broadcast, nn.broadcast), remat=self.remat,
                               policy=KEEP_PREACTIVATIONS)
        layer = ResidualLayer(self.residual_channels, 2 ** (self.dilation_cycle - 1),
                              self.conv_impl, self.dtype, name="layers")
        (_, skip), _ = run(layer, (h, jnp.zeros_like(h)), dilations, emb, mel)
        return skip


def _scan_body(layer: ResidualLayer, carry, dilation, emb, mel):
    """One scanned DiffWave layer: (h, skip) -> (h', skip + s)."""
    h, skip = carry
    h, s = layer(h, emb, mel, dilation)
    return (h, skip + s), None


DIFFWAVE_SIZES = {
        "tiny": dict(residual_layers=4, residual_channels=8, dilation_cycle=2, emb_dim=32),
        "small": dict(residual_layers=12, residual_channels=32, dilation_cycle=6, emb_dim=128),
        "base": dict(residual_layers=30, residual_channels=64, dilation_cycle=10, emb_dim=512),
}


@MODELS.register("diffwave", parameters=preset_parameters(DiffWave, "size"))
def diffwave(size: str = "base", **overrides) -> DiffWave:
    """DiffWave of a named size ('tiny', 'small', 'base' = the paper's) with field overrides."""
    if size not in DIFFWAVE_SIZES:
        raise ValueError(f"unknown size {size!r}; valid sizes: {', '.join(DIFFWAVE_SIZES)}")
    kw = {**DIFFWAVE_SIZES[size], **overrides}
    kw["dtype"] = jnp.dtype(kw.get("dtype", "float32"))
    return DiffWave(**kw)

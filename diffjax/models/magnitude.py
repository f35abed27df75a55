"""EDM2's magnitude-preserving (MP) operations (flax.linen, channels-last).

Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models" (EDM2),
sec. 2.2-2.5 and appendix B (equation numbers as in the arXiv version's appendix). Every operation
maps inputs of unit expected magnitude (per-element RMS 1) to outputs of unit expected magnitude,
so activations neither grow nor shrink with depth or with training:

- `normalize(x, axes)`: `x / (eps + ||x|| / sqrt(N))`, N elements over `axes` (RMS 1 per slice);
  `pixel_norm(x)` is it over the channels.
- `mp_silu`, `mp_sum`, `mp_cat`: fixed-function layers rescaled to unit magnitude (sec. 2.5).
- `MPFourier`: Fourier features of the noise level with fixed random frequencies (eq. 75).
- `MPDense`, `MPConv`: learned layers whose weight is normalised in the forward pass (eq. 47), with
  a stored weight `mp_kernel` that the training step projects back onto the sphere after every
  optimiser update (`force_weight_norm`, forced weight normalisation, sec. 2.3 and eq. 66). There
  are no biases anywhere (EDM2 appends a constant channel to the input instead).

The MP networks built from these live in `diffjax.models.magnitude_blocks`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any
MP_KERNEL = "mp_kernel"  # the name of every weight that `force_weight_norm` projects
SILU_RMS = 0.596         # E[silu(x)^2]^(1/2) for x ~ N(0, 1)


def normalize(x: jax.Array, axes: int | Sequence[int] | None = None,
              eps: float = 1e-4) -> jax.Array:
    """EDM2's normalisation to unit magnitude over `axes`: `x / (eps + ||x||_axes / sqrt(N))`.

    N is the number of elements reduced over, so each slice ends with norm `sqrt(N)` (RMS 1; the
    norm is `sqrt(N) (1 - eps)` at the fixed point `r = r / (eps + r)` of the RMS r). EDM2 eq. 47's
    weight normalisation (per output channel) and its pixel norm (over channels). Computed in
    float32, returned in x's dtype.

    Args:
        x: any array.
        axes: the axes of one slice; None: all but the last (one output channel of a flax kernel
            `[*kernel, C_in, C_out]`).
        eps: added to the RMS, so an all-zero slice stays zero.
    Returns:
        Same shape as x.
    """
    if axes is None:
        axes = tuple(range(x.ndim - 1))
    axes = tuple(a % x.ndim for a in np.atleast_1d(axes))
    n = math.prod(x.shape[a] for a in axes)
    x32 = x.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(jnp.square(x32), axis=axes, keepdims=True))
    return (x32 / (eps + norm / math.sqrt(n))).astype(x.dtype)


def pixel_norm(x: jax.Array, eps: float = 1e-4) -> jax.Array:
    """Pixel norm (EDM2 sec. 2.4, replacing group norm): `normalize` over the channels, `[..., C]`."""
    return normalize(x, axes=-1, eps=eps)


def mp_silu(x: jax.Array) -> jax.Array:
    """Magnitude-preserving SiLU (EDM2 eq. 81): `silu(x) / 0.596`, unit RMS for x ~ N(0, 1)."""
    return nn.silu(x) / SILU_RMS


def mp_sum(a: jax.Array, b: jax.Array, t: float = 0.5) -> jax.Array:
    """Magnitude-preserving sum (EDM2 eq. 88): `((1 - t) a + t b) / sqrt((1 - t)^2 + t^2)`.

    Unit magnitude for uncorrelated unit-magnitude a and b; t balances a (0) against b (1).
    """
    return ((1 - t) * a + t * b) / math.sqrt((1 - t) ** 2 + t ** 2)


def mp_cat(a: jax.Array, b: jax.Array, axis: int = -1, t: float = 0.5) -> jax.Array:
    """Magnitude-preserving concatenation (EDM2 eq. 103) of `a` (Na features) and `b` (Nb).

    `[w_a a, w_b b]` with `w_a = C (1 - t) / sqrt(Na)`, `w_b = C t / sqrt(Nb)` and
    `C = sqrt((Na + Nb) / ((1 - t)^2 + t^2))`: the mean square is
    `(Na w_a^2 + Nb w_b^2) / (Na + Nb) = 1`, and a following layer sees a and b in the ratio
    `(1 - t) : t` whatever Na and Nb.
    """
    na, nb = a.shape[axis], b.shape[axis]
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t ** 2))
    return jnp.concatenate([a * (c * (1 - t) / math.sqrt(na)), b * (c * t / math.sqrt(nb))],
                           axis=axis)


class MPFourier(nn.Module):
    """Magnitude-preserving Fourier features (EDM2 eq. 75): [B] -> [B, num_channels].

    `sqrt(2) cos(2 pi (f_i c + phi_i))`, `f_i ~ N(0, bandwidth^2)`, `phi_i ~ U[0, 1)`: unit RMS
    (uniform phases). The frequencies and phases are fixed constants from numpy's
    `RandomState(seed)` (a frozen stream, so they never change across versions): no parameters.
    Meant for `c_noise` of order 1 (EDM's `ln(sigma) / 4`, or a time in [0, 1]).
    """

    num_channels: int
    bandwidth: float = 1.0
    seed: int = 0

    @nn.compact
    def __call__(self, c: jax.Array) -> jax.Array:
        rng = np.random.RandomState(self.seed)
        freqs = (2 * np.pi * self.bandwidth * rng.standard_normal(self.num_channels)).astype(np.float32)
        phases = (2 * np.pi * rng.uniform(size=self.num_channels)).astype(np.float32)
        c = jnp.reshape(jnp.asarray(c, jnp.float32), (-1, 1))
        return math.sqrt(2.0) * jnp.cos(c * freqs[None, :] + phases[None, :])


def _kernel_init(axes: Sequence[str | None] | None):
    """N(0, 1) (EDM2's MPConv init), annotated with logical axis names where given."""
    init = nn.initializers.normal(stddev=1.0)
    return init if axes is None else nn.with_logical_partitioning(init, tuple(axes))


def _mp_weight(kernel: jax.Array, gain, dtype: Dtype) -> jax.Array:
    """EDM2 eq. 47: `normalize(w) * gain / sqrt(fan_in)`, unit-norm rows times gain."""
    fan_in = math.prod(kernel.shape[:-1])
    return (normalize(kernel) * (gain / math.sqrt(fan_in))).astype(dtype)


class MPDense(nn.Module):
    """Magnitude-preserving fully connected layer (EDM2 eq. 47), no bias: [..., C_in] -> [..., features].

    `y = x w_hat`, `w_hat = gain normalize(w) / sqrt(C_in)`: each output channel's weights have
    norm `gain`, so for x of unit magnitude y has magnitude `gain`. The stored weight `mp_kernel`
    `[C_in, features]` starts N(0, 1); `force_weight_norm` projects it after each update (eq. 66).
    `axes`: optional logical axis names of the kernel (sharding rules, `diffjax.training.parallel`).
    """

    features: int
    dtype: Dtype = jnp.float32
    axes: tuple[str | None, ...] | None = None

    @nn.compact
    def __call__(self, x: jax.Array, gain: float | jax.Array = 1.0) -> jax.Array:
        kernel = self.param(MP_KERNEL, _kernel_init(self.axes), (x.shape[-1], self.features))
        return jnp.dot(x.astype(self.dtype), _mp_weight(kernel, gain, self.dtype))


class MPConv(nn.Module):
    """Magnitude-preserving convolution (EDM2 eq. 47), no bias, 'SAME' padding, any spatial rank.

    [B, *spatial, C_in] -> [B, *spatial, features], with `kernel_size` one entry per spatial axis;
    the weight `mp_kernel` `[*kernel_size, C_in, features]` is used as
    `gain normalize(w) / sqrt(prod(kernel_size) C_in)` (see `MPDense`).
    """

    features: int
    kernel_size: Sequence[int]
    dtype: Dtype = jnp.float32
    axes: tuple[str | None, ...] | None = None

    @nn.compact
    def __call__(self, x: jax.Array, gain: float | jax.Array = 1.0) -> jax.Array:
        k = tuple(self.kernel_size)
        if x.ndim != len(k) + 2:
            raise ValueError(f"kernel_size {k} needs inputs [B, *{len(k)} spatial, C]; got {x.shape}")
        kernel = self.param(MP_KERNEL, _kernel_init(self.axes), k + (x.shape[-1], self.features))
        spatial = "HWDXYZ"[:len(k)]
        numbers = ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")
        return jax.lax.conv_general_dilated(
                x.astype(self.dtype), _mp_weight(kernel, gain, self.dtype),
                window_strides=(1,) * len(k), padding="SAME", dimension_numbers=numbers)


def _leaf_name(path) -> str | None:
    """The last dict key of a pytree path (a leaf inside an annotation box keeps its name)."""
    names = [p.key for p in path if isinstance(p, jax.tree_util.DictKey)]
    return names[-1] if names else None


def force_weight_norm(params: Any) -> Any:
    """Forced weight normalisation (EDM2 sec. 2.3, eq. 66): every `mp_kernel` leaf w becomes
    `normalize(w)` (each output channel's weights to norm `sqrt(fan_in)`); other leaves unchanged.

    The projection that follows every optimiser update of the trained parameters (EDM2 does it
    in place in the forward pass; JAX is pure, so the train step calls it after `optax.apply_updates`).
    Fixed-norm weights make the effective learning rate independent of the weights' growth.
    Pure and jit-friendly. With r a row's RMS, one projection gives `r / (eps + r)`, within
    `eps |r - 1|` of the fixed point `1 - eps`: idempotent to float32 precision on weights
    already near the sphere (projected ones, or ones moved by an optimiser step).
    """
    return jax.tree_util.tree_map_with_path(
            lambda path, w: normalize(w) if _leaf_name(path) == MP_KERNEL else w, params)

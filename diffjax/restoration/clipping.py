"""Clipping operators: hard clipping and tanh saturation, at a threshold or at a target SDR."""
from __future__ import annotations

from typing import Callable, Optional

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.restoration.operators import AbstractOperator, _require, expand_batch, register_operator

Array = jax.Array


# --------------------------------------------------------------------------------------
# Clipping
# --------------------------------------------------------------------------------------


def signal_to_distortion_db(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-example `10 log10(||x||^2 / ||x - y||^2)` `[B]` (the clipping SDR of declipping papers)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    axes = tuple(range(1, x.ndim))
    return 10 * np.log10(np.sum(x**2, axes) / np.maximum(np.sum((x - y) ** 2, axes), 1e-300))


def threshold_for_sdr(x, sdr_db: float, clip_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
                      iterations: int = 60) -> np.ndarray:
    """Per-example thresholds `[B]` at which `clip_fn(x, t)` has the target SDR (bisection on log t).

    The SDR grows monotonically with the threshold, from ~0 dB near t = 0 to infinity at max |x|.
    """
    _require(0 < sdr_db < 100, f"clipping sdr_db must be in (0, 100) dB, got {sdr_db}")
    x = np.asarray(x, np.float64)
    peak = np.max(np.abs(x.reshape(x.shape[0], -1)), axis=1)
    _require(bool(np.all(peak > 0)), "cannot clip an all-zero example to a target SDR")
    lo, hi = np.log(peak) - 12.0, np.log(peak)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        t = np.exp(mid).reshape((-1,) + (1,) * (x.ndim - 1))
        too_low = signal_to_distortion_db(x, clip_fn(x, t)) < sdr_db
        lo, hi = np.where(too_low, mid, lo), np.where(too_low, hi, mid)
    return np.exp(0.5 * (lo + hi)).astype(np.float32)


def _np_hard_clip(x, t):
    return np.clip(x, -t, t)


def _np_soft_clip(x, t):
    return t * np.tanh(x / t)


@flax.struct.dataclass
class HardClip(AbstractOperator):
    """`y = clip(x, -t, t)` with a threshold `t`, scalar or per example `[B]`.

    `project` is the exact projection onto the convex consistent set: reliable samples
    (`|y| < t`) are set to y, clipped ones are pushed to at least `t` in magnitude
    (the constraint set of consistent declipping; Záviška et al. 2021, eq. 3).
    """

    threshold: Array
    noise_sigma: float = flax.struct.field(pytree_node=False, default=0.0)
    tolerance: float = flax.struct.field(pytree_node=False, default=1e-4)  # relative, clip detection

    def apply(self, x):
        t = expand_batch(self.threshold, x)
        return jnp.clip(x, -t, t)

    def project(self, x, y):
        t = expand_batch(self.threshold, x)
        edge = t * (1 - self.tolerance)
        clipped_high = jnp.where(y >= edge, jnp.maximum(x, y), y)
        return jnp.where(y <= -edge, jnp.minimum(x, y), clipped_high)

    def support(self, y):
        return y

    def intact(self, y, x_shape):
        """The unclipped samples, `|y| < t` (all damaged under measurement noise)."""
        if self.noise_sigma > 0:
            return np.zeros(tuple(x_shape), bool)
        t = np.asarray(expand_batch(self.threshold, y))
        return np.abs(np.asarray(y)) < t * (1 - self.tolerance)

    def clipped_fraction(self, y: Array) -> Array:
        t = expand_batch(self.threshold, y)
        return jnp.mean(jnp.abs(y) >= t * (1 - self.tolerance))


@flax.struct.dataclass
class SoftClip(AbstractOperator):
    """`y = t tanh(x / t)` (a smooth saturator with unit slope at 0); invertible, so `project`
    returns `t atanh(y / t)` whatever `x` is."""

    threshold: Array
    noise_sigma: float = flax.struct.field(pytree_node=False, default=0.0)

    def apply(self, x):
        t = expand_batch(self.threshold, x)
        return t * jnp.tanh(x / t)

    def project(self, x, y):
        t = expand_batch(self.threshold, x)
        return t * jnp.arctanh(jnp.clip(y / t, -1 + 1e-6, 1 - 1e-6))

    def support(self, y):
        return y


def _clip_threshold(name, threshold, sdr_db, reference, clip_fn):
    if (threshold is None) == (sdr_db is None):
        raise ValueError(f"{name}: pass exactly one of threshold= or sdr_db= (with reference=)")
    if sdr_db is not None:
        _require(reference is not None, f"{name}: sdr_db= needs the clean reference= [B, ...] to solve "
                 "for the threshold")
        return jnp.asarray(threshold_for_sdr(np.asarray(reference), float(sdr_db), clip_fn))
    t = np.asarray(threshold, np.float32)
    _require(bool(np.all(t > 0)), f"{name}: threshold must be > 0, got {threshold}")
    return jnp.asarray(t)


@register_operator("hard_clip", builds=HardClip)
def hard_clip(*, threshold=None, sdr_db: Optional[float] = None, reference=None,
              noise_sigma: float = 0.0) -> HardClip:
    """Hard clipping at `threshold` (scalar or `[B]`), or at the per-example threshold giving
    `sdr_db` on the clean `reference` `[B, ...]`."""
    t = _clip_threshold("hard_clip", threshold, sdr_db, reference, _np_hard_clip)
    return HardClip(threshold=t, noise_sigma=float(noise_sigma))


@register_operator("soft_clip", builds=SoftClip)
def soft_clip(*, threshold=None, sdr_db: Optional[float] = None, reference=None,
              noise_sigma: float = 0.0) -> SoftClip:
    """tanh saturation `t tanh(x / t)`, at `threshold` or at a target `sdr_db` on `reference`."""
    t = _clip_threshold("soft_clip", threshold, sdr_db, reference, _np_soft_clip)
    return SoftClip(threshold=t, noise_sigma=float(noise_sigma))

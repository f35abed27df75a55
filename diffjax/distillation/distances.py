"""Distances `d(x, y) -> [B]` between a student's output and its (stop-gradient) target.

    'l2'            mean over dimensions of (x - y)^2          (Song et al. 2023, sec. 5)
    'l1'            mean over dimensions of |x - y|            (Song et al. 2023, sec. 5)
    'pseudo_huber'  sqrt(||x - y||^2 + c^2) - c, c = 0.00054 sqrt(d)
                    (Charbonnier et al. 1997; Song & Dhariwal 2023, sec. 3.3, d = data dimension)
    'mrstft'        multi-resolution STFT distance of waveforms [B, L, C]: spectral convergence +
                    log-magnitude L1, averaged over resolutions (Yamamoto et al. 2020, eqs. 1-3;
                    `diffjax.audio.metrics.multires_stft`), the perceptual distance for audio in the
                    role LPIPS plays for images.

Each is a frozen dataclass with its knobs; `needs_waveform` says whether model-space arrays must be
decoded to audio first (the distillation objective does that through the codec).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import jax
import jax.numpy as jnp

from diffjax.audio.metrics import multires_stft
from diffjax.registry import Registry

Array = jax.Array

DISTANCES = Registry("consistency distance")


def _flat(x: Array) -> Array:
    return x.reshape(x.shape[0], -1)


@DISTANCES.register("l2")
@dataclasses.dataclass(frozen=True)
class L2:
    needs_waveform = False

    def __call__(self, x: Array, y: Array) -> Array:
        return jnp.mean(_flat(x - y) ** 2, axis=1)


@DISTANCES.register("l1")
@dataclasses.dataclass(frozen=True)
class L1:
    needs_waveform = False

    def __call__(self, x: Array, y: Array) -> Array:
        return jnp.mean(jnp.abs(_flat(x - y)), axis=1)


@DISTANCES.register("pseudo_huber")
@dataclasses.dataclass(frozen=True)
class PseudoHuber:
    """`sqrt(||x - y||_2^2 + c^2) - c`; `c` defaults to `0.00054 sqrt(d)` (iCT, sec. 3.3)."""

    c: Optional[float] = None
    needs_waveform = False

    def constant(self, dim: int) -> float:
        return 0.00054 * math.sqrt(dim) if self.c is None else float(self.c)

    def __call__(self, x: Array, y: Array) -> Array:
        diff = _flat(x - y)
        c = self.constant(diff.shape[1])
        return jnp.sqrt(jnp.sum(diff**2, axis=1) + c**2) - c


@DISTANCES.register("mrstft")
@dataclasses.dataclass(frozen=True)
class MultiResolutionSTFT:
    """Multi-resolution STFT distance of waveforms `[B, L, C]` (target `y` as the reference)."""

    resolutions: tuple = ((512, 128), (1024, 256), (2048, 512))
    needs_waveform = True

    def __call__(self, x: Array, y: Array) -> Array:
        if x.ndim != 3:
            raise ValueError(f"distance 'mrstft' needs waveforms [B, L, C], got shape {x.shape}")
        resolutions = tuple(tuple(int(v) for v in r) for r in self.resolutions)
        return multires_stft(y, x, resolutions=resolutions)


def get_distance(name: str, **kwargs):
    """Builds the distance registered as `name` ('l1', 'l2', 'mrstft', 'pseudo_huber')."""
    return DISTANCES.get(name)(**kwargs)

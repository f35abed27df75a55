"""Timing conditioning (Stable Audio, Evans et al. 2024, sec. 3.2): `seconds_start` (where the crop
begins in its file) and `seconds_total` (how long the file's real audio is), each embedded by a
learned number embedding and concatenated into the network's global conditioning vector.

    timing = get_conditioner("timing", max_seconds=1.0)
    value = {"seconds_start": [B], "seconds_total": [B]}    # seconds; < 0: null
    timing.embedder()(value)["global"]                      # [B, 2 * width]

Trained on padded variable-length clips, the model learns to fall silent after `seconds_total`;
at sampling time `--seconds S` asks for a piece of S seconds.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.conditioners.base import CONDITIONERS, AbstractConditioner

Array = jax.Array
TIMING_KEYS = ("seconds_start", "seconds_total")


class NumberEmbedding(nn.Module):
    """A scalar in seconds `[B]` -> `[B, width]` (Stable Audio's NumberConditioner): normalised to
    `u = clip(v / max_seconds, 0, 1)`, then learned Fourier features `[u, sin(2 pi u w), cos(2 pi u w)]`
    (`w` learned, Crowson's LearnedPositionalEmbedding) and a Dense layer. A negative value is the
    null value, embedded as a learned vector."""

    width: int
    max_seconds: float
    num_frequencies: int = 64

    @nn.compact
    def __call__(self, seconds: Array) -> Array:
        seconds = jnp.asarray(seconds, jnp.float32)
        u = jnp.clip(seconds / self.max_seconds, 0.0, 1.0)[:, None]
        w = self.param("frequencies", nn.initializers.normal(1.0), (self.num_frequencies,))
        angles = 2.0 * math.pi * u * w[None, :]
        features = jnp.concatenate([u, jnp.sin(angles), jnp.cos(angles)], axis=-1)
        embedded = nn.Dense(self.width, name="proj")(features)
        null = self.param("null", nn.initializers.normal(0.02), (self.width,))
        return jnp.where(seconds[:, None] < 0, null[None, :], embedded)


class TimingEmbedder(nn.Module):
    """`{"seconds_start": [B], "seconds_total": [B]}` -> `{"global": [B, 2 * width]}`."""

    width: int
    max_seconds: float

    @nn.compact
    def __call__(self, value: Mapping[str, Array]) -> dict:
        parts = [NumberEmbedding(self.width, self.max_seconds, name=key)(value[key]) for key in TIMING_KEYS]
        return {"global": jnp.concatenate(parts, axis=-1)}


@CONDITIONERS.register("timing")
@dataclasses.dataclass(frozen=True)
class TimingConditioner(AbstractConditioner):
    """`seconds_start` and `seconds_total` (float32 [B] each, seconds); null: -1 (a learned vector).

    Attributes:
      max_seconds: the longest time embedded distinctly (Stable Audio: 512 s); defaults to the
        model's window, from the data (`max_seconds` context).
      width: features per number.
      dropout: per example, both numbers replaced by the null value in training.
    """

    max_seconds: float
    width: int = 64
    dropout: float = 0.1
    learns_padding: ClassVar[bool] = True  # the loss covers the silence after seconds_total

    def __post_init__(self):
        if not self.max_seconds or self.max_seconds <= 0:
            raise ValueError(f"conditioning.timing.max_seconds must be > 0 seconds, got {self.max_seconds}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"conditioning.timing.dropout must be in [0, 1), got {self.dropout}")

    def null(self, batch_size: int) -> dict:
        return {key: jnp.full((batch_size,), -1.0, jnp.float32) for key in TIMING_KEYS}

    def host_value(self, batch: Mapping[str, Any]):
        if not all(key in batch for key in TIMING_KEYS):
            return None
        return {key: np.asarray(batch[key], np.float32) for key in TIMING_KEYS}

    def train_value(self, value: dict, x0: Array, key: Array) -> dict:
        return value

    def network_inputs(self, value: dict) -> dict:
        return {"timing": {key: jnp.asarray(value[key], jnp.float32) for key in TIMING_KEYS}}

    def network_kwargs(self) -> dict:
        return {"global_dim": 2 * int(self.width)}

    def embedder(self) -> nn.Module:
        return TimingEmbedder(width=int(self.width), max_seconds=float(self.max_seconds))

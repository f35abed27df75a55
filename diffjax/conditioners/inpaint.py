"""Trained inpainting and continuation (Stable Audio's inpainting model; JEN-1, Li et al. 2024):
the known part of the example and its mask, concatenated to the network's input channels.

    inpaint = get_conditioner("inpaint", latent_shape=(63, 128))
    value = {"known": z [B, T, ...], "mask": [B, T]}   # mask 1 where z is known, 0 where generated
    inpaint.embedder()(value)["concat"]                # [B, T, prod(rest) + 1]: z * mask, mask

In training the masks are drawn per example (`train_value`) from three kinds, in proportions set
by the config:
- segment: one gap of 1..max_gap_fraction*T frames at a random place (inpainting);
- causal: a known prefix of 1..T-1 frames, the rest generated (continuation, long-form);
- full: nothing known (the null value: unconditional generation from the same model).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.conditioners.base import CONDITIONERS, AbstractConditioner

Array = jax.Array
MASK_KINDS = ("segment", "causal", "full")


def draw_masks(key: Array, batch: int, frames: int, probabilities: tuple[float, float, float],
               max_gap_fraction: float) -> Array:
    """Known-frame masks `[B, T]` (1 known, 0 generated), one kind per example drawn with
    `probabilities` over `MASK_KINDS`."""
    k_kind, k_len, k_start = jax.random.split(key, 3)
    kind = jax.random.choice(k_kind, 3, (batch,), p=jnp.asarray(probabilities))
    t = jnp.arange(frames)[None, :]
    max_gap = max(1, int(max_gap_fraction * frames))
    gap = jax.random.randint(k_len, (batch, 1), 1, max_gap + 1)
    start = jnp.floor(jax.random.uniform(k_start, (batch, 1)) * (frames - gap + 1)).astype(jnp.int32)
    segment = ~((t >= start) & (t < start + gap))
    prefix = jax.random.randint(jax.random.fold_in(k_len, 1), (batch, 1), 1, max(frames, 2))
    causal = t < prefix
    masks = jnp.select([kind[:, None] == 0, kind[:, None] == 1], [segment, causal], jnp.zeros_like(segment))
    return masks.astype(jnp.float32)


class InpaintEmbedder(nn.Module):
    """`{"known" [B, T, ...], "mask" [B, T]}` -> `{"concat": [B, T, prod(rest) + 1]}`."""

    @nn.compact
    def __call__(self, value: Mapping[str, Array]) -> dict:
        known, mask = jnp.asarray(value["known"], jnp.float32), jnp.asarray(value["mask"], jnp.float32)
        b, t = mask.shape
        known = known.reshape(b, t, -1) * mask[:, :, None]
        return {"concat": jnp.concatenate([known, mask[:, :, None]], axis=-1)}


@CONDITIONERS.register("inpaint")
@dataclasses.dataclass(frozen=True)
class InpaintConditioner(AbstractConditioner):
    """Known model-space frames and their mask; not in the dataset: drawn in training from `x0`.

    Attributes:
      latent_shape: one example in model space (frames first; from the model).
      segment, causal, full: proportions of the three mask kinds in training (normalised).
      max_gap_fraction: the longest segment gap, as a fraction of the window.
      dropout: extra probability of the null value (nothing known) on top of `full`.
    """

    latent_shape: tuple
    segment: float = 0.4
    causal: float = 0.4
    full: float = 0.2
    max_gap_fraction: float = 0.5
    dropout: float = 0.0
    guided: ClassVar[bool] = False  # the known audio stays in both CFG branches

    def __post_init__(self):
        weights = (self.segment, self.causal, self.full)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"conditioning.inpaint: segment, causal and full are proportions >= 0 with a positive "
                             f"sum; got {weights}")
        if not 0.0 < self.max_gap_fraction <= 1.0:
            raise ValueError(f"conditioning.inpaint.max_gap_fraction must be in (0, 1], got {self.max_gap_fraction}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"conditioning.inpaint.dropout must be in [0, 1), got {self.dropout}")

    @property
    def num_frames(self) -> int:
        return int(self.latent_shape[0])

    @property
    def probabilities(self) -> tuple[float, float, float]:
        total = self.segment + self.causal + self.full
        return (self.segment / total, self.causal / total, self.full / total)

    def null(self, batch_size: int) -> dict:
        return {"known": jnp.zeros((batch_size,) + tuple(self.latent_shape)),
                "mask": jnp.zeros((batch_size, self.num_frames))}

    def host_value(self, batch: Mapping[str, Any]) -> None:
        return None  # drawn on device from the data itself (train_value)

    def train_value(self, value: dict, x0: Array, key: Array) -> dict:
        mask = draw_masks(key, x0.shape[0], self.num_frames, self.probabilities, float(self.max_gap_fraction))
        return {"known": x0 * mask.reshape(mask.shape + (1,) * (x0.ndim - 2)), "mask": mask}

    def network_inputs(self, value: dict) -> dict:
        return {"inpaint": {"known": jnp.asarray(value["known"], jnp.float32),
                            "mask": jnp.asarray(value["mask"], jnp.float32)}}

    def network_kwargs(self) -> dict:
        return {}

    def embedder(self) -> nn.Module:
        return InpaintEmbedder()


def frame_mask(num_frames: int, frames_per_second: float, start_seconds: float, end_seconds: float,
               clip_seconds: float) -> Array:
    """The known-frame mask `[T]` of an inpainting request: frames whose centre lies in
    `[start_seconds, end_seconds)` are generated. A range outside the clip raises, naming its length."""
    if not 0.0 <= start_seconds < end_seconds <= clip_seconds + 1e-9:
        raise ValueError(f"the mask [{start_seconds}, {end_seconds}) s must satisfy 0 <= start < end <= "
                         f"{clip_seconds:g} s, the clip's length")
    centres = (jnp.arange(num_frames) + 0.5) / frames_per_second
    generated = (centres >= start_seconds) & (centres < end_seconds)
    if not math.isfinite(frames_per_second) or not bool(jnp.any(generated)):
        raise ValueError(f"the mask [{start_seconds}, {end_seconds}) s covers no model frame "
                         f"({frames_per_second:.1f} frames/s); widen it")
    return (~generated).astype(jnp.float32)

"""A backbone network plus the embedders of its conditioners (stable-audio-tools'
`ConditionedDiffusionModelWrapper` with its `MultiConditioner`, as one flax module).

    net = ConditionedNetwork(backbone=dit, embedder_names=("text", "timing"), embedders=(text_emb, timing_emb))
    net.apply({"params": p}, x, c_noise, {"text": {...}, "timing": {...}, "label": [B]})

Each embedder maps its condition to any of
- "global" [B, G_i]: concatenated over embedders into the backbone's `cond["global"]` [B, sum G_i];
- "tokens" [B, S_i, D] and "tokens_mask" [B, S_i]: concatenated along S into `cond["tokens"]`;
- "concat" [B, T, C_i]: concatenated along channels into `cond["concat"]` (frame-aligned inputs).
Entries without an embedder (the class label) pass to the backbone unchanged.
"""
from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def _join(parts: list, axis: int) -> Optional[Array]:
    return None if not parts else jnp.concatenate(parts, axis=axis)


class ConditionedNetwork(nn.Module):
    """`F(x, c_noise, cond)` of a backbone whose conditions are first embedded by learned modules."""

    backbone: nn.Module
    embedder_names: tuple[str, ...]
    embedders: tuple[nn.Module, ...]

    @nn.compact
    def __call__(self, x: Array, c_noise: Array, cond: Optional[dict] = None) -> Array:
        cond = dict(cond or {})
        merged = {k: v for k, v in cond.items() if k not in self.embedder_names}
        pieces: dict[str, list] = {"global": [], "tokens": [], "tokens_mask": [], "concat": []}
        for name, embedder in zip(self.embedder_names, self.embedders):
            out = embedder(cond[name])
            for key, value in out.items():
                pieces[key].append(value)
        for key, axis in (("global", -1), ("tokens", 1), ("tokens_mask", 1), ("concat", -1)):
            joined = _join(pieces[key], axis)
            if joined is not None:
                merged[key] = joined
        return self.backbone(x, c_noise, merged)


def conditioned_network(backbone: nn.Module, conditioners: dict) -> Any:
    """The backbone alone when no conditioner has an embedder (parameter trees stay those of the
    backbone), else a `ConditionedNetwork` with one embedder per such conditioner (sorted by name)."""
    embedders = [(name, c.embedder()) for name, c in sorted(conditioners.items())]
    embedders = [(name, e) for name, e in embedders if e is not None]
    if not embedders:
        return backbone
    return ConditionedNetwork(backbone=backbone, embedder_names=tuple(n for n, _ in embedders),
                              embedders=tuple(e for _, e in embedders))

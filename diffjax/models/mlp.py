"""A small residual MLP score network for vector (toy) data `[B, D]`."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.models.base import MODELS
from diffjax.models.layers import conditioning_embedding


@MODELS.register("mlp")
class MLP(nn.Module):
    """Residual MLP: x -> Dense(width) -> depth x [LayerNorm, +emb, SiLU, Dense, residual] -> Dense(D).

    Attributes:
      width: hidden width.
      depth: number of residual blocks.
      num_classes: > 0 adds a class embedding with a null class (classifier-free guidance).
      dtype: compute dtype; parameters stay float32.
    """

    width: int = 128
    depth: int = 3
    num_classes: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, c_noise: jax.Array, cond: dict | None = None) -> jax.Array:
        emb = conditioning_embedding(c_noise, cond, dim=self.width, num_classes=self.num_classes,
                                     dtype=self.dtype)
        h = nn.Dense(self.width, dtype=self.dtype, name="input")(x.astype(self.dtype))
        for i in range(self.depth):
            u = nn.LayerNorm(dtype=self.dtype, name=f"norm_{i}")(h)
            u = u + nn.Dense(self.width, dtype=self.dtype, name=f"emb_{i}")(emb)
            u = nn.Dense(self.width, dtype=self.dtype, name=f"dense_{i}")(nn.silu(u))
            h = h + u
        out = nn.Dense(x.shape[-1], dtype=self.dtype, name="output",
                       kernel_init=nn.initializers.zeros)(nn.silu(h))
        return out.astype(x.dtype)

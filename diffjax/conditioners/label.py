"""The class-label conditioner: the data's 'label' through the network's own class embedding."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.conditioners.base import CONDITIONERS, AbstractConditioner

Array = jax.Array


@CONDITIONERS.register("label")
@dataclasses.dataclass(frozen=True)
class LabelConditioner(AbstractConditioner):
    """A class label `int32 [B]` in `[0, num_classes)`; the null class is `num_classes` (an extra
    embedding row the network learns through dropout)."""

    num_classes: int
    dropout: float = 0.1

    def __post_init__(self):
        if int(self.num_classes) < 1:
            raise ValueError(f"conditioning.label.num_classes must be >= 1, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"conditioning.label.dropout must be in [0, 1), got {self.dropout}")

    def null(self, batch_size: int) -> Array:
        return jnp.full((batch_size,), self.num_classes, jnp.int32)

    def host_value(self, batch: Mapping[str, Any]):
        return None if "label" not in batch else np.asarray(batch["label"], np.int32)

    def train_value(self, value: Array, x0: Array, key: Array) -> Array:
        return value

    def network_inputs(self, value: Array) -> dict:
        return {"label": jnp.asarray(value, jnp.int32)}

    def network_kwargs(self) -> dict:
        return {"num_classes": int(self.num_classes)}

    def embedder(self) -> None:
        return None

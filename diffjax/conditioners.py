"""Conditioning as data: a condition is a pytree `{name: value [B, ...]}` (e.g. `{"label": [B]}`),
and a conditioner per name turns its raw value into network inputs and owns its null value.

    label = get_conditioner("label", num_classes=9, dropout=0.1)
    cond = {"label": jnp.array([3, 5])}
    label.network_inputs(cond["label"])   # {"label": int32 [B]} -> the network's `cond` dict
    label.null(2)                         # [9, 9]: the null class, for CFG and dropout
    label.network_kwargs()                # {"num_classes": 9}: what the network must be built with

A new kind of condition (text, timing, notes, a mask) is one `AbstractConditioner` subclass
registered in `CONDITIONERS`; the model object, the train step's condition dropout
(Ho & Salimans 2022, sec. 3.2) and the guidance wrappers need nothing new.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp

from diffjax.registry import Registry

Array = jax.Array
CONDITIONERS = Registry("conditioner")


class AbstractConditioner(abc.ABC):
    """One named condition: its null value, its dropout, and its network inputs.

    Attributes (on every implementation):
      dropout: probability, per example, of replacing the condition by its null value in
        training (classifier-free guidance needs the unconditional model too).
    """

    dropout: float

    @abc.abstractmethod
    def null(self, batch_size: int) -> Any:
        """The null condition of a batch (CFG's unconditional branch): a pytree with leading `[B]`."""

    @abc.abstractmethod
    def network_inputs(self, value: Any) -> dict:
        """Raw condition `[B, ...]` -> entries of the network's `cond` dict."""

    @abc.abstractmethod
    def network_kwargs(self) -> dict:
        """Constructor arguments the network needs for this condition (e.g. a class count)."""

    def drop(self, value: Any, dropped: Array) -> Any:
        """`value` with the examples where `dropped` `[B]` (bool) is True replaced by the null value."""
        null = self.null(dropped.shape[0])

        def pick(v, n):
            where = dropped.reshape(dropped.shape + (1,) * (jnp.ndim(v) - 1))
            return jnp.where(where, n, v)

        return jax.tree.map(pick, value, null)


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

    def network_inputs(self, value: Array) -> dict:
        return {"label": jnp.asarray(value, jnp.int32)}

    def network_kwargs(self) -> dict:
        return {"num_classes": int(self.num_classes)}


def get_conditioner(name: str, **kwargs) -> AbstractConditioner:
    """Builds the conditioner registered as `name`; an unknown name lists the valid ones."""
    return CONDITIONERS.build({"name": name, **kwargs})


def build_conditioners(section: Optional[Mapping[str, Any]], **context: Any) -> dict[str, AbstractConditioner]:
    """`config.conditioning` (`{name: kwargs}`; empty: unconditional) -> `{name: conditioner}`.

    `context` (e.g. `num_classes` from the data) fills parameters the section leaves out.
    """
    section = dict(section.to_dict() if callable(getattr(section, "to_dict", None)) else (section or {}))
    return {name: CONDITIONERS.build({"name": name, **dict(kwargs or {})}, **context)
            for name, kwargs in sorted(section.items())}


def null_condition(conditioners: Mapping[str, AbstractConditioner], batch_size: int) -> dict:
    """The null value of every condition, for a batch of `batch_size`."""
    return {name: c.null(batch_size) for name, c in conditioners.items()}


def network_condition(conditioners: Mapping[str, AbstractConditioner], cond: Optional[Mapping],
                      batch_size: int) -> Optional[dict]:
    """A condition pytree -> the network's `cond` dict; missing (or None) entries take their null
    value. None when the model has no conditioners; a name no conditioner owns is an error."""
    if not conditioners:
        if cond:
            raise ValueError(f"the model is unconditional but a condition {sorted(cond)} was given")
        return None
    cond = dict(cond or {})
    unknown = sorted(set(cond) - set(conditioners))
    if unknown:
        raise ValueError(f"no conditioner for {unknown}; this model's conditions: {sorted(conditioners)}")
    inputs = {}
    for name, conditioner in conditioners.items():
        value = cond.get(name)
        inputs.update(conditioner.network_inputs(conditioner.null(batch_size) if value is None else value))
    return inputs


def drop_conditions(conditioners: Mapping[str, AbstractConditioner], cond: Mapping, key: Array) -> dict:
    """Replaces each condition by its null value with its conditioner's `dropout` probability,
    independently per example and per condition (CFG training, Ho & Salimans 2022)."""
    out = {}
    for index, (name, conditioner) in enumerate(sorted(conditioners.items())):
        value = cond[name]
        batch = jax.tree.leaves(value)[0].shape[0]
        dropped = jax.random.bernoulli(jax.random.fold_in(key, index), conditioner.dropout, (batch,))
        out[name] = conditioner.drop(value, dropped)
    return out

"""Conditioning as data: a condition is a pytree `{name: value [B, ...]}` (e.g. `{"label": [B]}`,
`{"text": {"ids": [B, S], "mask": [B, S]}}`), and a conditioner per name owns its null value and
turns its value into network inputs.

    label = get_conditioner("label", num_classes=9, dropout=0.1)
    cond = {"label": jnp.array([3, 5])}
    label.network_inputs(cond["label"])   # {"label": int32 [B]} -> the network's `cond` dict
    label.null(2)                         # [9, 9]: the null class, for CFG and dropout
    label.network_kwargs()                # {"num_classes": 9}: what the network must be built with

A value goes through three stages:
1. `host_value(batch)` on the host (numpy): a dataset batch -> the value (captions -> token ids,
   note events -> a piano roll); None where the value is made on device (inpainting masks).
2. `train_value(value, x0, key)` inside the jitted train step: the value the network sees in
   training (the inpainting conditioner draws its masks here from `x0`).
3. `network_inputs(value)`: entries of the network's `cond` dict. A conditioner with learned
   parameters of its own (a text encoder, number embeddings) returns `{name: value}` and supplies
   an `embedder()` flax module that `ConditionedNetwork` calls (`diffjax.conditioners.network`).

The model object, the train step's condition dropout (Ho & Salimans 2022, sec. 3.2) and the
guidance wrappers are written once over this interface.
"""
from __future__ import annotations

import abc
from typing import Any, ClassVar, Mapping, Optional

import jax
import jax.numpy as jnp

from diffjax.registry import Registry

Array = jax.Array
CONDITIONERS = Registry("conditioner")


class AbstractConditioner(abc.ABC):
    """One named condition: its null value, its dropout, and how a value reaches the network.

    Attributes (on every implementation):
      dropout: probability, per example, of replacing the condition by its null value in
        training (classifier-free guidance needs the unconditional model too).
      guided: whether a single CFG scale applies to this condition (False for an inpainting mask:
        the known audio stays in both branches). Per-condition scales may still name it.
      learns_padding: whether the model must see padded clips whole, so that the loss covers the
        silence after the real audio (timing: Stable Audio learns to stop at `seconds_total`).
    """

    dropout: float
    guided: ClassVar[bool] = True
    learns_padding: ClassVar[bool] = False

    @abc.abstractmethod
    def null(self, batch_size: int) -> Any:
        """The null condition of a batch (CFG's unconditional branch): a pytree with leading `[B]`."""

    @abc.abstractmethod
    def host_value(self, batch: Mapping[str, Any]) -> Any:
        """A host-side dataset batch (numpy; may hold strings) -> this condition's value, or None
        when the batch lacks it (then the null value is used, or `train_value` makes one)."""

    @abc.abstractmethod
    def train_value(self, value: Any, x0: Array, key: Array) -> Any:
        """The value the network sees in training, given the model-space data `x0 [B, ...]`."""

    @abc.abstractmethod
    def network_inputs(self, value: Any) -> dict:
        """A value `[B, ...]` -> entries of the network's `cond` dict."""

    @abc.abstractmethod
    def network_kwargs(self) -> dict:
        """Constructor arguments the network needs (e.g. a class count; a `global_dim` is summed over
        conditioners by `merge_network_kwargs`)."""

    @abc.abstractmethod
    def embedder(self) -> Any:
        """A flax module `value -> {"global" [B, G], "tokens" [B, S, D], "tokens_mask" [B, S],
        "concat" [B, T, C]}` (any subset) for conditioners whose `network_inputs` is `{name: value}`;
        None for conditioners that feed the network directly (the label)."""

    def drop(self, value: Any, dropped: Array) -> Any:
        """`value` with the examples where `dropped` `[B]` (bool) is True replaced by the null value."""
        null = self.null(dropped.shape[0])

        def pick(v, n):
            where = dropped.reshape(dropped.shape + (1,) * (jnp.ndim(v) - 1))
            return jnp.where(where, n, v)

        return jax.tree.map(pick, value, null)


def get_conditioner(name: str, **kwargs) -> AbstractConditioner:
    """Builds the conditioner registered as `name`; an unknown name lists the valid ones."""
    return CONDITIONERS.build({"name": name, **kwargs})


def build_conditioners(section: Optional[Mapping[str, Any]], **context: Any) -> dict[str, AbstractConditioner]:
    """`config.conditioning` (`{name: kwargs}`; empty: unconditional) -> `{name: conditioner}`.

    `context` fills parameters the section leaves out where a conditioner takes them: the data's
    `num_classes`, the model space's `latent_shape`, `frames_per_second`, `max_seconds`, and the
    text conditioner's trained `tokenizer` (supplied by the jobs layer).
    """
    section = dict(section.to_dict() if callable(getattr(section, "to_dict", None)) else (section or {}))
    return {name: CONDITIONERS.build({"name": name, **dict(kwargs or {})}, **context)
            for name, kwargs in sorted(section.items())}


def merge_network_kwargs(conditioners: Mapping[str, AbstractConditioner]) -> dict:
    """Every conditioner's `network_kwargs`, merged: `global_dim` is summed (the embedders' global
    vectors are concatenated); any other key must agree between conditioners."""
    merged: dict = {}
    for name, conditioner in sorted(conditioners.items()):
        for key, value in conditioner.network_kwargs().items():
            if key == "global_dim":
                merged[key] = merged.get(key, 0) + int(value)
            elif key in merged and merged[key] != value:
                raise ValueError(f"conditioner {name!r} needs {key}={value} but another conditioner needs "
                                 f"{merged[key]}; make their widths agree (conditioning.{name})")
            else:
                merged[key] = value
    return merged


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


def host_condition(conditioners: Mapping[str, AbstractConditioner], batch: Mapping[str, Any]) -> dict:
    """A host batch -> `{name: value}` for the conditions it carries (numpy; no strings left)."""
    values = {name: c.host_value(batch) for name, c in conditioners.items()}
    return {name: value for name, value in values.items() if value is not None}


def training_condition(conditioners: Mapping[str, AbstractConditioner], cond: Mapping, x0: Array,
                       key: Array) -> dict:
    """Each condition as the network sees it in training (`train_value`), null where absent."""
    out = {}
    for index, (name, conditioner) in enumerate(sorted(conditioners.items())):
        value = cond.get(name)
        if value is None:
            value = conditioner.null(x0.shape[0])
        out[name] = conditioner.train_value(value, x0, jax.random.fold_in(key, index))
    return out


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

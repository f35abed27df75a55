"""The dataset interface and registry: toy distributions (`diffjax.toy`) and audio datasets
(`diffjax.audio.datasets`) register themselves in `DATASETS` when they are imported.

Every dataset implements `AbstractDataset`:

    ds = build_dataset(config.data)          # DATASETS.build: unknown keys are an error
    batch = ds.batch(step, batch_size, seed=0, process_index=0, process_count=1)
    batch["x"]      # the data [b, ...]: waveforms float32 [b, L, C] in [-1, 1]; vectors [b, D]
    batch["mask"]   # float32, broadcastable to x, last axis 1: [b, L, 1] (audio), [b, 1] (vectors)
    batch["label"]  # int32 [b], and other named per-example attributes ("pitch", "index", ...)
    ds.example_shape, ds.sample_rate, ds.num_classes, ds.class_names, ds.eval, ds.closed_form

`batch` is this host's share `b = batch_size // process_count` of the global batch of `step`, a
pure function of `(seed, step, process_index, process_count)`: a resumed run sees the same data,
and the global batch does not depend on the number of hosts.

This module holds only the interface and the registry (no heavy imports, no imports of the
providers): code that builds datasets by name imports `diffjax.toy` and `diffjax.audio` first.
"""
from __future__ import annotations

import abc
from typing import Any, Mapping

from diffjax.registry import Registry

DATASETS = Registry("dataset")


class AbstractDataset(abc.ABC):
    """A source of training batches with one batch method and one batch layout (module docstring)."""

    @abc.abstractmethod
    def batch(self, step: int, batch_size: int, *, seed: int, process_index: int = 0,
              process_count: int = 1) -> dict:
        """This host's share of the global batch of `step`: {'x', 'mask', per-example attributes}."""

    @property
    @abc.abstractmethod
    def example_shape(self) -> tuple[int, ...]:
        """The shape of one example `batch["x"][i]`: (L, C) for audio, (D,) for vectors."""

    @property
    @abc.abstractmethod
    def sample_rate(self) -> int | None:
        """Samples per second of audio data; None for data that is not audio."""

    @property
    @abc.abstractmethod
    def num_classes(self) -> int:
        """The number of values of `batch["label"]` (0: unlabelled)."""

    @property
    @abc.abstractmethod
    def class_names(self) -> tuple[str, ...]:
        """The name of each label value, `num_classes` of them."""

    @property
    @abc.abstractmethod
    def eval(self) -> "AbstractDataset":
        """The evaluation split, with the same interface (disjoint from the training data)."""

    @property
    @abc.abstractmethod
    def closed_form(self) -> Any | None:
        """The exact distribution of the data, where one is known (the toy mixtures: an object with
        `denoiser`, `score`, `log_prob`, ...), else None. Ask this, not the dataset's class."""


def host_share(batch_size: int, process_index: int, process_count: int) -> int:
    """This host's number of examples `batch_size // process_count`, after checking the arguments."""
    if batch_size % process_count:
        raise ValueError(f"batch_size {batch_size} is not divisible by process_count {process_count}")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    return batch_size // process_count


def build_dataset(section: Mapping[str, Any]) -> AbstractDataset:
    """The dataset of a config section (`config.data`): `name`, the keys every dataset takes, and
    one sub-section per dataset for its own keys (`data.folder.root`). A key the chosen dataset does
    not take is an error naming the keys it takes. Import `diffjax.toy` / `diffjax.audio` first."""
    return DATASETS.build(section)


def get_dataset(name: str, **kwargs) -> AbstractDataset:
    """Builds the dataset registered as `name` with its constructor keyword arguments."""
    return DATASETS.get(name)(**kwargs)

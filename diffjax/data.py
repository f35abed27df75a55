"""The dataset registry: toy distributions (`diffjax.toy`) and audio datasets (`diffjax.audio`).

`get_dataset(name, **kwargs)` builds a dataset by config name; an unknown name lists the valid ones.
"""
from __future__ import annotations

import importlib

from diffjax.registry import Registry

DATASETS = Registry("dataset")
_PROVIDERS = ("diffjax.toy", "diffjax.audio")  # importing these registers their datasets


def dataset_builder(name: str):
    """The constructor registered as `name` (an unknown name lists the valid ones)."""
    for module in _PROVIDERS:
        importlib.import_module(module)
    return DATASETS.get(name)


def get_dataset(name: str, **kwargs):
    """Builds the dataset registered as `name` with its constructor keyword arguments."""
    return dataset_builder(name)(**kwargs)

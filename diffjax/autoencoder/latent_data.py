"""A dataset of pre-encoded latents (stable-audio-tools' `pre_encode.py`): the training data is
encoded once by the autoencoder and training batches read the latents.

    examples = pre_encode(dataset, encode, passes=1, batch_size=32)   # {"z": [N, T, D], "label": [N], ...}
    latents = PreEncoded(source=dataset, examples=examples)
    latents.batch(step, 16, seed=0)   # {"z": [16, T, D], "mask": [16, 1, 1], "label": [16], ...}

An example is one crop of the source dataset: `passes` epochs of `source.batch(step, batch_size,
seed=ENCODE_SEED)`, so a dataset with random crops (a folder of long files) contributes `passes`
different crops of each file. Batches follow the same `(seed, step, process)` contract as every
dataset (`diffjax.data`); `eval` is the source's audio evaluation split (samples are measured
against audio). Reading and writing the cache is the jobs layer's (`diffjax.jobs.latents`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import numpy as np

from diffjax.audio.datasets import clip_indices, host_positions
from diffjax.data import AbstractDataset

ENCODE_SEED = 0x1A7E  # the crops that are encoded do not depend on the training seed
ATTRIBUTE_KEYS = ("label", "pitch", "kind", "quality", "velocity", "caption", "seconds_start", "seconds_total",
                  "events")  # per-example attributes kept (the conditions of conditional models)


def pre_encode(dataset: AbstractDataset, encode: Callable, *, passes: int = 1, batch_size: int = 32) -> dict:
    """`passes` epochs of `dataset`'s training crops through `encode(audio [b, L, C]) -> z [b, ...]`.

    Returns {"z": float32 [N, ...], attribute: [N]} with N = passes * len(dataset) (a dataset
    without `len` counts as `batch_size`-sized epochs of one batch).
    """
    if passes < 1:
        raise ValueError(f"pre-encoding needs passes >= 1, got {passes}")
    total = passes * (len(dataset) if hasattr(dataset, "__len__") else batch_size)
    chunks: dict[str, list] = {}
    for step in range(math.ceil(total / batch_size)):
        batch = dataset.batch(step, batch_size, seed=ENCODE_SEED)
        chunks.setdefault("z", []).append(np.asarray(encode(batch["x"]), np.float32))
        for key in ATTRIBUTE_KEYS:
            if key in batch:  # captions as fixed-width unicode: the cache loads without pickle
                value = np.asarray(batch[key])
                chunks.setdefault(key, []).append(value.astype(str) if value.dtype == object else value)
    return {k: np.concatenate(v)[:total] for k, v in chunks.items()}


@dataclasses.dataclass(frozen=True, eq=False)
class PreEncoded(AbstractDataset):
    """Latent training batches from `examples` (see `pre_encode`); everything else from `source`."""

    source: AbstractDataset
    examples: Mapping[str, Any]

    def __len__(self) -> int:
        return int(self.examples["z"].shape[0])

    def batch(self, step: int, batch_size: int, *, seed: int, process_index: int = 0,
              process_count: int = 1) -> dict:
        pos = host_positions(step, batch_size, process_index, process_count)
        idx = clip_indices(pos, len(self), seed)
        z = self.examples["z"][idx]
        out = {k: v[idx] for k, v in self.examples.items()}
        out["mask"] = np.ones((z.shape[0],) + (1,) * (z.ndim - 1), np.float32)
        out["index"] = idx.astype(np.int32)
        return out

    @property
    def example_shape(self) -> tuple[int, ...]:
        return self.source.example_shape  # the audio a latent decodes to

    @property
    def sample_rate(self):
        return self.source.sample_rate

    @property
    def num_classes(self) -> int:
        return self.source.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.source.class_names

    @property
    def eval(self) -> AbstractDataset:
        return self.source.eval

    @property
    def closed_form(self):
        return None

"""Reference features of a dataset split, cached per (embedder, dataset, split, count).

    ref = reference_features(embedder, dataset.eval, num=512, cache_dir=workdir)
    ref["embedding"]   # [N, D]; 'probs' [N, K] for the classifier; 'label' [N] where labelled
    ref["mean"], ref["cov"]   # the Gaussian statistics FD compares against

The features themselves are cached, not only their mean and covariance, because KID and NDB need
examples. The cache key hashes the embedder's `cache_key`, the dataset's constructor fields
(without its cache folder) and the count, so a changed classifier or dataset never reuses stale
statistics. Files are written atomically.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Optional

import numpy as np

from diffjax.evaluation.features import AbstractEmbedder, check_sample_rate, embed_all
from diffjax.evaluation.frechet import gaussian_stats

log = logging.getLogger("diffjax")


def dataset_id(dataset) -> dict:
    """The fields that determine a dataset split's content (not where it caches things)."""
    fields = dataclasses.asdict(dataset) if dataclasses.is_dataclass(dataset) else {}
    fields.pop("cache_dir", None)
    return {"type": type(dataset).__name__, **fields}


def cache_path(cache_dir: str, embedder: AbstractEmbedder, dataset, num: int) -> str:
    key = json.dumps({"embedder": embedder.cache_key, "dataset": dataset_id(dataset), "num": num},
                     sort_keys=True, default=str)
    return os.path.join(cache_dir, "reference", hashlib.sha1(key.encode()).hexdigest()[:16] + ".npz")


def dataset_clips(dataset, *, num: Optional[int] = None, batch_size: int = 64, seed: int = 0):
    """Yields batches covering the first `num` clips of one pass over `dataset` (each once)."""
    num = len(dataset) if num is None else num
    for step in range(-(-num // batch_size)):
        batch = dataset.batch(step, batch_size, seed=seed)
        keep = min(batch_size, num - step * batch_size)
        yield {k: v[:keep] for k, v in batch.items()}


def compute_features(embedder: AbstractEmbedder, dataset, *, num: Optional[int] = None,
                     batch_size: int = 64) -> dict[str, np.ndarray]:
    """Features of the first `num` clips of `dataset` (all by default), plus labels if any."""
    check_sample_rate(embedder, dataset.sample_rate)
    parts, labels = [], []
    for batch in dataset_clips(dataset, num=num, batch_size=batch_size):
        parts.append(embed_all(embedder, batch["x"], batch_size=batch_size))
        if "label" in batch:
            labels.append(batch["label"])
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if labels:
        out["label"] = np.concatenate(labels)
    return out


def reference_features(embedder: AbstractEmbedder, dataset, *, num: Optional[int] = None,
                       cache_dir: Optional[str] = None, batch_size: int = 64
                       ) -> dict[str, np.ndarray]:
    """`compute_features` plus 'mean' and 'cov', loaded from or saved to `cache_dir` if given."""
    num = len(dataset) if num is None else min(num, len(dataset))
    path = cache_path(cache_dir, embedder, dataset, num) if cache_dir else None
    if path and os.path.exists(path):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    out = compute_features(embedder, dataset, num=num, batch_size=batch_size)
    stats = gaussian_stats(out["embedding"])
    out.update(mean=stats.mean, cov=stats.cov)
    if path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}.npz"
        np.savez(tmp, **out)
        os.replace(tmp, path)
        log.info("cached reference features of %s (%d clips) at %s", embedder.cache_key, num, path)
    return out

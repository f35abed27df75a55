"""Reference features of a dataset split (cached per embedder, dataset, split, count) or a folder.

    ref = reference_features(embedder, dataset.eval, num=512, crops_per_clip=8, cache_dir=workdir)
    ref = folder_features(embedder, "my_music", crop_seconds=2.0, max_per_file=32)  # every file's crops
    ref["embedding"]   # [N, D]; 'probs' [N, K] for the classifier; 'label' [N] where labelled
    ref["mean"], ref["cov"]   # the Gaussian statistics FD compares against

The features themselves are cached, not only their mean and covariance, because KID and NDB need
examples. The cache key hashes the embedder's `cache_key`, the dataset's constructor fields
(without its cache folder) and the count, so a changed classifier or dataset never reuses stale
statistics. Files are written atomically.

Many crops per clip: a split of a few long files (an audio folder) would give a few points, and a
one-file eval split a single one, where FD is undefined. `crops_per_clip` draws that many passes
over the split (each pass a new random crop of every file, the dataset's own `batch`), and drops
repeats of one (clip 'index', 'seconds_start'): a dataset of whole clips gives each clip once.
`folder_features` cuts every file of a folder into non-overlapping crops (`audio.crops`) instead.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Optional

import numpy as np

from diffjax.audio import crops as crops_lib
from diffjax.evaluation.features import AbstractEmbedder, check_sample_rate, embed_all
from diffjax.evaluation.frechet import gaussian_stats

log = logging.getLogger("diffjax")


def dataset_id(dataset) -> dict:
    """The fields that determine a dataset split's content (not where it caches things)."""
    fields = dataclasses.asdict(dataset) if dataclasses.is_dataclass(dataset) else {}
    fields.pop("cache_dir", None)
    return {"type": type(dataset).__name__, **fields}


def cache_path(cache_dir: str, embedder: AbstractEmbedder, dataset, num: int) -> str:
    """Where the features of `num` draws of `dataset` by `embedder` are cached."""
    key = json.dumps({"embedder": embedder.cache_key, "dataset": dataset_id(dataset), "num": num},
                     sort_keys=True, default=str)
    return os.path.join(cache_dir, "reference", hashlib.sha1(key.encode()).hexdigest()[:16] + ".npz")


def dataset_clips(dataset, *, num: Optional[int] = None, batch_size: int = 64, seed: int = 0):
    """Yields batches covering the first `num` stream positions of `dataset` (default one pass,
    each clip once); positions past one pass start the next epoch (new random crops)."""
    num = len(dataset) if num is None else num
    for step in range(-(-num // batch_size)):
        batch = dataset.batch(step, batch_size, seed=seed)
        keep = min(batch_size, num - step * batch_size)
        yield {k: v[:keep] for k, v in batch.items()}


def _drop_repeats(batch: dict, seen: set) -> dict:
    """`batch` without examples whose (index, seconds_start) is in `seen` (which it updates)."""
    if "index" not in batch or "seconds_start" not in batch:
        return batch
    keys = list(zip(np.asarray(batch["index"]).tolist(), np.asarray(batch["seconds_start"]).tolist()))
    keep = np.asarray([k not in seen and not seen.add(k) for k in keys], bool)
    return {k: v[keep] for k, v in batch.items()}


def compute_features(embedder: AbstractEmbedder, dataset, *, num: Optional[int] = None,
                     batch_size: int = 64) -> dict[str, np.ndarray]:
    """Features of the first `num` draws of `dataset` (one pass by default) without repeated crops,
    plus labels if any."""
    check_sample_rate(embedder, dataset.sample_rate)
    parts, labels, seen = [], [], set()
    for batch in dataset_clips(dataset, num=num, batch_size=batch_size):
        batch = _drop_repeats(batch, seen)
        if not len(batch["x"]):
            continue
        parts.append(embed_all(embedder, batch["x"], batch_size=batch_size))
        if "label" in batch:
            labels.append(batch["label"])
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if labels:
        out["label"] = np.concatenate(labels)
    return out


def reference_draws(size: int, *, num: Optional[int] = None, crops_per_clip: int = 1) -> int:
    """Stream positions to draw: `crops_per_clip` passes over `size` clips, capped at `num`, and at
    least 2 (FD and KAD need two points; a one-file split gives two crops of its file)."""
    if crops_per_clip < 1:
        raise ValueError(f"crops per clip must be >= 1; got {crops_per_clip}")
    draws = size * int(crops_per_clip)
    return max(2, draws if num is None else min(int(num), draws))


def with_stats(features: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """`features` plus the 'mean' and 'cov' of 'embedding'; fewer than 2 points is a clear error."""
    n = len(features["embedding"])
    if n < 2:
        raise ValueError(f"{source} gives {n} distinct example(s); FD and KAD need at least 2: add "
                         "files, raise the crops per file, or use a split with longer audio")
    stats = gaussian_stats(features["embedding"])
    return {**features, "mean": stats.mean, "cov": stats.cov}


def reference_features(embedder: AbstractEmbedder, dataset, *, num: Optional[int] = None,
                       crops_per_clip: int = 1, cache_dir: Optional[str] = None,
                       batch_size: int = 64) -> dict[str, np.ndarray]:
    """`compute_features` of `reference_draws` positions plus 'mean' and 'cov', loaded from or saved
    to `cache_dir` if given."""
    num = reference_draws(len(dataset), num=num, crops_per_clip=crops_per_clip)
    path = cache_path(cache_dir, embedder, dataset, num) if cache_dir else None
    if path and os.path.exists(path):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    out = with_stats(compute_features(embedder, dataset, num=num, batch_size=batch_size),
                     f"the {getattr(dataset, 'split', '')} split of {type(dataset).__name__}")
    if path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}.npz"
        np.savez(tmp, **out)
        os.replace(tmp, path)
        log.info("cached reference features of %s (%d clips) at %s", embedder.cache_key, num, path)
    return out


def folder_features(embedder: AbstractEmbedder, root: str, *, sample_rate: int, crop_seconds: float,
                    channels: int = 1, max_per_file: Optional[int] = None,
                    max_total: Optional[int] = None, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Features of every non-overlapping crop of every audio file under `root` (`audio.crops`), at
    `sample_rate` (the embedder's rate, where it has one), plus 'mean', 'cov' and 'file' [N] (which
    file each crop came from)."""
    check_sample_rate(embedder, sample_rate)
    parts, files, pending = [], [], []

    def flush(at_least: int) -> None:  # embeds whole batches of the pending crops
        while sum(len(c) for c in pending) >= max(at_least, 1):
            audio = np.concatenate(pending)
            n = min(len(audio), batch_size)
            parts.append(embed_all(embedder, audio[:n], batch_size=batch_size))
            pending[:] = [audio[n:]] if n < len(audio) else []

    for rel, crops in crops_lib.folder_crops(root, sample_rate=sample_rate, crop_seconds=crop_seconds,
                                             channels=channels, max_per_file=max_per_file,
                                             max_total=max_total):
        pending.append(crops)
        files += [rel] * len(crops)
        flush(batch_size)
    flush(1)
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return with_stats({**out, "file": np.asarray(files)}, root)

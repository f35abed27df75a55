"""The pre-encoded latent cache: a latent diffusion model's training data is encoded once by the
autoencoder and reused by every run that trains on the same data with the same autoencoder.

The cache file `<cache_dir>/latents/<key>.npz` is keyed by a hash of the autoencoder's weights
(not its path: retraining or resuming the autoencoder changes the weights and so the key), the data
section (without `cache_dir`), the number of encoded passes and the format version. It is written
atomically; a damaged file is re-encoded with a warning.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time

import jax
import numpy as np

from diffjax.audio.synth import default_cache_dir
from diffjax.autoencoder.latent_data import PreEncoded, pre_encode

log = logging.getLogger("diffjax")
CACHE_VERSION = 1


def cache_key(autoencoder_params, data_section: dict, passes: int) -> str:
    """sha256 over the weights' bytes (in tree order), the data section and `passes`."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(autoencoder_params):
        digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    section = {k: v for k, v in data_section.items() if k != "cache_dir"}
    digest.update(json.dumps({"data": section, "passes": passes, "version": CACHE_VERSION},
                             sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


def _load(path: str):
    try:
        with np.load(path) as archive:
            return {k: archive[k] for k in archive.files}
    except Exception as error:  # noqa: BLE001  (a truncated or damaged file: re-encode)
        log.warning("latent cache %s is unreadable (%s); re-encoding", path, error)
        return None


def _save(path: str, examples: dict) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".npz.tmp", delete=False) as f:
        np.savez(f, **examples)
        temporary = f.name
    os.replace(temporary, path)


def cached_latents(dataset, codec, data_section: dict, *, passes: int = 1, cache_dir: str | None = None,
                   batch_size: int = 32) -> tuple[PreEncoded, str, bool]:
    """`(PreEncoded dataset, cache path, reused)` for `dataset` through `codec` (a codec with
    `encode_once`, e.g. 'latent'); encodes and writes the cache on first use."""
    key = cache_key(codec.autoencoder_params, data_section, passes)
    path = os.path.join(cache_dir or default_cache_dir(), "latents", f"{key}.npz")
    examples = _load(path) if os.path.exists(path) else None
    reused = examples is not None
    if not reused:
        tic = time.time()
        examples = pre_encode(dataset, codec.encode, passes=passes, batch_size=batch_size)
        if jax.process_index() == 0:
            _save(path, examples)
        log.info("encoded %d examples into %s in %.1f s", examples["z"].shape[0], path, time.time() - tic)
    else:
        log.info("reusing the latent cache %s (%d examples)", path, examples["z"].shape[0])
    return PreEncoded(source=dataset, examples=examples), path, reused

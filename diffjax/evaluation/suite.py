"""Every generation metric of a sample set against a reference split, computed in resumable chunks.

    embedders = {"classifier": get_embedder("classifier", classifier=clf),  # a loaded Classifier
                 "mel": get_embedder("mel_stats", sample_rate=sr),
                 "mfcc": get_embedder("mfcc_stats", sample_rate=sr)}
    reference = {k: reference_features(e, dataset, cache_dir=...) for k, e in embedders.items()}
    results = evaluate_generator(generate_fn, embedders=embedders, reference=reference,
                                 num=1000, sample_rate=sr, state_dir=out_dir + "/chunks")

`generate_fn(seeds [b]) -> waveforms [b, L, C]` (or `generate_fn(seeds, labels)` when
`num_classes` > 0: labels cycle through the classes, `label_i = seed_i mod K`, so classes are
balanced). Example i always uses seed `seed_offset + i`, so results do not depend on the chunk size.
Each chunk's features are saved in `state_dir` as soon as they are computed; an interrupted run
skips the chunks already there.

Metrics, per embedder name e (FD/KAD/KID/NDB on any embedder; the rest need class probabilities):
    fd_e, kad_e, kid_e, kid_e_std, ndb_k_e, ndb_js_e (frechet.py, kad.py, kid.py, scores.py)
    fd_e_low, fd_e_high, kad_e_low, kad_e_high       (bootstrap percentiles, with options.bootstrap > 0)
    is, is_std, mis, is_reference                    (classifier probabilities)
    accuracy, mean_class_accuracy, per_class_accuracy (conditional generation only)
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Callable, Optional

import numpy as np
import tqdm

from diffjax.evaluation import distances, frechet, kad, kid, scores
from diffjax.evaluation.features import AbstractEmbedder, check_sample_rate, embed_all

log = logging.getLogger("diffjax")


@dataclasses.dataclass(frozen=True)
class MetricOptions:
    """Knobs of the metrics, with the papers' defaults where they exist."""

    kid_subsets: int = 100       # Bińkowski et al. 2018
    kid_subset_size: int = 1000  # capped at the set sizes
    ndb_bins: int = 20           # K of NDB/K (Richardson & Weiss 2018 use 50-100 for 20k+ images)
    ndb_alpha: float = 0.05
    is_splits: int = 1           # Salimans et al. 2016 use 10 splits of 5000
    kid_standardize: bool = True  # z-score features by the reference before KID (see below)
    kad_scale: float = kad.SCALE  # KAD = scale * MMD_u^2 (Chung et al. 2025's toolkit: 100)
    bootstrap: int = 0           # resamples of FD and KAD for an interval; 0: no interval
    interval: tuple = (5.0, 95.0)  # the bootstrap percentiles reported as *_low, *_high
    seed: int = 0


def _standardize(x: np.ndarray, ref: np.ndarray, enabled: bool) -> tuple[np.ndarray, np.ndarray]:
    """Both sets z-scored per dimension by the reference's mean and std.

    The cubic kernel is not scale invariant: on raw log-mel statistics (magnitudes ~10-100) it is
    dominated by a few large dimensions and KID's variance explodes. Inception/classifier features
    are near unit scale, where this changes little.
    """
    if not enabled:
        return x, ref
    mu, sd = ref.mean(0), ref.std(0) + 1e-8
    return (x - mu) / sd, (ref - mu) / sd


def generation_metrics(features: dict[str, dict], reference: dict[str, dict], *,
                       labels: Optional[np.ndarray] = None,
                       options: MetricOptions = MetricOptions()) -> dict:
    """All metrics of generated `features[e]` against `reference[e]` for each embedder name e.

    Both map names to dicts with 'embedding' [N, D] (and 'probs' [N, K] for a classifier); the
    reference may carry precomputed 'mean' and 'cov'. `labels` [N] are the generation labels.
    """
    out: dict = {}
    for name, feats in features.items():
        ref = reference[name]
        gen_emb, ref_emb = np.asarray(feats["embedding"]), np.asarray(ref["embedding"])
        ref_stats = (frechet.GaussianStats(np.asarray(ref["mean"]), np.asarray(ref["cov"]),
                                           len(ref_emb))
                     if "mean" in ref else frechet.gaussian_stats(ref_emb))
        out[f"fd_{name}"] = frechet.frechet_distance(frechet.gaussian_stats(gen_emb), ref_stats)
        out[f"kad_{name}"] = kad.kernel_audio_distance(gen_emb, ref_emb, scale=options.kad_scale)
        if options.bootstrap > 0:
            for metric, kwargs in (("fd", {}), ("kad", {"scale": options.kad_scale})):
                b = distances.distance_with_interval(metric, gen_emb, ref_emb, num_resamples=options.bootstrap,
                                                     seed=options.seed, percentiles=options.interval, **kwargs)
                out[f"{metric}_{name}_low"], out[f"{metric}_{name}_high"] = b["low"], b["high"]
        k = kid.kernel_distance(*_standardize(gen_emb, ref_emb, options.kid_standardize),
                                num_subsets=options.kid_subsets,
                                subset_size=options.kid_subset_size, seed=options.seed)
        out[f"kid_{name}"], out[f"kid_{name}_std"] = k["kid"], k["kid_std"]
        if len(ref_emb) >= options.ndb_bins:
            n = scores.ndb(gen_emb, ref_emb, num_bins=options.ndb_bins, alpha=options.ndb_alpha,
                           seed=options.seed)
            out[f"ndb_k_{name}"], out[f"ndb_js_{name}"] = n["ndb_k"], n["js"]
        if "probs" in feats:
            out.update(scores.inception_score(feats["probs"], num_splits=options.is_splits))
            out["mis"] = scores.modified_inception_score(feats["probs"])
            if "probs" in ref:
                out["is_reference"] = scores.inception_score(ref["probs"])["is"]
            if labels is not None:
                out.update(scores.class_accuracy(feats["probs"], labels,
                                                 np.asarray(feats["probs"]).shape[1]))
    return out


# ---------------------------------------------------------------------------------------------
# Chunked, resumable sampling and embedding
# ---------------------------------------------------------------------------------------------

def _spec(embedders, num, chunk_size, num_classes, seed_offset) -> dict:
    return {"num": num, "chunk_size": chunk_size, "num_classes": num_classes,
            "seed_offset": seed_offset,
            "embedders": {k: e.cache_key for k, e in sorted(embedders.items())}}


def _check_spec(state_dir: str, spec: dict) -> None:
    """Writes the run's settings on first use; refuses to resume chunks made with other ones."""
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, "spec.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old != spec:
            raise ValueError(f"{state_dir} holds chunks of a different evaluation ({old}); "
                             f"this one is {spec}. Use a fresh directory or delete it.")
        return
    with open(path, "w") as f:
        json.dump(spec, f, indent=1, sort_keys=True)


def _save_chunk(path: str, arrays: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a killed run never leaves a half-written chunk


def _run_chunk(generate_fn, embedders, seeds, labels, sample_rate, batch_size) -> dict:
    audio = np.asarray(generate_fn(seeds) if labels is None else generate_fn(seeds, labels),
                       np.float32)
    if audio.ndim != 3 or len(audio) != len(seeds):
        raise ValueError(f"generate_fn must return waveforms [{len(seeds)}, L, C]; got {audio.shape}")
    bad = ~np.all(np.isfinite(audio), axis=(1, 2))
    audio = np.where(np.isfinite(audio), np.clip(audio, -1.0, 1.0), 0.0)  # NaN -> silence, counted
    arrays = {"seeds": np.asarray(seeds), "nonfinite": bad}
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    for name, emb in embedders.items():
        for key, value in embed_all(emb, audio, batch_size=batch_size).items():
            arrays[f"{name}/{key}"] = value
    return arrays


def evaluate_generator(generate_fn: Callable, *, embedders: dict[str, AbstractEmbedder],
                       reference: dict[str, dict], num: int, sample_rate: int,
                       chunk_size: int = 100,
                       state_dir: Optional[str] = None,  # per-chunk features, for resuming
                       num_classes: int = 0,             # > 0: class-conditional generation
                       seed_offset: int = 0,
                       batch_size: int = 64,             # embedding batch
                       options: MetricOptions = MetricOptions(),
                       progress: bool = False) -> dict:
    """Generates `num` examples chunk by chunk, embeds them, and returns `generation_metrics`
    plus 'num' and 'nonfinite' (examples with NaN/Inf, replaced by silence before embedding)."""
    for emb in embedders.values():
        check_sample_rate(emb, sample_rate)
    if state_dir:
        _check_spec(state_dir, _spec(embedders, num, chunk_size, num_classes, seed_offset))
    chunks = []
    starts = range(0, num, chunk_size)
    for start in tqdm.tqdm(starts, desc="evaluate", disable=not progress):
        path = os.path.join(state_dir, f"chunk_{start // chunk_size:05d}.npz") if state_dir else None
        if path and os.path.exists(path):
            with np.load(path) as f:
                chunks.append({k: f[k] for k in f.files})
            continue
        seeds = np.arange(start, min(start + chunk_size, num)) + seed_offset
        labels = seeds % num_classes if num_classes > 0 else None
        arrays = _run_chunk(generate_fn, embedders, seeds, labels, sample_rate, batch_size)
        if path:
            _save_chunk(path, arrays)
        chunks.append(arrays)
    merged = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    features = {name: {key.split("/", 1)[1]: v for key, v in merged.items()
                       if key.startswith(name + "/")} for name in embedders}
    results = generation_metrics(features, reference, labels=merged.get("labels"), options=options)
    results.update(num=int(len(merged["seeds"])), nonfinite=int(merged["nonfinite"].sum()))
    if results["nonfinite"]:
        log.warning("%d of %d generated examples were not finite", results["nonfinite"], num)
    return results

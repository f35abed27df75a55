"""Paired (reference) metrics of restoration, applied to a whole set: SI-SDR, SNR, LSD, MR-STFT.

The metric functions live in `diffjax.audio.metrics` (shared with restoration); this module only
batches them and summarises them per set, so restoration and generation reports use one table.

    summary = paired_metrics(clean [N, L, C], restored [N, L, C], sample_rate=16000)
    summary["si_sdr"], summary["lsd"], summary["per_example"]["si_sdr"]  # means and [N] arrays
"""
from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
import numpy as np

from diffjax.audio import metrics as audio_metrics


def paired_metrics(reference: np.ndarray, estimate: np.ndarray, *,
                   sample_rate: Optional[int] = None,  # enables PESQ/STOI where installed
                   batch_size: int = 32) -> dict:
    """Means over examples of `diffjax.audio.metrics.reference_metrics` (+ optional PESQ/STOI).

    Returns {'si_sdr', 'snr', 'lsd', 'mrstft', ...: float mean, 'per_example': {name: [N]}}.
    NaN examples of the optional metrics (PESQ guards) are left out of their means.
    """
    reference, estimate = np.asarray(reference, np.float32), np.asarray(estimate, np.float32)
    if reference.shape != estimate.shape or reference.ndim != 3:
        raise ValueError(f"reference and estimate must both be [N, L, C]; got {reference.shape} "
                         f"and {estimate.shape}")
    parts = [audio_metrics.reference_metrics(jnp.asarray(reference[i:i + batch_size]),
                                             jnp.asarray(estimate[i:i + batch_size]))
             for i in range(0, len(reference), batch_size)]
    per_example = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}
    if sample_rate is not None:
        per_example.update({k: np.asarray(v, np.float64) for k, v in
                            audio_metrics.optional_metrics(reference, estimate, sample_rate).items()})
    summary = {k: float(np.nanmean(v)) for k, v in per_example.items()}
    return {**summary, "per_example": per_example}

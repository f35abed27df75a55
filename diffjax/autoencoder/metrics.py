"""How well the autoencoder reconstructs: metrics of a `reference` and an `estimate`, both
[B, L, C], per example [B]; each reuses the project's existing piece.

    si_sdr(reference, estimate)              dB, Le Roux et al. 2019, eqs. 1-3
                                             (`diffjax.audio.metrics.si_sdr`)
    mr_stft_distance(x, y)                   the training loss `multi_resolution_stft_loss`
    log_mel_l1(x, y, sample_rate)            mean |log mel_x - log mel_y| of the 'mel' codec
    log_spectral_distance(x, y)              LSD: mean_t sqrt(mean_f (log10 P_x - log10 P_y)^2)
                                             (NU-Wave, Lee & Han 2021; AudioSR, Liu et al. 2023;
                                             `diffjax.audio.metrics.lsd`)
    reconstruction_report(reference, estimate, sample_rate) -> dict of batch means, with the
                                             pYIN pitch confidence of both
                                             (`diffjax.evaluation.musicality.pitch_confidence`)
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.audio import metrics as audio_metrics
from diffjax.audio.codecs import LogMel
from diffjax.autoencoder.losses import multi_resolution_stft_loss
from diffjax.evaluation.musicality import pitch_confidence

si_sdr = audio_metrics.si_sdr  # `10 log10 ||a s||^2 / ||a s - s_hat||^2`, a = <s_hat, s> / ||s||^2


def mr_stft_distance(x: jax.Array, y: jax.Array) -> jax.Array:
    """The multi-resolution STFT loss with its defaults (see `losses`), [B, L, C] -> [B]."""
    return multi_resolution_stft_loss(x, y)[0]


def log_mel_l1(x: jax.Array, y: jax.Array, sample_rate: int, *, n_fft: int = 1024,
               hop: int = 256, n_mels: int = 80) -> jax.Array:
    """mean |log max(mel_x, 1e-5) - log max(mel_y, 1e-5)| over frames, bands and channels, with
    the 'mel' codec's Slaney filter bank from 20 Hz to Nyquist (DAC's mel distance with one
    resolution and an L1 on natural-log power). [B, L, C] -> [B]."""
    codec = LogMel(sample_rate=sample_rate, n_fft=n_fft, hop=hop, n_mels=n_mels, fmax=None)
    diff = jnp.abs(codec.encode(x) - codec.encode(y))  # [B, T, n_mels, C]
    return jnp.mean(diff, axis=tuple(range(1, diff.ndim)))


def log_spectral_distance(x: jax.Array, y: jax.Array, *, n_fft: int = 2048,
                          hop: int = 512) -> jax.Array:
    """LSD = mean_t sqrt(mean_f (log10 P_x - log10 P_y)^2), P = max(|STFT|^2, 1e-10). -> [B]."""
    return audio_metrics.lsd(x, y, n_fft=n_fft, hop=hop)


@functools.partial(jax.jit, static_argnames="sample_rate")
def _paired_metrics(x: jax.Array, y: jax.Array, sample_rate: int) -> dict[str, jax.Array]:
    return {"si_sdr": si_sdr(x, y), "mr_stft": mr_stft_distance(x, y),
            "log_mel_l1": log_mel_l1(x, y, sample_rate), "lsd": log_spectral_distance(x, y)}


def reconstruction_report(reference, estimate, sample_rate: int) -> dict[str, float]:
    """Batch means of every metric above, plus the pYIN pitch confidence of the reconstructions
    and of the references (a reconstruction that smears pitch scores below its reference).

    Args:
        reference, estimate: [B, L, C] arrays (numpy or jax).
    Returns:
        {'si_sdr', 'mr_stft', 'log_mel_l1', 'lsd', 'pitch_confidence',
         'pitch_confidence_reference'}, floats.
    """
    x, y = jnp.asarray(reference, jnp.float32), jnp.asarray(estimate, jnp.float32)
    report = {k: float(np.mean(np.asarray(v)))
              for k, v in _paired_metrics(x, y, sample_rate=int(sample_rate)).items()}
    report["pitch_confidence"] = pitch_confidence(np.asarray(y), sample_rate)
    report["pitch_confidence_reference"] = pitch_confidence(np.asarray(x), sample_rate)
    return report

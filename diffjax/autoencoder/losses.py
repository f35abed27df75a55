"""Reconstruction losses of the autoencoder: pure functions of a reference `x` and an estimate `y`,
both [B, L, C], each returning a per-example vector [B] (STYLE rule 4).

    multi_resolution_stft_loss(x, y)   spectral convergence + log-magnitude L1, averaged over
                                       STFT resolutions (Yamamoto et al. 2020, eqs. 4-6;
                                       auraloss `MultiResolutionSTFTLoss`)
    waveform_l1(x, y)                  mean |x - y|

The bottleneck's KL term is `diffjax.autoencoder.bottleneck.kl_divergence`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax.audio.codecs import stft

# 16 kHz, 1 s clips: windows of 128 ms (7.8 Hz bins: resolves the harmonics of C2 = 65 Hz) down
# to 4 ms (250 Hz bins: onsets and clicks), one octave apart. Stable Audio's list at 44.1 kHz,
# 2048..32, spans 46..0.7 ms (743..12 samples at 16 kHz); we keep the longer window for the pitch
# of low notes and stop at 64, as a 32-point FFT at 16 kHz has 17 bins of 500 Hz. 1 s gives the
# 2048 resolution 32 frames; shorter clips work too (frames are centred and zero-padded).
DEFAULT_FFT_SIZES = (2048, 1024, 512, 256, 128, 64)
MAGNITUDE_FLOOR = 1e-5  # of the unit-gain STFT: -100 dB re a unit white-noise bin


def _magnitude(x: jax.Array, n_fft: int, hop: int, floor: float) -> jax.Array:
    """max(|STFT(x)|, floor) [B, T, F, C] of the unit-gain centred STFT (`codecs.stft`). The floor
    is applied to the power, so the gradient is finite at silent bins (zero there)."""
    spec = stft(x, n_fft=n_fft, hop=hop, normalized=True)
    power = jnp.real(spec) ** 2 + jnp.imag(spec) ** 2
    return jnp.sqrt(jnp.maximum(power, floor ** 2))


def _sum(x: jax.Array) -> jax.Array:
    return jnp.sum(x, axis=tuple(range(1, x.ndim)))


def spectral_convergence(mag_x: jax.Array, mag_y: jax.Array) -> jax.Array:
    """|| |S_x| - |S_y| ||_F / || |S_x| ||_F per example (Yamamoto et al. 2020, eq. 4).
    mag_x, mag_y [B, T, F, C] -> [B]. For y = a x with a >= 0 it is |1 - a| exactly."""
    return jnp.sqrt(_sum((mag_x - mag_y) ** 2)) / jnp.sqrt(_sum(mag_x ** 2))


def log_magnitude_l1(mag_x: jax.Array, mag_y: jax.Array) -> jax.Array:
    """mean |log |S_x| - log |S_y|| per example (Yamamoto et al. 2020, eq. 5). [B, T, F, C] -> [B]."""
    return jnp.mean(jnp.abs(jnp.log(mag_x) - jnp.log(mag_y)), axis=tuple(range(1, mag_x.ndim)))


def multi_resolution_stft_loss(
        x: jax.Array,
        y: jax.Array,
        *,
        fft_sizes: tuple[int, ...] = DEFAULT_FFT_SIZES,  # n_fft (= window length) per resolution
        hop_fraction: float = 0.25,                      # hop = n_fft * hop_fraction
        floor: float = MAGNITUDE_FLOOR,                  # magnitude floor of the log and of |S|
) -> tuple[jax.Array, dict]:
    """Multi-resolution STFT loss (Yamamoto et al. 2020, Parallel WaveGAN, eqs. 4-6):

        L = 1/M sum_m [ SC_m(x, y) + LogMag_m(x, y) ]

    with the spectral convergence SC and log-magnitude L1 of each resolution m (Hann window of
    n_fft samples, centred, unit gain per bin). Zero iff the floored magnitudes agree.

    Args:
        x: reference [B, L, C]; it normalises the spectral convergence.
        y: estimate [B, L, C].
    Returns:
        (loss [B], per_resolution) where per_resolution maps 'spectral_convergence/<n_fft>' and
        'log_magnitude/<n_fft>' to [B].
    """
    total = jnp.zeros(x.shape[:1], jnp.float32)
    per_resolution = {}
    for n_fft in fft_sizes:
        hop = max(1, int(round(n_fft * hop_fraction)))
        mag_x, mag_y = _magnitude(x, n_fft, hop, floor), _magnitude(y, n_fft, hop, floor)
        sc, log_l1 = spectral_convergence(mag_x, mag_y), log_magnitude_l1(mag_x, mag_y)
        per_resolution[f"spectral_convergence/{n_fft}"] = sc
        per_resolution[f"log_magnitude/{n_fft}"] = log_l1
        total = total + sc + log_l1
    return total / len(fft_sizes), per_resolution


def waveform_l1(x: jax.Array, y: jax.Array) -> jax.Array:
    """mean |x - y| over samples and channels. [B, L, C] -> [B]."""
    return jnp.mean(jnp.abs(x - y), axis=tuple(range(1, x.ndim)))

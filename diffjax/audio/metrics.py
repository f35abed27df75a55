"""Reference metrics between a clean `reference` and an `estimate`, both `[B, L, C]`; per example `[B]`.

    si_sdr(ref, est)     scale-invariant SDR in dB (Le Roux et al. 2019, eqs. 1-3)
    snr(ref, est)        10 log10 ||ref||^2 / ||ref - est||^2 in dB
    lsd(ref, est)        log-spectral distance (Gray & Markel 1976; Kuleshov et al. 2017), in dB-like
                         units of log10 power, with power floor `POWER_FLOOR`, so LSD(x, x) = 0
    multires_stft(...)   multi-resolution STFT distance: spectral convergence + log-magnitude L1,
                         averaged over resolutions (Yamamoto et al. 2020, eqs. 1-3)
    optional_metrics()   PESQ / STOI when their packages are installed (PESQ: 8 or 16 kHz, mono,
                         not all-zero), else {}

All are small jnp functions; batch them under jit.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.audio.codecs import stft

Array = jax.Array

POWER_FLOOR = 1e-10  # -100 dB re full scale: silence contributes no spurious distance
EPS = 1e-12
DEFAULT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop), Parallel WaveGAN's


def _sum(x: Array) -> Array:
    return jnp.sum(x, axis=tuple(range(1, x.ndim)))


def si_sdr(reference: Array, estimate: Array) -> Array:
    """`10 log10 ||a s||^2 / ||a s - s_hat||^2` with `a = <s_hat, s> / ||s||^2` (zero-mean not forced)."""
    scale = _sum(reference * estimate) / (_sum(reference**2) + EPS)
    target = scale.reshape((-1,) + (1,) * (reference.ndim - 1)) * reference
    return 10 * jnp.log10((_sum(target**2) + EPS) / (_sum((target - estimate) ** 2) + EPS))


def snr(reference: Array, estimate: Array) -> Array:
    """`10 log10 ||s||^2 / ||s - s_hat||^2` in dB."""
    return 10 * jnp.log10((_sum(reference**2) + EPS) / (_sum((reference - estimate) ** 2) + EPS))


def _power(x: Array, n_fft: int, hop: int) -> Array:
    return jnp.abs(stft(x, n_fft=n_fft, hop=hop, normalized=False)) ** 2  # [B, T, F, C]


def lsd(reference: Array, estimate: Array, *, n_fft: int = 2048, hop: int = 512,
        floor: float = POWER_FLOOR) -> Array:
    """`mean_t sqrt(mean_f (log10 P - log10 P_hat)^2)` with `P = max(|STFT|^2, floor)`, per example."""
    log_ref = jnp.log10(jnp.maximum(_power(reference, n_fft, hop), floor))
    log_est = jnp.log10(jnp.maximum(_power(estimate, n_fft, hop), floor))
    per_frame = jnp.sqrt(jnp.mean((log_ref - log_est) ** 2, axis=2))  # [B, T, C]
    return jnp.mean(per_frame, axis=(1, 2))


def multires_stft(reference: Array, estimate: Array, *, resolutions=DEFAULT_RESOLUTIONS) -> Array:
    """Mean over resolutions of `||S - S_hat||_F / ||S||_F + mean |log S - log S_hat|` (magnitudes)."""
    total = 0.0
    for n_fft, hop in resolutions:
        mag_ref = jnp.sqrt(_power(reference, n_fft, hop) + 1e-7)
        mag_est = jnp.sqrt(_power(estimate, n_fft, hop) + 1e-7)
        convergence = jnp.sqrt(_sum((mag_ref - mag_est) ** 2)) / (jnp.sqrt(_sum(mag_ref**2)) + EPS)
        log_l1 = jnp.mean(jnp.abs(jnp.log(mag_ref) - jnp.log(mag_est)), axis=(1, 2, 3))
        total = total + convergence + log_l1
    return total / len(resolutions)


@jax.jit
def reference_metrics(reference: Array, estimate: Array) -> dict:
    """All jnp metrics at once: {'si_sdr', 'snr', 'lsd', 'mrstft'}, each `[B]`."""
    return {"si_sdr": si_sdr(reference, estimate), "snr": snr(reference, estimate),
            "lsd": lsd(reference, estimate), "mrstft": multires_stft(reference, estimate)}


def optional_metrics(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> dict:
    """PESQ (wideband at 16 kHz, narrowband at 8 kHz) and STOI per example, where installed.

    Guards: pesq only supports 8/16 kHz and crashes on all-zero input, so those examples get NaN.
    """
    out = {}
    ref = np.asarray(reference, np.float64).mean(axis=-1)  # mono
    est = np.asarray(estimate, np.float64).mean(axis=-1)
    try:
        import pesq as pesq_lib
    except ImportError:
        pesq_lib = None
    if pesq_lib is not None and sample_rate in (8000, 16000):
        mode = "wb" if sample_rate == 16000 else "nb"
        out["pesq"] = [float(pesq_lib.pesq(sample_rate, r, e, mode))
                       if np.any(r) and np.any(e) else float("nan") for r, e in zip(ref, est)]
    try:
        from pystoi import stoi
    except ImportError:
        stoi = None
    if stoi is not None:
        out["stoi"] = [float(stoi(r, e, sample_rate)) for r, e in zip(ref, est)]
    return out

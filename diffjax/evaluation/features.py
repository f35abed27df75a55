"""Embedders: audio [B, L, C] -> per-clip features for FD, KID and NDB; registered in `EMBEDDERS`.

    emb = get_embedder("mel_stats", sample_rate=16000)
    emb = get_embedder("classifier", classifier=clf)   # clf: jobs.classifier.load_classifier(workdir)
    out = emb.embed(audio)        # {'embedding': [B, D]} (+ 'probs' [B, K] for 'classifier')

- 'classifier': the penultimate layer and class probabilities of the project's own classifier
  (`diffjax.evaluation.classifier`, registered there; importing `diffjax.evaluation` registers it),
  the offline stand-in for Inception/VGGish. It takes a loaded `Classifier` (network and
  parameters), never a path: `get_embedder("classifier", classifier=clf)`.
- 'mel_stats': per-band mean and standard deviation over time of the log-mel spectrogram.
- 'mfcc_stats': the same statistics of MFCCs and of their frame-to-frame deltas.
- 'callable': any user function `fn(audio [B, L, C]) -> [B, D]` (e.g. a local VGGish, PANNs or CLAP
  checkpoint), given as a Python callable or as an import string 'package.module:function'.

The hand-crafted statistics need no training and measure timbre and loudness distributions only
(no temporal structure beyond deltas): they are a sanity floor, not a perceptual metric.
Every embedder names its `sample_rate` (None: any rate) and a `cache_key` that identifies its
outputs, so reference features can be cached per dataset split (`reference.py`).
"""
from __future__ import annotations

import abc
import dataclasses
import functools
import importlib
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.audio.codecs import LogMel
from diffjax.registry import Registry

EMBEDDERS = Registry("embedder")


def get_embedder(name: str, /, **kwargs) -> "AbstractEmbedder":
    """Builds the embedder registered as `name` with its keyword arguments."""
    return EMBEDDERS.get(name)(**kwargs)


class AbstractEmbedder(abc.ABC):
    """audio [B, L, C] (float32 in [-1, 1], at `sample_rate`) -> {'embedding': [B, D], ...}."""

    sample_rate: Optional[int]

    @property
    @abc.abstractmethod
    def cache_key(self) -> str:
        """A string that changes whenever the embedder's outputs would."""

    @abc.abstractmethod
    def embed(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """Features of one batch; always has 'embedding' [B, D]."""


def check_sample_rate(embedder: AbstractEmbedder, sample_rate: int) -> None:
    """Raises unless the embedder accepts audio at `sample_rate` (never resample silently)."""
    if embedder.sample_rate is not None and int(embedder.sample_rate) != int(sample_rate):
        raise ValueError(f"{type(embedder).__name__} expects {embedder.sample_rate} Hz audio but "
                         f"got {sample_rate} Hz; resample explicitly (diffjax.audio.io.resample) or "
                         "use an embedder trained at this rate")


def embed_all(embedder: AbstractEmbedder, audio: np.ndarray, *, batch_size: int = 64
              ) -> dict[str, np.ndarray]:
    """`embedder.embed` over `audio` [N, L, C] in batches of exactly `batch_size` (the last one
    zero-padded, so a jitted embedder compiles once per clip length); outputs are [N, ...]."""
    parts = []
    for i in range(0, len(audio), batch_size):
        chunk = np.asarray(audio[i:i + batch_size], np.float32)
        n = len(chunk)
        if n < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:],
                                                    np.float32)])
        parts.append({k: np.asarray(v)[:n] for k, v in embedder.embed(chunk).items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ---------------------------------------------------------------------------------------------
# Hand-crafted spectral statistics
# ---------------------------------------------------------------------------------------------

def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II basis [n_in, n_out]: MFCC_k = sum_m logmel_m C[m, k] (Davis & Mermelstein
    1980; the same transform as scipy.fft.dct(type=2, norm='ortho'))."""
    m = np.arange(n_in)[:, None]
    k = np.arange(n_out)[None, :]
    c = np.cos(np.pi * (m + 0.5) * k / n_in) * np.sqrt(2.0 / n_in)
    c[:, 0] /= np.sqrt(2.0)
    return c.astype(np.float32)


def _mean_std_over_time(z: jax.Array) -> jax.Array:
    """[B, T, F] -> [B, 2F]: mean and standard deviation over frames."""
    return jnp.concatenate([jnp.mean(z, axis=1), jnp.std(z, axis=1)], axis=-1)


def _log_mel_mono(codec: LogMel, audio: jax.Array) -> jax.Array:
    """Log-mel [B, T, n_mels] of the channel-mean (mono) signal."""
    return codec.encode(jnp.mean(audio, axis=-1, keepdims=True))[..., 0]


@EMBEDDERS.register("mel_stats")
@dataclasses.dataclass(frozen=True)
class MelStats(AbstractEmbedder):
    """[mean_t logmel, std_t logmel] per mel band: D = 2 n_mels (natural-log power units)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 64
    fmin: float = 20.0
    fmax: Optional[float] = None  # None: sample_rate / 2

    @functools.cached_property
    def _codec(self) -> LogMel:
        return LogMel(sample_rate=self.sample_rate, n_fft=self.n_fft, hop=self.hop,
                      n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax)

    @property
    def cache_key(self) -> str:
        return f"mel_stats:{dataclasses.astuple(self)}"

    @functools.cached_property
    def _fn(self):
        return jax.jit(lambda a: _mean_std_over_time(_log_mel_mono(self._codec, a)))

    def embed(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        return {"embedding": np.asarray(self._fn(jnp.asarray(audio, jnp.float32)))}


@EMBEDDERS.register("mfcc_stats")
@dataclasses.dataclass(frozen=True)
class MFCCStats(AbstractEmbedder):
    """[mean, std] over time of `n_mfcc` MFCCs and of their deltas: D = 4 n_mfcc.

    MFCC = orthonormal DCT-II of the natural-log mel spectrum; deltas are first differences
    between frames (a simple stand-in for regression deltas, Furui 1986).
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 64
    n_mfcc: int = 20
    fmin: float = 20.0
    fmax: Optional[float] = None

    @property
    def cache_key(self) -> str:
        return f"mfcc_stats:{dataclasses.astuple(self)}"

    @functools.cached_property
    def _fn(self):
        codec = LogMel(sample_rate=self.sample_rate, n_fft=self.n_fft, hop=self.hop,
                       n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax)
        basis = jnp.asarray(dct_matrix(self.n_mels, self.n_mfcc))

        def fn(audio):
            mfcc = _log_mel_mono(codec, audio) @ basis  # [B, T, n_mfcc]
            delta = mfcc[:, 1:] - mfcc[:, :-1]
            return jnp.concatenate([_mean_std_over_time(mfcc), _mean_std_over_time(delta)], -1)

        return jax.jit(fn)

    def embed(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        return {"embedding": np.asarray(self._fn(jnp.asarray(audio, jnp.float32)))}


# ---------------------------------------------------------------------------------------------
# A user-supplied embedding model
# ---------------------------------------------------------------------------------------------

def import_callable(spec: str) -> Callable:
    """'package.module:function' (or 'package.module.function') -> the function."""
    module, sep, attr = spec.partition(":")
    if not sep:
        module, _, attr = spec.rpartition(".")
    if not module or not attr:
        raise ValueError(f"expected 'package.module:function', got {spec!r}")
    fn = getattr(importlib.import_module(module), attr)
    if not callable(fn):
        raise TypeError(f"{spec!r} is not callable")
    return fn


@EMBEDDERS.register("callable")
@dataclasses.dataclass(frozen=True)
class CallableEmbedder(AbstractEmbedder):
    """Wraps `fn(audio [B, L, C]) -> [B, D]` (or a dict with 'embedding') into the FD/KID/NDB code.

    `name` is required and identifies the model in the reference cache: change it whenever the
    model's weights change. `fn` may be an import string 'package.module:function'.
    """

    fn: Callable | str
    name: str
    sample_rate: Optional[int] = None

    @property
    def cache_key(self) -> str:
        return f"callable:{self.name}:{self.sample_rate}"

    @functools.cached_property
    def _fn(self) -> Callable:
        return import_callable(self.fn) if isinstance(self.fn, str) else self.fn

    def embed(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        out = self._fn(audio)
        out = dict(out) if isinstance(out, dict) else {"embedding": out}
        out = {k: np.asarray(v) for k, v in out.items()}
        emb = out["embedding"]
        if emb.ndim != 2 or emb.shape[0] != len(audio):
            raise ValueError(f"embedding function {self.name!r} must return [B, D] with "
                             f"B = {len(audio)}; got shape {emb.shape}")
        return out

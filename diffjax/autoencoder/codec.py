"""The 'latent' codec: a diffusion model works in the latent space of a trained audio autoencoder
(latent diffusion, Rombach et al. 2022; Stable Audio Open, Evans et al. 2024).

    codec.name = "latent"; codec.latent.workdir = "runs/autoencoder"

z = the encoder's posterior mean [B, ceil(L / hop), D]; `decode` is the decoder (jnp, so `jax.grad`
flows through it: DPS and PiGDM's Gaussian bound differentiate a waveform loss through it). The
autoencoder and its weights are supplied by the jobs layer (`diffjax.jobs.workdir.codec_context`),
the only code that reads a workdir. Training data is encoded once into a cache keyed by the
autoencoder's weights (`encode_once`; `diffjax.jobs.latents`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, Optional

import jax

from diffjax.audio.codecs import CODECS, AbstractCodec


@CODECS.register("latent")
@dataclasses.dataclass(frozen=True, eq=False)
class LatentCodec(AbstractCodec):
    """audio [B, L, C] <-> latents [B, T, D], T = ceil(L / hop), through a trained autoencoder.

    Attributes:
      workdir: the autoencoder's training workdir (the config key; recorded for the cache key).
      autoencoder: the `diffjax.model.AutoencoderModel` (set by the jobs layer).
      autoencoder_params: its (EMA) weights.
      sample_rate: the data's rate; must equal the autoencoder's.
    """

    workdir: str = ""
    autoencoder: Any = None
    autoencoder_params: Any = None
    sample_rate: Optional[int] = None

    is_identity: ClassVar[bool] = False
    decode_is_differentiable: ClassVar[bool] = True  # the decoder is a flax network
    encode_once: ClassVar[bool] = True  # costly encoder: training reads pre-encoded latents

    def __post_init__(self):
        if self.autoencoder is None or self.autoencoder_params is None:
            raise ValueError("codec 'latent' needs a trained autoencoder: set codec.latent.workdir to the workdir of "
                             "`python experiments/train.py --config configs/autoencoder.py --workdir runs/autoencoder` "
                             "(the jobs layer loads it; the library never reads workdirs)")
        rate = self.autoencoder.spec.sample_rate
        if self.sample_rate is not None and rate != self.sample_rate:
            raise ValueError(f"the autoencoder in {self.workdir!r} was trained at {rate} Hz but the data is at "
                             f"{self.sample_rate} Hz; set data.sample_rate={rate} or train an autoencoder at "
                             f"{self.sample_rate} Hz")

    @property
    def hop(self) -> int:
        return self.autoencoder.hop

    @functools.cached_property
    def _encode(self):
        return jax.jit(self.autoencoder.encode)

    @functools.cached_property
    def _decode(self):
        return jax.jit(self.autoencoder.decode, static_argnums=2)

    def encode(self, audio: jax.Array) -> jax.Array:
        """audio [B, L, C] -> z [B, ceil(L / hop), D] (jitted)."""
        channels = self.autoencoder.spec.shape[1]
        if audio.shape[-1] != channels:
            raise ValueError(f"the autoencoder in {self.workdir!r} takes {channels}-channel audio; got "
                             f"{audio.shape[-1]} (set data.channels={channels})")
        return self._encode(self.autoencoder_params, audio)

    def decode(self, z: jax.Array, length: Optional[int] = None) -> jax.Array:
        """z [B, T, D] -> audio [B, length, C] (default T * hop; jitted)."""
        return self._decode(self.autoencoder_params, z, None if length is None else int(length))

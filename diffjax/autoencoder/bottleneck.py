"""The autoencoder's bottleneck between encoder and decoder, registered in `BOTTLENECKS`.

A bottleneck is a frozen dataclass implementing `AbstractBottleneck`:
    encoder_channels(latent_dim) -> channels the encoder must output for a latent of `latent_dim`
    moments(h [B, T, encoder_channels]) -> (mean [B, T, D], std [B, T, D])
    sample(mean, std, key) -> z [B, T, D]
    kl(mean, std) -> [B]
    stochastic                              (class-level fact: `sample` draws noise)

- 'vae': the encoder outputs 2D channels (mean, scale); std = softplus(scale) + 1e-4 and
  z = mean + std * eps (stable-audio-tools `VAEBottleneck`; the reparameterisation trick,
  Kingma & Welling 2014, eq. 10), with the closed-form KL to N(0, I) below.
- 'none': a plain autoencoder, z = mean = h, std = 0, KL = 0.

KL normalisation (`kl_divergence`): per example, the KL of one latent frame summed over the D
channels, averaged over the T frames, in nats:

    KL = mean_t sum_d 0.5 (mean^2 + std^2 - log std^2 - 1)      (Kingma & Welling 2014, app. B)

so it does not grow with the clip length. stable-audio-tools' `vae_sample` sums over D and
averages over frames and batch too, but omits the 0.5: its value is twice ours, so its loss
weight 1e-4 (stable_audio_2_0_vae.json, `bottleneck.kl`) corresponds to 2e-4 here.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from diffjax.registry import Registry

BOTTLENECKS = Registry("bottleneck")

MIN_STD = 1e-4  # std = softplus(scale) + MIN_STD, as stable-audio-tools: log std^2 stays finite


def gaussian_sample(mean: jax.Array, std: jax.Array, key: jax.Array) -> jax.Array:
    """z = mean + std * eps, eps ~ N(0, I): the reparameterisation trick (Kingma & Welling 2014,
    eq. 10). mean, std [B, T, D] -> z [B, T, D]."""
    return mean + std * jax.random.normal(key, mean.shape, mean.dtype)


def kl_divergence(mean: jax.Array, std: jax.Array) -> jax.Array:
    """KL(N(mean, std^2) || N(0, 1)) per example: sum over D, mean over T (see module docstring).

    KL = mean_t sum_d 0.5 (mean^2 + std^2 - log std^2 - 1)   (Kingma & Welling 2014, app. B)

    Args:
        mean, std: [B, T, D], std > 0.
    Returns:
        [B], >= 0, and 0 exactly where mean = 0 and std = 1 everywhere.
    """
    var = std ** 2
    per_entry = 0.5 * (mean ** 2 + var - jnp.log(var) - 1.0)  # [B, T, D]
    return jnp.mean(jnp.sum(per_entry, axis=-1), axis=tuple(range(1, mean.ndim - 1)))


def vae_moments(h: jax.Array) -> tuple[jax.Array, jax.Array]:
    """h [B, T, 2D] = [mean, scale] -> (mean, std = softplus(scale) + MIN_STD), each [B, T, D]."""
    mean, scale = jnp.split(h, 2, axis=-1)
    return mean, jax.nn.softplus(scale) + MIN_STD


class AbstractBottleneck(abc.ABC):
    """What sits between encoder and decoder (see the module docstring)."""

    stochastic: ClassVar[bool]

    @abc.abstractmethod
    def encoder_channels(self, latent_dim: int) -> int:
        """Channels of the encoder output for a latent of `latent_dim` channels."""

    @abc.abstractmethod
    def moments(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Encoder output [B, T, encoder_channels] -> (mean, std), each [B, T, D]."""

    @abc.abstractmethod
    def sample(self, mean: jax.Array, std: jax.Array, key: jax.Array) -> jax.Array:
        """The latent the decoder sees during training, [B, T, D]."""

    @abc.abstractmethod
    def kl(self, mean: jax.Array, std: jax.Array) -> jax.Array:
        """The regulariser per example, [B]."""


@BOTTLENECKS.register("vae")
@dataclasses.dataclass(frozen=True)
class VAEBottleneck(AbstractBottleneck):
    """Diagonal-Gaussian posterior with a N(0, I) prior (Kingma & Welling 2014)."""

    stochastic: ClassVar[bool] = True

    def encoder_channels(self, latent_dim: int) -> int:
        return 2 * latent_dim

    def moments(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        return vae_moments(h)

    def sample(self, mean: jax.Array, std: jax.Array, key: jax.Array) -> jax.Array:
        return gaussian_sample(mean, std, key)

    def kl(self, mean: jax.Array, std: jax.Array) -> jax.Array:
        return kl_divergence(mean, std)


@BOTTLENECKS.register("none")
@dataclasses.dataclass(frozen=True)
class IdentityBottleneck(AbstractBottleneck):
    """A deterministic autoencoder: z = mean = encoder output, std = 0, KL = 0."""

    stochastic: ClassVar[bool] = False

    def encoder_channels(self, latent_dim: int) -> int:
        return latent_dim

    def moments(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        return h, jnp.zeros_like(h)

    def sample(self, mean: jax.Array, std: jax.Array, key: jax.Array) -> jax.Array:
        return mean

    def kl(self, mean: jax.Array, std: jax.Array) -> jax.Array:
        return jnp.zeros(mean.shape[:1], mean.dtype)

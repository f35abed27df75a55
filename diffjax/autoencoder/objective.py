"""The autoencoder's training objective, in the generic train step's contract
(`diffjax.training.step`): `loss_fn(params, batch, key, extra) -> (loss [B], aux)` and, with the
adversarial term, `update_method_state` that trains the discriminator on the same batch.

    loss = stft_weight * MR-STFT(x_hat, x) + l1_weight * |x_hat - x|_1 + kl_weight * KL
           + [step >= adversarial_start] * (adversarial_weight * L_g + feature_matching_weight * L_feat)

(Défossez et al. 2022, EnCodec, sec. 3.4, eq. 1-3; Kumar et al. 2023, DAC, sec. 3.4; stable-audio-
tools' `AutoencoderTrainingWrapper`). The discriminator's parameters and optimiser state live in
the train state's `method_state` ({"discriminator", "discriminator_opt"}); before
`adversarial_start` it is neither used by the generator loss nor updated.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import optax

from diffjax.autoencoder import discriminator as discriminator_lib
from diffjax.autoencoder import losses


@dataclasses.dataclass(frozen=True)
class ReconstructionObjective:
    """The reconstruction loss of `config.reconstruction` (weights and resolutions).

    Attributes:
      stft_weight, l1_weight, kl_weight: weights of the multi-resolution STFT loss, the waveform L1
        and the KL term (per example, as `bottleneck.kl_divergence` reduces it).
      fft_sizes: the STFT resolutions (`losses.multi_resolution_stft_loss`).
      adversarial_weight, feature_matching_weight: the GAN terms (0 and 0: no discriminator).
      adversarial_start: the step from which the GAN terms apply and the discriminator trains.
      discriminator: the flax discriminator, or None.
      discriminator_learning_rate: its Adam learning rate (betas 0.8, 0.99 as DAC).
    """

    network: Any
    stft_weight: float = 1.0
    l1_weight: float = 0.0
    kl_weight: float = 1e-4
    fft_sizes: tuple[int, ...] = losses.DEFAULT_FFT_SIZES
    adversarial_weight: float = 0.0
    feature_matching_weight: float = 0.0
    adversarial_start: int = 0
    discriminator: Optional[Any] = None
    discriminator_learning_rate: float = 1e-4

    @property
    def adversarial(self) -> bool:
        return self.discriminator is not None

    @property
    def discriminator_tx(self) -> optax.GradientTransformation:
        return optax.adam(self.discriminator_learning_rate, b1=0.8, b2=0.99)

    def init_method_state(self, params: Any, key: jax.Array, example: jax.Array) -> dict:
        """{} without a discriminator; else its fresh parameters and optimiser state."""
        if not self.adversarial:
            return {}
        d_params = self.discriminator.init(key, example)["params"]
        return {"discriminator": d_params, "discriminator_opt": self.discriminator_tx.init(d_params)}

    def _reconstruct(self, params, batch, key):
        mask = jnp.asarray(batch.get("mask", jnp.ones(batch["x"].shape[:2] + (1,))), jnp.float32)
        x = jnp.asarray(batch["x"]) * mask
        x_hat, aux = self.network.apply({"params": params}, x, key)
        return x, x_hat * mask, aux

    def _adversarial_terms(self, d_params, x, x_hat):
        real = self.discriminator.apply({"params": d_params}, x)
        fake = self.discriminator.apply({"params": d_params}, x_hat)
        generator = discriminator_lib.hinge_generator_loss(fake)
        matching = discriminator_lib.feature_matching_loss(real, fake)
        return generator, matching

    def loss_fn(self, params, batch, key, extra):
        """-> (loss [B], {"stft": [B], "l1": [B], "kl": [B], ("generator", "feature_matching")})."""
        x, x_hat, aux = self._reconstruct(params, batch, key)
        stft, _ = losses.multi_resolution_stft_loss(x, x_hat, fft_sizes=self.fft_sizes)  # reference first
        l1 = losses.waveform_l1(x, x_hat)
        kl = aux["kl"]
        total = self.stft_weight * stft + self.l1_weight * l1 + self.kl_weight * kl
        terms = {"stft": stft, "l1": l1, "kl": kl}
        if self.adversarial:
            on = (extra["step"] >= self.adversarial_start).astype(jnp.float32)
            d_params = jax.lax.stop_gradient(extra["method_state"]["discriminator"])
            generator, matching = self._adversarial_terms(d_params, x, x_hat)
            total = total + on * (self.adversarial_weight * generator + self.feature_matching_weight * matching)
            terms.update(generator=generator, feature_matching=matching)
        return total, terms

    def update_method_state(self, method_state, params, step, batch, key):
        """One discriminator step (hinge loss) on the batch, against the updated generator's output;
        a no-op before `adversarial_start`."""
        if not self.adversarial:
            return method_state
        x, x_hat, _ = self._reconstruct(params, batch, key)
        x_hat = jax.lax.stop_gradient(x_hat)

        def d_loss(d_params):
            real = self.discriminator.apply({"params": d_params}, x)
            fake = self.discriminator.apply({"params": d_params}, x_hat)
            return jnp.mean(discriminator_lib.hinge_discriminator_loss(real, fake))

        d_params, d_opt = method_state["discriminator"], method_state["discriminator_opt"]
        grads = jax.grad(d_loss)(d_params)
        updates, new_opt = self.discriminator_tx.update(grads, d_opt, d_params)
        new_params = optax.apply_updates(d_params, updates)
        on = step >= self.adversarial_start
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(on, a, b), new, old)  # noqa: E731
        return {"discriminator": keep(new_params, d_params), "discriminator_opt": keep(new_opt, d_opt)}


def build_objective(network, section) -> ReconstructionObjective:
    """`config.reconstruction` -> the objective; `discriminator` is a sub-section of the
    discriminator's kwargs (`discriminator_lib.MultiScaleSTFTDiscriminator`), used when either GAN
    weight is > 0."""
    values = dict(section.to_dict() if hasattr(section, "to_dict") else section)
    d_kwargs = dict(values.pop("discriminator", None) or {})
    valid = {f.name for f in dataclasses.fields(ReconstructionObjective)} - {"network", "discriminator"}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ValueError(f"reconstruction does not take {unknown}; it takes {sorted(valid | {'discriminator'})}")
    if "fft_sizes" in values:
        values["fft_sizes"] = tuple(int(n) for n in values["fft_sizes"])
    gan = values.get("adversarial_weight", 0.0) > 0 or values.get("feature_matching_weight", 0.0) > 0
    disc = discriminator_lib.MultiScaleSTFTDiscriminator(**d_kwargs) if gan else None
    return ReconstructionObjective(network=network, discriminator=disc, **values)


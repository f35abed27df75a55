"""The diffusion objective as the generic train step's `loss_fn` (`training.step.LossFn`)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax import conditioners
from diffjax.losses import DenoisingLoss
from diffjax.model import DiffusionModel


def encode_batch(model: DiffusionModel, batch: dict) -> tuple[jax.Array, jax.Array | None]:
    """A dataset batch -> `(x0 [B, ...] in model space, mask or None)`. The padding mask applies
    only where the codec is the identity (a mask over samples means nothing over STFT frames)."""
    x = jnp.asarray(batch["x"])
    mask = batch.get("mask")
    return model.codec.encode(x), (mask if model.codec.is_identity else None)


def diffusion_loss_fn(model: DiffusionModel, loss: DenoisingLoss):
    """`loss_fn(params, batch, key, extra) -> (loss [B], {"sigma": [B]})`: denoising score matching
    (`diffjax.losses`) on the codec's representation, each condition dropped to its null value with
    its conditioner's probability (classifier-free guidance, Ho & Salimans 2022)."""

    def loss_fn(params, batch, key, extra):
        del extra  # plain diffusion keeps no method state
        key_loss, key_drop = jax.random.split(key)
        x0, mask = encode_batch(model, batch)
        cond = conditioners.drop_conditions(model.conditioners, model.condition_of(batch), key_drop)
        per_example, sigma = loss.per_example(model.denoiser(params, cond), x0, key_loss, mask)
        return per_example, {"sigma": sigma}

    return loss_fn

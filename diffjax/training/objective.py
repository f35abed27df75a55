"""The diffusion objective as the generic train step's `loss_fn` (`training.step.LossFn`)."""
from __future__ import annotations

import jax

from diffjax import conditioners
from diffjax.losses import DenoisingLoss
from diffjax.model import DiffusionModel


def diffusion_loss_fn(model: DiffusionModel, loss: DenoisingLoss):
    """`loss_fn(params, batch, key, extra) -> (loss [B], {"sigma": [B]})`: denoising score matching
    (`diffjax.losses`) on the codec's representation, each condition dropped to its null value with
    its conditioner's probability (classifier-free guidance, Ho & Salimans 2022)."""

    def loss_fn(params, batch, key, extra):
        del extra  # plain diffusion keeps no method state
        key_loss, key_drop = jax.random.split(key)
        x0, mask = model.encode_batch(batch)
        cond = conditioners.drop_conditions(model.conditioners, model.condition_of(batch), key_drop)
        per_example, sigma = loss.per_example(model.denoiser(params, cond), x0, key_loss, mask)
        return per_example, {"sigma": sigma}

    return loss_fn

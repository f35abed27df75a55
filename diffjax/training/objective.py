"""The diffusion objective as the generic train step's `loss_fn` (`training.step.LossFn`)."""
from __future__ import annotations

import jax

from diffjax import conditioners
from diffjax.losses import DenoisingLoss
from diffjax.model import DiffusionModel


def diffusion_loss_fn(model: DiffusionModel, loss: DenoisingLoss):
    """`loss_fn(params, batch, key, extra) -> (loss [B], {"sigma": [B]})`: denoising score matching
    (`diffjax.losses`) on the codec's representation. The batch is host-prepared
    (`DiffusionModel.host_batch`); each condition takes its training value (inpainting masks are
    drawn here) and is dropped to its null value with its conditioner's probability
    (classifier-free guidance, Ho & Salimans 2022). The 'learned' weighting reads EDM2's u(sigma) from
    the model's log-variance head."""

    def loss_fn(params, batch, key, extra):
        del extra  # plain diffusion keeps no method state
        key_loss, key_cond, key_drop = jax.random.split(key, 3)
        x0, mask = model.encode_batch(batch)
        cond = conditioners.drop_conditions(model.conditioners, model.training_condition(batch, x0, key_cond), key_drop)
        log_variance = (lambda sigma: model.log_variance(params, sigma)) if loss.learned else None
        per_example, sigma = loss.per_example(model.denoiser(params, cond), x0, key_loss, mask, log_variance)
        return per_example, {"sigma": sigma}

    return loss_fn

"""`make_train_step(loss_fn, decays) -> train_step(state, batch, key) -> (state, metrics)` (STYLE 19)."""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from diffjax.training.state import TrainState, update_emas

# loss_fn(params, batch, key) -> (per-example loss [B], per-example sigma [B])
LossFn = Callable[..., tuple[jax.Array, jax.Array]]


def make_train_step(loss_fn: LossFn, ema_decays: Sequence[float]):
    """A pure train step: mean per-example loss, gradient, optimiser update, EMA updates.

    Metrics: 'loss', 'grad_norm' and 'finite' (False when the loss or a gradient is NaN/Inf; the
    caller then stops without saving, so the last good checkpoint is never overwritten).
    """
    decays = tuple(float(d) for d in ema_decays)

    def train_step(state: TrainState, batch, key):
        def mean_loss(params):
            per_example, sigma = loss_fn(params, batch, key)
            return jnp.mean(per_example), (per_example, sigma)

        (loss, (per_example, sigma)), grads = jax.value_and_grad(mean_loss, has_aux=True)(state.params)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                  ema_params=update_emas(state.ema_params, params, decays))
        metrics = {"loss": loss, "grad_norm": grad_norm,
                   "finite": jnp.isfinite(loss) & jnp.isfinite(grad_norm),
                   "per_example_loss": per_example, "sigma": sigma}
        return new_state, metrics

    return train_step

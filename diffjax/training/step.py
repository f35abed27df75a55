"""`make_train_step(loss_fn, decays) -> train_step(state, batch, key) -> (state, metrics)` (STYLE 19).

One step for every training method: diffusion, distillation, the evaluation classifier. A method
supplies its loss and, when it keeps state beside the weights, how that state moves on.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from diffjax.training.state import TrainState, update_emas

# loss_fn(params, batch, key, extra) -> (per-example loss [B], aux: dict of [B] or scalar arrays),
# extra = {"step": int32 [], "method_state": the state's method_state}
LossFn = Callable[[Any, Any, jax.Array, dict], tuple[jax.Array, dict]]
# update_method_state(method_state, new_params, step, batch, key) -> method_state, after the
# optimiser update (an adversarial method updates its discriminator here, on the same batch and key)
MethodUpdate = Callable[[Any, Any, jax.Array, Any, jax.Array], Any]


def all_finite(tree: Any) -> jax.Array:
    """True when every leaf of `tree` is finite (a bool scalar)."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_train_step(loss_fn: LossFn, ema_decays: Sequence[float], *,
                    update_method_state: Optional[MethodUpdate] = None):
    """A pure train step: mean per-example loss, gradient, optimiser update, EMA updates, then the
    method's state update.

    Metrics: 'loss', 'grad_norm', 'per_example_loss', the loss's aux entries, and 'finite': False
    when the loss, a gradient, or any updated parameter, EMA or method state is NaN/Inf. The caller
    then stops without saving, so the last good checkpoint is never overwritten by a diverged state.
    """
    decays = tuple(float(d) for d in ema_decays)

    def train_step(state: TrainState, batch, key):
        extra = {"step": state.step, "method_state": state.method_state}

        def mean_loss(params):
            per_example, aux = loss_fn(params, batch, key, extra)
            return jnp.mean(per_example), (per_example, aux)

        (loss, (per_example, aux)), grads = jax.value_and_grad(mean_loss, has_aux=True)(state.params)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema_params = update_emas(state.ema_params, params, decays)
        method_state = (state.method_state if update_method_state is None
                        else update_method_state(state.method_state, params, state.step, batch, key))
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                  ema_params=ema_params, method_state=method_state)
        finite = (jnp.isfinite(loss) & jnp.isfinite(grad_norm)
                  & all_finite((params, ema_params, method_state)))
        metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite, "per_example_loss": per_example,
                   **aux}
        return new_state, metrics

    return train_step

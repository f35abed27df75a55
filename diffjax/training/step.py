"""`make_train_step(loss_fn, decays) -> train_step(state, batch, key) -> (state, metrics)` (STYLE 19).

One step for every training method: diffusion, distillation, the evaluation classifier. A method
supplies its loss and, when it keeps state beside the weights, how that state moves on.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from diffjax.training import phema
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
                    update_method_state: Optional[MethodUpdate] = None, phema_gammas: Sequence[float] = (),
                    project_params: Optional[Callable[[Any], Any]] = None, remat: str = "none"):
    """A pure train step: mean per-example loss, gradient, optimiser update, the projection of the
    parameters (`project_params`: EDM2's forced weight normalisation, sec. 2.3, eq. 66), EMA updates
    (half-life EMAs and power-function EMAs with exponents `phema_gammas`, EDM2 sec. 3.1), then
    the method's state update. `remat='full'` recomputes the whole forward pass in the backward
    pass (`jax.checkpoint`: only the inputs are kept); 'block' is the network's own (`remat` field).

    Metrics: 'loss', 'grad_norm', 'per_example_loss', the loss's aux entries, and 'finite': False
    when the loss, a gradient, or any updated parameter, EMA or method state is NaN/Inf. The caller
    then stops without saving, so the last good checkpoint is never overwritten by a diverged state.
    """
    decays = tuple(float(d) for d in ema_decays)
    gammas = tuple(float(g) for g in phema_gammas)

    def train_step(state: TrainState, batch, key):
        extra = {"step": state.step, "method_state": state.method_state}

        def mean_loss(params):
            per_example, aux = loss_fn(params, batch, key, extra)
            return jnp.mean(per_example), (per_example, aux)

        forward = jax.checkpoint(mean_loss) if remat == "full" else mean_loss
        (loss, (per_example, aux)), grads = jax.value_and_grad(forward, has_aux=True)(state.params)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if project_params is not None:
            params = project_params(params)
        ema_params = update_emas(state.ema_params, params, decays)
        phema_params = phema.update_phema(state.phema_params, params, state.step + 1, gammas) if gammas else ()
        method_state = (state.method_state if update_method_state is None
                        else update_method_state(state.method_state, params, state.step, batch, key))
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                  ema_params=ema_params, phema_params=phema_params, method_state=method_state)
        finite = (jnp.isfinite(loss) & jnp.isfinite(grad_norm)
                  & all_finite((params, ema_params, phema_params, method_state)))
        metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite, "per_example_loss": per_example,
                   **aux}
        return new_state, metrics

    return train_step

"""Train state and optimiser: a pytree (STYLE rule 21) with several EMAs given as half-lives."""
from __future__ import annotations

import math
from typing import Any, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import optax


class TrainState(flax.struct.PyTreeNode):
    """step [], params, ema_params (one copy per EMA half-life, EMAs only), opt_state,
    phema_params (one power-function EMA per `training.phema.sigma_rels`, EDM2 sec. 3.1; `()` when
    off), and method_state: what a training method keeps beside the weights (a distillation target
    network, a progressive round's teacher, a discriminator); `{}` for plain diffusion. `tx` is static."""

    step: jax.Array
    params: Any
    ema_params: tuple
    opt_state: Any
    method_state: Any = flax.struct.field(default_factory=dict)
    phema_params: tuple = ()
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)

    @classmethod
    def create(cls, params, tx: optax.GradientTransformation, num_emas: int, method_state: Any = None,
               num_phema: int = 0) -> "TrainState":
        @jax.jit  # one compile instead of one per eager op
        def arrays(params):
            copies = tuple(jax.tree.map(jnp.copy, params) for _ in range(num_emas + num_phema))
            return jnp.zeros((), jnp.int32), copies, tx.init(params)

        step, copies, opt_state = arrays(params)
        return cls(step=step, params=params, ema_params=copies[:num_emas], opt_state=opt_state,
                   method_state={} if method_state is None else method_state, phema_params=copies[num_emas:], tx=tx)

    def checkpoint_items(self) -> dict:
        """The arrays to checkpoint (everything but the static optimiser)."""
        items = {"step": self.step, "params": self.params, "ema_params": self.ema_params,
                 "opt_state": self.opt_state}
        if jax.tree.leaves(self.method_state):
            items["method_state"] = self.method_state
        if self.phema_params:
            items["phema_params"] = self.phema_params
        return items

    def replace_items(self, items: dict) -> "TrainState":
        return self.replace(step=items["step"], params=items["params"], ema_params=tuple(items["ema_params"]),
                            opt_state=items["opt_state"], method_state=items.get("method_state", self.method_state),
                            phema_params=tuple(items.get("phema_params", self.phema_params)))


def ema_decay(halflife_examples: float, batch_size: int) -> float:
    """Per-step EMA decay whose weight halves every `halflife_examples` (EDM, `ema_halflife_kimg`)."""
    if halflife_examples <= 0:
        raise ValueError(f"EMA half-life must be > 0 examples, got {halflife_examples}")
    return 0.5 ** (batch_size / halflife_examples)


def update_emas(ema_params: tuple, params, decays: Sequence[float]) -> tuple:
    """`ema <- decay * ema + (1 - decay) * params` for each decay."""
    return tuple(jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)
                 for ema, d in zip(ema_params, decays))


DECAYS = ("constant", "cosine", "linear", "inverse_sqrt")


def learning_rate_schedule(*, learning_rate: float, warmup_steps: int = 0, decay: str = "constant",
                           decay_steps: int = 0, end_factor: float = 0.0) -> optax.Schedule:
    """Linear warmup, then a decay from `DECAYS`.

    'cosine' and 'linear' reach `end_factor * learning_rate` after `decay_steps`; 'inverse_sqrt' is
    EDM2's `alpha_ref / sqrt(max(t / t_ref, 1))` (Karras et al. 2024, eq. 67) with
    `t_ref = decay_steps`, counted from the start of training.
    """
    if decay == "constant":
        after = optax.constant_schedule(learning_rate)
    elif decay == "inverse_sqrt":
        t_ref = max(decay_steps, 1)
        offset = max(warmup_steps, 0)
        after = lambda step: learning_rate / jnp.sqrt(jnp.maximum((step + offset) / t_ref, 1.0))
    elif decay == "cosine":
        after = optax.cosine_decay_schedule(learning_rate, max(decay_steps, 1), alpha=end_factor)
    elif decay == "linear":
        after = optax.linear_schedule(learning_rate, end_factor * learning_rate, max(decay_steps, 1))
    else:
        raise ValueError(f"optim.decay must be one of {list(DECAYS)}, got {decay!r}")
    if warmup_steps <= 0:
        return after
    warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
    return optax.join_schedules([warmup, after], [warmup_steps])


OPTIMIZERS = ("adam", "adamw", "radam", "lamb", "sgd")


def build_optimizer(*, name: str = "adam", learning_rate: float = 1e-3, warmup_steps: int = 0,
                    decay: str = "constant", decay_steps: int = 0, end_factor: float = 0.0,
                    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
                    grad_clip: float = 0.0, accumulate_steps: int = 1) -> optax.GradientTransformation:
    """An optax chain from `config.optim`: clipping, the optimiser, and gradient accumulation."""
    schedule = learning_rate_schedule(learning_rate=learning_rate, warmup_steps=warmup_steps, decay=decay,
                                      decay_steps=decay_steps, end_factor=end_factor)
    makers = {
        "adam": lambda: optax.adam(schedule, b1=b1, b2=b2, eps=eps),
        "adamw": lambda: optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay),
        "radam": lambda: optax.radam(schedule, b1=b1, b2=b2, eps=eps),
        "lamb": lambda: optax.lamb(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay),
        "sgd": lambda: optax.sgd(schedule, momentum=b1),
    }
    if name not in makers:
        raise ValueError(f"optim.name must be one of {sorted(makers)}, got {name!r}")
    parts = ([optax.clip_by_global_norm(grad_clip)] if grad_clip > 0 else []) + [makers[name]()]
    tx = optax.chain(*parts)
    if accumulate_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=accumulate_steps)
    return tx


def num_params(params) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))

"""Shared pieces of the distillation tests: toy data with exact teachers and a tiny jitted trainer."""
import functools

import jax
import jax.numpy as jnp
import optax
import pytest

from diffjax import models, sampling, toy
from diffjax.precond import flax_net_fn, make_denoiser

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0  # the EDM process's range


@pytest.fixture(scope="session")
def mixture():
    return toy.gmm(dim=2, num_modes=8, radius=1.0, std=0.1)


@pytest.fixture(scope="session")
def gaussian():
    return toy.gaussian(dim=2, mean=[0.3, -0.2], std=[0.5, 1.5])


class TinyStudent:
    """A tiny residual MLP behind a parameterisation `pc`; `denoiser(params)` is its D(x, sigma)."""

    def __init__(self, pc, width=64, depth=2, seed=0):
        self.pc = pc
        self.model = models.get_model("mlp", width=width, depth=depth)
        self.init = self.model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 2)), jnp.zeros((1,)))["params"]

    def denoiser(self, params):
        return make_denoiser(self.pc, flax_net_fn(self.model, params))


def train(student, per_example, data, *, steps, batch=128, lr=2e-3, target_decay=None, seed=1,
          anneal: bool = False):
    """Adam on `per_example(params, target_params, x0, key, step) -> (loss [B], sigma [B])`, all steps in
    one `lax.scan`. `target_decay`: None keeps no target (the objective gets stop_gradient(params));
    a float is the per-step EMA decay of the target network. `anneal`: cosine decay of the learning
    rate to 0 and global-norm clipping at 1 (what keeps consistency training stable once its
    discretisation gets fine). Returns the final parameters."""
    tx = (optax.chain(optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(lr, steps)))
          if anneal else optax.adam(lr))

    @functools.partial(jax.jit, static_argnums=())
    def run(params):
        def body(carry, k):
            params, target, opt = carry
            key = jax.random.fold_in(jax.random.PRNGKey(seed), k)
            x0 = data.sample(jax.random.fold_in(key, 1), batch)

            def mean_loss(p):
                tgt = jax.lax.stop_gradient(p) if target_decay is None else target
                return jnp.mean(per_example(p, tgt, x0, key, k)[0])

            loss, grads = jax.value_and_grad(mean_loss)(params)
            updates, opt = tx.update(grads, opt, params)
            params = optax.apply_updates(params, updates)
            if target_decay is not None:
                target = jax.tree.map(lambda t, p: target_decay * t + (1 - target_decay) * p, target, params)
            return (params, target, opt), loss

        (params, _, _), losses = jax.lax.scan(body, (params, params, tx.init(params)), jnp.arange(steps))
        return params, losses

    return run(student.init)


def teacher_samples(denoiser, z, num_steps=64, sampler="heun"):
    """The teacher's PF-ODE samples from noise `z` `[N, D]` (Heun on EDM's grid)."""
    sigmas = sampling.get_grid("karras")(num_steps, SIGMA_MIN, SIGMA_MAX)
    return sampling.get_sampler(sampler)(denoiser, SIGMA_MAX * z, sigmas)


def mean_error(a, b):
    return float(jnp.mean(jnp.sqrt(jnp.sum((a - b) ** 2, axis=-1))))

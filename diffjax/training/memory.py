"""Per-device memory of a sharded train step, from XLA's compiled memory analysis, without
allocating the model (`jax.eval_shape` and abstract arrays with shardings): how large a model fits
a device, data-parallel against FSDP and tensor parallelism (issue 19's table,
`benchmarks/scaling.py`)."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from diffjax import losses
from diffjax.model import DiffusionModel
from diffjax.training import parallel
from diffjax.training.objective import diffusion_loss_fn
from diffjax.training.state import TrainState
from diffjax.training.step import make_train_step


def abstract_state(model: DiffusionModel, tx, num_emas: int, mesh) -> tuple[Any, Any]:
    """(abstract `TrainState` with shardings, its shardings) for `model` on `mesh`; allocates nothing."""
    state = jax.eval_shape(lambda key: TrainState.create(model.init(key), tx, num_emas), jax.random.PRNGKey(0))
    shardings = parallel.state_shardings(state, parallel.param_shardings(model.logical_axes(), state.params, mesh), mesh)
    placed = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings)
    return placed, shardings


def step_memory(model: DiffusionModel, tx, mesh, batch_size: int, *, remat: str = "none", loss_config=None) -> dict:
    """`parallel.memory_report` of the diffusion train step (batch `batch_size` of `model.latent_shape`,
    one EMA) compiled for `mesh`: bytes per device of parameters, optimiser state, temporaries and
    the peak, plus the compile's FLOPs per step (`cost_analysis`, summed over devices)."""
    state, shardings = abstract_state(model, tx, 1, mesh)
    loss = losses.make_loss(process=model.process, precond=model.precond, **dict(loss_config or {}))
    step = parallel.jit_sharded(make_train_step(diffusion_loss_fn(model, loss), [0.999], remat=remat), mesh, shardings)
    batch = {"x": jax.ShapeDtypeStruct((batch_size,) + model.spec.shape, jnp.float32,
                                       sharding=parallel.batch_sharding(mesh))}
    key = jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=parallel.replicated_sharding(mesh))
    compiled = step.lower(state, batch, key).compile()
    report = parallel.memory_report(compiled, state)
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    report["flops"] = float((cost or {}).get("flops", 0.0))
    return report

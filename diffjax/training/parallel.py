"""Parallelism: the only place that knows about devices, hosts and shardings (STYLE rule 17).

One mesh over every device of every host, with named axes `data x fsdp x tensor`
(`config.parallel.fsdp`, `config.parallel.tensor`; data takes the rest):
- the global batch is sharded over `data x fsdp` (`BATCH_AXES`);
- parameters, EMAs and optimiser state are sharded by logical-axis rules (`LOGICAL_AXIS_RULES`,
  MaxText/MaxDiffusion style): the networks annotate their weights with logical names
  (`diffjax.models.layers.kernel_axes`), and the rules map `embed` rows onto `fsdp` (ZeRO-3 /
  FSDP: each device keeps 1/fsdp of each large weight and XLA all-gathers it for the matmul) and
  `mlp`/`heads` columns onto `tensor` (Megatron-style tensor parallelism). With fsdp = tensor = 1
  everything is replicated: plain data parallelism.
`jax.jit` with these shardings lets XLA (GSPMD) insert every collective, so the library math stays
single-device and free of collectives.

Multi-host: call `initialize_distributed(...)` before anything touches devices; each host then
reads its own slice of the global batch (`process_index`, `process_count`) and `shard_batch` stitches
the slices into one global array.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

import math

import flax.linen as nn
import jax
import numpy as np
import optax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from diffjax.models import layers

log = logging.getLogger("diffjax")
DATA_AXIS, FSDP_AXIS, TENSOR_AXIS = "data", "fsdp", "tensor"
MESH_AXES = (DATA_AXIS, FSDP_AXIS, TENSOR_AXIS)
BATCH_AXES = layers.BATCH_MESH_AXES  # (data, fsdp); the networks' activation constraints use it too
# logical axis name -> mesh axes (flax `logical_to_mesh_axes`); names not listed are replicated.
LOGICAL_AXIS_RULES = (
    ("batch", BATCH_AXES),      # activations' batch axis
    ("embed", FSDP_AXIS),       # model-width rows of a weight: FSDP
    ("conv_in", FSDP_AXIS),     # input channels of a convolution: FSDP
    ("mlp", TENSOR_AXIS),       # hidden columns (MLP, modulation): tensor parallel
    ("heads", TENSOR_AXIS),     # attention heads: tensor parallel
    ("conv_out", TENSOR_AXIS),  # output channels of a convolution: tensor parallel
    ("layers", None),           # the stacked axis of scanned blocks (models.scan): replicated
)
REMAT_POLICIES = ("none", "block", "full")


def initialize_distributed(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
                           process_id: Optional[int] = None) -> None:
    """`jax.distributed.initialize` from arguments or the environment; a no-op for one process.

    Environment: DIFFJAX_COORDINATOR (host:port), DIFFJAX_NUM_PROCESSES, DIFFJAX_PROCESS_ID. On
    TPU pods and SLURM, `jax.distributed.initialize()` with no arguments auto-detects; set
    DIFFJAX_DISTRIBUTED=auto for that.
    """
    coordinator_address = coordinator_address or os.environ.get("DIFFJAX_COORDINATOR")
    num_processes = num_processes or int(os.environ.get("DIFFJAX_NUM_PROCESSES", "0")) or None
    process_id = process_id if process_id is not None else os.environ.get("DIFFJAX_PROCESS_ID")
    if os.environ.get("DIFFJAX_DISTRIBUTED") == "auto":
        jax.distributed.initialize()
    elif coordinator_address and num_processes and num_processes > 1:
        # CPU collectives across processes (only the CPU client reads this; GPU/TPU ignore it).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        disable_compilation_cache("multi-process CPU runs with Gloo collectives")
        jax.distributed.initialize(coordinator_address, num_processes, int(process_id))
    else:
        return
    log.info("distributed: process %d of %d, %d local / %d global devices", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())


def disable_compilation_cache(reason: str) -> None:
    """Turns the persistent compilation cache off for this process, saying why (issue 20, item 10:
    2 processes on one CPU machine with the cache failed 3 of 3 times with Gloo
    DEADLINE_EXCEEDED after 30 s, and passed without it: a process that loads an executable from
    the cache reaches the first collective long before one that compiles)."""
    directory = jax.config.jax_compilation_cache_dir
    if directory:
        log.warning("persistent compilation cache %s disabled for %s", directory, reason)
        jax.config.update("jax_compilation_cache_dir", None)


def make_mesh(num_devices: Optional[int] = None, *, fsdp: int = 1, tensor: int = 1, local: bool = False) -> Mesh:
    """The `data x fsdp x tensor` mesh over all (or the first `num_devices`) global devices, or this
    host's only (`local=True`, for work that one host does alone, such as evaluation); data takes
    what fsdp and tensor leave. Devices are in `jax.devices()` order, so each host's devices hold a
    contiguous block of the batch."""
    devices = jax.local_devices() if local else jax.devices()
    if num_devices is not None:
        if num_devices > len(devices):
            raise ValueError(f"asked for {num_devices} devices, only {len(devices)} exist")
        devices = devices[:num_devices]
    n, model_parallel = len(devices), int(fsdp) * int(tensor)
    if fsdp < 1 or tensor < 1 or n % model_parallel:
        valid = [(f, t) for f in range(1, n + 1) for t in range(1, n + 1) if n % (f * t) == 0]
        raise ValueError(f"parallel.fsdp={fsdp} x parallel.tensor={tensor} does not divide the {n} devices; "
                         f"valid (fsdp, tensor) pairs: {valid}")
    shape = (n // model_parallel, int(fsdp), int(tensor))
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=(AxisType.Auto,) * 3)


def mesh_from_config(config) -> Mesh:
    """The training mesh of `config.training.num_devices` and `config.parallel` (fsdp, tensor)."""
    section = config.get("parallel") or {}
    return make_mesh(config.training.get("num_devices") or None, fsdp=int(section.get("fsdp", 1)),
                     tensor=int(section.get("tensor", 1)))


def batch_shards(mesh: Mesh) -> int:
    """How many shards the batch axis is split into (data x fsdp)."""
    return math.prod(mesh.shape[a] for a in BATCH_AXES)


def batch_sharding(mesh: Mesh, *, stacked: bool = False) -> NamedSharding:
    """Shards axis 0 (the batch) over data x fsdp; `stacked` batches `[k, B, ...]` shard axis 1."""
    return NamedSharding(mesh, PartitionSpec(None, BATCH_AXES) if stacked else PartitionSpec(BATCH_AXES))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """The global batch must split evenly over the batch shards (data x fsdp) and the hosts."""
    shards = batch_shards(mesh)
    if batch_size % shards:
        valid = [b for b in range(shards, 4 * shards + 1, shards)]
        raise ValueError(f"training.batch_size={batch_size} is not divisible by the {shards} batch shards "
                         f"(data x fsdp = {mesh.shape[DATA_AXIS]} x {mesh.shape[FSDP_AXIS]}); use a multiple of "
                         f"{shards} (e.g. {valid})")
    if batch_size % jax.process_count():
        raise ValueError(f"training.batch_size={batch_size} is not divisible by the "
                         f"{jax.process_count()} hosts")


def check_remat(policy: str) -> str:
    """`config.parallel.remat`: 'none', 'block' (each residual/transformer block recomputed in the
    backward pass) or 'full' (the whole forward pass recomputed; only inputs kept)."""
    if policy not in REMAT_POLICIES:
        raise ValueError(f"parallel.remat must be one of {list(REMAT_POLICIES)}, got {policy!r}")
    return policy


def mesh_axes_of(logical: PartitionSpec, shape: tuple, mesh: Mesh, rules=LOGICAL_AXIS_RULES) -> PartitionSpec:
    """A weight's logical names -> its mesh PartitionSpec; an axis whose size its mesh axes do not
    divide stays replicated (e.g. a 3-channel output on tensor=2)."""
    names = tuple(logical) + (None,) * (len(shape) - len(logical))
    spec = nn.logical_to_mesh_axes(names, rules)
    fixed = []
    for size, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        group = (axes,) if isinstance(axes, str) else tuple(axes or ())
        fixed.append(axes if group and size % math.prod(mesh.shape[a] for a in group) == 0 else None)
    return PartitionSpec(*fixed)


def param_shardings(logical_axes: Any, abstract_params: Any, mesh: Mesh, rules=LOGICAL_AXIS_RULES) -> Any:
    """`NamedSharding`s for a parameter tree from its logical axes (a tree of `PartitionSpec`s of
    logical names, `DiffusionModel.logical_axes()`)."""
    return jax.tree.map(lambda logical, leaf: NamedSharding(mesh, mesh_axes_of(logical, leaf.shape, mesh, rules)),
                        logical_axes, abstract_params, is_leaf=lambda x: isinstance(x, PartitionSpec))


def state_shardings(state: Any, params_sharding: Any, mesh: Mesh) -> Any:
    """The shardings of a `TrainState`: params, every EMA and each parameter-shaped part of the
    optimiser state (Adam's moments, accumulated gradients) as the params; counters and the
    method's state replicated."""
    replicated = replicated_sharding(mesh)
    opt = optax.tree_map_params(state.tx, lambda _, sharding: sharding, state.opt_state, params_sharding,
                                transform_non_params=lambda _: replicated,
                                is_leaf=lambda x: isinstance(x, NamedSharding))
    return state.replace(step=replicated, params=params_sharding,
                         ema_params=tuple(params_sharding for _ in state.ema_params),
                         phema_params=tuple(params_sharding for _ in state.phema_params),
                         opt_state=opt, method_state=jax.tree.map(lambda _: replicated, state.method_state))


def place(tree: Any, shardings: Any) -> Any:
    """Puts a pytree onto the mesh with the given shardings (same structure)."""
    return jax.device_put(tree, shardings)


def shard_batch(host_batch: dict, mesh: Mesh, *, stacked: bool = False) -> dict:
    """This host's slice of the global batch (a pytree of numpy arrays) -> global arrays sharded on
    the batch axis."""
    sharding = batch_sharding(mesh, stacked=stacked)
    return jax.tree.map(lambda v: jax.make_array_from_process_local_data(sharding, np.asarray(v)), dict(host_batch))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places a pytree on every device of the mesh (parameters, optimiser state, keys)."""
    sharding = replicated_sharding(mesh)
    return jax.tree.map(lambda a: jax.device_put(a, sharding), tree)


def sharding_context(mesh: Mesh):
    """The mesh under which a step is traced, so the networks' activation constraints
    (`diffjax.models.layers.activation_constraint`) take effect; elsewhere they are no-ops."""
    return jax.set_mesh(mesh)


class _InShardingContext:
    """A jitted function that is traced (called or lowered) under `sharding_context(mesh)`."""

    def __init__(self, jitted, mesh: Mesh):
        self.jitted, self.mesh = jitted, mesh

    def __call__(self, *args):
        with sharding_context(self.mesh):
            return self.jitted(*args)

    def lower(self, *args):
        with sharding_context(self.mesh):
            return self.jitted.lower(*args)


def jit_sharded(fn, mesh: Mesh, state_sharding: Any = None, *, donate_state: bool = True, stacked: bool = False):
    """`jax.jit` of `fn(state, batch, key) -> (state, metrics)`: state with `state_sharding`
    (None: replicated), batch sharded over data x fsdp, metrics replicated. Traced under the
    mesh's logical-axis rules (`sharding_context`); `.lower(...)` gives the compiled step."""
    replicated, sharded = replicated_sharding(mesh), batch_sharding(mesh, stacked=stacked)
    state_sharding = replicated if state_sharding is None else state_sharding
    jitted = jax.jit(fn, in_shardings=(state_sharding, sharded, replicated),
                     out_shardings=(state_sharding, replicated), donate_argnums=(0,) if donate_state else ())
    return _InShardingContext(jitted, mesh)


def jit_data_parallel(fn, mesh: Mesh, *, donate_state: bool = True, stacked: bool = False):
    """`jit_sharded` with the state replicated (the classifier, benchmarks)."""
    return jit_sharded(fn, mesh, None, donate_state=donate_state, stacked=stacked)


def bytes_per_device(tree: Any) -> int:
    """Bytes one device holds of a tree of (abstract or concrete) arrays with shardings."""
    def one(leaf):
        sharding = getattr(leaf, "sharding", None)
        shape = sharding.shard_shape(leaf.shape) if sharding is not None else leaf.shape
        return math.prod(shape) * np.dtype(leaf.dtype).itemsize
    return int(sum(one(leaf) for leaf in jax.tree.leaves(tree)))


def memory_report(compiled, state: Any) -> dict:
    """Per-device memory of a compiled step (`jax.stages.Compiled.memory_analysis`): parameters,
    optimiser state (with EMAs), temporaries and the peak (arguments + outputs + temporaries -
    donated aliases), in bytes."""
    analysis = compiled.memory_analysis()
    report = {"params": bytes_per_device(state.params),
              "optimizer_state": bytes_per_device((state.opt_state, state.ema_params, state.phema_params))}
    if analysis is not None:
        report.update(arguments=int(analysis.argument_size_in_bytes), outputs=int(analysis.output_size_in_bytes),
                      temps=int(analysis.temp_size_in_bytes), aliased=int(analysis.alias_size_in_bytes))
        report["peak"] = report["arguments"] + report["outputs"] + report["temps"] - report["aliased"]
    return report


def to_host(tree: Any) -> Any:
    """Global arrays -> numpy (valid on every host): a replicated array from its local copy, a
    sharded one gathered (across hosts where its shards are not all local)."""
    def one(a):
        if not isinstance(a, jax.Array):
            return a
        if a.is_fully_replicated:
            return np.asarray(a.addressable_data(0))
        if a.is_fully_addressable:
            return np.asarray(a)
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return jax.tree.map(one, tree)

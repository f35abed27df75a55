"""Sharded training (DESIGN "Parallelism"; issue 19) on 8 fake CPU devices: fsdp x data and
tensor x data meshes train to the replicated run's loss and parameters, weights really are split,
and checkpoints move between meshes.

Tolerance for "matches the replicated run" (float32 reduction order only): a mesh changes the
order in which XLA sums over the batch and over sharded contractions, never what is summed. A
sum of K float32 terms computed in two orders differs by about sqrt(K) * eps32 * (sum of |terms|)
(random-walk rounding, Higham 2002 sec. 4.2); the largest reductions here are the batch-and-length
mean of the loss and the batch sum of a gradient, K <= 8 x 16 x 32 = 4096, so sqrt(K) eps32 =
7.6e-6 relative to the summands. We allow 1e-4 relative (13x that, for the chain of reductions
through the 2-block network and 5 SGD steps, each adding its own rounding linearly). Training uses
SGD with momentum so that a gradient's rounding error moves a weight linearly (Adam's first step,
g / |g|, would turn a rounding-level gradient into a full step of either sign). A run on a
different batch is checked to lie far outside this tolerance, so the test can fail.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jax.sharding import PartitionSpec as P

from configs import autoencoder as autoencoder_config
from configs import default
from diffjax import losses
from diffjax.model import DataSpec, build_autoencoder_model, build_model
from diffjax.training import checkpoint, memory, parallel
from diffjax.training.objective import diffusion_loss_fn
from diffjax.training.state import TrainState, build_optimizer
from diffjax.training.step import make_train_step

pytestmark = pytest.mark.xdist_group("sharding")
RELATIVE = 1e-4
STEPS, BATCH = 5, 8


def _config(**model):
    config = default.get_config()
    config.codec = ml_collections.ConfigDict({"name": "waveform"})
    config.model = ml_collections.ConfigDict(model or {"name": "dit", "size": "tiny", "patch_size": 1, "width": 32,
                                                       "num_heads": 2})
    config.conditioning = ml_collections.ConfigDict()
    return config


@pytest.fixture(scope="module")
def model():
    return build_model(_config(), DataSpec(shape=(16, 8), sample_rate=None, num_classes=0))


def _unet():
    return build_model(_config(name="unet1d", size="tiny", channels=16, channel_mults=(1, 2), strides=((2,),),
                               num_res_blocks=1, attn_levels=(1,)), DataSpec(shape=(16, 8), sample_rate=None, num_classes=0))


def _batches(seed=0):
    rng = np.random.RandomState(seed)
    return [{"x": rng.randn(BATCH, 16, 8).astype(np.float32) * 0.5} for _ in range(STEPS)]


def _train(model, mesh, batches, *, steps=STEPS, state=None, remat="none"):
    """`steps` SGD steps on `mesh`; returns (state, losses)."""
    tx = build_optimizer(name="sgd", learning_rate=0.05, b1=0.9, warmup_steps=0, decay="constant", grad_clip=0.0)
    if state is None:
        state = TrainState.create(model.init(jax.random.PRNGKey(0)), tx, 1)
    shardings = parallel.state_shardings(state, parallel.param_shardings(model.logical_axes(), state.params, mesh), mesh)
    state = parallel.place(state, shardings)
    loss = losses.make_loss(process=model.process, precond=model.precond)
    step = parallel.jit_sharded(make_train_step(diffusion_loss_fn(model, loss), [0.9], remat=remat), mesh, shardings,
                                donate_state=False)
    values = []
    start = int(parallel.to_host(state.step))
    for i in range(start, start + steps):
        key = parallel.replicate(jax.random.fold_in(jax.random.PRNGKey(1), i), mesh)
        state, metrics = step(state, parallel.shard_batch(batches[i], mesh), key)
        values.append(float(parallel.to_host(metrics["loss"])))
    return state, np.asarray(values)


def _max_abs(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in
               zip(jax.tree.leaves(parallel.to_host(a)), jax.tree.leaves(parallel.to_host(b))))


@pytest.fixture(scope="module")
def replicated_run(model):
    params0 = model.init(jax.random.PRNGKey(0))
    state, values = _train(model, parallel.make_mesh(8), _batches())
    return params0, state, values


@pytest.mark.parametrize("fsdp,tensor", [(4, 1), (1, 2), (2, 2)])
def test_sharded_training_matches_replicated(model, replicated_run, fsdp, tensor):
    params0, reference, reference_losses = replicated_run
    state, values = _train(model, parallel.make_mesh(8, fsdp=fsdp, tensor=tensor), _batches())
    np.testing.assert_allclose(values, reference_losses, rtol=RELATIVE)
    moved = _max_abs(reference.params, params0)
    assert moved > 1e-3  # training did change the weights
    assert _max_abs(state.params, reference.params) <= RELATIVE * moved
    assert _max_abs(state.ema_params, reference.ema_params) <= RELATIVE * moved
    if (fsdp, tensor) == (4, 1):  # the tolerance can fail: another batch lands far outside it
        other, _ = _train(model, parallel.make_mesh(8, fsdp=fsdp), _batches(seed=1))
        assert _max_abs(other.params, reference.params) > 100 * RELATIVE * moved


def test_weights_and_optimizer_state_are_split(model):
    mesh = parallel.make_mesh(8, fsdp=4, tensor=2)
    tx = build_optimizer(name="adam", warmup_steps=0)
    state = TrainState.create(model.init(jax.random.PRNGKey(0)), tx, 1)
    state = parallel.place(state, parallel.state_shardings(
        state, parallel.param_shardings(model.logical_axes(), state.params, mesh), mesh))
    kernel = state.params["block_0"]["mlp"]["fc_in"]["kernel"]  # [D=32, 4D=128]: ('embed', 'mlp')
    shard = kernel.addressable_shards[0].data
    assert kernel.shape == (32, 128) and shard.shape == (32 // 4, 128 // 2)
    adam = [s for s in jax.tree.leaves(state.opt_state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
            if isinstance(s, optax.ScaleByAdamState)][0]  # Adam's moments are split like the weights
    assert adam.mu["block_0"]["mlp"]["fc_in"]["kernel"].addressable_shards[0].data.shape == (8, 64)
    bias = state.params["block_0"]["mlp"]["fc_in"]["bias"]
    assert bias.sharding.is_fully_replicated
    # the step's own accounting: each device holds about 1/8 of the weights (biases and norms replicated)
    total = sum(leaf.nbytes for leaf in jax.tree.leaves(parallel.to_host(state.params)))
    assert parallel.bytes_per_device(state.params) < 0.3 * total


def test_checkpoint_moves_between_meshes(model, tmp_path):
    """fsdp=4 x tensor=2 trains 2 steps and saves; the checkpoint restores bitwise onto fsdp=2 and
    onto a data-only mesh, and both continue to the uninterrupted run's weights (tolerance above)."""
    batches = _batches()
    first, _ = _train(model, parallel.make_mesh(8, fsdp=4, tensor=2), batches, steps=2)
    manager = checkpoint.make_manager(str(tmp_path / "checkpoints"))
    checkpoint.save(manager, 2, first.checkpoint_items())
    straight, _ = _train(model, parallel.make_mesh(8, fsdp=4, tensor=2), batches, steps=2, state=first)
    for mesh in (parallel.make_mesh(4, fsdp=2), parallel.make_mesh(2)):
        template = TrainState.create(model.init(jax.random.PRNGKey(5)), first.tx, 1)
        shardings = parallel.state_shardings(template, parallel.param_shardings(
            model.logical_axes(), template.params, mesh), mesh)
        target = parallel.place(template, shardings)
        restored = target.replace_items(checkpoint.restore_latest(manager, target.checkpoint_items()))
        assert _max_abs(restored.params, first.params) == 0.0
        assert restored.params["block_0"]["mlp"]["fc_in"]["kernel"].sharding.mesh.shape == mesh.shape
        continued, _ = _train(model, mesh, batches, steps=2, state=restored)
        moved = _max_abs(straight.params, first.params)
        assert _max_abs(continued.params, straight.params) <= RELATIVE * _max_abs(straight.params, model.init(jax.random.PRNGKey(0))) + 1e-7
        assert moved > 0


def test_unet_shards_its_convolutions_and_matches_replicated():
    """The UNet's conv kernels `[k, C_in, C_out]` split C_in over fsdp; training matches (tolerance above)."""
    unet = _unet()
    axes = unet.logical_axes()
    assert tuple(axes["conv_in"]["kernel"]) == (None, "conv_in", "conv_out")
    reference, reference_losses = _train(unet, parallel.make_mesh(8), _batches(), steps=3)
    state, values = _train(unet, parallel.make_mesh(8, fsdp=4, tensor=2), _batches(), steps=3)
    np.testing.assert_allclose(values, reference_losses, rtol=RELATIVE)
    moved = _max_abs(reference.params, unet.init(jax.random.PRNGKey(0)))
    assert _max_abs(state.params, reference.params) <= RELATIVE * moved
    kernel = state.params["down_0_res_0"]["conv_0"]["kernel"]  # [3, 16, 16]
    assert kernel.addressable_shards[0].data.shape == (3, 16 // 4, 16 // 2)


def test_autoencoder_weights_are_annotated():
    config = autoencoder_config.get_config("smoke")
    ae = build_autoencoder_model(config, DataSpec(shape=(2000, 1), sample_rate=16000, num_classes=0))
    named = [tuple(spec) for spec in jax.tree.leaves(ae.logical_axes(), is_leaf=lambda x: isinstance(x, P))
             if "conv_in" in tuple(spec)]
    assert len(named) >= 4 and all(spec[-2:] == ("conv_in", "conv_out") for spec in named)


def test_remat_policies_change_memory_not_results(model):
    """'block' (nn.remat per DiT block) and 'full' (jax.checkpoint of the forward) recompute the same
    float32 operations, so they give the run's losses and weights to the tolerance above; the
    compiled step of 'full' keeps fewer temporaries."""
    mesh = parallel.make_mesh(2)
    reference, reference_losses = _train(model, mesh, _batches(), steps=2)
    for policy in ("block", "full"):
        remodel = model if policy == "full" else build_model(
            _config(name="dit", size="tiny", patch_size=1, width=32, num_heads=2, remat=True), model.spec)
        state, values = _train(remodel, mesh, _batches(), steps=2, remat="full" if policy == "full" else "none")
        np.testing.assert_allclose(values, reference_losses, rtol=RELATIVE)
        assert _max_abs(state.params, reference.params) <= RELATIVE * _max_abs(reference.params, model.init(
            jax.random.PRNGKey(0))) + 1e-7
    with pytest.raises(ValueError, match="block"):
        parallel.check_remat("layers")


def test_fsdp_fits_a_model_that_replication_does_not():
    """Compiled memory analysis (nothing allocated): a 10.3M-parameter DiT (width 512) whose
    replicated weights and Adam state (4 x 4 bytes per parameter: weights, EMA, two moments; 165 MB)
    exceed a 128 MiB per-device budget fits it with fsdp=8, step peak included (measured: 103 MB
    against 248 MB replicated). The temporaries do not shrink (82 MB either way): XLA:CPU gathers
    every layer's weights and keeps full-size gradients before their reduce-scatter."""
    big = build_model(_config(name="dit", size="tiny", width=512, depth=2, num_heads=4, patch_size=1),
                      DataSpec(shape=(8, 8), sample_rate=None, num_classes=0))
    tx = build_optimizer(name="adam", warmup_steps=0)
    budget = 128 * 2**20
    replicated = memory.step_memory(big, tx, parallel.make_mesh(8), 8)
    sharded = memory.step_memory(big, tx, parallel.make_mesh(8, fsdp=8), 8)
    assert replicated["params"] + replicated["optimizer_state"] > budget
    assert sharded["peak"] < budget
    assert sharded["params"] < replicated["params"] / 6  # 1/8 of the big weights; biases replicated

"""`scan_layers=True` (diffjax.models.scan): same function as the unscanned network, stacked
parameters, a program whose size does not grow with depth, and the 'layers' sharding axis.

Tolerance of the scanned-vs-unscanned comparisons (float32, u = 2^-24 ~ 6e-8): both programs do
the same operations in the same order and differ only in how XLA fuses and tiles them, i.e. in the
summation order inside each dot product. A length-K dot product reassociated changes by at most
K u sum|x_k w_k|; with K <= 3 C = 24 (DiffWave tiny) or 4 D = 128 (DiT tiny's MLP) that is <= 128 u
~ 8e-6 of the output scale per layer, and the tiny networks are shallow with gains ~1, so 1e-5
(outputs) and 1e-4 (gradients, two more dot products each) relative to the largest entry bound it.
Observed: ~2e-7.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from diffjax.models import diffwave as diffwave_lib
from diffjax.models import get_model, logical_axes, scan, unbox
from diffjax.training import parallel

B = 2


def _inputs(name):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(1), 3)
    if name == "diffwave":
        return (jax.random.normal(k1, (B, 256, 1)), jnp.array([0.3, -1.0]),
                {"features": jax.random.normal(k2, (B, 2, 10))})
    return (jax.random.normal(k1, (B, 8, 3)), jnp.array([0.3, -1.0]),
            {"tokens": jax.random.normal(k3, (B, 2, 4)), "global": jnp.ones((B, 3))})


EXTRA = {"diffwave": {}, "dit": dict(modulation="single", cross_attention_dim=4, global_dim=3,
                                     num_global_tokens=1, qk_norm=True)}


def _models(name, depth, **kw):
    key = "residual_layers" if name == "diffwave" else "depth"
    return (get_model(name, size="tiny", **{key: depth}, **EXTRA[name], **kw),
            get_model(name, size="tiny", **{key: depth}, scan_layers=True, **EXTRA[name], **kw))


def _random_params(model, inputs):
    """Initialised parameters plus noise, so zero-initialised projections do not hide a layer."""
    params = unbox(jax.jit(model.init)(jax.random.PRNGKey(0), *inputs))["params"]
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    return jax.tree.unflatten(tree, [x + 0.2 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


def _rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))


@pytest.mark.parametrize("name,remat", [("diffwave", False), ("diffwave", True), ("dit", False),
                                         ("dit", True)])
def test_scanned_network_and_gradients_equal_unscanned_with_stacked_parameters(name, remat):
    inputs = _inputs(name)
    plain, _ = _models(name, 3)
    _, scanned = _models(name, 3, remat=remat)
    params = _random_params(plain, inputs)
    stacked = scan.stack_layers(params)
    assert jax.tree.map(jnp.shape, stacked) == jax.tree.map(
            jnp.shape, unbox(jax.eval_shape(scanned.init, jax.random.PRNGKey(0), *inputs))["params"])

    def value_and_grad(model, p):
        def energy(p):
            y = model.apply({"params": p}, *inputs)
            return jnp.sum(y ** 2), y
        return jax.jit(jax.value_and_grad(energy, has_aux=True))(p)

    (_, y0), g0 = value_and_grad(plain, params)
    (_, y1), g1 = value_and_grad(scanned, stacked)
    assert float(jnp.max(jnp.abs(y0))) > 0.1  # not a vacuous comparison of zeros
    assert _rel_err(y0, y1) < 1e-5
    g0 = scan.stack_layers(g0)
    assert jax.tree.structure(g0) == jax.tree.structure(g1)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
        assert _rel_err(a, b) < 1e-4


def test_stack_and_unstack_are_exact_inverses():
    params = {"layer_0": {"w": jnp.zeros((2, 3))}, "layer_1": {"w": jnp.ones((2, 3))}, "out": jnp.ones(4)}
    stacked = scan.stack_layers(params)
    assert set(stacked) == {"layers", "out"} and stacked["layers"]["w"].shape == (2, 2, 3)
    np.testing.assert_array_equal(stacked["layers"]["w"][1], 1.0)
    back = scan.unstack_layers(stacked)
    assert jax.tree.structure(back) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="numbered 0..n-1"):
        scan.stack_layers({"block_0": 1.0, "block_2": 2.0})
    with pytest.raises(ValueError, match="mixed layouts"):
        scan.stack_layers({"layer_0": 1.0, "layers": 2.0})


@pytest.mark.parametrize("name", ["diffwave", "dit"])
def test_stacked_parameters_have_a_leading_layer_axis_named_layers(name):
    depth = 5
    _, scanned = _models(name, depth)
    boxed = jax.eval_shape(scanned.init, jax.random.PRNGKey(0), *_inputs(name))["params"]
    sub = "layers" if name == "diffwave" else "blocks"
    assert not any(k.startswith(("layer_", "block_")) for k in boxed)
    assert all(x.shape[0] == depth for x in jax.tree.leaves(unbox(boxed[sub])))
    specs = jax.tree.leaves(logical_axes(boxed)[sub], is_leaf=lambda x: isinstance(x, PartitionSpec))
    annotated = [s for s in specs if len(s)]
    if name == "dit":  # DiT's weights carry logical names; 'layers' comes first
        assert annotated and all(s[0] == scan.LAYERS_AXIS for s in annotated)
        mesh = parallel.make_mesh(4, fsdp=2, tensor=2)
        spec = parallel.mesh_axes_of(PartitionSpec("layers", "embed", "mlp"), (depth, 32, 64), mesh)
        assert spec == PartitionSpec(None, "fsdp", "tensor")  # layer axis replicated


@pytest.mark.parametrize("name", ["diffwave", "dit"])
def test_program_size_is_flat_in_depth_only_when_scanned(name):
    inputs = _inputs(name)

    def hlo_size(model):
        params = jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs)["params"]
        return jax.jit(model.apply).lower({"params": unbox(params)}, *inputs).as_text()

    (plain2, scan2), (plain8, scan8) = _models(name, 2), _models(name, 8)
    s2, s8 = hlo_size(scan2), hlo_size(scan8)
    assert "stablehlo.while" in s8 and "stablehlo.while" not in hlo_size(plain2)
    assert abs(len(s8) - len(s2)) < 0.1 * len(s2)
    assert len(hlo_size(plain8)) > 2 * len(hlo_size(plain2))


def test_traced_dilation_equals_each_static_dilation():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 40, 3))
    conv = diffwave_lib.DilatedConv3(5, dilation=8)
    params = conv.init(jax.random.PRNGKey(1), x)
    traced = jax.jit(lambda d: conv.apply(params, x, d))
    for d in (1, 2, 4, 8):
        static = diffwave_lib.DilatedConv3(5, dilation=d).apply(params, x)
        np.testing.assert_allclose(traced(jnp.int32(d)), static, rtol=1e-6, atol=1e-6)


def test_unsupported_combinations_say_what_to_change():
    x, c_noise, cond = _inputs("diffwave")
    with pytest.raises(ValueError, match="conv_impl='shifted'"):
        get_model("diffwave", size="tiny", scan_layers=True, conv_impl="xla").init(
                jax.random.PRNGKey(0), x, c_noise, cond)
    with pytest.raises(ValueError, match="scan_layers=False"):
        get_model("dit", size="tiny", scan_layers=True, magnitude_preserving=True).init(
                jax.random.PRNGKey(0), jnp.ones((B, 4, 3)), c_noise)


def test_scanned_block_keeps_activation_constraint_under_a_mesh():
    """Under a data x fsdp mesh the scanned DiT's train-time forward lowers with sharded
    activations (the constraint inside the scan body) and the replicated layer axis."""
    model = get_model("dit", size="tiny", depth=2, scan_layers=True)
    mesh = parallel.make_mesh(2)
    x, c_noise = jnp.ones((B, 8, 3)), jnp.zeros((B,))
    params = unbox(jax.jit(model.init)(jax.random.PRNGKey(0), x, c_noise))
    plain = jax.jit(model.apply).lower(params, x, c_noise).as_text()
    with parallel.sharding_context(mesh):
        text = jax.jit(model.apply).lower(params, x, c_noise).as_text()
    assert "stablehlo.while" in text and "sharding_constraint" in text and "sharding_constraint" not in plain


def _stacked_residual_shapes(model, inputs, depth):
    """Shapes `[depth, ...]` of the arrays the gradient's program stacks across the scan (the
    residuals the forward loop keeps for the backward loop), from the lowered StableHLO."""
    params = unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs))
    text = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, *inputs)))).lower(params).as_text()
    shapes = {tuple(int(d) for d in s.split("x")) for s in re.findall(r"tensor<((?:\d+x)+)f32>", text)
              for s in [s.rstrip("x")]}
    return {s for s in shapes if len(s) >= 3 and s[0] == depth}


def test_scanned_diffwave_keeps_only_layer_inputs_and_preactivations():
    # diffwave.KEEP_PREACTIVATIONS: each layer keeps its input h [B, L, C] and the gate's
    # pre-activation [B, L, 2C]; the taps + mel concatenation [B, L, 3C + M] is recomputed.
    x, c_noise, cond = _inputs("diffwave")
    model = get_model("diffwave", size="tiny", scan_layers=True, residual_layers=3)
    c = model.residual_channels
    stacked = _stacked_residual_shapes(model, (x, c_noise, cond), 3)
    activations = {s for s in stacked if s[1:3] == x.shape[:2]}
    assert activations == {(3,) + x.shape[:2] + (c,), (3,) + x.shape[:2] + (2 * c,)}, stacked


def test_scanned_dit_recomputes_attention_instead_of_stacking_it():
    # dots_with_no_batch_dims_saveable: projections' outputs are kept, the attention logits and
    # probabilities [B, H, N, N] (batched dots) are recomputed in the backward pass.
    inputs = _inputs("dit")
    _, model = _models("dit", 3)
    n = inputs[0].shape[1] // model.patch_size  # patch tokens (+ global tokens: N >= n)
    stacked = _stacked_residual_shapes(model, inputs, 3)
    assert stacked and not any(s[-1] == s[-2] >= n for s in stacked), stacked

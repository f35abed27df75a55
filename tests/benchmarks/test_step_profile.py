"""benchmarks/step_profile.py: attributing XLA ops to the model code that produced them."""
import re

import jax
import jax.numpy as jnp

from benchmarks import step_profile


def test_attribute_pass_and_part():
    fwd = "jit(train_step)/jvp(DiT)/block_3/attn/query/dot_general"
    bwd = "jit(train_step)/transpose(jvp(DiT))/block_3/mlp/fc_in/dot_general"
    scanned = ("jit(train_step)/transpose(jvp(DiffWave))/DiffWave._scanned_layers/while/body/closed_call/"
               "checkpoint/layers._scan_body/layers/dilated_conv/dot_general")
    assert step_profile.attribute(fwd) == ("forward", "attn")
    assert step_profile.attribute(bwd) == ("backward", "mlp")
    assert step_profile.attribute(scanned) == ("backward", "dilated_conv")
    assert step_profile.attribute("jit(train_step)/jvp(DiT)/final_proj/dot_general") == ("forward", "final_proj")
    assert step_profile.attribute("jit(train_step)/add") == (step_profile.OUTSIDE, "add")
    assert step_profile.attribute("state.params['block_0']['attn']['query']['kernel']") == (
            step_profile.OUTSIDE, "state copies")


def test_op_names_read_the_compiled_programs_metadata():
    def f(x, w):
        return jnp.tanh(x @ w).sum()

    text = jax.jit(jax.grad(f)).lower(jnp.ones((4, 3)), jnp.ones((3, 2))).compile().as_text()
    names = step_profile.op_names(text)
    assert names and all(isinstance(v, str) for v in names.values())
    assert any("dot_general" in v for v in names.values()) and any("tanh" in v for v in names.values())
    assert set(names) <= set(re.findall(r"%([\w.\-]+) = ", text))


def test_op_kind_from_instruction_names():
    assert step_profile.op_kind("ynn_fusion.12") == step_profile.op_kind("dot.108") == "matmul"
    for name in ("copy_bitcast_fusion.1", "concatenate.25", "bitcast_dynamic-update-slice_fusion.2",
                 "wrapped_broadcast.3", "slice_pad_fusion"):
        assert step_profile.op_kind(name) == "data movement", name
    assert step_profile.op_kind("multiply_add_fusion") == "elementwise and reductions"
    assert step_profile.op_kind("slice_tanh_fusion") == "elementwise and reductions"  # a tanh, fused

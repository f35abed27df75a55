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


def test_op_names_read_the_compiled_programs_metadata():
    def f(x, w):
        return jnp.tanh(x @ w).sum()

    text = jax.jit(jax.grad(f)).lower(jnp.ones((4, 3)), jnp.ones((3, 2))).compile().as_text()
    names = step_profile.op_names(text)
    assert names and all(isinstance(v, str) for v in names.values())
    assert any("dot_general" in v for v in names.values()) and any("tanh" in v for v in names.values())
    assert set(names) <= set(re.findall(r"%([\w.\-]+) = ", text))

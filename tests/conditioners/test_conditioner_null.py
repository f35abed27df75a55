"""The null value of every conditioner is the unconditional path, and only the null value is:

- `model.denoiser(params, None)` equals the denoiser given each condition's `null(B)` (the network
  inputs are identical, and so are the compiled outputs), while a non-null value of any one
  condition changes the output (random parameters: at DiT's zero init every output is 0);
- an empty caption is the null text value (ids 0, mask False), and the text embedder gives
  exactly zero `global` and no valid token for it;
- padded frames (`sequence_mask`) reach no valid output through the conditioned network either:
  with text tokens, a timing vector and frame-aligned concat inputs (inpainting, piano roll) whose
  padded frames are junk too.
"""
import jax
import numpy as np
import pytest

from diffjax import precond

NAMES = ("inpaint", "label", "notes", "text", "timing")
B = 4  # the batch of the shared compiled network calls (conftest.NET_BATCH; checked below)


def numpy_tree(tree):
    return jax.tree.map(np.asarray, tree)


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.asarray(u).dtype == np.asarray(v).dtype
        np.testing.assert_array_equal(u, v)


def test_the_model_has_every_conditioner(tiny):
    assert tuple(sorted(tiny.model.conditioners)) == NAMES
    assert tiny.x.shape[0] == B


@pytest.mark.parametrize("name", NAMES)
def test_a_null_value_gives_the_network_inputs_of_a_missing_condition(tiny, name):
    model = tiny.model
    null = model.conditioners[name].null(B)
    assert {int(np.shape(leaf)[0]) for leaf in jax.tree.leaves(null)} == {B}
    assert_trees_equal(numpy_tree(model.network_condition({name: null}, B)),
                       numpy_tree(model.network_condition(None, B)))
    # With every other condition given, a null value and a missing name are the same input too.
    others = {k: v for k, v in tiny.values.items() if k != name}
    assert_trees_equal(numpy_tree(model.network_condition({**others, name: null}, B)),
                       numpy_tree(model.network_condition(others, B)))


def test_each_null_value_is_no_value_of_real_data(tiny):
    """What makes a null value 'no condition' rather than one more condition: the label's null is
    the class embedding's extra row, seconds are >= 0 in data, the notes are marked not given, no
    frame is known, and no token is valid."""
    c, num_classes = tiny.model.conditioners, tiny.model.spec.num_classes
    np.testing.assert_array_equal(c["label"].null(2), num_classes)
    table = [leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(tiny.params)
             if "class_embedding" in jax.tree_util.keystr(path)]
    assert [shape[0] for shape in table] == [num_classes + 1]
    assert all(np.all(np.asarray(v) < 0) for v in c["timing"].null(2).values())
    np.testing.assert_array_equal(c["notes"].null(2)["given"], 0.0)
    np.testing.assert_array_equal(tiny.values["notes"]["given"], 1.0)
    np.testing.assert_array_equal(c["inpaint"].null(2)["mask"], 0.0)
    text_null = c["text"].null(2)
    np.testing.assert_array_equal(text_null["ids"], 0)
    assert not np.any(text_null["mask"])


@pytest.fixture(scope="module")
def outputs(tiny):
    """D(x, sigma) unconditional, with every condition null, and with one condition non-null."""
    p, x, s = tiny.params, tiny.x, tiny.sigma
    null = tiny.model.null_condition(B)
    out = {"none": np.asarray(tiny.unconditional(p, x, s)),
           "null": np.asarray(tiny.denoise(p, x, s, null))}
    for name in NAMES:
        out[name] = np.asarray(tiny.denoise(p, x, s, {**null, name: tiny.values[name]}))
    return out


def test_the_unconditional_denoiser_equals_the_denoiser_of_the_null_values(outputs):
    # `denoise` and `unconditional` are separately compiled programs; the null values enter one as
    # arguments and the other as constants. Both compute the same float32 operations.
    assert np.std(outputs["none"]) > 0.1  # not the zero output of a network at init
    np.testing.assert_array_equal(outputs["null"], outputs["none"])


@pytest.mark.parametrize("name", NAMES)
def test_a_non_null_value_of_each_condition_changes_the_output(outputs, name):
    # Random parameters of scale ~1 move the output by O(0.1) or more; float32 rounding is ~1e-7.
    change = np.max(np.abs(outputs[name] - outputs["none"]))
    assert change > 1e-3, (name, change)


def test_an_empty_caption_is_the_null_text_value(tiny):
    text = tiny.model.conditioners["text"]
    value = text.host_value({"caption": np.array(["", "a soft flute note", "   "], object)})
    null = numpy_tree(text.null(3))
    for row in (0, 2):
        np.testing.assert_array_equal(value["ids"][row], null["ids"][row])
        np.testing.assert_array_equal(value["mask"][row], null["mask"][row])
    assert value["mask"][1].sum() == 4 and np.all(value["ids"][1] > 1)  # four known words
    assert value["ids"].dtype == null["ids"].dtype and value["mask"].dtype == null["mask"].dtype


@pytest.fixture(scope="module")
def text_embedder(tiny):
    """The model's text embedder, its (random) parameters from the model's tree, jitted."""
    model = tiny.model
    embedder = model.conditioners["text"].embedder()
    index = model.network.embedder_names.index("text")
    params = tiny.params[f"embedders_{index}"]
    return jax.jit(lambda v: embedder.apply({"params": params}, v))


def test_the_text_embedder_gives_zero_global_and_no_token_for_the_null_value(tiny, text_embedder):
    text = tiny.model.conditioners["text"]
    null = numpy_tree(text_embedder(text.null(B)))
    np.testing.assert_array_equal(null["global"], 0.0)  # exactly: the null value adds nothing
    assert not np.any(null["tokens_mask"])
    given = numpy_tree(text_embedder(tiny.values["text"]))
    assert np.all(np.abs(given["global"]).max(axis=1) > 1e-3)  # each example's caption counts
    np.testing.assert_array_equal(given["tokens_mask"], tiny.values["text"]["mask"])


def test_valid_outputs_do_not_depend_on_padded_frames_through_the_conditioned_network(tiny):
    """tests/models/test_dit.py checks the bare DiT; here `sequence_mask` passes through
    `ConditionedNetwork` beside the embedders' tokens, global vector and concat channels, and junk
    in the padded frames of x and of the frame-aligned conditions must not reach valid frames."""
    model, p = tiny.model, tiny.params
    net_fn = precond.flax_net_fn(model.network, p)

    @jax.jit
    def run(x, sigma, cond, frames):
        inputs = {**model.network_condition(cond, B), "sequence_mask": frames}
        return model.precond.denoise(net_fn, x, sigma, inputs)

    t = model.latent_shape[0]
    valid = np.arange(t)[None, :] < np.array([[20], [t], [5], [31]])
    cond = tiny.values
    y = np.asarray(run(tiny.x, tiny.sigma, cond, valid))
    rng = np.random.default_rng(7)

    def junk(a):
        a = np.asarray(a)
        noise = 100.0 * rng.standard_normal(a.shape).astype(a.dtype)
        return np.where(valid.reshape(valid.shape + (1,) * (a.ndim - 2)), a, noise)

    cond_junk = {**cond,
                 "inpaint": {"known": junk(cond["inpaint"]["known"]), "mask": junk(cond["inpaint"]["mask"])},
                 "notes": {**cond["notes"], "roll": junk(cond["notes"]["roll"])}}
    y_junk = np.asarray(run(junk(tiny.x), tiny.sigma, cond_junk, valid))
    # Padded inputs are zeroed before patching and padded keys get exactly zero attention weight,
    # so the valid outputs are the same float32 computation: allow a few ulps of |y|.
    tol = 8 * np.finfo(np.float32).eps * np.max(np.abs(y))
    np.testing.assert_allclose(y_junk[valid], y[valid], rtol=0, atol=tol)
    # The test can fail: without the mask, the junk changes the valid frames.
    y_unmasked = np.asarray(run(junk(tiny.x), tiny.sigma, cond_junk, np.ones_like(valid)))
    assert np.max(np.abs(y_unmasked[0, :20] - y[0, :20])) > 1e-2

"""Registry-wide tests of the score networks: shapes, dtypes, conditioning, jit, sizes."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.models import MODELS, get_model
from diffjax.models import diffwave as diffwave_lib
from diffjax.models import unbox
from diffjax.models.unet import patchify, unpatchify

KEY = jax.random.PRNGKey(0)
B = 2
# name -> (constructor kwargs at a tiny size, input shape, cond with every supported field)
EXAMPLES = {
        "mlp": ({}, (B, 3), None),
        "unet1d": ({"size": "tiny", "num_classes": 4}, (B, 300, 2),
                   {"label": jnp.array([1, 4]), "features": jnp.ones((B, 3, 10, 1))}),
        "unet2d": ({"size": "tiny", "num_classes": 4}, (B, 9, 17, 4), {"label": jnp.array([0, 4])}),
        "diffwave": ({"size": "tiny"}, (B, 512, 1), {"features": jnp.ones((B, 2, 10))}),
        "dit": ({"size": "tiny", "num_classes": 4, "cross_attention_dim": 6, "global_dim": 3,
                 "num_global_tokens": 1, "qk_norm": True}, (B, 15, 3),
                {"label": jnp.array([1, 4]), "tokens": jnp.ones((B, 5, 6)), "global": jnp.ones((B, 3))}),
}


def init_apply(model, x, c_noise, cond):
    """Parameter shapes from `jax.eval_shape(init)`, random values (so that the zero-initialised
    output layers do not hide the rest), and one jitted forward + backward.

    Returns (parameter shapes, output, gradients).
    """
    shapes = unbox(jax.eval_shape(model.init, KEY, x, c_noise, cond))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: jnp.asarray(0.2 * rng.standard_normal(s.shape), s.dtype),
                          shapes)

    def loss(p):
        y = model.apply(p, x, c_noise, cond)
        return jnp.mean((y - x) ** 2), y

    (_, y), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return shapes, y, grads


def test_every_registered_network_has_an_example():
    assert set(MODELS.names()) <= set(EXAMPLES), set(MODELS.names()) - set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_shapes_dtypes_and_gradients(name):
    kwargs, shape, cond = EXAMPLES[name]
    x = jax.random.normal(KEY, shape)
    params, y, grads = init_apply(get_model(name, **kwargs), x, jnp.linspace(-1, 1, B), cond)
    assert y.shape == x.shape and y.dtype == jnp.float32
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    g = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(v)) for v in g) and any(np.abs(v).max() > 0 for v in g)
    if name in ("unet1d", "unet2d", "diffwave"):  # every parameter is used (labels, features)
        unused = [jax.tree_util.keystr(p) for p, v in jax.tree_util.tree_leaves_with_path(grads)
                  if not np.abs(v).max() > 0]
        assert not unused, unused
    if name == "unet1d":  # the feature channels (after the 2 audio channels) reach the input conv
        assert np.abs(grads["params"]["conv_in"]["kernel"][:, 2:]).max() > 0


@pytest.mark.parametrize("name,kwargs,shape", [
        ("unet1d", {"remat": True, "channel_mults": (1,), "strides": ()}, (B, 64, 1)),
        ("diffwave", {"remat": True, "dtype": "bfloat16"}, (B, 256, 1))])
def test_bfloat16_and_remat(name, kwargs, shape):
    model = get_model(name, size="tiny", **kwargs)
    x = jnp.ones(shape)
    params, y, grads = init_apply(model, x, jnp.zeros(B), None)
    assert y.dtype == jnp.float32 and y.shape == shape
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(grads))


def test_diffwave_base_parameter_count_matches_the_paper():
    # Kong et al. 2021, sec. 5: "2.64M" parameters for 30 layers x 64 channels, mel-conditioned.
    model = get_model("diffwave", size="base")
    shapes = jax.eval_shape(model.init, KEY, jnp.ones((1, 1024, 1)), jnp.ones(1),
                            {"features": jnp.ones((1, 4, 80))})
    n = sum(math.prod(v.shape) for v in jax.tree.leaves(shapes))
    assert abs(n - 2.64e6) / 2.64e6 < 0.01, n
    assert n == 2_619_971  # 328,704 embedding + 30 x 76,224 layers + 4,225 output + 194 upsampler


def test_diffwave_conv_impls_agree():
    x = jax.random.normal(KEY, (B, 200, 6))
    shifted = diffwave_lib.DilatedConv3(5, dilation=4, impl="shifted")
    xla = diffwave_lib.DilatedConv3(5, dilation=4, impl="xla")
    params = shifted.init(KEY, x)
    np.testing.assert_allclose(shifted.apply(params, x), xla.apply(params, x), atol=1e-5)
    # Against an explicit loop: y[t] = sum_k W[k] x[t + (k - 1) d].
    w = np.asarray(params["params"]["kernel"])
    xp = np.pad(np.asarray(x), ((0, 0), (4, 4), (0, 0)))
    ref = sum(xp[:, 4 * k:4 * k + 200] @ w[k] for k in range(3))
    np.testing.assert_allclose(shifted.apply(params, x), ref, atol=1e-4)
    # The folded extra features (DiffWave's mel projection), in the same matmul or added to the conv.
    feats, w_extra = jax.random.normal(KEY, (B, 200, 3)), jax.random.normal(jax.random.PRNGKey(5), (3, 5))
    full = ref + np.asarray(feats) @ np.asarray(w_extra) + np.asarray(params["params"]["bias"])
    for conv in (shifted, xla):
        np.testing.assert_allclose(conv.apply(params, x, extra=(feats, w_extra)), full, atol=1e-4)


def test_unknown_model_and_size_errors():
    with pytest.raises(KeyError, match="valid names: .*diffwave"):
        get_model("wavenet")
    with pytest.raises(ValueError, match="valid sizes: tiny, small, base"):
        get_model("unet2d", size="huge")


def test_diffwave_upsampler_is_a_transposed_conv():
    s, t, m = 4, 5, 7
    x = jax.random.normal(KEY, (1, t, m))
    layer = diffwave_lib.TransposedConv(s)
    params = layer.init(KEY, x)
    k = np.asarray(params["params"]["kernel"])  # [2s, 3]
    full = np.zeros(((t + 1) * s, m))  # out_full[t s + k, m] = sum_d x[t, m + 1 - d] K[k, d]
    xp = np.pad(np.asarray(x[0]), ((0, 0), (1, 1)))
    for ti in range(t):
        for ki in range(2 * s):
            for d in range(3):
                full[ti * s + ki] += xp[ti, 2 - d:2 - d + m] * k[ki, d]
    np.testing.assert_allclose(layer.apply(params, x)[0], full[s // 2:s // 2 + t * s], atol=1e-5)


def test_patched_unet1d_round_trips_and_keeps_shapes():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((B, 100, 2)))
    h = patchify(x, 16)
    assert h.shape == (B, 7, 32)  # 100 samples -> 7 patches of 16 x 2 channels, zero-padded
    np.testing.assert_array_equal(h[:, 1, :2], x[:, 16])  # patch 1 starts at sample 16
    np.testing.assert_array_equal(h[:, 6, 2 * 4:], 0.0)  # padding after sample 99
    np.testing.assert_array_equal(unpatchify(h, 16, x.shape), x)
    model = get_model("unet1d", size="tiny", patch=4, num_classes=4)
    cond = {"label": jnp.array([1, 4]), "features": jnp.ones((B, 3, 10, 1))}
    params, y, grads = init_apply(model, x, jnp.zeros(B), cond)
    assert y.shape == x.shape and params["params"]["conv_in"]["kernel"].shape[1] == 4 * 2 + 10
    assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(grads))


def test_diffwave_residual_layer_is_the_papers_layer():
    # Kong et al. 2021, Fig. 2, in numpy: h = x + W_d e; y = dilated_conv(h) + W_m mel;
    # z = sigmoid(y[:C]) tanh(y[C:]); (r, s) = W_o z; out = ((x + r) / sqrt 2, s).
    c, d, length = 4, 2, 30
    k = jax.random.split(KEY, 3)
    x, emb, mel = (jax.random.normal(k[0], (B, length, c)), jax.random.normal(k[1], (B, 6)),
                   jax.random.normal(k[2], (B, length, 5)))
    layer = diffwave_lib.ResidualLayer(c, d)
    params = jax.tree.map(lambda a: a + 0.1, layer.init(KEY, x, emb, mel))  # non-zero biases
    p = jax.tree.map(np.asarray, params["params"])
    h = np.asarray(x) + (np.asarray(emb) @ p["diffusion_projection"]["kernel"]
                         + p["diffusion_projection"]["bias"])[:, None]
    hp = np.pad(h, ((0, 0), (d, d), (0, 0)))
    y = sum(hp[:, i * d:i * d + length] @ p["dilated_conv"]["kernel"][i] for i in range(3))
    y = y + p["dilated_conv"]["bias"] + np.asarray(mel) @ p["conditioner_projection"]["kernel"] \
        + p["conditioner_projection"]["bias"]
    z = 1 / (1 + np.exp(-y[..., :c])) * np.tanh(y[..., c:])
    out = z @ p["output_projection"]["kernel"] + p["output_projection"]["bias"]
    residual, skip = layer.apply(params, x, emb, mel)
    np.testing.assert_allclose(residual, (np.asarray(x) + out[..., :c]) / np.sqrt(2), atol=1e-5)
    np.testing.assert_allclose(skip, out[..., c:], atol=1e-5)

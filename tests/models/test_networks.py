"""Registry-wide tests of the score networks: shapes, dtypes, conditioning, jit, sizes."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.models import MODELS, get_model
from diffjax.models import diffwave as diffwave_lib

KEY = jax.random.PRNGKey(0)
B = 2
# name -> (constructor kwargs at a tiny size, input shape, cond with every supported field)
EXAMPLES = {
        "mlp": ({}, (B, 3), None),
        "unet1d": ({"size": "tiny", "num_classes": 4}, (B, 300, 2),
                   {"label": jnp.array([1, 4]), "features": jnp.ones((B, 3, 10, 1))}),
        "unet2d": ({"size": "tiny", "num_classes": 4}, (B, 9, 17, 4), {"label": jnp.array([0, 4])}),
        "diffwave": ({"size": "tiny"}, (B, 512, 1), {"features": jnp.ones((B, 2, 10))}),
}


def init_apply(model, x, c_noise, cond):
    """One jitted init + apply + grad (so each network compiles once)."""

    def f(key):
        params = model.init(key, x, c_noise, cond)

        def loss(p):
            return jnp.mean(model.apply(p, x, c_noise, cond) ** 2 - x * model.apply(p, x, c_noise, cond))

        return params, model.apply(params, x, c_noise, cond), jax.grad(loss)(params)

    return jax.jit(f)(KEY)


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


def test_unet1d_uses_labels_and_features():
    model = get_model("unet1d", size="tiny", num_classes=4, channels=8)
    x = jax.random.normal(KEY, (B, 300, 1))
    c = jnp.zeros(B)
    feats = jnp.ones((B, 3, 10, 1))

    @jax.jit
    def outputs(key):
        p = model.init(key, x, c, {"label": jnp.array([0, 0]), "features": feats})
        p = jax.tree.map(lambda v: v + 0.05 * jax.random.normal(key, v.shape), p)  # leave zero init
        run = lambda cond: model.apply(p, x, c, cond)  # noqa: E731
        return (run({"label": jnp.array([0, 0]), "features": feats}),
                run({"label": jnp.array([1, 1]), "features": feats}),
                run({"label": jnp.array([0, 0]), "features": 2 * feats}))

    base, other_label, other_feats = outputs(KEY)
    assert np.abs(base - other_label).max() > 1e-4
    assert np.abs(base - other_feats).max() > 1e-4


@pytest.mark.parametrize("name,shape", [("unet1d", (B, 256, 1)), ("diffwave", (B, 256, 1))])
def test_bfloat16_compute_with_float32_params_and_remat(name, shape):
    model = get_model(name, size="tiny", dtype="bfloat16", remat=True)
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


def test_unknown_model_and_size_errors():
    with pytest.raises(KeyError, match="valid names: .*diffwave"):
        get_model("wavenet")
    with pytest.raises(ValueError, match="valid sizes: tiny, small, base"):
        get_model("unet2d", size="huge")

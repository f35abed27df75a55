"""Tests for diffjax.models.layers."""
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.models import layers
from diffjax.models import unbox

KEY = jax.random.PRNGKey(0)


def test_noise_embedding_shapes_and_sensitivity():
    m = layers.NoiseEmbedding(32)
    c = jnp.array([-1.0, 0.0, 0.5, 2.0])
    params = m.init(KEY, c)
    e = m.apply(params, c)
    assert e.shape == (4, 32) and e.dtype == jnp.float32
    assert np.all(np.linalg.norm(np.diff(np.asarray(e), axis=0), axis=1) > 1e-3)
    f = layers.sinusoidal_features(c, 16)
    np.testing.assert_allclose(f[:, 0], np.cos(c), rtol=1e-6)  # frequency 1 comes first
    np.testing.assert_allclose(np.asarray(f[:, :8]) ** 2 + np.asarray(f[:, 8:]) ** 2, 1, rtol=1e-5)


def test_class_embedding_has_a_null_class():
    m = layers.ClassEmbedding(num_classes=3, dim=8)
    label = jnp.array([0, 1, 2, 3])  # 3 = null class
    params = unbox(m.init(KEY, label))
    assert params["params"]["embed"]["embedding"].shape == (4, 8)
    assert m.apply(params, label).shape == (4, 8)


def test_conditioning_embedding_defaults_to_the_null_class():
    def f(c, cond):
        return layers.conditioning_embedding(c, cond, dim=16, num_classes=3, dtype=jnp.float32)

    class M(__import__("flax").linen.Module):
        @__import__("flax").linen.compact
        def __call__(self, c, cond):
            return f(c, cond)

    c = jnp.zeros(2)
    params = M().init(KEY, c, {"label": jnp.array([0, 3])})
    uncond = M().apply(params, c, None)
    null = M().apply(params, c, {"label": jnp.array([3, 3])})
    np.testing.assert_allclose(uncond, null)


def test_film_starts_as_identity_and_blocks_keep_shape():
    h = jax.random.normal(KEY, (2, 3, 5, 8))
    emb = jnp.ones((2, 12))
    film, block, attn = layers.FiLM(), layers.ResBlock(16, kernel=(3, 1)), layers.SelfAttention(2)

    @jax.jit  # one compile instead of many eager ones
    def run(h, emb):
        return (film.apply(film.init(KEY, h, emb), h, emb),
                block.apply(block.init(KEY, h, emb), h, emb),
                attn.apply(attn.init(KEY, h), h),
                layers.resize_features(jnp.ones((2, 4, 80, 1)), 100))

    film_out, block_out, attn_out, feats = run(h, emb)
    np.testing.assert_allclose(film_out, h)
    assert block_out.shape == (2, 3, 5, 16)
    np.testing.assert_allclose(attn_out, h)  # zero-initialised output projection
    assert feats.shape == (2, 100, 80)

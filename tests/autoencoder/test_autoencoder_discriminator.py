"""EnCodec's multi-scale STFT discriminator: shapes, and its losses at known logits."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.autoencoder import (MultiScaleSTFTDiscriminator, feature_matching_loss,
                                 hinge_discriminator_loss, hinge_generator_loss)


def test_output_shapes_per_scale():
    disc = MultiScaleSTFTDiscriminator(n_ffts=(64, 32), filters=4)
    audio = jax.random.normal(jax.random.PRNGKey(0), (2, 128, 1))
    params = jax.jit(disc.init)(jax.random.PRNGKey(1), audio)
    outputs = jax.jit(disc.apply)(params, audio)
    assert len(outputs) == 2
    for n_fft, (logits, features) in zip((64, 32), outputs):
        frames, bins = 1 + 128 // (n_fft // 4), n_fft // 2 + 1
        f_out = bins
        for _ in range(3):  # three convs of stride 2 along frequency, 'same' padding
            f_out = -(-f_out // 2)
        assert logits.shape == (2, frames, f_out, 1)
        assert len(features) == 5
        assert features[0].shape == (2, frames, bins, 4) and features[-1].shape == (2, frames, f_out, 4)
        assert all(bool(jnp.all(jnp.isfinite(f))) for f in features)


def _scales(*values, shape=(2, 3, 4, 1)):
    """One constant logit map per scale, with no feature maps."""
    return [(jnp.full(shape, v), ()) for v in values]


@pytest.mark.parametrize("real, fake, d_loss, g_loss", [
        # max(0, 1 - r) + max(0, 1 + f) and max(0, 1 - f), averaged over two scales
        ((2.0, 0.5), (-2.0, 0.0), ((0 + 0) + (0.5 + 1.0)) / 2, ((3.0) + (1.0)) / 2),
        ((0.0, -1.0), (1.0, 3.0), ((1 + 2) + (2 + 4)) / 2, ((0.0) + (0.0)) / 2),
])
def test_hinge_losses_at_known_logits(real, fake, d_loss, g_loss):
    d = hinge_discriminator_loss(_scales(*real), _scales(*fake))
    g = hinge_generator_loss(_scales(*fake))
    assert d.shape == g.shape == (2,)
    np.testing.assert_allclose(np.asarray(d), d_loss)
    np.testing.assert_allclose(np.asarray(g), g_loss)


def test_feature_matching_is_zero_on_identical_features_and_relative():
    feats = [jax.random.normal(jax.random.PRNGKey(i), (2, 3, 4, 5)) for i in range(3)]
    real = [(jnp.zeros((2, 1, 1, 1)), feats[:2]), (jnp.zeros((2, 1, 1, 1)), feats[2:])]
    np.testing.assert_array_equal(np.asarray(feature_matching_loss(real, real)), 0.0)
    # fake = 1.5 x real: |real - fake| / |real| = 0.5 in every map.
    fake = [(logits, [1.5 * f for f in fs]) for logits, fs in real]
    np.testing.assert_allclose(np.asarray(feature_matching_loss(real, fake)), 0.5, rtol=1e-6)

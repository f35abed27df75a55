"""The Oobleck autoencoder: shapes, the 'none' bottleneck, the polyphase transposed conv against
lax's input-dilated one, and every size's parameter count against a closed-form count."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.autoencoder import (AUTOENCODER_SIZES, AUTOENCODERS, autoencoder, init_params,
                                 parameter_count)
from diffjax.autoencoder.networks import sin_squared, transposed_conv, transposed_padding

PUBLISHED_LARGE = 156e6  # Stable Audio Open's autoencoder (Evans et al. 2024): "156M"


@pytest.fixture(scope="module")
def tiny():
    """One tiny VAE and one tiny plain autoencoder (hop 8), initialised once."""
    vae, plain = autoencoder("tiny"), AUTOENCODERS.build({"name": "oobleck", "size": "tiny",
                                                         "bottleneck": "none"})
    return {m.bottleneck: (m, jax.jit(lambda k, m=m: init_params(m, k))(jax.random.PRNGKey(0)))
            for m in (vae, plain)}


@pytest.mark.parametrize("bottleneck", ["vae", "none"])
def test_shapes_encode_decode_and_call(tiny, bottleneck):
    module, params = tiny[bottleneck]
    assert module.hop == 8
    audio = jax.random.normal(jax.random.PRNGKey(1), (2, 37, 1))  # T = ceil(37 / 8) = 5
    apply = lambda *a, method=None: jax.jit(  # noqa: E731
            lambda p, *a: module.apply({"params": p}, *a, method=method))(params, *a)
    mean, std = apply(audio, method=module.encode_moments)
    assert mean.shape == std.shape == (2, 5, 4)
    assert apply(mean, method=module.decode).shape == (2, 40, 1)
    recon, aux = apply(audio, jax.random.PRNGKey(2))
    assert recon.shape == audio.shape and aux["kl"].shape == (2,)
    assert bool(jnp.all(jnp.isfinite(recon)))
    if bottleneck == "none":
        np.testing.assert_array_equal(np.asarray(std), 0.0)
        np.testing.assert_array_equal(np.asarray(aux["kl"]), 0.0)
        # Deterministic: z = mean, so the reconstruction is decode(mean) cropped.
        decoded = np.asarray(apply(mean, method=module.decode))[:, :37]
        np.testing.assert_allclose(np.asarray(recon), decoded, rtol=1e-6, atol=1e-6)
    else:
        assert bool(jnp.all(std > 0)) and bool(jnp.all(aux["kl"] > 0))


@pytest.mark.parametrize("stride", [1, 2, 3, 4, 8])
def test_polyphase_transposed_conv_equals_the_input_dilated_conv(stride):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 3))
    kernel = jax.random.normal(jax.random.PRNGKey(1), (2 * stride, 3, 5))
    low = transposed_padding(stride)
    expected = jax.lax.conv_general_dilated(x, kernel, (1,), ((low, 3 * stride - 2 - low),),
                                            lhs_dilation=(stride,),
                                            dimension_numbers=("NWC", "WIO", "NWC"))
    got = transposed_conv(x, kernel, stride)
    assert got.shape == expected.shape == (2, 6 * stride, 5)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_polynomial_sin_squared_and_its_gradient_match_numpy():
    """float32 over |y| <= 200: the Taylor remainder is 6e-8 and the two-part pi keeps the reduced
    argument at float32 rounding; measured errors 4.2e-7 (value) and 1.4e-6 (gradient, 2 sin cos),
    so the bounds 1e-6 and 3e-6 leave ~2x."""
    y = jnp.linspace(-200.0, 200.0, 200_001, dtype=jnp.float32)
    y64 = np.asarray(y, np.float64)
    np.testing.assert_allclose(np.asarray(sin_squared(y)), np.sin(y64) ** 2, atol=1e-6)
    grad = jax.grad(lambda v: jnp.sum(sin_squared(v)))(y)
    np.testing.assert_allclose(np.asarray(grad), np.sin(2 * y64), atol=3e-6)


def _closed_form_count(io_channels, channels, c_mults, strides, latent_dim, bottleneck="vae"):
    """Weight-normalised conv: k c_in c_out (v) + c_out (g) + c_out (bias); Snake: one alpha per
    channel; a residual unit: 2 snakes, conv7, conv1."""
    conv = lambda k, i, o, bias=True: k * i * o + o + (o if bias else 0)  # noqa: E731
    unit = lambda c: 2 * c + conv(7, c, c) + conv(1, c, c)  # noqa: E731
    w = [channels * m for m in (1, *c_mults)]
    enc_out = 2 * latent_dim if bottleneck == "vae" else latent_dim
    encoder = conv(7, io_channels, w[0]) + w[-1] + conv(3, w[-1], enc_out) + sum(
            3 * unit(w[i]) + w[i] + conv(2 * s, w[i], w[i + 1]) for i, s in enumerate(strides))
    decoder = conv(7, latent_dim, w[-1]) + w[0] + conv(7, w[0], io_channels, bias=False) + sum(
            w[i + 1] + conv(2 * s, w[i + 1], w[i]) + 3 * unit(w[i]) for i, s in enumerate(strides))
    return encoder + decoder


@pytest.mark.parametrize("size", sorted(AUTOENCODER_SIZES))
def test_parameter_count_of_every_size_matches_the_closed_form(size):
    assert parameter_count(size) == _closed_form_count(**AUTOENCODER_SIZES[size])


def test_large_matches_stable_audio_opens_published_size():
    """The published 156M has three significant figures (+-0.5M). Ours lacks SnakeBeta's second
    per-channel parameter (32,768 of them) and counts transposed-conv gains per output channel
    (1,920 fewer than torch's per input channel): 156,077,826 + 34,688 = 156.11M for the torch
    model, both inside the rounding."""
    count = parameter_count("large")
    assert abs(count - PUBLISHED_LARGE) <= 0.5e6, count
    assert autoencoder("large").hop == 2048 == math.prod(AUTOENCODER_SIZES["large"]["strides"])


def test_unknown_size_and_bottleneck_list_the_valid_ones():
    with pytest.raises(ValueError, match="tiny, small, large"):
        autoencoder("huge")
    with pytest.raises(KeyError, match="valid names: none, vae"):
        autoencoder("tiny", bottleneck="vq")

"""Chunked restoration (`longform.restore_long`) against single mode and the seam bound (issue 21,
item 2: chunked bandwidth extension clicked at every chunk boundary)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax import sampling
from diffjax.restoration import get_method, get_operator
from diffjax.restoration.longform import chunk_starts, crossfade_ramp, fade_length, restore_long

SIGMAS = sampling.get_grid("karras")(8, 0.002, 10.0)
LENGTH, CHUNK, OVERLAP = 700, 256, 64


def _pointwise(x, sigma, c=0.3):
    """Exact denoiser of white N(0, c^2) data: acts sample by sample (`x` `[B, L, 1]`)."""
    sigma = jnp.reshape(jnp.broadcast_to(sigma, x.shape[:1]), (-1, 1, 1))
    return x * c**2 / (c**2 + sigma**2)


def _constant_prior(x, sigma, c=0.5):
    """Exact denoiser of the prior `x = a 1`, `a ~ N(0, c^2)` on a chunk of `n` samples:
    `E[a | x] 1 = c^2 sum(x) / (sigma^2 + n c^2) 1`. Two chunks that share samples restore two
    different constants, the worst case for a seam."""
    sigma = jnp.reshape(jnp.broadcast_to(sigma, x.shape[:1]), (-1, 1, 1))
    n = x.shape[1]
    return jnp.broadcast_to(c**2 * jnp.sum(x, axis=1, keepdims=True) / (sigma**2 + n * c**2), x.shape)


@pytest.mark.parametrize("method,sampler", [("replacement", "euler"), ("projection", "heun")])
def test_chunked_equals_single_mode_for_a_pointwise_denoiser(method, sampler):
    """A per-sample denoiser sees nothing of the chunking: with the initial noise drawn once for the
    whole signal, chunks, anchors and crossfades must reproduce one pass over 700 samples."""
    op = get_operator("gaps", sample_rate=1000, gap_seconds=0.06, num_gaps=2)  # one gap across a boundary
    x_true = 0.3 * jax.random.normal(jax.random.PRNGKey(7), (2, LENGTH, 1))
    y = op.apply(x_true)
    key = jax.random.PRNGKey(0)
    chunked = restore_long(method, _pointwise, op, y, length=LENGTH, chunk_length=CHUNK, overlap=OVERLAP,
                           sigmas=SIGMAS, key=key, sampler=sampler)
    x_init = SIGMAS[0] * jax.random.normal(jax.random.fold_in(key, 1 << 20), x_true.shape)
    single = get_method(method)(_pointwise, op, y, x_init, SIGMAS, key=key, sampler=sampler)
    gap = 1 - np.asarray(op.mask_for((1, LENGTH, 1)))[:, 0]
    assert float(jnp.std(single[:, gap > 0])) > 0.05  # the gaps hold restored samples, not zeros
    np.testing.assert_allclose(chunked, single, atol=1e-6)


def test_crossfade_ramp_is_a_rising_partition_of_unity_with_bounded_steps():
    for fade in (1, 2, 32):
        w = crossfade_ramp(fade)
        steps = np.diff(np.concatenate([[0.0], w, [1.0]]))  # from the pinned part to the new chunk
        assert np.all(w > 0) and np.all(w < 1) and np.all(steps > 0)
        # d/di sin^2(pi i / (2 (F + 1))) = pi / (2 (F + 1)) sin(pi i / (F + 1)) <= pi / (2 (F + 1))
        assert steps.max() <= np.pi / (2 * (fade + 1)) + 1e-12
        np.testing.assert_allclose(w + w[::-1], 1.0, atol=1e-12)  # symmetric: (1 - w) is w reversed
    assert fade_length(OVERLAP) == 32 and fade_length(1) == 1 and fade_length(0) == 0


@pytest.mark.parametrize("method", ["replacement", "dps"])
def test_the_jump_at_every_chunk_boundary_is_bounded_by_the_crossfade(method):
    """Seam bound. Each chunk restores a constant (`_constant_prior`, nothing observed), so outside
    the crossfades the output does not move at all, and a crossfade of `F` samples from `a` to `b`
    moves by `|b - a| max_i (w_i - w_{i-1}) <= range(output) pi / (2 (F + 1))` per sample.
    Anchoring alone (the old join) jumped by `|b - a|` where the pinned samples end."""
    op = get_operator("mask", mask=np.zeros((LENGTH, 1), np.float32))  # everything is missing
    y = jnp.zeros((3, LENGTH, 1))
    x = np.asarray(restore_long(method, _constant_prior, op, y, length=LENGTH, chunk_length=CHUNK,
                                overlap=OVERLAP, sigmas=SIGMAS, key=jax.random.PRNGKey(1), sampler="euler"))
    jumps = np.abs(np.diff(x[:, :, 0], axis=1))  # [B, L - 1]
    value_range = x.max(axis=1)[:, 0] - x.min(axis=1)[:, 0]  # [B]
    assert np.all(value_range > 0.01)  # the chunks do disagree
    starts = chunk_starts(LENGTH, CHUNK, OVERLAP)
    fade = fade_length(OVERLAP)
    near_seam = np.zeros(LENGTH - 1, bool)
    for k in range(1, len(starts)):
        end = starts[k - 1] + CHUNK  # the end of the shared samples
        near_seam[end - fade - 1:end] = True  # the pin boundary, the fade, and its last step
    assert np.max(jumps[:, ~near_seam]) < 1e-6
    bound = value_range * np.pi / (2 * (fade + 1))
    assert np.all(np.max(jumps[:, near_seam], axis=1) <= bound + 1e-6), (jumps.max(axis=1), bound)

"""Inpainting masks (`conditioners.inpaint`): the three kinds drawn in training, their mixture
frequencies, and the mask of an inpainting request (`frame_mask`).

The mixture is checked on what a mask shows: 'full' masks are all zeros; a segment whose gap does
not reach the last frame shows zeros followed by ones, which no causal mask does; masks with
trailing zeros only are either a causal prefix or a segment gap at the end. With segment gaps
g ~ U{1..G} at starts U{0..T-g} and causal prefixes U{1..T-1}, the class probabilities are exact:

    P(full) = p_full,   P(inner gap) = p_seg * mean_g (T - g) / (T - g + 1),   P(trailing) = the rest,

and each observed fraction of N masks must lie within 5 binomial standard deviations of them.
"""
import jax
import numpy as np
import pytest

from diffjax.conditioners import draw_masks, frame_mask, get_conditioner

N, T, FRACTION = 4000, 16, 0.5
G = int(FRACTION * T)  # the longest gap: 8 frames
# One compile for every call below (the probabilities are traced; op-by-op dispatch of the random
# draws would cost seconds), with 'rbg' keys, whose generator compiles faster than threefry's.
draw = jax.jit(draw_masks, static_argnums=(1, 2, 4))


def key(seed):
    return jax.random.key(seed, impl="rbg")


def masks(probabilities, seed=0):
    out = np.asarray(draw(key(seed), N, T, np.asarray(probabilities, np.float32), FRACTION))
    assert out.shape == (N, T) and set(np.unique(out)) <= {0.0, 1.0}
    return out


def runs_of_zeros(mask):
    """(number of runs of zeros, total zeros, index of the first zero) of one mask [T]."""
    zero = mask == 0
    starts = np.flatnonzero(zero & ~np.concatenate([[False], zero[:-1]]))
    return len(starts), int(zero.sum()), (int(starts[0]) if len(starts) else -1)


def within_binomial(fraction, p, n=N, deviations=5.0):
    return abs(fraction - p) <= deviations * np.sqrt(p * (1 - p) / n) + 1e-12


def test_segment_masks_have_one_gap_of_one_to_max_frames():
    m = masks((1.0, 0.0, 0.0))
    stats = np.array([runs_of_zeros(row) for row in m])
    np.testing.assert_array_equal(stats[:, 0], 1)  # one contiguous gap per example
    assert stats[:, 1].min() == 1 and stats[:, 1].max() == G
    assert set(stats[:, 1]) == set(range(1, G + 1))  # every length occurs (P(miss) < 1e-200)
    assert set(stats[:, 2]) == set(range(0, T))  # gaps start anywhere, the last frame included


def test_causal_masks_know_a_prefix_of_one_to_t_minus_one_frames():
    m = masks((0.0, 1.0, 0.0))
    prefix = m.sum(axis=1).astype(int)
    expected = (np.arange(T)[None, :] < prefix[:, None]).astype(np.float32)
    np.testing.assert_array_equal(m, expected)  # ones then zeros
    assert set(prefix) == set(range(1, T))  # every prefix of 1..T-1 frames, never 0 or T


def test_full_masks_know_nothing():
    np.testing.assert_array_equal(masks((0.0, 0.0, 1.0)), 0.0)


@pytest.mark.parametrize("probabilities", [(0.4, 0.4, 0.2), (0.7, 0.1, 0.2), (0.2, 0.5, 0.3)])
def test_mask_kinds_are_drawn_with_their_probabilities(probabilities):
    p_seg, _, p_full = probabilities
    m = masks(probabilities, seed=1)
    stats = np.array([runs_of_zeros(row) for row in m])
    full = stats[:, 1] == T
    inner = ~full & (m[:, -1] == 1)  # a gap followed by known frames: only segments
    trailing = ~full & ~inner
    p_inner = p_seg * np.mean([(T - g) / (T - g + 1) for g in range(1, G + 1)])
    assert within_binomial(full.mean(), p_full), (full.mean(), p_full)
    assert within_binomial(inner.mean(), p_inner), (inner.mean(), p_inner)
    assert within_binomial(trailing.mean(), 1 - p_full - p_inner), trailing.mean()
    # Every mask is one of the three kinds: at most one gap, and a trailing gap of <= G frames
    # unless the mask is causal (any length) -- so at most one run of zeros everywhere.
    assert stats[:, 0].max() == 1


def test_train_value_masks_the_data_it_is_given():
    inpaint = get_conditioner("inpaint", latent_shape=(T, 3), segment=1.0, causal=0.0, full=0.0)
    x0 = np.random.default_rng(0).standard_normal((5, T, 3)).astype(np.float32) + 10.0
    value = jax.tree.map(np.asarray, jax.jit(inpaint.train_value)(inpaint.null(5), x0, key(2)))
    np.testing.assert_array_equal(value["known"], x0 * value["mask"][..., None])
    assert np.all(value["mask"].sum(axis=1) >= T - G)


def test_frame_mask_generates_the_frames_whose_centre_is_in_the_span():
    # 16 frames per second over 1 s: centres at (i + 0.5) / 16; [0.25, 0.5) holds frames 4..7.
    mask = np.asarray(frame_mask(16, 16.0, 0.25, 0.5, 1.0))
    np.testing.assert_array_equal(np.flatnonzero(mask == 0), [4, 5, 6, 7])
    np.testing.assert_array_equal(np.asarray(frame_mask(16, 16.0, 0.0, 1.0, 1.0)), 0.0)


@pytest.mark.parametrize("start, end", [(0.5, 1.5), (-0.1, 0.5), (0.6, 0.4)])
def test_a_span_outside_the_clip_raises_with_the_clip_length(start, end):
    with pytest.raises(ValueError, match=r"<= 1\.25 s, the clip's length"):
        frame_mask(20, 16.0, start, end, 1.25)


def test_a_span_covering_no_frame_raises():
    with pytest.raises(ValueError, match="covers no model frame"):
        frame_mask(16, 16.0, 0.0, 0.01, 1.0)  # the first centre is at 1/32 s

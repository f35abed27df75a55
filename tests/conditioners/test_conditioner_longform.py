"""Long-form generation by continuation (`jobs.longform`): each window is conditioned on, and starts
with, the previous window's last K frames; the audio is overlap-added with a raised-cosine
crossfade whose effect on the signal is bounded.

The model is the shared tiny model (conftest; waveform codec, so one model frame is one sample
and `decode` is the identity), sampled with 2 Euler steps.

The crossfade bound. With y = (1 - r) a + r b over the n shared samples (r = 0 before, 1 after):

    y[i+1] - y[i] = (1 - r[i+1]) (a[i+1] - a[i]) + r[i+1] (b[i+1] - b[i]) + (r[i+1] - r[i]) (b[i] - a[i])

so |dy| <= max(|da|, |db|) + max|b - a| max|dr|, and for r[i] = (1 - cos(pi (i + 1/2) / n)) / 2
(and the steps from 0 and to 1 at the ends) max|dr| <= max|r'| = pi / (2 n). Rounding adds a few
eps |y| (float32: 4 eps max(|a|, |b|)).
"""
import math
import types

import numpy as np
import pytest

from diffjax.jobs import longform
from diffjax.jobs.longform import crossfade, frame_hop, generate_long

RATE = 16000
K = 8  # overlap in model frames (= samples)
SAMPLING = {"sampler": "euler", "grid": "karras", "num_steps": 2, "grid_options": {}}
SEEDS = [0, 1]
LABELS = np.array([0, 2], np.int32)


def generate_recording(model, params, **kwargs):
    """`generate_long` with every window's condition recorded (the `generate` it calls, wrapped)."""
    recorded = []
    real = longform.generate

    def recording(model, params, **kw):
        recorded.append(kw["cond"])
        return real(model, params, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(longform, "generate", recording)
        piece = generate_long(model, params, sampling_config=SAMPLING, seeds=SEEDS,
                              overlap_seconds=K / RATE, cond={"label": LABELS}, **kwargs)
    return piece, recorded


@pytest.fixture(scope="module")
def runs(tiny):
    """A piece from scratch (100.4 samples' worth: round -> 100) and one continuing a 40-sample prefix."""
    piece, conds = generate_recording(tiny.model, tiny.params, seconds=100.4 / RATE)
    prefix = (0.5 * np.random.default_rng(3).standard_normal((2, 40, 1))).astype(np.float32)
    continued, continued_conds = generate_recording(tiny.model, tiny.params, seconds=90 / RATE, prefix=prefix)
    return types.SimpleNamespace(piece=piece, conds=conds, prefix=prefix, continued=continued,
                                 continued_conds=continued_conds, length=tiny.model.spec.shape[0])


def test_windows_and_lengths(tiny, runs):
    piece, length = runs.piece, runs.length
    shift = length - K
    assert frame_hop(tiny.model) == piece.hop == 1 and piece.overlap_frames == K
    assert piece.audio.shape == (2, round(100.4), 1)
    n = 1 + math.ceil((100.4 - length) / shift)  # windows until the audio covers the piece
    assert len(piece.latents) == len(runs.conds) == n == longform.num_windows(tiny.model, 100.4 / RATE, K / RATE)
    assert piece.offsets == tuple(k * shift for k in range(n))
    assert runs.continued.audio.shape == (2, 90, 1)
    assert np.all(np.isfinite(piece.audio)) and np.std(piece.audio) > 0.1


def test_each_window_is_conditioned_on_and_starts_with_the_previous_windows_end(runs):
    piece, conds = runs.piece, runs.conds
    first = conds[0]["inpaint"]
    np.testing.assert_array_equal(first["mask"], 0.0)  # the first window knows nothing
    np.testing.assert_array_equal(first["known"], 0.0)
    for k in range(1, len(piece.latents)):
        known, mask = conds[k]["inpaint"]["known"], conds[k]["inpaint"]["mask"]
        previous_end = piece.latents[k - 1][:, -K:]
        np.testing.assert_array_equal(known[:, :K], previous_end)
        np.testing.assert_array_equal(known[:, K:], 0.0)
        np.testing.assert_array_equal(mask[:, :K], 1.0)
        np.testing.assert_array_equal(mask[:, K:], 0.0)
        np.testing.assert_array_equal(piece.latents[k][:, :K], previous_end)
        # ... and the window is new beyond the overlap (its own seeds).
        assert np.max(np.abs(piece.latents[k][:, K:2 * K] - piece.latents[k - 1][:, K:2 * K])) > 1e-2
    for cond in conds:  # the other conditions are the same for every window
        np.testing.assert_array_equal(cond["label"], LABELS)


def test_a_prefix_is_the_first_window_and_is_kept(runs):
    continued, conds, prefix, length = runs.continued, runs.continued_conds, runs.prefix, runs.length
    # The prefix's last window plays window 0: its encoded last K frames are the first known frames
    # (the waveform codec encodes a window as itself).
    np.testing.assert_array_equal(conds[0]["inpaint"]["known"][:, :K], prefix[:, -K:])
    np.testing.assert_array_equal(conds[0]["inpaint"]["mask"][:, :K], 1.0)
    np.testing.assert_array_equal(continued.latents[0][:, :K], prefix[:, -K:])
    assert continued.offsets[0] == prefix.shape[1] - length
    assert len(continued.offsets) == len(continued.latents) + 1
    # The audio starts with the prefix, untouched before the first crossfade.
    first_join = continued.offsets[1]
    np.testing.assert_array_equal(continued.audio[:, :first_join], prefix[:, :first_join])


def ramp(n):
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def check_join(y, a, b, offset, n):
    """The jump bound at one join of `y`, with `a` the earlier window's audio on
    [offset - 1, offset + n) and `b` the later one's on [offset, offset + n]; returns the bound."""
    a_ext = np.concatenate([a, a[:, -1:]], axis=1)  # a after the join: any value (weight 0)
    b_ext = np.concatenate([b[:, :1], b], axis=1)   # b before the join: any value (weight 0)
    r_ext = np.concatenate([[0.0], ramp(n), [1.0]])
    assert np.max(np.abs(np.diff(r_ext))) <= np.pi / (2 * n)
    da, db = np.abs(np.diff(a_ext, axis=1)).max(), np.abs(np.diff(b_ext, axis=1)).max()
    rounding = 4 * np.finfo(y.dtype).eps * max(np.abs(a).max(), np.abs(b).max())
    bound = max(da, db) + np.abs(b_ext - a_ext).max() * np.pi / (2 * n) + rounding
    jumps = np.abs(np.diff(y[:, offset - 1:offset + n + 1], axis=1))
    assert jumps.max() <= bound, (jumps.max(), bound)
    return bound


def test_every_join_is_a_bounded_crossfade_of_the_decoded_windows(tiny, runs):
    """The windows' audio is decoded again from `piece.latents`; between joins the piece is that
    audio exactly, and at each join the jumps obey the bound. (With the waveform codec the shared
    samples of two windows coincide, so here the bound reduces to the windows' own steps; the
    next test checks it on windows that differ.)"""
    for piece in (runs.piece, runs.continued):
        windows = [np.asarray(tiny.model.codec.decode(z, runs.length)) for z in piece.latents]
        if len(piece.offsets) > len(windows):  # the prefix's last window is window 0
            windows.insert(0, runs.prefix[:, -runs.length:])
        offsets, n, total = piece.offsets, K * piece.hop, piece.audio.shape[1]
        ends = list(offsets[1:]) + [total]
        np.testing.assert_array_equal(piece.audio[:, offsets[0]:ends[0]], windows[0][:, :ends[0] - offsets[0]])
        for k in range(1, len(windows)):
            start, previous = offsets[k], offsets[k - 1]
            a = windows[k - 1][:, start - 1 - previous:start + n - previous]
            b = windows[k][:, :n + 1]
            check_join(piece.audio, a, b, start, n)
            stop = min(ends[k], total)
            np.testing.assert_array_equal(piece.audio[:, start + n:stop], windows[k][:, n:stop - start])


def test_crossfade_of_identical_signals_and_its_end_weights():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 64, 3))
    np.testing.assert_allclose(crossfade(a, a), a, rtol=0, atol=4 * np.finfo(a.dtype).eps * np.abs(a).max())
    n = 64
    w = crossfade(np.zeros((1, n, 1)), np.ones((1, n, 1)))[0, :, 0]  # the weight of `following`
    np.testing.assert_allclose(w, ramp(n), rtol=0, atol=1e-15)
    np.testing.assert_allclose(w + w[::-1], 1.0, rtol=0, atol=1e-15)  # symmetric, complementary
    assert np.all(np.diff(w) > 0)
    np.testing.assert_allclose([w[0], 1 - w[-1]], np.sin(np.pi / (4 * n)) ** 2, rtol=1e-12)
    assert crossfade(a.astype(np.float32), a.astype(np.float32)).dtype == np.float32


def test_append_bounds_the_jump_between_different_windows():
    """Two smooth but different windows (a phase apart): the crossfade keeps every step within
    the bound, which a hard cut at the join breaks."""
    length, n = 200, 50
    t = np.arange(length)[None, :, None]
    first = np.sin(2 * np.pi * t / 80.0)
    second = np.sin(2 * np.pi * (t + 150) / 80.0 + 2.0)  # the next window starts 150 samples later
    audio, offset = longform._append(first, [0], second, shift=length - n)
    assert offset == length - n and audio.shape == (1, 2 * length - n, 1)
    a = first[:, offset - 1:]
    b = second[:, :n + 1]
    bound = check_join(audio, a, b, offset, n)
    cut = np.concatenate([first[:, :offset], second], axis=1)
    assert np.abs(np.diff(cut[:, offset - 1:offset + 1], axis=1)).max() > 2 * bound


def test_continuation_needs_the_inpainting_conditioner_and_an_overlap_within_the_window(tiny):
    labelled = tiny.make_model({"label": {}})
    with pytest.raises(ValueError, match=r"configs/inpaint\.py.*\['label'\]"):
        generate_long(labelled, tiny.params, sampling_config=SAMPLING, seeds=SEEDS, seconds=0.01,
                      overlap_seconds=K / RATE)
    for overlap in (0, runs_length := tiny.model.spec.shape[0]):
        with pytest.raises(ValueError, match=rf"overlap must be 1\.\.{runs_length - 1} model frames"):
            generate_long(tiny.model, tiny.params, sampling_config=SAMPLING, seeds=SEEDS, seconds=0.01,
                          overlap_seconds=overlap / RATE)

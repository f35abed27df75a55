"""Tests for diffjax.audio.notes: piano rolls of note events, their inverse, and MIDI files."""
import math

import numpy as np
import pytest

from diffjax.audio import notes, synth

FPS = 10
PAD = [-1.0, 0.0, 0.0, 0.0]
# (pitch, onset_s, duration_s, velocity): 60 struck twice at frame 0 (the longer one re-struck at
# frame 3), 62 from frame 2.5 to 3.5, 61 past the end of an 8-frame roll, 62 starting after it.
EVENTS = np.array([[60, 0.0, 0.5, 0.5], [60, 0.0, 0.2, 0.8], [62, 0.25, 0.1, 1.0],
                   [60, 0.3, 0.4, 0.3], [61, 0.6, 5.0, 0.6], [62, 0.8, 0.1, 0.9]], np.float32)
ONSET = np.array([[1, 0, 0, 1, 0, 0, 0, 0],   # 60
                  [0, 0, 0, 0, 0, 0, 1, 0],   # 61
                  [0, 0, 1, 0, 0, 0, 0, 0]])  # 62
VELOCITY = np.array([[.8, .8, .5, .3, .3, .3, .3, 0],
                     [0, 0, 0, 0, 0, 0, .6, .6],
                     [0, 0, 1, 1, 0, 0, 0, 0]])


def roll(events, num_frames=8, low=60, high=62):
    return notes.events_to_roll(events, num_frames=num_frames, frames_per_second=FPS,
                                low_pitch=low, high_pitch=high)


def test_roll_of_known_events():
    r = roll(EVENTS)
    assert r.shape == (8, 3, notes.PIANO_ROLL_CHANNELS) and r.dtype == np.float32
    np.testing.assert_array_equal(r[..., 0].T, ONSET)
    np.testing.assert_allclose(r[..., 1].T, VELOCITY, rtol=1e-6)


def test_batched_rolls_and_padding():
    padded = np.concatenate([EVENTS, [PAD, PAD]]).astype(np.float32)
    np.testing.assert_array_equal(roll(padded), roll(EVENTS))
    batch = np.stack([padded, np.array([PAD] * 4 + [[61, 0.0, 0.1, 1.0]] + [PAD] * 3, np.float32)])
    r = roll(batch)
    assert r.shape == (2, 8, 3, 2)
    np.testing.assert_array_equal(r[0], roll(EVENTS))
    assert r[1].sum() == 2.0 and r[1, 0, 1, 0] == r[1, 0, 1, 1] == 1.0
    assert roll(batch[None, :, :0]).shape == (1, 2, 8, 3, 2)  # no events at all


def quantised(events, fps, num_frames):
    """Reference: valid events at frame resolution, a re-strike ending the previous same pitch."""
    rows = [tuple(e) for e in events if e[0] >= 0 and math.floor(e[1] * fps + 1e-3) < num_frames]
    out = []
    for p, on, dur, vel in rows:
        f0 = math.floor(on * fps + 1e-3)
        end = max(f0 + 1, math.ceil((on + dur) * fps - 1e-3))
        restrikes = [math.floor(o * fps + 1e-3) for q, o, _, _ in rows if q == p]
        end = min([end, num_frames] + [f for f in restrikes if f > f0])
        out.append((p, f0 / fps, (end - f0) / fps, vel))
    return np.array(sorted(out, key=lambda e: (e[1], e[0])), np.float32).reshape(-1, 4)


@pytest.mark.parametrize("fps", [50.0, 86.13])
def test_round_trip_on_synth_events(fps):
    data = synth.generate(8, sample_rate=16000, clip_seconds=1.0)
    num_frames = int(fps)  # cuts the last few notes at 86.13 fps
    rolls = notes.events_to_roll(data["events"], num_frames=num_frames, frames_per_second=fps,
                                 low_pitch=21, high_pitch=108)
    assert rolls.shape == (8, num_frames, 88, 2)
    for ev, r in zip(data["events"], rolls):
        back = notes.roll_to_events(r, frames_per_second=fps, low_pitch=21)
        np.testing.assert_allclose(back, quantised(ev, fps, num_frames), rtol=1e-6, atol=1e-6)
        again = notes.events_to_roll(back, num_frames=num_frames, frames_per_second=fps,
                                     low_pitch=21, high_pitch=108)
        np.testing.assert_array_equal(again, r)  # frame-resolution events are a fixed point


def test_midi_file_to_roll(tmp_path):
    path = str(tmp_path / "clip.mid")
    events = np.array([[62, 0.5, 0.2, 1.0], [60, 0.0, 0.3, 0.5], [36, 0.1, 0.1, 0.75], PAD],
                      np.float32)
    notes.write_midi(path, events)
    with pytest.raises(FileExistsError, match="clip.mid already exists"):
        notes.write_midi(path, events)
    got = notes.read_midi(path)
    want = np.array([[60, 0.0, 0.3, 64 / 127], [36, 0.1, 0.1, 95 / 127],
                     [62, 0.5, 0.2, 1.0]], np.float32)
    np.testing.assert_allclose(got, want, atol=3e-3)  # ticks of 1/440 s
    r = roll(got[[0, 2]], num_frames=7)
    want_roll = np.zeros((7, 3, 2), np.float32)
    want_roll[0, 0, 0] = want_roll[5, 2, 0] = 1.0
    want_roll[0:3, 0, 1], want_roll[5:7, 2, 1] = 64 / 127, 1.0
    np.testing.assert_allclose(r, want_roll, rtol=1e-6)
    np.testing.assert_allclose(notes.read_midi(path, max_seconds=0.2),
                               [[60, 0.0, 0.2, 64 / 127], [36, 0.1, 0.1, 95 / 127]], atol=3e-3)


def test_out_of_range_pitches_raise():
    with pytest.raises(ValueError, match=r"song.mid: MIDI pitches \[36\] .*range \[60, 62\]"):
        notes.check_pitch_range(np.array([[36, 0, 1, 1], PAD, [61, 0, 1, 1]]), 60, 62,
                                source="song.mid")
    with pytest.raises(ValueError, match=r"pitches \[59, 63\] .*\[60, 62\]"):
        roll(np.array([[[59, 0, 1, 1]], [[63, 0, 1, 1]]], np.float32))
    with pytest.raises(ValueError, match=r"shape \[..., E, 4\]"):
        roll(np.zeros((3, 3)))


def test_bad_midi_files_raise_naming_the_path(tmp_path):
    path = tmp_path / "corrupt.mid"
    path.write_bytes(np.random.default_rng(0).bytes(256))
    with pytest.raises(ValueError, match="could not read MIDI file .*corrupt.mid"):
        notes.read_midi(str(path))
    with pytest.raises(ValueError, match="no MIDI file at .*missing.mid"):
        notes.read_midi(str(tmp_path / "missing.mid"))

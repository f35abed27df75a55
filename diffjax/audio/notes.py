"""Note events and piano rolls: the score side of notes-to-audio conditioning.

An **event** is a row (midi_pitch, onset_s, duration_s, velocity) with velocity in [0, 1]; a
clip's events are float32 [E, 4] (or batched [B, E, 4]), sorted by onset then pitch, and rows with
pitch < 0 are padding (`synth.generate` pads with (-1, 0, 0, 0)).

The **piano roll** is float32 [..., T, P, PIANO_ROLL_CHANNELS] over T frames at `frames_per_second`
and the P = high_pitch - low_pitch + 1 pitches low_pitch..high_pitch:
- channel 0, onset: 1 at frame f0 = floor(onset * fps) of each note, else 0;
- channel 1, velocity: the note's velocity on every frame it sounds, f0 .. f1 with
  f1 = max(f0, ceil((onset + duration) * fps) - 1), clipped to the roll. A note re-struck on the
  same pitch ends at the new onset frame (so the roll can be read back); notes sharing an onset
  frame take the max.
Notes whose onset frame is >= T are dropped. Frame boundaries have a 1e-3-frame tolerance, so
onsets that are float32 multiples of 1 / fps land on their own frame.
`roll_to_events` inverts the roll at frame resolution.
"""
from __future__ import annotations

import os

import numpy as np

PIANO_ROLL_CHANNELS = 2  # onset, velocity
_TOL = 1e-3  # frames; absorbs float32 rounding of times that lie on frame boundaries


def _check_events(events: np.ndarray) -> np.ndarray:
    """`events` as float64 [..., E, 4]; raises on a bad shape or a negative onset/duration."""
    ev = np.asarray(events, np.float64)
    if ev.ndim < 2 or ev.shape[-1] != 4:
        raise ValueError(f"note events must have shape [..., E, 4] (pitch, onset_s, duration_s, "
                         f"velocity); got shape {ev.shape}")
    valid = ev[..., 0] >= 0
    if np.any(ev[..., 1:3][valid] < 0):
        raise ValueError("note events have a negative onset or duration; times are seconds >= 0")
    return ev


def check_pitch_range(events: np.ndarray, low_pitch: int, high_pitch: int, *, source: str) -> None:
    """Raises ValueError naming the pitches of non-padding `events` [..., E, 4] outside [low, high]."""
    pitch = np.asarray(events)[..., 0]
    bad = pitch[(pitch >= 0) & ((pitch < low_pitch) | (pitch > high_pitch))]
    if bad.size:
        raise ValueError(f"{source}: MIDI pitches {sorted({int(p) for p in bad})} are outside the "
                         f"piano-roll range [{low_pitch}, {high_pitch}]; widen low_pitch/high_pitch "
                         f"or drop those notes")


def _note_frames(ev: np.ndarray, fps: float, num_frames: int):
    """Frame spans of the valid events of [B, E, 4]: (b, pitch, f0, f1, velocity), each [K]."""
    b, e = np.nonzero(ev[..., 0] >= 0)
    pitch, onset, dur, vel = (ev[b, e, j] for j in range(4))
    f0 = np.floor(onset * fps + _TOL).astype(np.int64)
    f1 = np.maximum(f0, np.ceil((onset + dur) * fps - _TOL).astype(np.int64) - 1)
    keep = f0 < num_frames
    b, pitch, f0, f1, vel = b[keep], pitch[keep].astype(np.int64), f0[keep], f1[keep], vel[keep]
    # A re-strike of the same pitch ends the sounding note at the next later onset frame.
    group = b * (pitch.max(initial=0) + 1) + pitch
    key = group * (num_frames + 1) + f0
    sorted_key = np.sort(key)
    nxt = sorted_key[np.minimum(np.searchsorted(sorted_key, key, side="right"), len(key) - 1)]
    restruck = (nxt > key) & (nxt // (num_frames + 1) == group)
    cut = np.where(restruck, nxt % (num_frames + 1) - 1, num_frames - 1)
    return b, pitch, f0, np.minimum(f1, cut), vel


def events_to_roll(events: np.ndarray, *, num_frames: int, frames_per_second: float,
                   low_pitch: int, high_pitch: int) -> np.ndarray:
    """Piano roll (onset, velocity) of note events; see the module docstring.

    Args:
        events: [E, 4] or [B, E, 4] rows (midi_pitch, onset_s, duration_s, velocity); pitch < 0
            marks padding. Non-padding pitches outside [low_pitch, high_pitch] raise.
        num_frames: T.
        frames_per_second: frame rate of the roll.
        low_pitch, high_pitch: MIDI pitches of the first and last roll rows.

    Returns:
        float32 [..., T, P, 2] with P = high_pitch - low_pitch + 1.
    """
    ev = _check_events(events)
    check_pitch_range(ev, low_pitch, high_pitch, source="events_to_roll")
    lead = ev.shape[:-2]
    flat = ev.reshape((int(np.prod(lead)),) + ev.shape[-2:])
    num_pitches = high_pitch - low_pitch + 1
    roll = np.zeros((flat.shape[0], num_frames, num_pitches, PIANO_ROLL_CHANNELS), np.float32)
    b, pitch, f0, f1, vel = _note_frames(flat, frames_per_second, num_frames)
    p = pitch - low_pitch
    roll[b, f0, p, 0] = 1.0
    lengths = f1 - f0 + 1
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    frames = np.repeat(f0, lengths) + np.arange(lengths.sum()) - starts
    np.maximum.at(roll, (np.repeat(b, lengths), frames, np.repeat(p, lengths), 1),
                  np.repeat(vel, lengths).astype(np.float32))
    return roll.reshape(lead + roll.shape[1:])


def roll_to_events(roll: np.ndarray, *, frames_per_second: float, low_pitch: int) -> np.ndarray:
    """Note events of a piano roll [T, P, 2], the inverse of `events_to_roll` at frame resolution.

    Each onset frame f starts a note that lasts while channel 1 stays > 0 on the following
    non-onset frames: onset = f / fps, duration = frames / fps, velocity = channel 1 at f.

    Returns:
        float32 [E, 4] rows (midi_pitch, onset_s, duration_s, velocity), sorted by onset then pitch.
    """
    roll = np.asarray(roll)
    if roll.ndim != 3 or roll.shape[-1] != PIANO_ROLL_CHANNELS:
        raise ValueError(f"roll_to_events takes one roll [T, P, {PIANO_ROLL_CHANNELS}]; got shape "
                         f"{roll.shape} (loop over a batch)")
    num_frames = roll.shape[0]
    onset = roll[..., 0].T > 0.5  # [P, T]
    goes_on = (roll[..., 1].T > 0) & ~onset
    stops = np.flatnonzero(np.pad(~goes_on, ((0, 0), (0, 1)), constant_values=True))
    p, f = np.nonzero(onset)
    start = p * (num_frames + 1) + f  # flat index in the padded [P, T + 1]
    length = stops[np.searchsorted(stops, start + 1)] - start
    ev = np.stack([p + low_pitch, f / frames_per_second, length / frames_per_second,
                   roll[f, p, 1]], axis=-1).reshape(-1, 4)
    return ev[np.lexsort((ev[:, 0], ev[:, 1]))].astype(np.float32)


def read_midi(path: str, *, max_seconds: float | None = None) -> np.ndarray:
    """Every note of every instrument of a MIDI file (drum tracks as their MIDI note numbers).

    Notes starting at or after `max_seconds` are dropped and the rest cut to end by it.

    Returns:
        float32 [E, 4] rows (midi_pitch, onset_s, duration_s, velocity / 127), sorted by onset
        then pitch.
    """
    import pretty_midi  # third-party file I/O, needed only here

    if not os.path.isfile(path):
        raise ValueError(f"no MIDI file at {path}")
    try:
        midi = pretty_midi.PrettyMIDI(path)
    except Exception as e:  # mido/pretty_midi raise many types (OSError, EOFError, KeyError, ...)
        raise ValueError(f"could not read MIDI file {path}: {type(e).__name__}: {e}") from e
    rows = [(n.pitch, n.start, n.end - n.start, n.velocity / 127.0)
            for inst in midi.instruments for n in inst.notes]
    ev = np.asarray(rows, np.float64).reshape(-1, 4)
    if max_seconds is not None:
        ev = ev[ev[:, 1] < max_seconds]
        ev[:, 2] = np.minimum(ev[:, 2], max_seconds - ev[:, 1])
    return ev[np.lexsort((ev[:, 0], ev[:, 1]))].astype(np.float32)


def write_midi(path: str, events: np.ndarray, *, program: int = 0) -> None:
    """Writes the non-padding `events` [E, 4] as one instrument (General MIDI `program`).

    Velocities in [0, 1] become MIDI 1..127. Refuses to overwrite an existing file.
    """
    import pretty_midi  # third-party file I/O, needed only here

    if os.path.exists(path):
        raise FileExistsError(f"write_midi: {path} already exists; remove it or pick another path")
    ev = _check_events(events)
    if ev.ndim != 2:
        raise ValueError(f"write_midi takes one clip's events [E, 4]; got shape {ev.shape}")
    inst = pretty_midi.Instrument(program=program)
    for pitch, onset, dur, vel in ev[ev[:, 0] >= 0]:
        inst.notes.append(pretty_midi.Note(velocity=int(np.clip(round(vel * 127), 1, 127)),
                                           pitch=int(pitch), start=float(onset),
                                           end=float(onset + dur)))
    midi = pretty_midi.PrettyMIDI()
    midi.instruments.append(inst)
    midi.write(path)

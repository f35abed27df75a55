"""The embedded default dataset: deterministic synthesised music, generated on first use.

Each clip is one of
- a pitched **note**, **chord** or **arpeggio** on one of six instruments in three families:
  additive harmonic tones with different spectral envelopes (flute ~ 1/k^2, clarinet odd
  harmonics, brass ~ 1/k with velocity-dependent brightness), a Karplus-Strong plucked string
  (Karplus & Strong 1983, with a fractional-delay loop filter so the pitch is exact), and FM bells
  and electric-piano keys (Chowning 1973); with ADSR envelopes, vibrato and velocity. Pitches
  come from a random key and scale; chords are diatonic triads and sevenths on a scale degree,
  and arpeggios play them up, down or up-down at a random tempo;
- a **drum** pattern of one drum: kick (pitch-swept sine), snare (tone plus filtered noise) or
  hi-hat (high-passed noise).

Labels per clip: 'label' (instrument index into `INSTRUMENTS`), 'pitch' (MIDI note; the chord or
arpeggio root; the General MIDI drum note for drums), 'kind' (index into `KINDS`), 'quality'
(index into `CHORD_QUALITIES`, -1 for single notes and drums) and 'velocity' in [0, 1]; and the
clip's note 'events', rows (midi_pitch, onset_s, duration_s, velocity) as `diffjax.audio.notes`
reads them: one per tone (the key-held time as duration, arpeggio tones 0.9 of a step), one per
drum hit (its GM drum note, lasting one beat), sorted by onset then pitch and padded with
(-1, 0, 0, 0) rows.

Clip i depends only on (seed, i) (`numpy` SeedSequence), so datasets of different sizes share
their first clips, and the same seed gives the same bytes. `synth_music(...)` caches the arrays as
an .npz file in `cache_dir` (default `$XDG_CACHE_HOME/diffjax`, else `~/.cache/diffjax`).
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np

logger = logging.getLogger("diffjax")

VERSION = 2  # Bump when the synthesis changes, so stale caches are not reused.
INSTRUMENTS = ("flute", "clarinet", "brass", "pluck", "bell", "epiano", "kick", "snare", "hihat")
PITCHED = INSTRUMENTS[:6]
KINDS = ("note", "chord", "arpeggio", "drums")
SCALES = {
        "major": (0, 2, 4, 5, 7, 9, 11),
        "minor": (0, 2, 3, 5, 7, 8, 10),
        "dorian": (0, 2, 3, 5, 7, 9, 10),
        "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
CHORD_QUALITIES = {
        (0, 4, 7): "major", (0, 3, 7): "minor", (0, 3, 6): "diminished", (0, 4, 8): "augmented",
        (0, 4, 7, 11): "maj7", (0, 3, 7, 10): "min7", (0, 4, 7, 10): "dom7", (0, 3, 6, 10): "m7b5",
        (0, 3, 7, 11): "minmaj7", (0, 4, 8, 11): "augmaj7", (0, 3, 6, 9): "dim7",
}
QUALITY_NAMES = tuple(CHORD_QUALITIES.values())
PITCH_RANGES = {"flute": (60, 84), "clarinet": (50, 77), "brass": (45, 72), "pluck": (40, 72),
                "bell": (60, 86), "epiano": (45, 76)}
GM_DRUMS = {"kick": 36, "snare": 38, "hihat": 42}


def midi_to_hz(pitch: float) -> float:
    """Equal temperament, A4 = MIDI 69 = 440 Hz."""
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


# ---------------------------------------------------------------------------------------------
# Envelopes and filters
# ---------------------------------------------------------------------------------------------

def adsr(n: int, sr: int, gate: float, attack: float, decay: float, sustain: float,
         release: float) -> np.ndarray:
    """Linear-attack, exponential decay/release ADSR envelope [n]; the key is held `gate` s."""
    t = np.arange(n) / sr
    att = np.clip(t / max(attack, 1e-4), 0.0, 1.0)
    dec = sustain + (1.0 - sustain) * np.exp(-np.maximum(t - attack, 0.0) / max(decay, 1e-4))
    env = np.where(t < attack, att, dec)
    level_at_gate = sustain + (1.0 - sustain) * np.exp(-max(gate - attack, 0.0) / max(decay, 1e-4))
    rel = level_at_gate * np.exp(-np.maximum(t - gate, 0.0) / max(release, 1e-4))
    return np.where(t < gate, env, rel)


def fft_filter(x: np.ndarray, sr: int, lo: float = 0.0, hi: float | None = None) -> np.ndarray:
    """Zero-phase band-pass by an FFT mask with 1-octave cosine edges (`lo`, `hi` in Hz)."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    gain = np.ones_like(f)
    if lo > 0:
        gain *= np.clip(np.log2(np.maximum(f, 1e-3) / lo) + 1.0, 0.0, 1.0)
    if hi is not None:
        gain *= np.clip(1.0 - np.log2(np.maximum(f, 1e-3) / hi), 0.0, 1.0)
    return np.fft.irfft(spec * gain, n=len(x))


# ---------------------------------------------------------------------------------------------
# Pitched instruments: each returns a note of n samples (key held `gate` s), peak ~1
# ---------------------------------------------------------------------------------------------

def _additive(f0, n, sr, gate, vel, rng, amps, env, vibrato_depth):
    """Sum of harmonics k*f0 below 0.45 sr with amplitudes `amps(k)`, vibrato and envelope."""
    t = np.arange(n) / sr
    rate = rng.uniform(4.5, 6.5)
    onset = np.clip(t / 0.25, 0.0, 1.0)  # Vibrato fades in over 250 ms.
    freq = f0 * (1.0 + vibrato_depth * onset * np.sin(2 * np.pi * rate * t))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    k = np.arange(1, max(1, int(0.45 * sr / f0)) + 1)
    a = amps(k)
    y = (a[:, None] * np.sin(k[:, None] * phase[None, :])).sum(0) / a.sum()
    return y * env


def flute(f0, n, sr, gate, vel, rng):
    env = adsr(n, sr, gate, rng.uniform(0.03, 0.08), 0.2, 0.8, 0.08)
    y = _additive(f0, n, sr, gate, vel, rng, lambda k: 1.0 / k ** 2.2, env, 0.006)
    breath = fft_filter(rng.standard_normal(n), sr, lo=1000.0, hi=0.4 * sr) * 0.015
    return y + breath * env


def clarinet(f0, n, sr, gate, vel, rng):
    env = adsr(n, sr, gate, rng.uniform(0.02, 0.05), 0.15, 0.85, 0.06)
    return _additive(f0, n, sr, gate, vel, rng,
                     lambda k: np.where(k % 2 == 1, 1.0 / k, 0.04 / k), env, 0.003)


def brass(f0, n, sr, gate, vel, rng):
    env = adsr(n, sr, gate, rng.uniform(0.04, 0.09), 0.25, 0.7, 0.1)
    bright = 2.0 + 8.0 * vel  # Louder notes have more high harmonics.
    return _additive(f0, n, sr, gate, vel, rng, lambda k: np.exp(-k / bright) / k, env, 0.004)


def pluck(f0, n, sr, gate, vel, rng):
    """Karplus-Strong string, vectorised over blocks of one period.

    Loop: y[n] = x[n] + g * (h * y)[n - N], h = [.25, .5, .25] * [1 - w, w] (loss filter and
    linear-interpolation fractional delay); the period is N + 1 + w = sr / f0 exactly at DC.
    """
    period = sr / f0
    big_n = int(np.floor(period - 1.0))
    w = period - 1.0 - big_n
    h = np.convolve([0.25, 0.5, 0.25], [1.0 - w, w])  # 4 taps, delays N..N+3.
    g = 0.5 ** (1.0 / (f0 * rng.uniform(0.6, 1.6) * (0.5 + vel)))  # -6 dB per 0.3..2.4 s/f0.
    burst = fft_filter(rng.uniform(-1, 1, big_n), sr, hi=1500.0 + 5000.0 * vel)
    pad = 3
    y = np.zeros(pad + n + big_n)
    y[pad:pad + big_n] = burst
    for s in range(pad + big_n, pad + n, big_n):
        e = min(s + big_n, pad + n)
        m = e - s
        acc = sum(h[j] * y[s - big_n - j:e - big_n - j] for j in range(4))
        y[s:e] = g * acc[:m]
    y = y[pad:pad + n]
    damp = adsr(n, sr, gate, 0.001, 10.0, 1.0, 0.05)  # The string is damped at key release.
    return y * damp / max(np.max(np.abs(y)), 1e-6)


def _fm(f0, n, sr, ratio, index, index_decay, amp_env):
    """Two-operator FM: sin(2 pi f0 t + I(t) sin(2 pi ratio f0 t)), I(t) = index e^{-t/decay}."""
    t = np.arange(n) / sr
    mod = index * np.exp(-t / index_decay) * np.sin(2 * np.pi * ratio * f0 * t)
    return np.sin(2 * np.pi * f0 * t + mod) * amp_env


def bell(f0, n, sr, gate, vel, rng):
    t = np.arange(n) / sr
    env = np.clip(t / 0.002, 0, 1) * np.exp(-t / rng.uniform(0.4, 1.2))
    return _fm(f0, n, sr, 3.5, 2.0 + 4.0 * vel, 0.4, env)


def epiano(f0, n, sr, gate, vel, rng):
    env = adsr(n, sr, gate, 0.003, rng.uniform(0.4, 0.9), 0.0, 0.1)
    return _fm(f0, n, sr, 1.0, 0.5 + 2.0 * vel, 0.25, env)


VOICES = {"flute": flute, "clarinet": clarinet, "brass": brass, "pluck": pluck, "bell": bell,
          "epiano": epiano}


# ---------------------------------------------------------------------------------------------
# Drums
# ---------------------------------------------------------------------------------------------

def kick(n, sr, vel, rng):
    """Sine swept from ~170 Hz down to ~50 Hz, exponential decay, plus a short click."""
    t = np.arange(n) / sr
    f_hi, f_lo = rng.uniform(140, 200), rng.uniform(42, 60)
    freq = f_lo + (f_hi - f_lo) * np.exp(-t / 0.04)
    body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / rng.uniform(0.15, 0.35))
    click = rng.standard_normal(n) * np.exp(-t / 0.003) * 0.3 * vel
    return body + click


def snare(n, sr, vel, rng):
    """A ~200 Hz tone plus band-passed noise, both decaying fast."""
    t = np.arange(n) / sr
    tone = np.sin(2 * np.pi * rng.uniform(170, 230) * t) * np.exp(-t / 0.05)
    noise = fft_filter(rng.standard_normal(n), sr, lo=1500.0, hi=0.45 * sr)
    noise = noise / (np.std(noise) + 1e-9) * np.exp(-t / rng.uniform(0.08, 0.2))
    return 0.6 * tone + 0.5 * (0.5 + vel) * noise


def hihat(n, sr, vel, rng):
    """High-passed noise; closed (~40 ms) or open (~250 ms) decay."""
    t = np.arange(n) / sr
    noise = fft_filter(rng.standard_normal(n), sr, lo=min(7000.0, 0.33 * sr))
    decay = 0.04 if rng.random() < 0.7 else 0.25
    return noise / (np.std(noise) + 1e-9) * np.exp(-t / decay)


DRUMS = {"kick": kick, "snare": snare, "hihat": hihat}


# ---------------------------------------------------------------------------------------------
# Clips
# ---------------------------------------------------------------------------------------------

def _chord(rng, key, scale, lo, hi):
    """A diatonic triad or seventh on a random scale degree; returns MIDI pitches (root first)."""
    steps = SCALES[scale]
    degree = int(rng.integers(7))
    size = 3 if rng.random() < 0.6 else 4
    root = lo + (key + steps[degree] - lo) % 12
    octaves = max(0, (hi - 12 - root) // 12)
    root += 12 * int(rng.integers(octaves + 1))
    up = [steps[(degree + 2 * i) % 7] + 12 * ((degree + 2 * i) // 7) - steps[degree]
          for i in range(size)]  # Stacked scale thirds, in semitones above the root.
    return [root + u for u in up]


def check_instruments(instruments) -> tuple[str, ...]:
    """`instruments` as a tuple of names (None or empty: all); unknown names raise, listing valid ones."""
    chosen = tuple(instruments or INSTRUMENTS)
    unknown = [name for name in chosen if name not in INSTRUMENTS]
    if unknown:
        raise ValueError(f"unknown synth_music instrument(s) {unknown}; valid: {', '.join(INSTRUMENTS)}")
    return chosen


def _sorted_events(events: list[tuple[float, float, float, float]]) -> np.ndarray:
    """(pitch, onset_s, duration_s, velocity) rows as float32 [E, 4], sorted by onset then pitch."""
    ev = np.asarray(events, np.float64).reshape(-1, 4)
    return ev[np.lexsort((ev[:, 0], ev[:, 1]))].astype(np.float32)


def render_clip(rng: np.random.Generator, sample_rate: int, length: int,
                instruments: tuple[str, ...] = INSTRUMENTS):
    """Renders one clip of one of `instruments`.

    Returns:
        (audio [length] float32 with peak <= 1, labels dict, events float32 [E, 4] of rows
        (midi_pitch, onset_s, duration_s, velocity) sorted by onset then pitch).
    """
    sr, n = sample_rate, length
    seconds = n / sr
    inst = instruments[int(rng.integers(len(instruments)))]
    vel = float(rng.uniform(0.4, 1.0))
    y = np.zeros(n)
    quality = -1
    events = []
    if inst in DRUMS:
        kind, pitch = "drums", GM_DRUMS[inst]
        beat = 60.0 / rng.uniform(90, 160) / (2 if inst == "hihat" else 1)
        for onset in np.arange(0.0, seconds, beat):
            i0 = int(onset * sr)
            hit_vel = vel * rng.uniform(0.8, 1.0)
            y[i0:] += DRUMS[inst](n - i0, sr, hit_vel, rng)
            events.append((pitch, onset, min(beat, seconds - onset), hit_vel))
    else:
        lo, hi = PITCH_RANGES[inst]
        key, scale = int(rng.integers(12)), list(SCALES)[int(rng.integers(len(SCALES)))]
        kind = KINDS[int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
        if kind == "note":
            steps = SCALES[scale]
            cands = [p for p in range(lo, hi + 1) if (p - key) % 12 in steps]
            pitch = int(cands[int(rng.integers(len(cands)))])
            gate = rng.uniform(0.5, 0.9) * n / sr
            y += VOICES[inst](midi_to_hz(pitch), n, sr, gate, vel, rng)
            events.append((pitch, 0.0, min(gate, seconds), vel))
        else:
            tones = _chord(rng, key, scale, lo, hi)
            pitch = tones[0]
            quality = QUALITY_NAMES.index(CHORD_QUALITIES[tuple(t - pitch for t in tones)])
            if kind == "chord":
                for p in tones:
                    y += VOICES[inst](midi_to_hz(p), n, sr, 0.8 * n / sr, vel, rng)
                    events.append((p, 0.0, min(0.8 * n / sr, seconds), vel))
            else:
                order = [tones, tones[::-1], tones + tones[-2:0:-1]][int(rng.integers(3))]
                step = 60.0 / rng.uniform(90, 160) / 2  # Eighth notes.
                for j, onset in enumerate(np.arange(0.0, seconds, step)):
                    i0 = int(onset * sr)
                    p = order[j % len(order)]
                    y[i0:] += VOICES[inst](midi_to_hz(p), n - i0, sr, 0.9 * step, vel, rng)
                    events.append((p, onset, min(0.9 * step, seconds - onset), vel))
    y = y / max(np.max(np.abs(y)), 1e-9) * (0.3 + 0.6 * vel)
    labels = {"label": INSTRUMENTS.index(inst), "pitch": pitch, "kind": KINDS.index(kind),
              "quality": quality, "velocity": vel}
    return y.astype(np.float32), labels, _sorted_events(events)


def pad_events(events: list[np.ndarray]) -> np.ndarray:
    """Stacks per-clip events [E_i, 4] into float32 [N, max(1, max E_i), 4], padding rows (-1, 0, 0, 0)."""
    size = max([1] + [len(e) for e in events])
    out = np.zeros((len(events), size, 4), np.float32)
    out[:, :, 0] = -1.0
    for i, e in enumerate(events):
        out[i, :len(e)] = e
    return out


def generate(num_clips: int, *, sample_rate: int = 16000, clip_seconds: float = 1.0,
             seed: int = 0, start: int = 0, instruments=None) -> dict[str, np.ndarray]:
    """Renders clips `start .. start + num_clips - 1`, each of one of `instruments` (None: all;
    the full set draws exactly the clips of earlier versions).

    Returns:
        dict with 'audio' [N, L] float32 (L = round(clip_seconds * sample_rate)), 'label',
        'pitch', 'kind', 'quality' int32 [N], 'velocity' float32 [N] and 'events' float32
        [N, E, 4] (rows (midi_pitch, onset_s, duration_s, velocity), sorted by onset then pitch,
        padded with (-1, 0, 0, 0); E = the most events in a clip, at least 1).
    """
    instruments = check_instruments(instruments)
    length = int(round(clip_seconds * sample_rate))
    audio = np.zeros((num_clips, length), np.float32)
    labels = {k: [] for k in ("label", "pitch", "kind", "quality", "velocity")}
    events = []
    for i in range(num_clips):
        rng = np.random.default_rng(np.random.SeedSequence([seed, start + i]))
        audio[i], lab, ev = render_clip(rng, sample_rate, length, instruments)
        for k, v in lab.items():
            labels[k].append(v)
        events.append(ev)
    out = {k: np.asarray(v, np.float32 if k == "velocity" else np.int32) for k, v in labels.items()}
    out["audio"] = audio
    out["events"] = pad_events(events)
    return out


def default_cache_dir() -> str:
    """`$XDG_CACHE_HOME/diffjax`, else `~/.cache/diffjax`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "diffjax")


def synth_music(num_clips: int, *, sample_rate: int = 16000, clip_seconds: float = 1.0,
                seed: int = 0, cache_dir: str | None = None,
                instruments=None) -> dict[str, np.ndarray]:
    """`generate(...)`, cached as an .npz in `cache_dir`; the first call renders and saves it."""
    cache_dir = cache_dir or default_cache_dir()
    instruments = check_instruments(instruments)
    subset = "" if instruments == INSTRUMENTS else "_" + "-".join(instruments)
    name = (f"synth_music_v{VERSION}_sr{sample_rate}_len{clip_seconds:g}_n{num_clips}_seed{seed}"
            f"{subset}.npz")
    path = os.path.join(cache_dir, name)
    if os.path.exists(path):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    t0 = time.perf_counter()
    data = generate(num_clips, sample_rate=sample_rate, clip_seconds=clip_seconds, seed=seed,
                    instruments=instruments)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.npz"
    np.savez(tmp, **data)
    os.replace(tmp, path)  # Atomic, so a concurrent reader never sees a partial file.
    logger.info("synthesised %d clips (%.1f s of audio) in %.1f s; cached at %s", num_clips,
                num_clips * clip_seconds, time.perf_counter() - t0, path)
    return data

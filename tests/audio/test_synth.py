"""Tests for diffjax.audio.synth: determinism, labels, note events, and that the music is musical."""
import numpy as np
import pytest

from diffjax.audio import synth

SR = 16000


@pytest.fixture(scope="module")
def clips():
    return synth.generate(240, sample_rate=SR, clip_seconds=0.5, seed=0)


def estimate_f0(x, sr, lo=30.0, hi=90.0):
    """Harmonic-sum pitch estimate (5 harmonics) over MIDI lo..hi in 1-cent steps."""
    n = len(x)
    spec = np.abs(np.fft.rfft(x * np.hanning(n), 8 * n))
    freqs = np.fft.rfftfreq(8 * n, 1 / sr)
    cands = synth.midi_to_hz(np.arange(lo * 100, hi * 100) / 100)
    score = sum(np.interp(k * cands, freqs, spec) for k in range(1, 6))
    return cands[np.argmax(score)]


def test_same_seed_same_bytes(clips, tmp_path):
    again = synth.generate(240, sample_rate=SR, clip_seconds=0.5, seed=0)
    for k in clips:
        assert clips[k].tobytes() == again[k].tobytes(), k
    cached = synth.synth_music(240, sample_rate=SR, clip_seconds=0.5, seed=0,
                               cache_dir=str(tmp_path))
    reloaded = synth.synth_music(240, sample_rate=SR, clip_seconds=0.5, seed=0,
                                 cache_dir=str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 1
    for k in clips:
        assert cached[k].tobytes() == clips[k].tobytes() == reloaded[k].tobytes(), k
    other = synth.generate(4, sample_rate=SR, clip_seconds=0.5, seed=1)
    assert not np.array_equal(other["audio"], clips["audio"][:4])
    tail = synth.generate(2, sample_rate=SR, clip_seconds=0.5, seed=0, start=5)
    np.testing.assert_array_equal(tail["audio"], clips["audio"][5:7])  # clip i depends on (seed, i)


def test_labels_cover_the_vocabulary(clips):
    assert clips["audio"].shape == (240, 8000) and clips["audio"].dtype == np.float32
    assert np.all(np.isfinite(clips["audio"])) and np.abs(clips["audio"]).max() <= 0.9 + 1e-6
    assert set(clips["label"]) == set(range(len(synth.INSTRUMENTS)))
    assert set(clips["kind"]) == set(range(len(synth.KINDS)))
    drums = clips["label"] >= synth.INSTRUMENTS.index("kick")
    assert np.all((clips["kind"] == synth.KINDS.index("drums")) == drums)
    assert set(clips["pitch"][drums]) <= {36, 38, 42}
    chords = np.isin(clips["kind"], [1, 2])
    assert np.all(clips["quality"][chords] >= 0) and np.all(clips["quality"][~chords] == -1)
    assert {synth.QUALITY_NAMES[q] for q in clips["quality"][chords]} >= {"major", "minor"}
    assert np.all((clips["velocity"] >= 0.4) & (clips["velocity"] <= 1.0))


def test_events(clips):
    ev, n = clips["events"], len(clips["audio"])
    assert ev.dtype == np.float32 and ev.shape[0] == n and ev.shape[2] == 4
    valid = ev[..., 0] >= 0
    assert np.all(valid[:, 0]) and np.all(valid[:, :-1] >= valid[:, 1:])  # >= 1 each, padding last
    np.testing.assert_array_equal(ev[~valid], np.tile([-1.0, 0.0, 0.0, 0.0], ((~valid).sum(), 1)))
    assert valid.sum(1).max() == ev.shape[1]
    for i in range(n):
        e = ev[i, valid[i]].astype(np.float64)
        pitch, onset, dur, vel = e.T
        kind, v = synth.KINDS[clips["kind"][i]], clips["velocity"][i]
        assert np.all((onset >= 0) & (onset < 0.5) & (dur > 0) & (onset + dur <= 0.5 + 1e-6)), i
        assert np.array_equal(np.lexsort((pitch, onset)), np.arange(len(e))), i  # sorted
        if kind == "drums":
            assert np.all(pitch == clips["pitch"][i]) and np.all((vel >= 0.8 * v - 1e-6) & (vel <= v))
            np.testing.assert_allclose(dur[:-1], np.diff(onset), rtol=1e-5)  # one beat each
            continue
        assert np.all(vel == v) and pitch.min() >= clips["pitch"][i], i
        if kind == "note":
            assert len(e) == 1 and pitch[0] == clips["pitch"][i] and onset[0] == 0, i
        elif kind == "chord":
            assert len(e) in (3, 4) and pitch[0] == clips["pitch"][i] and np.all(onset == 0), i
        else:
            assert len(set(pitch)) <= 4 and np.all(np.diff(onset) > 0), i  # one tone per step
            np.testing.assert_allclose(np.diff(onset), onset[1] if len(e) > 1 else [], rtol=1e-5)


def test_pitched_notes_sound_at_their_midi_pitch(clips):
    harmonic = [synth.INSTRUMENTS.index(n) for n in ("flute", "clarinet", "brass", "pluck",
                                                       "epiano")]
    sel = np.flatnonzero((clips["kind"] == 0) & np.isin(clips["label"], harmonic))
    assert len(sel) >= 20
    for i in sel:
        f0 = estimate_f0(clips["audio"][i], SR)
        cents = 1200 * np.log2(f0 / synth.midi_to_hz(clips["pitch"][i]))
        assert abs(cents) < 50, (i, synth.INSTRUMENTS[clips["label"][i]], clips["pitch"][i], cents)


def test_chord_tones_are_in_the_spectrum():
    rng = np.random.default_rng(0)
    tones = synth._chord(rng, key=0, scale="major", lo=48, hi=72)
    assert {(t - tones[0]) % 12 for t in tones[:3]} in ({0, 4, 7}, {0, 3, 7}, {0, 3, 6})
    assert all(t % 12 in synth.SCALES["major"] for t in tones)  # diatonic


def test_drums_have_their_spectral_character(clips):
    freqs = np.fft.rfftfreq(8000, 1 / SR)

    def centroid(i):
        p = np.abs(np.fft.rfft(clips["audio"][i])) ** 2
        return float((freqs * p).sum() / p.sum())

    for name, lo, hi in [("kick", 0, 400), ("hihat", 5000, 8000), ("snare", 400, 5000)]:
        sel = np.flatnonzero(clips["label"] == synth.INSTRUMENTS.index(name))
        assert len(sel) > 0
        assert all(lo < centroid(i) < hi for i in sel), (name, [centroid(i) for i in sel])


def test_karplus_strong_is_pitched_and_decays():
    rng = np.random.default_rng(0)
    y = synth.pluck(synth.midi_to_hz(57), 16000, SR, 1.0, 0.8, rng)  # A3 = 220 Hz
    assert abs(1200 * np.log2(estimate_f0(y[:8000], SR) / 220.0)) < 20
    assert np.abs(y[:1600]).max() > 3 * np.abs(y[-1600:]).max()


def test_instrument_subset(clips, tmp_path):
    full = synth.generate(60, sample_rate=SR, clip_seconds=0.5, seed=0, instruments=synth.INSTRUMENTS)
    np.testing.assert_array_equal(full["audio"], clips["audio"][:60])  # the full set draws as before
    pitched = synth.synth_music(60, sample_rate=SR, clip_seconds=0.5, seed=0,
                                cache_dir=str(tmp_path), instruments=synth.PITCHED)
    assert set(pitched["label"]) == set(range(len(synth.PITCHED)))
    assert not np.any(pitched["kind"] == synth.KINDS.index("drums"))
    assert [p.name for p in tmp_path.iterdir()][0].endswith("_flute-clarinet-brass-pluck-bell-epiano.npz")
    with pytest.raises(ValueError, match="unknown synth_music instrument.*valid: flute, clarinet"):
        synth.generate(2, instruments=("flute", "tuba"))

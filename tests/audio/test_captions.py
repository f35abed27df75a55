"""Tests for diffjax.audio.captions and the pure helpers of diffjax.audio.metadata."""
import numpy as np
import pytest

from diffjax.audio import captions, metadata, synth

KIND_WORDS = {"note": ("note",), "chord": ("chord",), "arpeggio": ("arpeggi",),
              "drums": ("pattern", "groove", "beat", "rhythm", "loop")}


def labels_of(instrument, kind, pitch=64, quality=5, velocity=0.7):
    return {"label": synth.INSTRUMENTS.index(instrument), "kind": synth.KINDS.index(kind),
            "pitch": pitch, "quality": quality if kind in ("chord", "arpeggio") else -1,
            "velocity": velocity}


def every_clip_type():
    for inst in synth.INSTRUMENTS:
        kinds = ("drums",) if inst in synth.DRUMS else ("note", "chord", "arpeggio")
        for kind in kinds:
            yield inst, kind


@pytest.mark.parametrize("inst,kind", list(every_clip_type()))
def test_every_template_names_the_instrument_and_the_kind(inst, kind):
    labels = labels_of(inst, kind)
    n = captions.num_templates(synth.KINDS.index(kind))
    texts = [captions.caption(labels, t) for t in range(n)]
    assert n >= 6 and len(set(texts)) == n  # templates vary
    for text in texts:
        assert captions.INSTRUMENT_WORDS[inst] in text, text
        assert any(w in text for w in KIND_WORDS[kind]), text
        assert "{" not in text and "  " not in text and text == text.strip()
    if kind != "drums":  # some, not all, templates name the note or chord
        named = sum(("E4" in t) if kind == "note" else ("E minor seventh" in t) for t in texts)
        assert 0 < named < n


def test_words_for_instruments_velocities_notes_and_chords():
    assert captions.note_name(60) == "C4" and captions.note_name(61) == "C#4"
    assert captions.note_name(76) == "E5" and captions.note_name(21) == "A0"
    assert [captions.velocity_word(v) for v in (0.45, 0.7, 0.95)] == ["soft", "medium", "loud"]
    q = synth.QUALITY_NAMES.index
    assert captions.caption(labels_of("brass", "arpeggio", 60, q("min7"), 0.5), 0) == \
        "a soft brass arpeggio on a C minor seventh"
    assert captions.caption(labels_of("epiano", "chord", 62, q("major"), 0.9), 0) == \
        "electric piano playing a D major chord"
    assert captions.caption(labels_of("pluck", "chord", 71, q("m7b5")), 0) == \
        "plucked string playing a B half-diminished seventh chord"
    assert captions.caption(labels_of("flute", "chord", 69, q("dom7")), 0) == \
        "flute playing an A dominant seventh chord"  # 'an' before a vowel sound
    assert captions.caption(labels_of("kick", "drums", 36), 0) == "kick drum pattern"
    assert captions.caption(labels_of("hihat", "drums", 42, velocity=0.9), 1) == "a loud hi-hat groove"
    assert set(captions.QUALITY_WORDS) == set(synth.QUALITY_NAMES)


def test_template_index_wraps_and_captions_are_deterministic():
    labels = {k: np.asarray(v) for k, v in labels_of("bell", "note").items()}  # numpy scalars
    n = captions.num_templates(0)
    assert captions.caption(labels, 3) == captions.caption(labels, 3 + n) == \
        captions.caption(labels_of("bell", "note"), 3)


def test_corpus_is_every_template_of_every_clip():
    data = synth.generate(5, sample_rate=4000, clip_seconds=0.1, seed=3)
    corpus = captions.caption_corpus(data)
    assert len(corpus) == 5 * 8 == sum(captions.num_templates(k) for k in data["kind"])
    first = {k: data[k][0] for k in ("label", "kind", "pitch", "quality", "velocity")}
    assert corpus[:8] == [captions.caption(first, t) for t in range(8)]


def test_prompt_for_builds_prompts_from_names():
    assert captions.prompt_for("flute", "note", pitch=72) == "a single flute note at C5"
    assert captions.prompt_for("flute", "note", pitch=76, velocity=0.9) == "loud flute note, E5"
    assert captions.prompt_for("epiano", "chord", pitch=62, quality="major") == \
        "electric piano playing a D major chord"
    assert captions.prompt_for("snare", "drums") == "snare drum pattern"
    assert captions.prompt_for("snare", "drums", template=6) == "solo snare drum groove"
    with pytest.raises(ValueError, match="plays the kind.*drums"):
        captions.prompt_for("kick", "note")
    with pytest.raises(ValueError, match="unknown chord quality.*min7"):
        captions.prompt_for("bell", "chord", pitch=60, quality="minor7")
    with pytest.raises(ValueError, match="needs the label.*velocity"):
        captions.prompt_for("bell", "note", template=0)


def test_crop_events_shifts_drops_and_clips():
    ev = np.array([[[60, 0.0, 0.5, 0.8], [64, 0.3, 0.5, 0.8], [67, 0.6, 0.2, 0.8],
                    [-1, 0, 0, 0]]], np.float32)
    out = metadata.crop_events(ev, np.array([0.25]), np.array([0.5]))
    np.testing.assert_allclose(out[0], [[64, 0.05, 0.45, 0.8], [67, 0.35, 0.15, 0.8],
                                        [-1, 0, 0, 0], [-1, 0, 0, 0]], atol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(metadata.crop_events(ev, np.zeros(1), np.ones(1)), ev)


def test_truncate_fades_out_then_zeros():
    x, m = metadata.truncate(np.ones((100, 2), np.float32), np.ones((100, 1), np.float32), 60, 10)
    assert np.all(x[:50] == 1) and np.all(x[60:] == 0) and m.sum() == 60 and np.all(m[60:] == 0)
    assert np.all(np.diff(x[50:60, 0]) < 0) and x[59, 0] == pytest.approx(0.1)

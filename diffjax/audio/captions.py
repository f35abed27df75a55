"""Text captions of the embedded synthesised music (`diffjax.audio.synth`), from its labels.

Each clip's labels ('label', 'pitch', 'kind', 'quality', 'velocity') fill one of several templates
of its kind, so a text-conditioned model sees varied phrasings of the same facts:

    caption({"label": 2, "kind": 2, "pitch": 60, "quality": 5, "velocity": 0.5}, 0)
    # 'a soft brass arpeggio on a C minor seventh'
    caption({"label": 6, "kind": 3, "pitch": 36, "quality": -1, "velocity": 0.9}, 0)
    # 'kick drum pattern'
    prompt_for("flute", "note", pitch=76, velocity=0.9)   # 'loud flute note, E5'

Words: velocity is 'soft' / 'medium' / 'loud' by thirds of the synthesiser's range [0.4, 1];
pitches are note names with octave numbers (MIDI 60 = C4, sharps: C#4); chord qualities are
spelled out (maj7 -> 'major seventh', m7b5 -> 'half-diminished seventh'); instruments are named in
words (epiano -> 'electric piano', pluck -> 'plucked string', hihat -> 'hi-hat'). Every template
names the instrument and the kind (note; chord; arpeggio or arpeggiated; a drum pattern, groove,
beat, rhythm or loop); about half the pitched ones name the note or the chord.
"""
from __future__ import annotations

import re
import string
from typing import Mapping

import numpy as np

from diffjax.audio import synth

INSTRUMENT_WORDS = {"flute": "flute", "clarinet": "clarinet", "brass": "brass",
                    "pluck": "plucked string", "bell": "bell", "epiano": "electric piano",
                    "kick": "kick drum", "snare": "snare drum", "hihat": "hi-hat"}
QUALITY_WORDS = {"major": "major", "minor": "minor", "diminished": "diminished",
                 "augmented": "augmented", "maj7": "major seventh", "min7": "minor seventh",
                 "dom7": "dominant seventh", "m7b5": "half-diminished seventh",
                 "minmaj7": "minor-major seventh", "augmaj7": "augmented major seventh",
                 "dim7": "diminished seventh"}
VELOCITY_WORDS = ("soft", "medium", "loud")          # as adjectives
VELOCITY_ADVERBS = ("softly", "moderately", "loudly")  # the same thirds, as adverbs
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# Fields: inst (instrument words), vel / adv (velocity), note (e.g. E5), root (e.g. C#),
# quality (e.g. minor seventh), chord (root + quality, e.g. C minor seventh).
TEMPLATES = {
    "note": (
        "{vel} {inst} note, {note}",
        "{inst} playing a single {vel} note",
        "a single {inst} note at {note}",
        "{inst} note",
        "{inst} holding the note {note}",
        "one {vel} note played on {inst}",
        "solo {inst}, a {vel} sustained note",
        "the note {note} played {adv} on {inst}",
    ),
    "chord": (
        "{inst} playing a {chord} chord",
        "a {vel} {inst} chord",
        "a {quality} chord on {inst}",
        "{vel} {chord} chord, {inst}",
        "{inst} chord",
        "a sustained {inst} chord, {vel}",
        "a {chord} chord played {adv} on {inst}",
        "{inst} striking a {vel} {quality} chord",
    ),
    "arpeggio": (
        "a {vel} {inst} arpeggio on a {chord}",
        "{inst} arpeggio",
        "an arpeggiated {chord} chord on {inst}",
        "{inst} playing a {vel} arpeggio",
        "{vel} {inst} arpeggio, {quality}",
        "a {quality} arpeggio played {adv} on {inst}",
        "{inst} arpeggiating a {chord} chord",
        "a broken-chord {inst} arpeggio, {vel}",
    ),
    "drums": (
        "{inst} pattern",
        "a {vel} {inst} groove",
        "{inst} beat played {adv}",
        "a steady {inst} rhythm",
        "{vel} {inst} loop",
        "a repeating {inst} pattern, {vel}",
        "solo {inst} groove",
        "{inst} hits in a {vel} rhythm",
    ),
}
_NEEDS = {"vel": "velocity", "adv": "velocity", "note": "pitch", "root": "pitch",
          "quality": "quality", "chord": "pitch and quality"}


def velocity_word(velocity: float, adverb: bool = False) -> str:
    """'soft' / 'medium' / 'loud' (or the adverb) by thirds of [0.4, 1]; e.g. 0.75 -> 'medium'."""
    third = int(np.clip((float(velocity) - 0.4) / 0.2, 0, 2))
    return (VELOCITY_ADVERBS if adverb else VELOCITY_WORDS)[third]


def note_name(pitch: int, octave: bool = True) -> str:
    """The name of MIDI note `pitch`, C4 = 60: note_name(61) == 'C#4', note_name(61, False) == 'C#'."""
    pitch = int(pitch)
    return NOTE_NAMES[pitch % 12] + (str(pitch // 12 - 1) if octave else "")


def _articles(text: str) -> str:
    """'a' -> 'an' before a vowel sound: 'a electric' -> 'an electric', 'a E5' / 'a F#' -> 'an ...'."""
    return re.sub(r"\b([Aa]) (?=[aeiouAEF])", r"\1n ", text)


def _fields(labels: Mapping) -> dict[str, str]:
    """Template fields from the labels that are present (a quality < 0 counts as absent)."""
    f = {"inst": INSTRUMENT_WORDS[synth.INSTRUMENTS[int(labels["label"])]]}
    if labels.get("velocity") is not None:
        f["vel"] = velocity_word(labels["velocity"])
        f["adv"] = velocity_word(labels["velocity"], adverb=True)
    if labels.get("pitch") is not None:
        f["note"], f["root"] = note_name(labels["pitch"]), note_name(labels["pitch"], False)
    if labels.get("quality") is not None and int(labels["quality"]) >= 0:
        f["quality"] = QUALITY_WORDS[synth.QUALITY_NAMES[int(labels["quality"])]]
        if "root" in f:
            f["chord"] = f"{f['root']} {f['quality']}"
    return f


def _templates(kind: int) -> tuple[str, ...]:
    if not 0 <= int(kind) < len(synth.KINDS):
        raise ValueError(f"kind must be an index into synth.KINDS {synth.KINDS}; got {kind}")
    return TEMPLATES[synth.KINDS[int(kind)]]


def _used(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def num_templates(kind: int) -> int:
    """The number of caption templates of `kind` (an index into `synth.KINDS`); 8 for each."""
    return len(_templates(kind))


def caption(labels: Mapping, template: int) -> str:
    """The caption of one clip: template `template % num_templates(kind)` of its kind, filled in.

    Args:
        labels: 'label' (instrument index) and 'kind', plus 'pitch' (MIDI), 'quality' (index into
            `synth.QUALITY_NAMES`, -1: none) and 'velocity' where the template uses them
            (scalars: Python or numpy).
        template: any int; taken modulo the kind's number of templates.

    Returns:
        e.g. caption({"label": 5, "kind": 1, "pitch": 62, "quality": 0, "velocity": 0.9}, 0) ==
        'electric piano playing a D major chord'.
    """
    templates = _templates(labels["kind"])
    text = templates[int(template) % len(templates)]
    fields = _fields(labels)
    missing = sorted(_NEEDS[k] for k in _used(text) - set(fields))
    if missing:
        raise ValueError(f"caption template {text!r} needs the label(s) {', '.join(missing)}; "
                         f"got {dict(labels)}")
    return _articles(text.format(**fields))


def caption_corpus(labels: Mapping[str, np.ndarray]) -> list[str]:
    """Every template of every clip, clip-major: sum_i num_templates(kind_i) strings (N x 8).

    Args:
        labels: arrays [N] 'label', 'kind', 'pitch', 'quality', 'velocity' (e.g. the dict of
            `synth.synth_music`; other keys such as 'audio' are ignored).
    """
    keys = ("label", "kind", "pitch", "quality", "velocity")
    rows = [{k: labels[k][i] for k in keys} for i in range(len(labels["kind"]))]
    return [caption(r, t) for r in rows for t in range(num_templates(r["kind"]))]


def prompt_for(instrument: str, kind: str, *, pitch: int | None = None, quality: str | None = None,
               velocity: float | None = None, template: int | None = None) -> str:
    """An evaluation prompt in the captions' language, from names.

    Args:
        instrument: a name in `synth.INSTRUMENTS` ('flute', 'epiano', 'kick', ...).
        kind: 'note', 'chord' or 'arpeggio' for pitched instruments, 'drums' for drums.
        pitch: MIDI note (the root of a chord); quality: a name in `synth.QUALITY_NAMES` ('min7');
        velocity: in [0.4, 1]. Each is optional.
        template: which template; None: the first one that uses the most of the given values.

    Returns:
        e.g. prompt_for("flute", "note", pitch=72) == 'a single flute note at C5';
        prompt_for("epiano", "chord", pitch=62, quality="major") ==
        'electric piano playing a D major chord'; prompt_for("hihat", "drums") == 'hi-hat pattern'.
    """
    synth.check_instruments([instrument])
    kinds = ("drums",) if instrument in synth.DRUMS else synth.KINDS[:3]
    if kind not in kinds:
        raise ValueError(f"instrument {instrument!r} plays the kind(s) {', '.join(kinds)}; got "
                         f"kind {kind!r}")
    if quality is not None and quality not in synth.QUALITY_NAMES:
        raise ValueError(f"unknown chord quality {quality!r}; valid: {', '.join(synth.QUALITY_NAMES)}")
    labels = {"label": synth.INSTRUMENTS.index(instrument), "kind": synth.KINDS.index(kind),
              "pitch": pitch, "velocity": velocity,
              "quality": None if quality is None else synth.QUALITY_NAMES.index(quality)}
    if template is None:
        given = set(_fields(labels))
        templates = _templates(labels["kind"])
        usable = [i for i, t in enumerate(templates) if _used(t) <= given]
        template = max(usable, key=lambda i: (len(_used(templates[i])), -i))
    return caption(labels, template)

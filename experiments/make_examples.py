"""Writes examples of the embedded dataset: wav files and a spectrogram grid for the README.

    python experiments/make_examples.py --out_dir=/tmp/synth_examples \
        --png=docs/img/synth_examples.png

Writes one wav per shown clip plus `medley.wav` (all of them in a row), and a PNG grid of
log-magnitude spectrograms titled with each clip's labels.
"""
from __future__ import annotations

import os

from absl import app, flags
import numpy as np

from diffjax.audio import codecs, io, synth

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", "/tmp/diffjax_synth_examples", "where the wav files go")
flags.DEFINE_string("png", "docs/img/synth_examples.png", "spectrogram grid (PNG)")
flags.DEFINE_integer("sample_rate", 16000, "sample rate (Hz)")
flags.DEFINE_float("clip_seconds", 1.0, "clip length (s)")
flags.DEFINE_integer("num_examples", 12, "clips shown (a multiple of 4 fills the grid)")
flags.DEFINE_integer("seed", 0, "synthesis seed")
flags.DEFINE_string("cache_dir", None, "dataset cache (default $XDG_CACHE_HOME/diffjax)")
flags.DEFINE_bool("overwrite", False, "replace existing wav files")

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def title(data: dict, i: int) -> str:
    inst, kind = synth.INSTRUMENTS[data["label"][i]], synth.KINDS[data["kind"][i]]
    if kind == "drums":
        return f"{inst} pattern"
    p = int(data["pitch"][i])
    name = f"{NOTE_NAMES[p % 12]}{p // 12 - 1}"
    if data["quality"][i] >= 0:
        name += f" {synth.QUALITY_NAMES[data['quality'][i]]}"
    return f"{inst} {kind}: {name}"


def pick(data: dict, n: int) -> list[int]:
    """Clips with distinct (instrument, kind), covering every instrument first."""
    chosen, seen = [], set()
    for want_new_instrument in (True, False):
        for i in range(len(data["label"])):
            key = (int(data["label"][i]), int(data["kind"][i]))
            if len(chosen) == n or key in seen:
                continue
            if want_new_instrument and any(k[0] == key[0] for k in seen):
                continue
            chosen.append(i)
            seen.add(key)
    return chosen


def spectrogram_grid(data: dict, idx: list[int], path: str, sample_rate: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows = -(-len(idx) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.3 * rows), squeeze=False)
    audio = data["audio"][idx][:, :, None]
    spec = np.abs(np.asarray(codecs.stft(audio, n_fft=512, hop=128, normalized=False)))[..., 0]
    spec = spec[:, 2:-2]  # Drop edge frames, half of which is the centring's zero padding.
    db = 20 * np.log10(np.maximum(spec, 1e-4))
    t0, t1 = 2 * 128 / sample_rate, (audio.shape[1] - 2 * 128) / sample_rate
    for ax, i, s in zip(axes.flat, idx, db):
        ax.imshow(s.T, origin="lower", aspect="auto", cmap="magma", vmin=db.max() - 80,
                  vmax=db.max(), extent=[t0, t1, 0, sample_rate / 2000])
        ax.set_title(title(data, i), fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("kHz", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("s", fontsize=8)
    for ax in axes.flat[len(idx):]:
        ax.axis("off")
    fig.suptitle("diffjax embedded dataset (synth_music): log-magnitude spectrograms", fontsize=11)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    from PIL import Image  # matplotlib's dependency; 128 colours keep the PNG under 300 KB.

    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)


def main(argv):
    del argv
    data = synth.synth_music(64, sample_rate=FLAGS.sample_rate, clip_seconds=FLAGS.clip_seconds,
                             seed=FLAGS.seed, cache_dir=FLAGS.cache_dir)
    idx = pick(data, FLAGS.num_examples)
    for j, i in enumerate(idx):
        name = f"{j:02d}_{title(data, i).replace(' ', '_').replace(':', '')}.wav"
        io.write_audio(os.path.join(FLAGS.out_dir, name), data["audio"][i],
                       sample_rate=FLAGS.sample_rate, overwrite=FLAGS.overwrite)
    gap = np.zeros(FLAGS.sample_rate // 4, np.float32)
    medley = np.concatenate([np.concatenate([data["audio"][i], gap]) for i in idx])
    io.write_audio(os.path.join(FLAGS.out_dir, "medley.wav"), medley,
                   sample_rate=FLAGS.sample_rate, overwrite=FLAGS.overwrite)
    spectrogram_grid(data, idx, FLAGS.png, FLAGS.sample_rate)
    print(f"wrote {len(idx) + 1} wav files to {FLAGS.out_dir} and {FLAGS.png} "
          f"({os.path.getsize(FLAGS.png) / 1024:.0f} KB)")


if __name__ == "__main__":
    app.run(main)

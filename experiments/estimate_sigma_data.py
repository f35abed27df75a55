"""Estimates sigma_data and suggests sigma_max for a dataset in a codec's representation.

    python experiments/estimate_sigma_data.py --dataset=synth_music --codec=complex_stft
    python experiments/estimate_sigma_data.py --dataset=folder \
        --dataset_kwargs='{"root": "/data/drums", "cache_dir": "/tmp/w"}' --codec=waveform

sigma_data is the RMS of the encoded training data (EDM, Karras et al. 2022); sigma_max is the
largest pairwise Euclidean distance between examples of a batch, rounded up (Song & Ermon 2020,
Technique 1). See `diffjax.audio.codecs.estimate_sigma_data`. Prints one JSON line.
"""
from __future__ import annotations

import json

from absl import app, flags

from diffjax.audio import codecs  # registers the audio datasets and codecs
from diffjax.data import get_dataset

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "synth_music", "dataset name (diffjax.data.DATASETS)")
flags.DEFINE_string("dataset_kwargs", "{}", "dataset constructor kwargs, as JSON")
flags.DEFINE_string("codec", "waveform", "codec name (diffjax.audio.codecs.CODECS)")
flags.DEFINE_string("codec_kwargs", "{}", "codec constructor kwargs, as JSON")
flags.DEFINE_integer("num_batches", 4, "batches to average over")
flags.DEFINE_integer("batch_size", 32, "examples per batch (pairwise distances are per batch)")
flags.DEFINE_integer("seed", 0, "sampling seed")


def main(argv):
    del argv
    dataset = get_dataset(FLAGS.dataset, **json.loads(FLAGS.dataset_kwargs))
    codec = codecs.get_codec(FLAGS.codec, **json.loads(FLAGS.codec_kwargs))
    out = codecs.estimate_sigma_data(dataset, codec, num_batches=FLAGS.num_batches,
                                     batch_size=FLAGS.batch_size, seed=FLAGS.seed)
    print(json.dumps({"dataset": FLAGS.dataset, "codec": FLAGS.codec, **out}))


if __name__ == "__main__":
    app.run(main)

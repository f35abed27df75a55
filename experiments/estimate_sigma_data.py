"""Estimates sigma_data and suggests sigma_max for a dataset in a codec's representation.

    python experiments/estimate_sigma_data.py --dataset=synth_music --codec=complex_stft
    python experiments/estimate_sigma_data.py --dataset=folder \
        --dataset_kwargs='{"root": "/data/drums", "cache_dir": "/tmp/w"}' --codec=waveform
    # a config's data and codec, e.g. the latents of a trained autoencoder:
    python experiments/estimate_sigma_data.py --config configs/latent.py \
        --config.codec.latent.workdir=runs/autoencoder

sigma_data is the RMS of the encoded training data (EDM, Karras et al. 2022); sigma_max is the
largest pairwise Euclidean distance between examples of a batch, rounded up (Song & Ermon 2020,
Technique 1). See `diffjax.audio.codecs.estimate_sigma_data`. Prints one JSON line.
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from diffjax.audio import codecs  # noqa: E402  (registers the audio datasets and codecs)
from diffjax.data import build_dataset, get_dataset  # noqa: E402
from diffjax.jobs.workdir import model_for  # noqa: E402
from diffjax.model import data_spec  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "A training config: use its data and codec (overrides "
                                "--dataset/--codec; needed for the 'latent' codec).", lock_config=True)
flags.DEFINE_string("dataset", "synth_music", "dataset name (diffjax.data.DATASETS)")
flags.DEFINE_string("dataset_kwargs", "{}", "dataset constructor kwargs, as JSON")
flags.DEFINE_string("codec", "waveform", "codec name (diffjax.audio.codecs.CODECS)")
flags.DEFINE_string("codec_kwargs", "{}", "codec constructor kwargs, as JSON")
flags.DEFINE_integer("num_batches", 4, "batches to average over")
flags.DEFINE_integer("batch_size", 32, "examples per batch (pairwise distances are per batch)")
flags.DEFINE_integer("seed", 0, "sampling seed")


def main(argv):
    del argv
    if FLAGS.config is not None:
        dataset = build_dataset(FLAGS.config.data)
        codec = model_for(FLAGS.config, data_spec(dataset)).codec
        names = {"dataset": FLAGS.config.data.name, "codec": FLAGS.config.codec.name}
    else:
        dataset = get_dataset(FLAGS.dataset, **json.loads(FLAGS.dataset_kwargs))
        codec = codecs.get_codec(FLAGS.codec, **json.loads(FLAGS.codec_kwargs))
        names = {"dataset": FLAGS.dataset, "codec": FLAGS.codec}
    out = codecs.estimate_sigma_data(dataset, codec, num_batches=FLAGS.num_batches,
                                     batch_size=FLAGS.batch_size, seed=FLAGS.seed)
    print(json.dumps({**names, **out}))


if __name__ == "__main__":
    app.run(main)

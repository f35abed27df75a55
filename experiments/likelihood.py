"""Likelihood of a trained checkpoint: PF-ODE log-likelihood (and optionally the ELBO) on a split.

    python experiments/likelihood.py --config configs/likelihood.py --workdir runs/toy_gmm
    python experiments/likelihood.py --config configs/likelihood.py --workdir runs/music \
        --config.quantiser.name=pcm16 --config.likelihood.divergence=hutchinson \
        --config.likelihood.stepsize=fixed --config.likelihood.num_steps=32 --config.elbo_samples=16

Prints mean +- standard error (nats per example and bits per dimension, or per audio sample with a
quantiser) and writes `<workdir>/likelihood/<name>.json`; per-batch results go to
`<name>.host<i>of<n>.jsonl` as they are computed, so an interrupted run resumes where it stopped.
Each host evaluates its own share of every batch. See docs/likelihood.md for the units.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from diffjax.jobs.likelihood import evaluate_likelihood  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/likelihood.py[:smoke]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Training workdir (checkpoints + config.json).")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    setup_logging()
    summary = evaluate_likelihood(FLAGS.workdir, FLAGS.config, step=FLAGS.step)
    for field in ("logp", "bits", "elbo", "elbo_bits"):
        if field in summary:
            print(f"{field:>9}: {summary[field]['mean']:.4f} +- {summary[field]['stderr']:.4f}")
    print(f"      nfe: {summary['nfe_mean']:.1f}   ({summary['unit_bits']})")
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)

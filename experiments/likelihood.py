"""Likelihood of a trained checkpoint: PF-ODE log-likelihood (and optionally the ELBO) on a split.

    python experiments/likelihood.py --workdir runs/toy_gmm
    python experiments/likelihood.py --workdir runs/music --quantiser=pcm16 --divergence=hutchinson \
        --num_probes=1 --stepsize=fixed --num_steps=32 --elbo_samples=16

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
from diffjax.logs import setup_logging  # noqa: E402

from diffjax.likelihood.evaluate import EvalSpec, evaluate_checkpoint  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir (checkpoints + config.json).")
flags.DEFINE_string("name", "likelihood", "Name of the result files under <workdir>/likelihood/.")
flags.DEFINE_enum("split", "eval", ["eval", "train"], "Dataset split.")
flags.DEFINE_integer("num_examples", 256, "Examples to evaluate (whole global batches).")
flags.DEFINE_integer("batch_size", 64, "Global batch size.")
flags.DEFINE_string("quantiser", "", "'' (continuous), or pcm16 | pcm8 | mulaw8 | uniform: bits per code.")
flags.DEFINE_integer("elbo_samples", 0, "> 0: also report the ELBO with this many draws per example.")
flags.DEFINE_integer("seed", 0, "Seed of probes, dequantisation noise and ELBO draws.")
flags.DEFINE_integer("step", -1, "Checkpoint step (-1: latest).")
flags.DEFINE_integer("ema_index", 0, "EMA index (-1: raw weights).")
flags.DEFINE_enum("divergence", "exact", ["exact", "hutchinson"], "Divergence estimator.")
flags.DEFINE_integer("num_probes", 1, "Hutchinson probes per example.")
flags.DEFINE_enum("probe", "rademacher", ["rademacher", "gaussian"], "Hutchinson probe distribution.")
flags.DEFINE_string("solver", "tsit5", "ODE solver (diffjax.likelihood.SOLVERS).")
flags.DEFINE_enum("stepsize", "adaptive", ["adaptive", "fixed"], "Adaptive (rtol/atol) or fixed NFE.")
flags.DEFINE_integer("num_steps", 32, "Fixed: steps; adaptive: initial step = range / num_steps.")
flags.DEFINE_float("rtol", 1e-5, "Adaptive relative tolerance.")
flags.DEFINE_float("atol", 1e-5, "Adaptive absolute tolerance.")
flags.DEFINE_integer("max_steps", 4096, "Adaptive step limit (exceeding it is an error).")
flags.mark_flags_as_required(["workdir"])

_LIKELIHOOD_FLAGS = ("divergence", "num_probes", "probe", "solver", "stepsize", "num_steps", "rtol",
                     "atol", "max_steps")


def main(argv):
    del argv
    setup_logging()
    spec = EvalSpec(split=FLAGS.split, num_examples=FLAGS.num_examples, batch_size=FLAGS.batch_size,
                    quantiser=FLAGS.quantiser, elbo_samples=FLAGS.elbo_samples, seed=FLAGS.seed,
                    step=FLAGS.step, ema_index=FLAGS.ema_index,
                    likelihood=tuple((k, getattr(FLAGS, k)) for k in _LIKELIHOOD_FLAGS))
    summary = evaluate_checkpoint(FLAGS.workdir, spec, name=FLAGS.name)
    for field in ("logp", "bits", "elbo", "elbo_bits"):
        if field in summary:
            print(f"{field:>9}: {summary[field]['mean']:.4f} +- {summary[field]['stderr']:.4f}")
    print(f"      nfe: {summary['nfe_mean']:.1f}   ({summary['unit_bits']})")
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)

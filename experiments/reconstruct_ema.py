"""Post-hoc EMA (EDM2 sec. 3.1): reconstructs EMAs of any length from a run's snapshots.

    python experiments/reconstruct_ema.py --workdir runs/default --sigma_rel 0.05,0.1
    python experiments/reconstruct_ema.py --workdir runs/default --sigma_rel 0.07 --step 20000 --method continuous

Reads `<workdir>/phema_snapshots/` one snapshot at a time and writes, per sigma_rel,
`<workdir>/phema/sigma_rel_<s:.3f>/` (an orbax checkpoint and `reconstruction.json`: gamma, the
coefficients and the profile residual, which bounds the parameter error relative to max |theta|).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from diffjax.jobs.phema import reconstruct_main  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402

flags.DEFINE_string("workdir", None, "Training workdir (config.json + phema_snapshots/).")
flags.DEFINE_list("sigma_rel", None, "Target EMA lengths, comma-separated (each in (0, 0.2887]).")
flags.DEFINE_integer("step", None, "Step to reconstruct at (default: the last snapshot's).")
flags.DEFINE_enum("method", "auto", ["auto", "discrete", "continuous"], "Least-squares profiles (auto: by size).")
flags.DEFINE_bool("overwrite", False, "Replace existing reconstructions.")
flags.mark_flags_as_required(["workdir", "sigma_rel"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    setup_logging()
    summaries = reconstruct_main(FLAGS.workdir, [float(s) for s in FLAGS.sigma_rel], FLAGS.step, FLAGS.method,
                                 overwrite=FLAGS.overwrite)
    for s in summaries:
        print(f"sigma_rel {s['sigma_rel']:.3f} (gamma {s['gamma']:.2f}) at step {s['target_step']}: "
              f"residual {s['residual']:.2e} ({s['method']}) -> {s['path']}")


if __name__ == "__main__":
    app.run(main)

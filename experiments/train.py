"""Trains a diffusion model from a config; resumes from the workdir.

    python experiments/train.py --config configs/toy_gmm.py --workdir runs/toy_gmm [--config.sde.name=vp]
"""
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from diffjax.training import train_and_evaluate  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py[:smoke]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    log = logging.getLogger("diffjax")
    log.setLevel(logging.INFO)
    log.addHandler(logging.StreamHandler())
    log.propagate = False
    results = train_and_evaluate(FLAGS.config, FLAGS.workdir)
    print(results)


if __name__ == "__main__":
    app.run(main)

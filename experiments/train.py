"""Trains a diffusion model from a config; resumes from the workdir.

    python experiments/train.py --config configs/default.py --workdir runs/default [--config.sde.name=vp]

Multi-host: run one process per host with --coordinator=HOST:PORT --num_processes=N --process_id=I
(or the DIFFJAX_* environment variables; DIFFJAX_DISTRIBUTED=auto on TPU pods / SLURM).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from diffjax.jobs import train_and_evaluate  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402
from diffjax.training import parallel  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py[:smoke]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.DEFINE_string("coordinator", None, "Multi-host: coordinator host:port (or DIFFJAX_COORDINATOR).")
flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes (or DIFFJAX_NUM_PROCESSES).")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's index (or DIFFJAX_PROCESS_ID).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    setup_logging()
    parallel.initialize_distributed(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
    print(train_and_evaluate(FLAGS.config, FLAGS.workdir))


if __name__ == "__main__":
    app.run(main)

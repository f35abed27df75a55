"""Trains the evaluation classifier (Inception's role for FD/IS/NDB); resumes from the workdir.

    python experiments/train_classifier.py --config configs/classifier.py --workdir runs/classifier
    python experiments/train_classifier.py --config configs/classifier.py:smoke --workdir /tmp/clf

Prints and writes `<workdir>/classifier_eval.json`: accuracy on the held-out split, per class.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from diffjax.jobs.classifier import train_classifier  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/classifier.py[:smoke]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for the classifier's checkpoints and logs.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    setup_logging()
    print(json.dumps(train_classifier(FLAGS.config, FLAGS.workdir), indent=1))


if __name__ == "__main__":
    app.run(main)

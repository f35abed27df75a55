"""Generation metrics of a diffusion checkpoint against its reference split (docs/evaluation.md).

    python experiments/evaluate.py --config configs/evaluate.py --workdir runs/music \
        --classifier runs/classifier --config.sampling.sampler=heun --config.sampling.nfe=35

Watch mode and local embedding models: see configs/evaluate.py.

Writes `<out>/<tag>/results.json` and `results.md` (a README-ready table row), and appends to
`<out>/results.jsonl` (`<out>` defaults to `<workdir>/eval`). An interrupted evaluation resumes from
its saved chunks.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from diffjax.evaluation import report  # noqa: E402
from diffjax.jobs.evaluate import run_evaluation  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/evaluate.py[:smoke]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Diffusion training workdir (checkpoints + config.json).")
flags.DEFINE_string("classifier", None, "Classifier workdir (experiments/train_classifier.py).")
flags.DEFINE_string("out", None, "Output folder (default: <workdir>/eval).")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest; ignored with watch.enabled).")
flags.mark_flags_as_required(["config", "workdir"])


def print_row(results):
    print(report.markdown_table([{"setting": f"step {results['step']}", **results}]), flush=True)


def main(argv):
    del argv
    setup_logging()
    done = run_evaluation(FLAGS.workdir, FLAGS.config, step=FLAGS.step, classifier_workdir=FLAGS.classifier,
                          out_dir=FLAGS.out, report=print_row)
    if not FLAGS.config.watch.enabled:
        print(json.dumps(next(iter(done.values())), indent=1, sort_keys=True))


if __name__ == "__main__":
    app.run(main)

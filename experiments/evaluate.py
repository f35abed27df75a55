"""Generation metrics of a diffusion checkpoint against its reference split (docs/evaluation.md).

    python experiments/evaluate.py --config configs/evaluate.py --workdir runs/music \
        --classifier runs/classifier --config.sampling.sampler=heun --config.sampling.nfe=35

    # two folders of audio, no model: FD and KAD with bootstrap intervals (mel, MFCC, + classifier)
    python experiments/evaluate.py --config configs/evaluate.py --samples generated/ \
        --reference my_music/ --out eval_vs_my_music/

Watch mode, folder-mode keys (config.folder) and local embedding models: see configs/evaluate.py.

Writes `<out>/<tag>/results.json` and `results.md` (a README-ready table row), and appends to
`<out>/results.jsonl` (`<out>` defaults to `<workdir>/eval`). An interrupted evaluation resumes from
its saved chunks. Each run's folder also gets `index.html`, a listening page (players, spectrograms,
metrics, command). Folder mode prints the table and, with --out, writes `<out>/results.json`,
`results.md` and `index.html` (refusing an existing file).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from diffjax.evaluation import report  # noqa: E402
from diffjax.jobs.evaluate import run_evaluation  # noqa: E402
from diffjax.jobs.evaluate_folders import evaluate_folders  # noqa: E402
from diffjax.jobs.page import command_line  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/evaluate.py[:smoke]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Diffusion training workdir (checkpoints + config.json).")
flags.DEFINE_string("classifier", None, "Classifier workdir (experiments/train_classifier.py).")
flags.DEFINE_string("samples", None, "Folder mode: a folder of audio to evaluate (instead of --workdir).")
flags.DEFINE_string("reference", None, "Folder mode: the folder of audio to compare --samples against.")
flags.DEFINE_string("out", None, "Output folder (default: <workdir>/eval; folder mode: print only).")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest; ignored with watch.enabled).")
flags.mark_flags_as_required(["config"])


def print_row(results):
    print(report.markdown_table([{"setting": f"step {results['step']}", **results}]), flush=True)


def main(argv):
    del argv
    setup_logging()
    if FLAGS.samples is not None or FLAGS.reference is not None:
        if FLAGS.workdir:
            raise app.UsageError("give --workdir (evaluate a model) or --samples and --reference "
                                 "(compare two folders), not both")
        results = evaluate_folders(FLAGS.samples, FLAGS.reference, FLAGS.config,
                                   classifier_workdir=FLAGS.classifier, out_dir=FLAGS.out, command=command_line())
        print(report.markdown_table([{"setting": os.path.basename(os.path.normpath(FLAGS.samples)),
                                      **results}]), flush=True)
        print(json.dumps(results, indent=1, sort_keys=True))
        return
    if not FLAGS.workdir:
        raise app.UsageError("give --workdir (evaluate a model) or --samples and --reference")
    done = run_evaluation(FLAGS.workdir, FLAGS.config, step=FLAGS.step, classifier_workdir=FLAGS.classifier,
                          out_dir=FLAGS.out, report=print_row, command=command_line())
    if not FLAGS.config.watch.enabled:
        print(json.dumps(next(iter(done.values())), indent=1, sort_keys=True))


if __name__ == "__main__":
    app.run(main)

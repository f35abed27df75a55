"""Generation metrics of a diffusion checkpoint against its reference split (docs/evaluation.md).

    python experiments/evaluate.py --workdir runs/music --classifier runs/classifier \
        --sampler heun --nfe 35 --num 1000
    # while training runs: evaluate each new checkpoint as it appears, until the last one
    python experiments/evaluate.py --workdir runs/music --classifier runs/classifier --watch
    # a local embedding model (e.g. VGGish/CLAP weights you have): fn(audio [B, L, C]) -> [B, D]
    python experiments/evaluate.py --workdir runs/music --embedders mel_stats,callable \
        --embedder_fn mypkg.vggish:embed --embedder_name vggish-local

Writes `<workdir>/eval/<tag>/results.json` and `results.md` (a README-ready table row), and appends
to `<workdir>/eval/results.jsonl`. An interrupted evaluation resumes from its saved chunks.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402

import diffjax.audio  # noqa: E402,F401  (registers the audio datasets)
from diffjax.evaluation import report, workdir as wd  # noqa: E402
from diffjax.evaluation.suite import MetricOptions  # noqa: E402
from diffjax.training import checkpoint  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Diffusion training workdir (checkpoints + config.json).")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.DEFINE_string("sampler", None, "Registered sampler (default: config.sampling.sampler).")
flags.DEFINE_string("grid", None, "Registered grid (default: config.sampling.grid).")
flags.DEFINE_integer("nfe", None, "Denoiser calls per sample (or give --num_steps).")
flags.DEFINE_integer("num_steps", None, "Noise levels (default: config.sampling.num_steps).")
flags.DEFINE_float("cfg_scale", None, "Classifier-free guidance scale (conditional models).")
flags.DEFINE_bool("conditional", True, "Generate with balanced labels if the model has classes.")
flags.DEFINE_integer("num", 1000, "Samples to generate.")
flags.DEFINE_integer("chunk_size", 100, "Samples per saved chunk (and per sampling batch).")
flags.DEFINE_list("embedders", list(wd.DEFAULT_EMBEDDERS),
                  "Registered embedders: classifier, mel_stats, mfcc_stats, callable.")
flags.DEFINE_string("classifier", None, "Classifier workdir (experiments/train_classifier.py).")
flags.DEFINE_string("embedder_fn", None, "'module:function' for the 'callable' embedder.")
flags.DEFINE_string("embedder_name", None, "Name of the 'callable' embedder (its cache key).")
flags.DEFINE_enum("reference_split", "train", ["train", "eval"], "Reference data split.")
flags.DEFINE_integer("reference_num", None, "Reference clips (default: the whole split).")
flags.DEFINE_integer("kid_subset_size", 1000, "KID subset size.")
flags.DEFINE_integer("ndb_bins", 20, "K of NDB/K.")
flags.DEFINE_string("out", None, "Output folder (default: <workdir>/eval).")
flags.DEFINE_bool("watch", False, "Evaluate each new checkpoint as it appears.")
flags.DEFINE_float("poll_seconds", 60.0, "--watch: seconds between checks.")
flags.DEFINE_float("timeout_seconds", 3600.0, "--watch: stop after this long without a new one.")
flags.mark_flags_as_required(["workdir"])


def evaluate_step(step):
    results = wd.evaluate_checkpoint(
            FLAGS.workdir, step=step, sampler=FLAGS.sampler, nfe=FLAGS.nfe,
            num_steps=FLAGS.num_steps, grid=FLAGS.grid, cfg_scale=FLAGS.cfg_scale,
            conditional=FLAGS.conditional, num=FLAGS.num, chunk_size=FLAGS.chunk_size,
            embedders=FLAGS.embedders, classifier_workdir=FLAGS.classifier,
            embedder_fn=FLAGS.embedder_fn, embedder_name=FLAGS.embedder_name,
            reference_split=FLAGS.reference_split, reference_num=FLAGS.reference_num,
            out_dir=FLAGS.out,
            options=MetricOptions(kid_subset_size=FLAGS.kid_subset_size, ndb_bins=FLAGS.ndb_bins))
    print(report.markdown_table([{"setting": f"step {results['step']}", **results}]), flush=True)
    return results


def main(argv):
    del argv
    setup_logging()
    if not FLAGS.watch:
        print(json.dumps(evaluate_step(FLAGS.step), indent=1, sort_keys=True))
        return
    last = int(checkpoint.load_config(FLAGS.workdir).training.num_steps)
    wd.watch_checkpoints(FLAGS.workdir, evaluate_step, poll_seconds=FLAGS.poll_seconds,
                         timeout_seconds=FLAGS.timeout_seconds, last_step=last)


if __name__ == "__main__":
    app.run(main)

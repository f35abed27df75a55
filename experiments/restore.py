"""Restores damaged audio with a trained unconditional waveform model (posterior sampling;
docs/restoration.md). Everything but paths is in the config (configs/restore.py).

    # restore a clipped file (clipping threshold read off its peak):
    python experiments/restore.py --config configs/restore.py --workdir W --input clipped.wav --out out.wav
    # simulate a degradation of a clean file, then restore it:
    python experiments/restore.py --config configs/restore.py --workdir W --input in.wav --out out.wav \
        --config.task.name=declip --config.task.declip.clip_sdr=3 --config.method.name=dps --config.nfe=49
    # the evaluation table (task x method) on clean clips, degraded by the job itself:
    python experiments/restore.py --config configs/restore.py --workdir W --reference_dir clean/ \
        --config.evaluation.methods=dps,pigdm,ddnm --table results.md

Writes the restored wav at the input's rate and sample format, `<out stem>.png` (before/after
spectrograms) and, when simulating, `<out stem>.degraded.wav`: never over an input, never over an
existing file without --overwrite. Samples the degradation left intact are the input's, and above a
lower-rate model's band the input's band is kept where the task allows (--config.high_band).
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from diffjax.jobs.page import command_line  # noqa: E402
from diffjax.jobs.restore import run  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", os.path.join(ROOT, "configs", "restore.py"),
                                "Restore config (configs/restore.py); override keys with --config.a.b=.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Training workdir of the model (config.json, model.json, checkpoints).")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.DEFINE_string("input", None, "Audio file to restore (wav/flac/ogg); never written.")
flags.DEFINE_string("out", None, "Output wav path (refuses an input and, without --overwrite, an existing file).")
flags.DEFINE_string("reference_dir", None, "Evaluation: a folder of clean clips (instead of --input/--out).")
flags.DEFINE_string("table", None, "Evaluation: the markdown table (default <workdir>/restoration.md).")
flags.DEFINE_bool("overwrite", False, "Replace existing output files (never an input).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    setup_logging()
    run(FLAGS.config, workdir=FLAGS.workdir, input=FLAGS.input, out=FLAGS.out, reference_dir=FLAGS.reference_dir,
        table=FLAGS.table, overwrite=FLAGS.overwrite, step=FLAGS.step, command=command_line())


if __name__ == "__main__":
    app.run(main)

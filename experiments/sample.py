"""Samples from a trained workdir; config and (EMA) weights come from its checkpoint.

    python experiments/sample.py --workdir runs/default --sampler dpmpp_2m --nfe 20 --num 16 --seed 0
    python experiments/sample.py --workdir runs/cond --class flute --cfg 2.0
    python experiments/sample.py --workdir runs/default --init in.wav --strength 0.5   # SDEdit variation

Writes wav files, a PNG grid of spectrograms and a JSON (sampler, NFE, seeds, wall time, real-time
factor) to --out (default <workdir>/samples/<sampler>_nfe<N>).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402

from diffjax.jobs import SampleRequest, run_sample_request  # noqa: E402

flags.DEFINE_string("workdir", None, "Training workdir (config.json + checkpoints/).")
flags.DEFINE_string("sampler", None, "Registered sampler name (default: the config's).")
flags.DEFINE_string("grid", None, "Registered grid name (default: the config's).")
flags.DEFINE_integer("nfe", None, "Denoiser calls per sample (default: the config's num_steps).")
flags.DEFINE_integer("num", 8, "Number of samples.")
flags.DEFINE_integer("seed", 0, "First seed; sample i uses seed + i.")
flags.DEFINE_integer("batch", 0, "Samples per batch (0: all at once).")
flags.DEFINE_string("class", None, "Class name or index, for class-conditional models.")
flags.DEFINE_float("cfg", None, "Classifier-free guidance scale (1 = conditional, no guidance).")
flags.DEFINE_string("init", None, "SDEdit: a wav to vary (resampled to the model's rate).")
flags.DEFINE_float("strength", 0.5, "SDEdit strength in (0, 1]: 1 samples from scratch.")
flags.DEFINE_integer("ema", 0, "EMA index (-1: raw weights).")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.DEFINE_string("out", None, "Output directory.")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    setup_logging()
    request = SampleRequest(workdir=FLAGS.workdir, sampler=FLAGS.sampler, grid=FLAGS.grid, nfe=FLAGS.nfe,
                            num=FLAGS.num, seed=FLAGS.seed, batch=FLAGS.batch, label=FLAGS["class"].value,
                            cfg_scale=FLAGS.cfg, init=FLAGS.init, strength=FLAGS.strength,
                            ema_index=FLAGS.ema, step=FLAGS.step, out=FLAGS.out)
    print(run_sample_request(request))


if __name__ == "__main__":
    app.run(main)

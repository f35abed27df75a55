"""Samples from a trained workdir; config and (EMA) weights come from its checkpoint.

    python experiments/sample.py --workdir runs/default --sampler dpmpp_2m --nfe 20 --num 16 --seed 0
    python experiments/sample.py --workdir runs/cond --class flute --cfg 2.0
    python experiments/sample.py --workdir runs/default --init in.wav --strength 0.5   # SDEdit of all of in.wav
    python experiments/sample.py --workdir runs/text --prompt "a soft flute note" --negative_prompt "drums" --cfg 3
    python experiments/sample.py --workdir runs/text --prompt "loud brass chord" --seconds 0.6  # timing
    python experiments/sample.py --workdir runs/notes --notes tune.mid
    python experiments/sample.py --workdir runs/inpaint --init in.wav --mask_start 0.4 --mask_end 0.6
    python experiments/sample.py --workdir runs/inpaint --continue_from in.wav --seconds 30   # long-form
    python experiments/sample.py --workdir runs/big --guide_workdir runs/small --guide_step 2000 --guidance 2
        # autoguidance (EDM2): guided by a weaker model of the same data, instead of CFG

Writes wav files, a spectrogram PNG per clip and a grid, a JSON (sampler, NFE, seeds, wall time,
real-time factor, the guide) and index.html, a listening page that works offline (a player and a
spectrogram per clip, the settings and this command), to --out (default
<workdir>/samples/<sampler>_nfe<N>). Existing files there are kept unless --overwrite.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402

from diffjax.jobs import SampleRequest, run_sample_request  # noqa: E402
from diffjax.jobs.page import command_line  # noqa: E402

flags.DEFINE_string("workdir", None, "Training workdir (config.json + checkpoints/).")
flags.DEFINE_string("sampler", None, "Registered sampler name (default: the config's).")
flags.DEFINE_string("grid", None, "Registered grid name (default: the config's).")
flags.DEFINE_integer("nfe", None, "Denoiser calls per sample (default: the config's num_steps).")
flags.DEFINE_integer("num", 8, "Number of samples.")
flags.DEFINE_integer("seed", 0, "First seed; sample i uses seed + i.")
flags.DEFINE_integer("batch", 0, "Samples per batch (0: all at once).")
flags.DEFINE_string("class", None, "Class name or index, for class-conditional models.")
flags.DEFINE_float("cfg", None, "Classifier-free guidance scale (1 = conditional, no guidance).")
flags.DEFINE_string("cfg_scales", None, "One guidance scale per condition, e.g. 'text=4,notes=2' (composable CFG).")
flags.DEFINE_string("prompt", None, "Text prompt (text-conditioned models; empty: unconditional).")
flags.DEFINE_string("negative_prompt", None, "Text that CFG steers away from (replaces the null caption).")
flags.DEFINE_string("notes", None, "A MIDI file to render (notes-conditioned models).")
flags.DEFINE_float("seconds", None, "Output length in seconds (timing condition; longer than the window: long-form).")
flags.DEFINE_string("init", None, "A wav: SDEdit variation, or the clip to inpaint with --mask_start/--mask_end.")
flags.DEFINE_float("strength", 0.5, "SDEdit: start noise level / the model's sigma_data, the noise-to-signal "
                   "ratio (0.25 keeps most, 0.5: SNR 6 dB, 1: 0 dB; sigma_max/sigma_data samples from scratch).")
flags.DEFINE_float("mask_start", None, "Inpainting: start (s) of the span of --init to regenerate.")
flags.DEFINE_float("mask_end", None, "Inpainting: end (s) of the span of --init to regenerate.")
flags.DEFINE_string("continue_from", None, "A wav to continue, window by window, to --seconds in all.")
flags.DEFINE_float("overlap", None, "Long-form: seconds shared by consecutive windows (default: a quarter window).")
flags.DEFINE_integer("ema", 0, "EMA index (-1: raw weights).")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.DEFINE_float("sigma_rel", None, "Post-hoc EMA length to sample (EDM2; made by experiments/reconstruct_ema.py).")
flags.DEFINE_string("out", None, "Output directory.")
flags.DEFINE_bool("overwrite", False, "Replace existing outputs in --out.")
flags.DEFINE_string("guide_workdir", None, "Autoguidance: workdir of a weaker model of the same data (EDM2).")
flags.DEFINE_integer("guide_step", None, "The guide's checkpoint step (default: its latest).")
flags.DEFINE_integer("guide_ema", None, "The guide's EMA index (default: --ema; -1: raw weights).")
flags.DEFINE_float("guidance", None, "Autoguidance weight w (1 = the main model alone); needs --guide_workdir.")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    setup_logging()
    request = SampleRequest(workdir=FLAGS.workdir, sampler=FLAGS.sampler, grid=FLAGS.grid, nfe=FLAGS.nfe,
                            num=FLAGS.num, seed=FLAGS.seed, batch=FLAGS.batch, label=FLAGS["class"].value,
                            cfg_scale=FLAGS.cfg, cfg_scales=FLAGS.cfg_scales, prompt=FLAGS.prompt,
                            negative_prompt=FLAGS.negative_prompt, notes=FLAGS.notes, seconds=FLAGS.seconds,
                            init=FLAGS.init, strength=FLAGS.strength, mask_start=FLAGS.mask_start,
                            mask_end=FLAGS.mask_end, continue_from=FLAGS.continue_from, overlap_seconds=FLAGS.overlap,
                            ema_index=FLAGS.ema, step=FLAGS.step, sigma_rel=FLAGS.sigma_rel, out=FLAGS.out,
                            guide_workdir=FLAGS.guide_workdir, guide_step=FLAGS.guide_step,
                            guide_ema=FLAGS.guide_ema, guidance=FLAGS.guidance, overwrite=FLAGS.overwrite,
                            command=command_line())
    print(run_sample_request(request))


if __name__ == "__main__":
    app.run(main)

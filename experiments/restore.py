"""Restores damaged audio with a trained unconditional model (posterior sampling; docs/restoration.md).

    # restore a degraded file (clipping threshold read off its peak):
    python experiments/restore.py --workdir W --task declip --input clipped.wav --out out.wav
    # simulate a degradation of a clean file, then restore it:
    python experiments/restore.py --workdir W --task declip --input in.wav --out out.wav \
        --method dps --sampler heun --nfe 50 --clip_sdr 3
    python experiments/restore.py --workdir W --task inpaint --input in.wav --out out.wav --simulate \
        --gap_seconds 0.2 --method repaint
    # evaluation table (task x method) on clean clips, degraded by the script itself:
    python experiments/restore.py --workdir W --reference_dir clean/ --methods dps,pigdm,ddnm \
        --table results.md

Writes the restored wav (never over the input), `<out>.png` (before/after spectrograms) and, when
simulating, `<out stem>.degraded.wav`. Flags accept dashes too (`--clip-sdr 3`).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir of the model (config.json + checkpoints).")
flags.DEFINE_string("task", "declip", "inpaint | declip | softclip | bwe | upsample | denoise | dereverb.")
flags.DEFINE_string("input", None, "Audio file to restore (wav/flac/ogg).")
flags.DEFINE_string("out", None, "Output wav path (refuses the input path and existing files).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --out (never the input).")
flags.DEFINE_bool("simulate", False, "Degrade --input with the task's operator first (implied by "
                  "--clip_sdr and --snr, which need the clean signal).")
flags.DEFINE_string("method", "dps", "Posterior sampler: diffjax.restoration.METHODS.")
flags.DEFINE_string("sampler", "heun", "Sampler under the method: diffjax.sampling.SAMPLERS.")
flags.DEFINE_integer("nfe", 50, "Denoiser-call budget of the base grid (RePaint multiplies it).")
flags.DEFINE_string("grid", "karras", "Noise-level grid.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_integer("chunks_per_call", None, "Long inputs under reverb (windowed mode): denoise this many "
                     "chunks at a time, rematerialised in the backward pass (less memory, ~1.5x slower).")
flags.DEFINE_enum("stereo", "refuse", ["refuse", "mixdown", "per_channel"],
                  "A multi-channel input for a mono model: refuse, down-mix, or restore each channel.")
# Operator parameters.
flags.DEFINE_float("gap_seconds", 0.2, "inpaint: gap length.")
flags.DEFINE_float("gap_start", None, "inpaint: start of the (single) gap in seconds; default centred.")
flags.DEFINE_integer("num_gaps", 1, "inpaint: number of evenly spread gaps.")
flags.DEFINE_float("packet_period", None, "inpaint: periodic packet loss, one gap per period (s).")
flags.DEFINE_float("clip_sdr", None, "declip: clip to this SDR in dB (simulates).")
flags.DEFINE_float("clip_threshold", None, "declip: the clipping threshold (default: input peak).")
flags.DEFINE_float("cutoff", 4000.0, "bwe: low-pass cutoff in Hz (simulation only for --method blind_bwe, "
                   "which fits the filter itself).")
flags.DEFINE_string("filter", "butterworth", "bwe: butterworth | chebyshev | fir | brickwall | stft_brickwall.")
flags.DEFINE_integer("factor", 2, "upsample: decimation factor.")
flags.DEFINE_float("snr", None, "Measurement noise at this SNR in dB of the clean input (any task; "
                   "denoise needs it or --noise_sigma; simulates).")
flags.DEFINE_float("noise_sigma", None, "Known measurement-noise std (any task).")
flags.DEFINE_float("rt60", 0.5, "dereverb: RT60 of the synthetic RIR (s).")
flags.DEFINE_float("drr", 0.0, "dereverb: direct-to-reverberant ratio (dB).")
flags.DEFINE_string("rir", None, "dereverb: RIR wav file (instead of a synthetic one).")
# Method knobs.
flags.DEFINE_float("zeta", None, "dps, blind_bwe: guidance strength.")
flags.DEFINE_bool("consistency", False, "dps: also project x0_hat onto A x = y (noise-free tasks; "
                  "CQTdiff's reconstruction guidance + data consistency).")
flags.DEFINE_integer("resamples", None, "repaint: passes per jump.")
flags.DEFINE_float("strength", None, "sdedit: fraction of the grid run.")
# Evaluation mode.
flags.DEFINE_string("reference_dir", None, "Evaluation: a folder of clean clips.")
flags.DEFINE_list("tasks", None, "Evaluation tasks (default all of EVAL_TASKS).")
flags.DEFINE_list("methods", None, "Evaluation methods (default: --method).")
flags.DEFINE_integer("max_clips", 8, "Evaluation: clips used.")
flags.DEFINE_string("table", None, "Evaluation: write the markdown table here (default <workdir>/restoration.md).")


def _method_options():
    options = {"zeta": FLAGS.zeta, "resamples": FLAGS.resamples, "strength": FLAGS.strength,
               "consistency": FLAGS.consistency or None}
    keep = {"dps": ("zeta", "consistency"), "blind_bwe": ("zeta",), "repaint": ("resamples",),
            "sdedit": ("strength",)}
    return {m: {k: options[k] for k in keys if options[k] is not None} for m, keys in keep.items()}


def _operator_params():
    return dict(gap_seconds=FLAGS.gap_seconds, start_seconds=FLAGS.gap_start, num_gaps=FLAGS.num_gaps,
                period_seconds=FLAGS.packet_period, clip_sdr=FLAGS.clip_sdr,
                clip_threshold=FLAGS.clip_threshold, cutoff=FLAGS.cutoff, filter=FLAGS.filter,
                factor=FLAGS.factor, snr=FLAGS.snr, noise_sigma=FLAGS.noise_sigma, rt60=FLAGS.rt60,
                drr_db=FLAGS.drr, rir_path=FLAGS.rir, seed=FLAGS.seed)


def main(argv):
    del argv
    setup_logging()
    from diffjax.restoration import cli
    from diffjax.restoration.tasks import load_model

    if FLAGS.workdir is None:
        raise app.UsageError("--workdir is required")
    model = load_model(FLAGS.workdir)
    if FLAGS.reference_dir:
        cli.run_evaluation(model, FLAGS.reference_dir, tasks=FLAGS.tasks, methods=FLAGS.methods or [FLAGS.method],
                           sampler=FLAGS.sampler, nfe=FLAGS.nfe, seed=FLAGS.seed, max_clips=FLAGS.max_clips,
                           table=FLAGS.table or os.path.join(FLAGS.workdir, "restoration.md"),
                           options=_method_options())
        return
    if not FLAGS.input or not FLAGS.out:
        raise app.UsageError("--input and --out are required (or --reference_dir for evaluation)")
    cli.run_file(model, FLAGS.input, FLAGS.out, task=FLAGS.task, method=FLAGS.method, sampler=FLAGS.sampler,
                 nfe=FLAGS.nfe, grid=FLAGS.grid, seed=FLAGS.seed, stereo=FLAGS.stereo,
                 simulate=FLAGS.simulate, overwrite=FLAGS.overwrite, params=_operator_params(),
                 options=_method_options().get(FLAGS.method, {}), chunks_per_call=FLAGS.chunks_per_call)


def _dashes_to_underscores(argv):
    return [a.replace("-", "_", a.index("=") if "=" in a else len(a)).replace("__", "--", 1)
            if a.startswith("--") else a for a in argv]


if __name__ == "__main__":
    app.run(main, argv=_dashes_to_underscores(sys.argv))

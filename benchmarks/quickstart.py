"""Which quick start? Each candidate trains for the same wall-clock budget on this machine, then is
scored on N samples with the project's classifier (FD, IS), mel statistics (FD mel) and pitch.

Candidates (`--candidates`):
- mel_unet: configs/default.py as it was (log-mel frames, UNet1D, Griffin-Lim decoding);
- mel_dit: the same frames through the DiT (`model.name = "dit"`);
- latent_dit / latent_unet: the autoencoder (configs/autoencoder.py) trained first, then a DiT /
  UNet1D on its cached latents. The autoencoder's wall time (and the latent encoding) counts
  against the row's budget; both latent rows reuse one autoencoder and each is charged for it.

Every row trains with `training.max_minutes`, so a row stops at its budget whatever its speed; its
`num_steps` (which sets the learning-rate decay) comes from a short calibration run of the same
config (not charged). One JSON line per row; `--update_readme` refreshes README's table.

    python experiments/train_classifier.py --config configs/classifier.py --workdir runs/classifier
    python benchmarks/quickstart.py --classifier runs/classifier --budget_minutes 8 --update_readme
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.tables import machine, replace_block  # noqa: E402
from configs import autoencoder as autoencoder_config  # noqa: E402
from configs import default as default_config  # noqa: E402
from configs import evaluate as evaluate_config  # noqa: E402
from diffjax.audio.codecs import estimate_sigma_data  # noqa: E402
from diffjax.data import build_dataset  # noqa: E402
from diffjax.evaluation.musicality import pitch_confidence  # noqa: E402
from diffjax.jobs import train_and_evaluate  # noqa: E402
from diffjax.jobs.evaluate import evaluate_checkpoint  # noqa: E402
from diffjax.jobs.generation import generate  # noqa: E402
from diffjax.jobs.workdir import load, model_for  # noqa: E402
from diffjax.model import data_spec  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("candidates", ["mel_unet", "mel_dit", "latent_dit", "latent_unet"], "rows to run")
flags.DEFINE_float("budget_minutes", 8.0, "wall-clock training budget per row (autoencoder included)")
flags.DEFINE_float("autoencoder_minutes", 3.0, "of a latent row's budget, the autoencoder's")
flags.DEFINE_integer("num", 256, "samples per row for FD / IS / FD mel")
flags.DEFINE_integer("pitch_num", 32, "samples per row for pitch confidence (pYIN is slow)")
flags.DEFINE_string("classifier", "runs/classifier", "the project's classifier workdir")
flags.DEFINE_string("out", "runs/quickstart_bench", "workdirs of the rows (replaced) and rows.jsonl")
flags.DEFINE_bool("update_readme", False, "refresh README.md's quick-start candidates table")

log = logging.getLogger("diffjax")
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def candidate_config(name: str, autoencoder_workdir: str = ""):
    """The config of a candidate row (before budget and steps)."""
    config = default_config.get_config()
    if name.endswith("_dit"):
        config.model = default_config.ml_collections.ConfigDict(dict(name="dit", size="small", dtype="float32"))
    if name.startswith("latent"):
        config.codec.name = "latent"
        config.codec.latent.workdir = autoencoder_workdir
    return config


def with_budget(config, minutes: float, steps_per_s: float):
    """`config` stopped by `training.max_minutes`, its schedule sized for the steps that fit."""
    planned = max(50, int(0.9 * minutes * 60 * steps_per_s))  # 10% for compiling; max_minutes cuts the rest
    config.training.max_minutes = minutes
    config.training.num_steps = planned
    config.optim.decay_steps = planned
    config.training.checkpoint_every = max(1, planned // 3)  # three checkpoints (benchmarks/autoencoder.py reads them)
    config.training.keep_last = 5
    config.training.sample_every = 0
    config.training.log_every = 50
    config.training.progress_bar = False
    return config


def calibrate(config, workdir: str, steps: int = 60) -> float:
    """Steps/s of `config` after compilation: a short run, timed between its last two logs."""
    shutil.rmtree(workdir, ignore_errors=True)
    trial = config.copy_and_resolve_references()
    trial.training.num_steps = steps
    trial.training.log_every = steps // 2
    trial.training.checkpoint_every = steps
    trial.training.sample_every = 0
    trial.training.progress_bar = False
    trial.evaluation.num_samples = 0
    train_and_evaluate(trial, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rates = [json.loads(line)["steps_per_s"] for line in f if "steps_per_s" in line]
    shutil.rmtree(workdir, ignore_errors=True)
    return float(rates[-1])


def train_row(config, workdir: str, minutes: float) -> dict:
    """Trains `config` within `minutes` (calibrated first); -> steps, steps/s, wall seconds."""
    rate = calibrate(config, workdir + "_calibration")
    config = with_budget(config, minutes, rate)
    shutil.rmtree(workdir, ignore_errors=True)
    tic = time.time()
    train_and_evaluate(config, workdir)
    wall = time.time() - tic
    steps = load(workdir, kind="autoencoder" if "autoencoder" in config else "diffusion").step
    return {"steps": int(steps), "steps_per_s": rate, "train_wall_s": wall}


def latent_sigma_data(config) -> float:
    dataset = build_dataset(config.data)
    codec = model_for(config, data_spec(dataset)).codec
    return float(estimate_sigma_data(dataset, codec, num_batches=4, batch_size=32)["sigma_data"])


def score(workdir: str) -> dict:
    """FD and IS on the classifier's features, FD mel (N = --num) and pitch confidence (--pitch_num)."""
    config = evaluate_config.get_config()
    config.num = FLAGS.num
    config.embedders = "classifier,mel_stats"
    results = evaluate_checkpoint(workdir, config, classifier_workdir=FLAGS.classifier,
                                  out_dir=os.path.join(workdir, "eval"), progress=False)
    loaded = load(workdir)
    audio = generate(loaded.model, loaded.params, sampling_config=loaded.config.sampling,
                     seeds=np.arange(FLAGS.pitch_num)).audio
    return {"fd_classifier": results["fd_classifier"], "is": results["is"], "fd_mel": results["fd_mel"],
            "pitch_confidence": pitch_confidence(np.asarray(audio), loaded.model.spec.sample_rate),
            "nfe": results.get("nfe")}


def run_candidates() -> list[dict]:
    rows, autoencoder = [], None
    for name in FLAGS.candidates:
        workdir = os.path.join(FLAGS.out, name)
        budget, charged = FLAGS.budget_minutes, 0.0
        config = candidate_config(name)
        if name.startswith("latent"):
            ae_dir = os.path.join(FLAGS.out, "autoencoder")
            if autoencoder is None:
                ae_config = autoencoder_config.get_config()
                ae_config.evaluation.num_samples = 64
                autoencoder = train_row(ae_config, ae_dir, FLAGS.autoencoder_minutes)
                with open(os.path.join(ae_dir, "eval.json")) as f:
                    autoencoder["reconstruction"] = json.load(f)
            config = candidate_config(name, ae_dir)
            tic = time.time()
            config.precond.sigma_data = round(latent_sigma_data(config), 3)
            charged = autoencoder["train_wall_s"] + (time.time() - tic)
        row = train_row(config, workdir, budget - charged / 60)
        row.update(score(workdir), candidate=name, budget_minutes=budget, autoencoder_wall_s=charged,
                   sigma_data=float(config.precond.sigma_data), machine=machine())
        if autoencoder is not None and name.startswith("latent"):
            row["autoencoder"] = autoencoder
        print(json.dumps(row), flush=True)
        with open(os.path.join(FLAGS.out, "rows.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
    return rows


def all_rows() -> list[dict]:
    """The latest row of each candidate in `<out>/rows.jsonl` (rows may come from several runs)."""
    latest = {}
    with open(os.path.join(FLAGS.out, "rows.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            latest[row["candidate"]] = row
    return list(latest.values())


def table(rows: list[dict]) -> str:
    lines = [f"`python benchmarks/quickstart.py --budget_minutes {FLAGS.budget_minutes:g} --num {FLAGS.num}` on "
             f"{rows[0]['machine']}; every row trains for the same wall-clock budget (a latent row's includes its "
             f"autoencoder). FD and IS on the project's classifier (N = {FLAGS.num}; held-out data: FD 2.8, "
             f"white noise 402), pitch confidence on {FLAGS.pitch_num} samples (data 0.315).",
             "",
             "| candidate | autoencoder s | diffusion steps | steps/s | FD clf | IS | FD mel | pitch confidence |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['candidate']} | {r['autoencoder_wall_s']:.0f} | {r['steps']} | {r['steps_per_s']:.2f} | "
                     f"{r['fd_classifier']:.1f} | "
                     f"{r['is']:.2f} | {r['fd_mel']:.0f} | {r['pitch_confidence']:.3f} |")
    return "\n".join(lines)


def main(argv):
    del argv
    logging.basicConfig(level=logging.INFO)
    os.makedirs(FLAGS.out, exist_ok=True)
    run_candidates()
    if FLAGS.update_readme:
        replace_block(README, "quickstart-candidates", table(all_rows()))


if __name__ == "__main__":
    app.run(main)

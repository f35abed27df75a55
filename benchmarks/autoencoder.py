"""How good is the project's autoencoder, and at what cost? Trains configs/autoencoder.py, then
measures the held-out reconstructions of several of its checkpoints against the mel + Griffin-Lim
codec's round trip (the quick start's decoder) and the data itself.

Metrics (`diffjax.autoencoder.metrics.reconstruction_report`, on --num held-out clips): SI-SDR (dB,
higher is better), multi-resolution STFT distance, log-mel L1, LSD (lower is better), and the pitch
confidence of the reconstructions (the data's in the last column).

    python benchmarks/autoencoder.py --steps 1500 --eval_every 500 --update_doc
    python benchmarks/autoencoder.py --workdir runs/quickstart_bench/autoencoder --update_doc   # reuse one
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.tables import machine, replace_block  # noqa: E402
from configs import autoencoder as autoencoder_config  # noqa: E402
from configs import default as default_config  # noqa: E402
from diffjax.autoencoder.metrics import reconstruction_report  # noqa: E402
from diffjax.data import build_dataset  # noqa: E402
from diffjax.jobs import train_and_evaluate  # noqa: E402
from diffjax.jobs.autoencoder import held_out_clips, reconstruct  # noqa: E402
from diffjax.jobs.workdir import checkpoint_dir, load  # noqa: E402
from diffjax.model import build_codec  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 1500, "training steps (configs/autoencoder.py's)")
flags.DEFINE_integer("eval_every", 500, "measure every this many steps")
flags.DEFINE_integer("num", 64, "held-out clips")
flags.DEFINE_string("workdir", "runs/bench_autoencoder", "the autoencoder's workdir (trained if empty)")
flags.DEFINE_bool("update_doc", False, "refresh docs/autoencoder.md and README's autoencoder table")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(workdir: str) -> float:
    """Trains (or reuses) the autoencoder; returns its steps/s after compilation."""
    if not os.path.isdir(checkpoint_dir(workdir)):
        config = autoencoder_config.get_config()
        config.training.num_steps = FLAGS.steps
        config.optim.decay_steps = FLAGS.steps
        config.training.checkpoint_every = FLAGS.eval_every
        config.training.keep_last = 100
        config.training.progress_bar = False
        config.evaluation.num_samples = 0
        shutil.rmtree(workdir, ignore_errors=True)
        train_and_evaluate(config, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rates = [json.loads(line)["steps_per_s"] for line in f if "steps_per_s" in line]
    return float(np.median(rates[1:] if len(rates) > 1 else rates))


def mel_round_trip(clips: np.ndarray, sample_rate: int) -> np.ndarray:
    codec = build_codec(default_config.get_config().codec, sample_rate)
    return np.asarray(codec.decode(jnp.asarray(codec.encode(jnp.asarray(clips))), clips.shape[1]))


def rows(workdir: str, rate: float) -> list[dict]:
    config = autoencoder_config.get_config()
    clips = held_out_clips(build_dataset(config.data), FLAGS.num)
    sr = config.data.sample_rate
    out = []
    tic = time.time()
    mel = mel_round_trip(clips, sr)
    out.append({"row": "log-mel (128 bands) + Griffin-Lim, the quick start's decoder", "seconds": time.time() - tic,
                **reconstruction_report(clips, mel, sr)})
    steps = sorted(int(s) for s in os.listdir(checkpoint_dir(workdir)) if s.isdigit())
    for step in steps:
        loaded = load(workdir, step=step, kind="autoencoder")
        tic = time.time()
        recon = reconstruct(loaded.model, loaded.params, clips)
        out.append({"row": f"autoencoder, step {step}", "step": step, "seconds": time.time() - tic,
                    "hop": loaded.model.hop, "latent_dim": int(loaded.model.network.latent_dim),
                    **reconstruction_report(clips, recon, sr)})
    for row in out:
        row.update(steps_per_s=rate, machine=machine(), num=FLAGS.num)
        print(json.dumps({k: (float(v) if isinstance(v, np.floating) else v) for k, v in row.items()}), flush=True)
    return out


def table(out: list[dict], rate: float) -> str:
    ae = next(r for r in out if "hop" in r)
    lines = [f"`python benchmarks/autoencoder.py` on {out[0]['machine']}: the `small` autoencoder (hop {ae['hop']}, "
             f"{ae['latent_dim']} latent channels: {ae['hop'] // ae['latent_dim']}x fewer numbers than the audio) "
             f"trains at {rate:.2f} steps/s (batch 16 of 0.25 s crops). {FLAGS.num} held-out clips; the data's pitch "
             f"confidence is {out[0]['pitch_confidence_reference']:.3f}.",
             "",
             "| reconstruction | SI-SDR dB | MR-STFT | log-mel L1 | LSD | pitch confidence |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in out:
        lines.append(f"| {r['row']} | {r['si_sdr']:.1f} | {r['mr_stft']:.3f} | {r['log_mel_l1']:.3f} | "
                     f"{r['lsd']:.3f} | {r['pitch_confidence']:.3f} |")
    return "\n".join(lines)


def main(argv):
    del argv
    rate = train(FLAGS.workdir)
    out = rows(FLAGS.workdir, rate)
    if FLAGS.update_doc:
        body = table(out, rate)
        replace_block(os.path.join(ROOT, "docs", "autoencoder.md"), "autoencoder-table", body)
        replace_block(os.path.join(ROOT, "README.md"), "autoencoder-table", body)


if __name__ == "__main__":
    app.run(main)

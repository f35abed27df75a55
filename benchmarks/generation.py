"""How fast does each representation generate? Seconds of audio per wall second ("x real time")
per sampler x NFE, for the latent, mel and waveform models, with the codec's decoding timed apart.

Each row generates `--num` clips twice through `diffjax.jobs.generation.generate` and reports the
second (compiled) call: sampling = total - decoding, decoding = `model.codec.decode` alone on the
same latents (also compiled first). One JSON line per row; `--update_doc` refreshes the table in
docs/autoencoder.md and README.

    python benchmarks/generation.py --workdirs latent=runs/quickstart_bench/latent_dit,mel=runs/default,\
waveform=runs/waveform --samplers euler,dpmpp_2m,edm_stochastic --nfes 10,25,49
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.tables import replace_block  # noqa: E402
from diffjax import sampling  # noqa: E402
from diffjax.jobs.generation import generate  # noqa: E402
from diffjax.jobs.workdir import load  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("workdirs", [], "label=workdir pairs")
flags.DEFINE_list("samplers", ["euler", "dpmpp_2m", "edm_stochastic"], "samplers")
flags.DEFINE_list("nfes", ["10", "25"], "NFE budgets (impossible ones for a sampler are skipped)")
flags.DEFINE_integer("num", 16, "clips per call")
flags.DEFINE_bool("update_doc", False, "refresh docs/autoencoder.md and README's generation-speed table")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(fn):
    fn()
    tic = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - tic


def row(label: str, loaded, sampler: str, nfe: int) -> dict:
    model, params = loaded.model, loaded.params
    seeds = np.arange(FLAGS.num)
    out, total = timed(lambda: generate(model, params, sampling_config=loaded.config.sampling, seeds=seeds,
                                        sampler=sampler, nfe=nfe))
    length = model.spec.shape[0]
    _, decoding = timed(lambda: np.asarray(model.codec.decode(jax.numpy.asarray(out.latent), length)))
    audio_seconds = FLAGS.num * length / model.spec.sample_rate
    return {"model": label, "sampler": sampler, "nfe": int(out.nfe), "num": FLAGS.num,
            "latent_shape": list(model.latent_shape), "sampling_s": max(total - decoding, 0.0),
            "decoding_s": decoding, "x_real_time": audio_seconds / total,
            "x_real_time_sampling": audio_seconds / max(total - decoding, 1e-9),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {jax.default_backend()}"}


def table(rows: list[dict]) -> str:
    lines = [f"`python benchmarks/generation.py` on {rows[0]['machine']}: {FLAGS.num} clips per call (1 s; the waveform model's are 0.25 s), "
             "compiled; x real time = seconds of audio per wall second, end to end and for the sampling alone.",
             "",
             "| model (latent shape) | sampler | NFE | x real time | sampling only | decoding s |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} {tuple(r['latent_shape'])} | {r['sampler']} | {r['nfe']} | {r['x_real_time']:.1f} | "
                     f"{r['x_real_time_sampling']:.1f} | {r['decoding_s']:.2f} |")
    return "\n".join(lines)


def main(argv):
    del argv
    rows = []
    for pair in FLAGS.workdirs:
        label, workdir = pair.split("=", 1)
        loaded = load(workdir)
        for sampler in FLAGS.samplers:
            for nfe in (int(n) for n in FLAGS.nfes):
                try:
                    sampling.steps_for_nfe(sampler, nfe)
                except ValueError:
                    continue
                rows.append(row(label, loaded, sampler, nfe))
                print(json.dumps(rows[-1]), flush=True)
    if FLAGS.update_doc and rows:
        body = table(rows)
        replace_block(os.path.join(ROOT, "docs", "autoencoder.md"), "generation-speed", body)
        replace_block(os.path.join(ROOT, "README.md"), "generation-speed", body)


if __name__ == "__main__":
    app.run(main)

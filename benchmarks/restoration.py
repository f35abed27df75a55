"""Benchmark: how accurate and how fast is each posterior-sampling method?

1. Posterior accuracy on the 2-D Gaussian mixture (8 modes, exact denoiser): energy distance of
   512 samples to 512 exact posterior samples (`restoration.exact`), per method and observation:
   'mask' (first coordinate = 0.5, sigma_y = 0.05; two symmetric modes), 'linear' ([0.6, 0.8] x = 0,
   sigma_y = 0.05; two symmetric modes), 'linear_asym' ([0.6, 0.8] x = 0.5, noise-free; one dominant
   mode at 98 %, two minor ones). Reference rows: a second exact draw (the noise floor) and the prior.
2. Audio restoration with a trained model (`--workdir`): per task of `EVAL_TASKS` and method, the
   input/output SI-SDR and LSD, NFE and seconds per second of audio on synth_music eval clips.

    python benchmarks/restoration.py --update_doc=docs/restoration.md
    python benchmarks/restoration.py --workdir runs/waveform --audio_nfe 35 --num_clips 4 \
        --methods replacement,ddnm,pigdm,dps,dps+dc,blind_bwe --update_doc=docs/restoration.md

Prints one JSON line per row.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from diffjax import audio, sampling, toy  # noqa: E402,F401  (audio: registers the audio datasets)
from diffjax.data import build_dataset  # noqa: E402
from diffjax.jobs.restore import load_restorable_model  # noqa: E402
from diffjax.restoration import evaluation, get_method, get_operator, method_nfe, method_options  # noqa: E402
from diffjax.restoration.evaluation import markdown_table  # noqa: E402
from diffjax.restoration.exact import gaussian_mixture_posterior  # noqa: E402
from diffjax.restoration.tasks import EVAL_TASKS  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("methods", ["replacement", "repaint", "projection", "dps", "pigdm", "pigdm-unbounded", "ddnm",
                                "ddrm", "sdedit"],
                  "methods to measure")
flags.DEFINE_string("sampler", "euler_ancestral", "sampler under the methods (toy table)")
flags.DEFINE_integer("num_steps", 24, "grid levels (toy table)")
flags.DEFINE_string("workdir", None, "trained audio model for the audio table (skipped if None)")
flags.DEFINE_string("audio_sampler", "heun", "sampler for the audio table")
flags.DEFINE_integer("audio_nfe", 35, "NFE budget for the audio table")
flags.DEFINE_integer("num_clips", 4, "eval clips for the audio table")
flags.DEFINE_list("tasks", None, "audio tasks (default: all of restoration.tasks.EVAL_TASKS)")
flags.DEFINE_string("update_doc", None, "markdown file whose tables are refreshed")
flags.DEFINE_bool("gmm", True, "measure the Gaussian-mixture table")

# Audio-table rows that are a method with options: label -> (method, options).
VARIANTS = {"dps+dc": ("dps", {"consistency": True}), "pigdm-unbounded": ("pigdm", {"gaussian_bound": False})}
AUDIO_ONLY = ("blind_bwe", "dps+dc")  # an audio low-pass; noise-free operators (the toy ones are noisy)

NUM = 512
OPTIONS = {"repaint": {"jump_length": 4, "resamples": 3}, "dps": {"zeta": 1.0}, "pigdm": {"data_std": 0.71},
           "ddnm": {"data_std": 0.71}, "sdedit": {"strength": 0.5, "consistency": "replacement"}}


def _scenarios():
    return {
        "mask": (get_operator("mask", observed=[0], dim=2, noise_sigma=0.05), [[1.0, 0.0]], 0.5,
                 np.tile([[0.5, 0.0]], (NUM, 1))),
        "linear": (get_operator("linear", matrix=[[0.6, 0.8]], noise_sigma=0.05), [[0.6, 0.8]], 0.0,
                   np.zeros((NUM, 1))),
        "linear_asym": (get_operator("linear", matrix=[[0.6, 0.8]]), [[0.6, 0.8]], 0.5, np.full((NUM, 1), 0.5)),
    }


def gmm_rows() -> list[dict]:
    prior = toy.gmm()
    sigmas = sampling.get_grid("karras")(FLAGS.num_steps, 0.002, 40.0)
    x_init = sigmas[0] * jax.random.normal(jax.random.PRNGKey(1), (NUM, 2))
    scenarios = _scenarios()
    exact = {}
    for name, (op, a, y1, _) in scenarios.items():
        post = gaussian_mixture_posterior(prior, jnp.asarray(a), jnp.asarray([y1]), op.noise_sigma)
        exact[name] = (post.sample(jax.random.PRNGKey(2), NUM), post.sample(jax.random.PRNGKey(3), NUM))
    rows = [{"method": "exact (2nd draw)", "nfe": "-", **{n: round(float(toy.energy_distance(*e)), 4)
                                                          for n, e in exact.items()}},
            {"method": "prior (no data)", "nfe": "-", **{n: round(float(toy.energy_distance(
                prior.sample(jax.random.PRNGKey(4), NUM), e[0])), 4) for n, e in exact.items()}}]
    for label in [m for m in FLAGS.methods if m not in AUDIO_ONLY]:
        method, extra = VARIANTS.get(label, (label, {}))
        options = {**OPTIONS.get(method, {}), **extra}
        row = {"method": label, "nfe": method_nfe(method, FLAGS.sampler, FLAGS.num_steps, **options)}
        for name, (op, _, _, y) in scenarios.items():
            run = jax.jit(lambda x, k, op=op, y=jnp.asarray(y), method=method, options=options: get_method(method)(
                    prior.denoiser, op, y, x, sigmas, key=k, sampler=FLAGS.sampler, **options))
            samples = run(x_init, jax.random.PRNGKey(0))
            row[name] = round(float(toy.energy_distance(samples, exact[name][0])), 4)
        rows.append(row)
        print(json.dumps({"table": "gmm", "sampler": FLAGS.sampler, **row}), flush=True)
    return rows


def audio_rows() -> list[dict]:
    loaded = load_restorable_model(FLAGS.workdir)
    model, denoiser = loaded.model, loaded.model.denoiser(loaded.params)
    dataset = dataclasses.replace(build_dataset(loaded.config.data).eval, crop_seconds=None)
    clean = dataset.batch(0, FLAGS.num_clips, seed=0)["x"]  # whole clips, cut per task (eval_length)
    options = {m: method_options(m, precond=model.precond) for m in ("pigdm", "ddnm")}  # data_std: sigma_data
    options["dps"] = options["blind_bwe"] = {"zeta": 1.0}
    tic = time.time()
    tasks = FLAGS.tasks or list(EVAL_TASKS)
    rows = []
    for label in [m for m in FLAGS.methods if m != "sdedit"]:
        method, extra = VARIANTS.get(label, (label, {}))
        for r in evaluation.evaluate(model, denoiser, clean, tasks=tasks, methods=[method], sampler=FLAGS.audio_sampler,
                                     nfe=FLAGS.audio_nfe, options={method: {**options.get(method, {}), **extra}}):
            rows.append({**r, "method": label})
            print(json.dumps({"table": "audio", **rows[-1]}), flush=True)
    rows.sort(key=lambda r: tasks.index(r["task"]))  # stable: methods keep their order within a task
    print(json.dumps({"table": "audio", "total_seconds": round(time.time() - tic, 1)}))
    return [{k: r[k] for k in ("task", "method", "nfe", "si_sdr_in", "si_sdr_out", "lsd_in", "lsd_out",
                               "seconds_per_second")} for r in rows]


def _replace_block(text: str, name: str, table: str) -> str:
    start, end = f"<!-- benchmark:{name}:start -->", f"<!-- benchmark:{name}:end -->"
    block = f"{start}\n{table}{end}"
    if start in text:
        return re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    return text + "\n" + block + "\n"


def main(argv):
    del argv
    tables = {"restoration-gmm": markdown_table(gmm_rows())} if FLAGS.gmm else {}
    if FLAGS.workdir:
        tables["restoration-audio"] = markdown_table(audio_rows())
    else:
        print(json.dumps({"table": "audio", "skipped": "no --workdir (trained audio model) given"}))
    if FLAGS.update_doc:
        text = open(FLAGS.update_doc).read() if os.path.exists(FLAGS.update_doc) else ""
        for name, table in tables.items():
            text = _replace_block(text, name, table)
        with open(FLAGS.update_doc, "w") as f:
            f.write(text)


if __name__ == "__main__":
    app.run(main)

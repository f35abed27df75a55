"""Does SDEdit keep the input? SI-SDR of edits to their input and to the unconditional sample of
the same seed, for the old strength (a fraction of the grid) and the new one (sigma_0 / sigma_data).

    python benchmarks/sdedit.py --steps 600 --num 8

Trains `configs/waveform.py` for `--steps` steps in `--root` (reused when trained), takes `--num`
eval clips of its data cut to the model's window, and edits them with the config's sampler and
levels; one JSON line per row. For Gaussian data the new strength s gives SI-SDR -20 log10(s) dB
to the input (tests/jobs/test_sdedit.py); a trained model adds what it knows of music.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs import waveform  # noqa: E402
from diffjax import restoration, sampling  # noqa: E402
from diffjax.audio.metrics import si_sdr  # noqa: E402
from diffjax.data import build_dataset  # noqa: E402
from diffjax.jobs import generate, load, train_and_evaluate  # noqa: E402
from diffjax.jobs.sdedit import sdedit_audio, sdedit_sigma  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="runs/sdedit_bench")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--num", type=int, default=8)
    args = parser.parse_args()
    setup_logging()
    workdir = os.path.join(args.root, "waveform")
    config = waveform.get_config()
    config.training.num_steps, config.training.max_minutes = args.steps, 0
    config.training.checkpoint_every = args.steps
    config.evaluation.num_samples = 0
    if not os.path.exists(os.path.join(workdir, "checkpoints")):
        train_and_evaluate(config, workdir)
    loaded = load(workdir)
    model, sampling_config = loaded.model, loaded.config.sampling
    sampler, steps = sampling_config.sampler, int(sampling_config.num_steps)
    seeds = np.arange(args.num)
    clips = build_dataset(config.data).eval.batch(0, args.num, seed=0)["x"][:, :model.spec.shape[0]]
    unconditional = generate(model, loaded.params, sampling_config=sampling_config, seeds=seeds).audio
    denoiser = model.denoiser(loaded.params)

    def row(name, strength, edited):
        to_input = float(jnp.mean(si_sdr(jnp.asarray(clips), jnp.asarray(edited))))
        to_sample = float(jnp.mean(si_sdr(jnp.asarray(unconditional), jnp.asarray(edited))))
        print(json.dumps({"strength": f"{name} {strength:g}", "si_sdr_to_input_db": round(to_input, 1),
                          "si_sdr_to_unconditional_db": round(to_sample, 1), "sampler": sampler,
                          "num_steps": steps, "clips": args.num, "train_steps": int(loaded.step)}))

    sigmas = sampling.grid_for_process(model.process, sampling_config.grid, steps)
    x_init = sampling.initial_noise(seeds, model.latent_shape, float(sigmas[0]))
    for fraction in (0.25, 0.5):  # before: the last `fraction` of the grid's levels
        old = restoration.get_method("sdedit")(denoiser, restoration.get_operator("identity"), jnp.asarray(clips),
                                               x_init, sigmas, key=sampling.seed_keys(seeds), sampler=sampler,
                                               strength=fraction, guide=jnp.asarray(clips))
        row("grid fraction", fraction, np.asarray(old))
    for strength in (0.25, 0.5, 1.0, 2.0):
        sigma = sdedit_sigma(strength, model.precond.sigma_data, model.process.sigma_range())
        edited, _ = sdedit_audio(denoiser, clips, sampling.seed_keys(seeds), codec=model.codec, process=model.process,
                                 context=model.spec.shape[0], sigma_start=sigma, sampler=sampler, num_steps=steps)
        row("sigma_0/sigma_data", strength, edited)
    jax.clear_caches()


if __name__ == "__main__":
    main()

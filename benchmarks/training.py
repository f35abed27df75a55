"""Training throughput and sampling speed of the shipped configs.

    python benchmarks/training.py [--configs default,waveform,diffwave,spectrogram] [--steps 5] [--samplers ...]

For each config: compile time of the data-parallel train step, steps/s and examples/s (mean over
`--steps` steps after compilation); then the real-time factor of generation (wall seconds per
second of audio, batch 8, freshly initialised weights: speed does not depend on training) for each
sampler and NFE. Prints one JSON line per row and refreshes the table in README.md.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.tables import replace_block  # noqa: E402
from diffjax import audio, losses, toy  # noqa: E402,F401  (audio, toy: register their datasets)
from diffjax.data import build_dataset  # noqa: E402
from diffjax.jobs.generation import generate  # noqa: E402
from diffjax.jobs.train import make_multi_step  # noqa: E402
from diffjax.jobs.defaults import resolve_decay_steps  # noqa: E402
from diffjax.model import build_model, data_spec  # noqa: E402
from diffjax.training import parallel  # noqa: E402
from diffjax.training.objective import diffusion_loss_fn  # noqa: E402
from diffjax.training.state import TrainState, build_optimizer, ema_decay  # noqa: E402
from diffjax.training.step import make_train_step  # noqa: E402

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def build_train_step(config):
    """`(step, state, batch, keys, params, model)`: the config's data-parallel train step (one
    step per call, as `experiments/train.py` compiles it), its replicated initial state, a stacked
    sharded batch and keys for `step(state, batch, keys) -> (state, metrics)`, the host
    parameters and the model."""
    mesh = parallel.make_mesh()
    dataset = build_dataset(config.data)
    model = build_model(config, data_spec(dataset))
    batch = dataset.batch(0, config.training.batch_size, seed=0)
    params = model.init(jax.random.PRNGKey(0))
    tx = build_optimizer(**resolve_decay_steps(config).optim.to_dict())
    decays = [ema_decay(h, config.training.batch_size) for h in config.training.ema_halflife_examples]
    state = parallel.replicate(TrainState.create(params, tx, len(decays)), mesh)
    loss = losses.make_loss(process=model.process, precond=model.precond, **config.loss.to_dict())
    loss_fn = diffusion_loss_fn(model, loss)
    step = parallel.jit_data_parallel(make_multi_step(make_train_step(loss_fn, decays), 1), mesh, stacked=True)
    stacked = parallel.shard_batch(jax.tree.map(lambda v: np.asarray(v)[None], model.host_batch(batch)), mesh,
                                   stacked=True)
    keys = parallel.replicate(jax.random.split(jax.random.PRNGKey(0), 1), mesh)
    return step, state, stacked, keys, params, model


def train_speed(config, steps: int) -> dict:
    step, state, stacked, keys, params, model = build_train_step(config)
    tic = time.time()
    state, metrics = step(state, stacked, keys)
    jax.block_until_ready(metrics["loss"])
    compile_s = time.time() - tic
    tic = time.time()
    for _ in range(steps):
        state, metrics = step(state, stacked, keys)
    jax.block_until_ready(metrics["loss"])
    per_step = (time.time() - tic) / steps
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))
    return {"params": n_params, "batch": config.training.batch_size, "compile_s": compile_s,
            "steps_per_s": 1 / per_step, "examples_per_s": config.training.batch_size / per_step,
            "_params": parallel.to_host(state.params), "_model": model}


def sampling_speed(config, params, model, sampler: str, nfe: int, num: int = 8) -> dict:
    run = lambda: generate(model, params, sampling_config=config.sampling, seeds=range(num),  # noqa: E731
                           sampler=sampler, nfe=nfe)
    run()  # compile
    tic = time.time()
    out = run()
    wall = time.time() - tic
    seconds = num * out.audio.shape[1] / model.spec.sample_rate
    return {"sampler": sampler, "nfe": out.nfe, "rtf": wall / seconds}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", default="default,waveform,diffwave,spectrogram")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--samplers", default="euler:10,heun:19,dpmpp_2m:10,dpmpp_2m:20,unipc:10")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    device = f"{jax.devices()[0].platform} x{jax.device_count()} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    train_rows, sample_rows = [], []
    for name in args.configs.split(","):
        config = importlib.import_module(f"configs.{name}").get_config()
        row = train_speed(config, args.steps)
        params, model = row.pop("_params"), row.pop("_model")
        row = {"config": name, "model": f"{config.model.name}/{config.model.get('size', '')}",
               "device": device, **row}
        print(json.dumps(row), flush=True)
        train_rows.append(row)
        for spec in args.samplers.split(","):
            sampler, nfe = spec.split(":")
            srow = {"config": name, **sampling_speed(config, params, model, sampler, int(nfe))}
            print(json.dumps(srow), flush=True)
            sample_rows.append(srow)
    if not args.no_readme:
        lines = [f"Measured on {device} by `python benchmarks/training.py`.", "",
                 "| config | model | params | batch | compile (s) | steps/s | examples/s |",
                 "|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['config']} | {r['model']} | {r['params'] / 1e6:.2f}M | {r['batch']} | "
                  f"{r['compile_s']:.1f} | {r['steps_per_s']:.3f} | {r['examples_per_s']:.1f} |" for r in train_rows]
        lines += ["", "Generation, batch 8, wall seconds per second of audio (real-time factor; < 1 is "
                  "faster than real time):", "", "| config | sampler | NFE | RTF |", "|---|---|---:|---:|"]
        lines += [f"| {r['config']} | {r['sampler']} | {r['nfe']} | {r['rtf']:.3f} |" for r in sample_rows]
        replace_block(README, "training-benchmark", "\n".join(lines))


if __name__ == "__main__":
    main()

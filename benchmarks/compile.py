"""Compile time and step time, unscanned against `scan_layers=True` (issue 22, "compile in seconds").

    python benchmarks/compile.py                       # every row, JSON lines
    python benchmarks/compile.py --rows=dit --steps=1  # only the DiT depth sweep
    python benchmarks/compile.py --update_readme       # also refresh README's compile table

Rows (each with scan off and on):
- 'diffwave': the DiffWave-base train step as lmnt-com/diffwave trains it (30 layers x 64
  channels, mel-conditioned: [B, 62, 80] log-mel, batch 4 x 15872 samples, Adam 2e-4, one EMA),
  through the project's `make_train_step` with the eps-prediction loss E|F(x0 + s n, s) - n|^2;
- 'default': `configs/default.py`'s train step (DiT small on mel frames), as benchmarks/training.py
  measures it;
- 'dit': the same config at DiT depth 4 and 16, to show compile time against depth.
`compile_s` is the first call (trace + XLA compile + one step) less one steady step; `step_s` the
mean of `--steps` later calls. The persistent compilation cache is off, so compiles are real.
"""
from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from benchmarks.tables import machine, replace_block  # noqa: E402
from benchmarks.training import train_speed  # noqa: E402
from configs import default  # noqa: E402
from diffjax.models import get_model, unbox  # noqa: E402
from diffjax.training.state import TrainState  # noqa: E402
from diffjax.training.step import make_train_step  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("rows", ["diffwave", "default", "dit"], "which rows to measure")
flags.DEFINE_integer("steps", 2, "timed steps after the compiling one")
flags.DEFINE_integer("batch", 4, "DiffWave batch")
flags.DEFINE_integer("length", 15872, "DiffWave samples per example (62 mel frames of hop 256)")
flags.DEFINE_bool("update_readme", False, "refresh the <!-- compile-table --> block of README.md")

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def diffwave_step(scan_layers: bool, batch: int, length: int, steps: int) -> dict:
    """Compile and step time of DiffWave-base's train step (eps loss, Adam, one EMA)."""
    net = get_model("diffwave", size="base", scan_layers=scan_layers)
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    x0 = 0.1 * jax.random.normal(k[0], (batch, length, 1))
    mel = jax.random.normal(k[1], (batch, length // 256, 80))
    c_noise = jnp.zeros((batch,))
    params = unbox(jax.jit(net.init)(k[2], x0, c_noise, {"features": mel}))["params"]

    def loss_fn(p, b, key, extra):
        del extra
        k_s, k_n = jax.random.split(key)
        sigma = jnp.exp(jax.random.normal(k_s, (batch,)) - 1.2)
        noise = jax.random.normal(k_n, b["x"].shape)
        out = net.apply({"params": p}, b["x"] + sigma[:, None, None] * noise, jnp.log(sigma) / 4,
                        {"features": b["mel"]})
        return jnp.mean(jnp.square(out - noise), axis=(1, 2)), {}

    state = TrainState.create(params, optax.adam(2e-4), 1)
    step = jax.jit(make_train_step(loss_fn, [0.999]), donate_argnums=0)
    return _time(step, state, {"x": x0, "mel": mel}, steps) | {
            "params": sum(a.size for a in jax.tree.leaves(params)), "batch": batch}


def _time(step, state, batch, steps: int) -> dict:
    key = jax.random.PRNGKey(1)
    tic = time.perf_counter()
    state, metrics = step(state, batch, key)
    jax.block_until_ready(metrics["loss"])
    first = time.perf_counter() - tic
    tic = time.perf_counter()
    for i in range(steps):
        state, metrics = step(state, batch, jax.random.fold_in(key, i))
    jax.block_until_ready(metrics["loss"])
    step_s = (time.perf_counter() - tic) / steps
    return {"compile_s": first - step_s, "step_s": step_s}


def config_step(scan_layers: bool, steps: int, depth: int | None = None) -> dict:
    """Compile and step time of configs/default.py's train step (DiT small), optionally at `depth`."""
    config = default.get_config()
    config.model.scan_layers = scan_layers
    if depth is not None:
        config.model.depth = depth
    row = train_speed(config, steps)
    row.pop("_params"), row.pop("_model")
    step_s = 1 / row["steps_per_s"]  # train_speed's compile_s includes the first step
    return {"params": row["params"], "batch": row["batch"], "compile_s": row["compile_s"] - step_s,
            "step_s": step_s}


def measure(rows, steps: int) -> list[dict]:
    out = []
    plans = {"diffwave": [("diffwave/base", 30)], "default": [("default (dit/small)", 6)],
             "dit": [("dit/small", 4), ("dit/small", 16)]}
    for name in rows:
        if name not in plans:
            raise ValueError(f"unknown row {name!r}; valid: {', '.join(plans)}")
        for label, depth in plans[name]:
            for scan_layers in (False, True):
                if name == "diffwave":
                    r = diffwave_step(scan_layers, FLAGS.batch, FLAGS.length, steps)
                else:
                    r = config_step(scan_layers, steps, depth if name == "dit" else None)
                row = {"row": label, "depth": depth, "scan_layers": scan_layers, **r}
                print(json.dumps(row), flush=True)
                out.append(row)
    return out


def table(rows: list[dict]) -> str:
    lines = [f"Measured on {machine()} by `python benchmarks/compile.py --update_readme`.", "",
             "| model | depth | batch | scan_layers | compile (s) | step (s) |",
             "|---|---:|---:|---|---:|---:|"]
    lines += [f"| {r['row']} | {r['depth']} | {r['batch']} | {r['scan_layers']} | {r['compile_s']:.1f} | "
              f"{r['step_s']:.2f} |" for r in rows]
    return "\n".join(lines)


def main(argv):
    del argv
    jax.config.update("jax_enable_compilation_cache", False)
    rows = measure(FLAGS.rows, FLAGS.steps)
    if FLAGS.update_readme:
        replace_block(README, "compile-table", table(rows))


if __name__ == "__main__":
    app.run(main)

"""Scaling: per-device memory of the DiT presets' train step under data parallelism, FSDP and
tensor parallelism (XLA's compiled memory analysis on 8 fake CPU devices: a table, not a timing),
and the step time of each mesh (indicative only: 8 fake devices share this machine's cores).

    python benchmarks/scaling.py [--sizes small,base,large] [--frames 256] [--channels 64] [--remat_size base]
                                 [--time_steps 3]

Memory: Adam in float32 with one EMA, batch 8 (one example per device) of `frames x channels`
latents (Stable Audio Open's autoencoder: 64 channels at 21.5 frames per second, so 256 frames are
11.9 s), no remat. Prints one JSON line per row and refreshes the `scaling-table` block of README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.tables import machine, replace_block  # noqa: E402
from configs import default  # noqa: E402
from diffjax import losses  # noqa: E402
from diffjax.model import DataSpec, build_model  # noqa: E402
from diffjax.training import memory, parallel  # noqa: E402
from diffjax.training.objective import diffusion_loss_fn  # noqa: E402
from diffjax.training.state import TrainState, build_optimizer, num_params  # noqa: E402
from diffjax.training.step import make_train_step  # noqa: E402

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
MESHES = {"data=8": (1, 1), "fsdp=8": (8, 1), "fsdp=4 x tensor=2": (4, 2)}
BUDGETS_GIB = (16, 24, 40, 80)
GIB = 2.0 ** 30


def dit_model(size: str, frames: int, channels: int, remat: bool = False):
    config = default.get_config()
    config.codec = ml_collections.ConfigDict({"name": "waveform"})
    config.conditioning = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict({"name": "dit", "size": size, "remat": remat})
    return build_model(config, DataSpec(shape=(frames, channels), sample_rate=None, num_classes=0))


def memory_rows(sizes, frames, channels, batch=8):
    tx = build_optimizer(name="adam")
    for size in sizes:
        model = dit_model(size, frames, channels)
        count = num_params(model.abstract_params())
        for mesh_name, (fsdp, tensor) in MESHES.items():
            tic = time.time()
            report = memory.step_memory(model, tx, parallel.make_mesh(8, fsdp=fsdp, tensor=tensor), batch)
            yield {"section": "memory", "size": size, "params": count, "mesh": mesh_name, "batch": batch,
                   "compile_s": round(time.time() - tic, 1), "params_bytes": report["params"],
                   **{k: report[k] for k in ("optimizer_state", "temps", "peak", "flops")}}


def remat_rows(size, frames, channels, batch=8):
    """Peak memory of one preset under fsdp=8 with each remat policy ('block' is the network's
    nn.remat per block, 'full' a jax.checkpoint of the whole forward)."""
    tx = build_optimizer(name="adam")
    for policy in parallel.REMAT_POLICIES:
        model = dit_model(size, frames, channels, remat=policy == "block")
        report = memory.step_memory(model, tx, parallel.make_mesh(8, fsdp=8), batch,
                                    remat="full" if policy == "full" else "none")
        yield {"section": "remat", "size": size, "mesh": "fsdp=8", "remat": policy, "batch": batch,
               "temps": report["temps"], "peak": report["peak"]}


def time_rows(size, frames, channels, steps, batch=8):
    """Steps/s of real (allocated) training on each mesh."""
    model = dit_model(size, frames, channels)
    loss = losses.make_loss(process=model.process, precond=model.precond)
    x = np.random.RandomState(0).randn(batch, frames, channels).astype(np.float32)
    for mesh_name, (fsdp, tensor) in MESHES.items():
        mesh = parallel.make_mesh(8, fsdp=fsdp, tensor=tensor)
        state = TrainState.create(model.init(jax.random.PRNGKey(0)), build_optimizer(name="adam"), 1)
        shardings = parallel.state_shardings(state, parallel.param_shardings(model.logical_axes(), state.params, mesh), mesh)
        state = parallel.place(state, shardings)
        step = parallel.jit_sharded(make_train_step(diffusion_loss_fn(model, loss), [0.999]), mesh, shardings)
        batch_arrays, key = parallel.shard_batch({"x": x}, mesh), parallel.replicate(jax.random.PRNGKey(0), mesh)
        tic = time.time()
        state, metrics = step(state, batch_arrays, key)
        jax.block_until_ready(metrics["loss"])
        compile_s = time.time() - tic
        tic = time.time()
        for _ in range(steps):
            state, metrics = step(state, batch_arrays, key)
        jax.block_until_ready(metrics["loss"])
        yield {"section": "time", "size": size, "mesh": mesh_name, "batch": batch, "frames": frames,
               "compile_s": round(compile_s, 1), "steps_per_s": steps / (time.time() - tic)}


def table(memory, remat, timing, frames, channels) -> str:
    lines = [f"Measured by `python benchmarks/scaling.py` on {machine()}, 8 fake CPU devices "
             f"(`--xla_force_host_platform_device_count=8`). Per-device memory of the DiT train step from "
             f"XLA's compiled memory analysis (Adam in float32 + one EMA, batch 8 = one example per device, "
             f"{frames} x {channels} latents, no remat; peak = arguments + outputs + temporaries - donated):", "",
             "| DiT | parameters | mesh | weights / device | optimizer + EMA / device | temporaries | peak / device |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in memory:
        lines.append(f"| {r['size']} | {r['params'] / 1e6:.1f}M | {r['mesh']} | {r['params_bytes'] / GIB:.3f} GiB | "
                     f"{r['optimizer_state'] / GIB:.3f} GiB | {r['temps'] / GIB:.3f} GiB | {r['peak'] / GIB:.3f} GiB |")
    lines += ["", "Largest preset whose step fits a device's memory (peak above; the table's batch):", "",
              "| device memory | " + " | ".join(MESHES) + " |", "|---|" + "---|" * len(MESHES)]
    for budget in BUDGETS_GIB:
        cells = []
        for mesh_name in MESHES:
            fitting = [r for r in memory if r["mesh"] == mesh_name and r["peak"] <= budget * GIB]
            cells.append(max(fitting, key=lambda r: r["params"])["size"] if fitting else "none")
        lines.append(f"| {budget} GiB | " + " | ".join(cells) + " |")
    if remat:
        lines += ["", "Remat policies (`--config.parallel.remat`), same step under fsdp=8:", "",
                  "| DiT | remat | temporaries / device | peak / device |", "|---|---|---:|---:|"]
        lines += [f"| {r['size']} | {r['remat']} | {r['temps'] / GIB:.3f} GiB | {r['peak'] / GIB:.3f} GiB |"
                  for r in remat]
    if timing:
        lines += ["", "Step time on the same 8 fake devices (indicative only: they share the machine's cores):", "",
                  "| DiT | mesh | frames | compile (s) | steps/s |", "|---|---|---:|---:|---:|"]
        lines += [f"| {r['size']} | {r['mesh']} | {r['frames']} | {r['compile_s']:.1f} | {r['steps_per_s']:.2f} |"
                  for r in timing]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="small,base,large")
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--remat_size", default="base", help="preset of the remat rows ('' skips them)")
    parser.add_argument("--time_size", default="small")
    parser.add_argument("--time_frames", type=int, default=64)
    parser.add_argument("--time_steps", type=int, default=3)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    memory_table, timing = [], []
    for row in memory_rows(args.sizes.split(","), args.frames, args.channels):
        print(json.dumps(row), flush=True)
        memory_table.append(row)
    remat = []
    for row in remat_rows(args.remat_size, args.frames, args.channels) if args.remat_size else ():
        print(json.dumps(row), flush=True)
        remat.append(row)
    if args.time_steps > 0:
        for row in time_rows(args.time_size, args.time_frames, args.channels, args.time_steps):
            print(json.dumps(row), flush=True)
            timing.append(row)
    if not args.no_readme:
        replace_block(README, "scaling-table", table(memory_table, remat, timing, args.frames, args.channels))


if __name__ == "__main__":
    main()

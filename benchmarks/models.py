"""Benchmark of the audio score networks: parameters, compile time, speed and memory.

One JSON line per network x size: forward and forward+backward time on 1 s of 16 kHz audio
(waveform [B, 16000, 1]; unet2d on the compressed complex STFT [B, 126, 256, 2]; diffwave
mel-conditioned, [B, 63, 80] log-mel), compile times, and XLA's memory analysis of the compiled
forward+backward (arguments + outputs + temporaries). DiffWave is measured with both dilated
convolution implementations ('shifted' and 'xla').

    python benchmarks/models.py                                   # everything, batch 8
    python benchmarks/models.py --models=diffwave --sizes=base --update_doc=docs/audio.md

Base sizes default to a smaller batch on CPU (`--base_batch`); the JSON says which batch ran.
"""
from __future__ import annotations

import json
import os
import re
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.audio import codecs
from diffjax.models import get_model

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["unet1d", "unet2d", "diffwave"], "networks to measure")
flags.DEFINE_list("sizes", ["tiny", "small", "base"], "named sizes to measure")
flags.DEFINE_integer("batch", 8, "batch size")
flags.DEFINE_integer("base_batch", None, "batch size for 'base' sizes (default: --batch; "
                     "on a 2-core CPU use 1-2)")
flags.DEFINE_integer("repeats", 3, "timed runs (the median is reported) after one warm-up")
flags.DEFINE_string("update_doc", None, "markdown file whose benchmark table is refreshed")

SR, SECONDS = 16000, 1.0
DOC_START, DOC_END = "<!-- benchmark:models:start -->", "<!-- benchmark:models:end -->"


def example_inputs(name: str, batch: int):
    """(x, c_noise, cond) for 1 s of 16 kHz audio in the representation the network expects."""
    length = int(SR * SECONDS)
    c_noise = jnp.zeros((batch,))
    if name == "unet2d":
        x = jax.eval_shape(codecs.ComplexSTFT().encode, jax.ShapeDtypeStruct((batch, length, 1),
                                                                             jnp.float32))
        return jnp.zeros(x.shape, x.dtype), c_noise, None
    x = jnp.zeros((batch, length, 1))
    if name == "diffwave":
        mel = jnp.zeros((batch, codecs.num_frames(length, 256), 80))
        return x, c_noise, {"features": mel}
    return x, c_noise, None


def random_params(model, x, c_noise, cond):
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, c_noise, cond)
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: jnp.asarray(0.02 * rng.standard_normal(s.shape), s.dtype),
                          shapes)
    return params, sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))


def timed(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure(name: str, size: str, batch: int, repeats: int, **kwargs) -> dict:
    model = get_model(name, size=size, **kwargs)
    x, c_noise, cond = example_inputs(name, batch)
    params, count = random_params(model, x, c_noise, cond)

    def forward(p, x):
        return model.apply(p, x, c_noise, cond)

    def loss(p, x):
        return jnp.mean((forward(p, x) - x) ** 2)

    t0 = time.perf_counter()
    fwd = jax.jit(forward).lower(params, x).compile()
    t1 = time.perf_counter()
    bwd = jax.jit(jax.value_and_grad(loss)).lower(params, x).compile()
    t2 = time.perf_counter()
    mem = bwd.memory_analysis()
    peak = None if mem is None else int(mem.argument_size_in_bytes + mem.output_size_in_bytes
                                        + mem.temp_size_in_bytes)
    return {
            "benchmark": "models", "model": name, "size": size, **kwargs,
            "params": count, "batch": batch, "seconds": SECONDS, "sample_rate": SR,
            "input_shape": list(x.shape), "compile_fwd_s": round(t1 - t0, 2),
            "compile_fwd_bwd_s": round(t2 - t1, 2),
            "fwd_s": round(timed(fwd, params, x, repeats=repeats), 4),
            "fwd_bwd_s": round(timed(bwd, params, x, repeats=repeats), 4),
            "peak_mem_mb": None if peak is None else round(peak / 2 ** 20, 1),
            "backend": jax.default_backend(), "devices": jax.device_count(),
            "cpu_count": os.cpu_count(),
    }


HEADER = ("| network | size | params | batch | fwd (s) | fwd+bwd (s) | compile fwd+bwd (s) "
          "| peak mem (MB) |\n|---|---|---:|---:|---:|---:|---:|---:|\n")


def table_row(r: dict) -> str:
    net = r["model"] + (f" ({r['conv_impl']})" if "conv_impl" in r else "")
    return (f"| {net} | {r['size']} | {r['params'] / 1e6:.2f}M | {r['batch']} | {r['fwd_s']:.3f} | "
            f"{r['fwd_bwd_s']:.3f} | {r['compile_fwd_bwd_s']:.1f} | {r['peak_mem_mb']} |")


def update_doc(path: str, rows: list[dict]) -> None:
    """Refreshes the table between the markers: rows of this run replace rows with the same
    (network, size); other rows are kept, so a partial run updates only what it measured."""
    text = open(path).read()
    pattern = re.escape(DOC_START) + "(.*?)" + re.escape(DOC_END)
    found = re.search(pattern, text, flags=re.S)
    if not found:
        raise ValueError(f"{path} has no {DOC_START} ... {DOC_END} block to refresh")
    lines = {}
    for line in found.group(1).splitlines()[2:]:
        if line.startswith("| "):
            lines[tuple(c.strip() for c in line.split("|")[1:3])] = line
    for r in rows:
        line = table_row(r)
        lines[tuple(c.strip() for c in line.split("|")[1:3])] = line
    block = f"{DOC_START}\n{HEADER}" + "\n".join(lines.values()) + f"\n{DOC_END}"
    with open(path, "w") as f:
        f.write(text[:found.start()] + block + text[found.end():])


def main(argv):
    del argv
    rows = []
    for name in FLAGS.models:
        for size in FLAGS.sizes:
            batch = FLAGS.base_batch if size == "base" and FLAGS.base_batch else FLAGS.batch
            variants = [{"conv_impl": "shifted"}, {"conv_impl": "xla"}] if name == "diffwave" \
                else [{}]
            for kw in variants:
                row = measure(name, size, batch, FLAGS.repeats, **kw)
                if batch != FLAGS.batch:
                    row["note"] = f"batch reduced from {FLAGS.batch} (slow on this CPU)"
                print(json.dumps(row), flush=True)
                rows.append(row)
    if FLAGS.update_doc:
        update_doc(FLAGS.update_doc, rows)


if __name__ == "__main__":
    app.run(main)

"""Where a DiffWave-base train step spends its time on CPU (issue 22): one residual layer's forward
+ backward at the step's shapes, whole and piece by piece, its variants, and a scanned stack with
and without the checkpoint policy that keeps only the gate's pre-activations.

    python benchmarks/diffwave_profile.py [--batch 4] [--length 15872] [--repeats 3] [--stack 10]

Prints one JSON line per measurement: `ms`, the median wall time of `jax.grad` of a sum of squares
(all inputs and parameters), jitted, after one warm-up. Shapes: x [B, L, 64], mel [B, L, 80]
(upsampled), emb [B, 512]; a train step runs 30 such layers plus the upsampler and projections.
Group 'layer' compares `diffwave.ResidualLayer` with `paper_layer`, the same layer written as the
paper draws it (conv matmul, a separate mel matmul, one [C, 2C] output matmul and splits): the
formulation before issue 22. Group 'stack' runs `--stack` scanned layers.

For an op-by-op profile of the whole step, run it under `jax.profiler.trace(dir,
create_perfetto_trace=True)` with XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from diffjax.models import diffwave, scan  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch", 4, "batch")
flags.DEFINE_integer("length", 15872, "samples per example")
flags.DEFINE_integer("repeats", 3, "timed runs (median)")
flags.DEFINE_integer("stack", 10, "layers in the scanned-stack rows")
C, M, E, D = 64, 80, 512, 8  # channels, mel bands, embedding, a mid-cycle dilation


def timed(fn, *args) -> float:
    """Median ms of jit(grad of sum of squares of fn)(*args)."""
    g = jax.jit(jax.grad(lambda *a: jnp.sum(jnp.square(fn(*a).astype(jnp.float32))), argnums=tuple(range(len(args)))))
    jax.block_until_ready(g(*args))
    runs = []
    for _ in range(FLAGS.repeats):
        tic = time.perf_counter()
        jax.block_until_ready(g(*args))
        runs.append(1e3 * (time.perf_counter() - tic))
    return statistics.median(runs)


def paper_layer(p, x, emb, mel, dilation: int):
    """The residual layer as the paper draws it, on `ResidualLayer`'s parameters `p`: the taps
    matmul, a separate mel matmul, a split into gate and filter, one [C, 2C] output matmul and a
    split into residual and skip (diffjax before issue 22)."""
    dense = lambda q, v: v @ q["kernel"] + q["bias"]  # noqa: E731
    y = x + dense(p["diffusion_projection"], emb)[:, None, :]
    taps = diffwave.shifted_taps(y, dilation, dilation)
    y = taps @ p["dilated_conv"]["kernel"].reshape(3 * C, 2 * C) + p["dilated_conv"]["bias"]
    y = y + dense(p["conditioner_projection"], mel)
    gate, filt = jnp.split(y, 2, axis=-1)
    residual, skip = jnp.split(dense(p["output_projection"], jax.nn.sigmoid(gate) * jnp.tanh(filt)), 2, axis=-1)
    return (x + residual) / jnp.sqrt(2.0), skip


def layer_variants(x, emb, mel):
    """The whole residual layer: 'shifted' conv (static / traced dilation), 'xla' conv, bfloat16."""
    out = {}
    for label, impl, dtype, traced in [("shifted", "shifted", jnp.float32, False),
                                       ("shifted, traced dilation (scan)", "shifted", jnp.float32, True),
                                       ("xla conv", "xla", jnp.float32, False),
                                       ("shifted, bfloat16", "shifted", jnp.bfloat16, False)]:
        layer = diffwave.ResidualLayer(C, D, impl, dtype)
        params = layer.init(jax.random.PRNGKey(0), x, emb, mel)
        dil = jnp.int32(D) if traced else None
        out[label] = timed(lambda p, x, e, m: layer.apply(p, x, e, m, dil)[0], params, x, emb, mel)
        if label == "shifted":
            out["paper's formulation (before issue 22)"] = timed(
                    lambda p, x, e, m: paper_layer(p["params"], x, e, m, D)[0], params, x, emb, mel)
    return out


def stack_variants(x, emb, mel):
    """`--stack` scanned layers (the step's structure), keeping every residual against keeping only
    the layer input and `diffwave.PREACTIVATION`."""
    out = {}
    dilations = 2 ** (jnp.arange(FLAGS.stack, dtype=jnp.int32) % 10)
    keep_preactivations = jax.checkpoint_policies.save_only_these_names(diffwave.PREACTIVATION)
    for label, policy in [("scan, keeps every residual", None), ("scan, keeps pre-activations", keep_preactivations)]:
        run = scan.scan_blocks(diffwave._scan_body, length=FLAGS.stack, in_axes=(0, nn.broadcast, nn.broadcast),
                               policy=policy)

        class Stack(nn.Module):
            @nn.compact
            def __call__(self, x, emb, mel):
                layer = diffwave.ResidualLayer(C, 512, name="layers")
                return run(layer, (x, jnp.zeros_like(x)), dilations, emb, mel)[0][1]

        params = Stack().init(jax.random.PRNGKey(0), x, emb, mel)
        out[label] = timed(lambda p, x, e, m: Stack().apply(p, x, e, m), params, x, emb, mel)
    return out


def pieces(x, mel):
    """The layer's operations one at a time, at the same shapes."""
    n = x.shape[0] * x.shape[1]
    k = jax.random.split(jax.random.PRNGKey(1), 4)
    w_conv, w_cond = jax.random.normal(k[0], (3 * C, 2 * C)), jax.random.normal(k[1], (M, 2 * C))
    w_out, y = jax.random.normal(k[2], (C, 2 * C)), jax.random.normal(k[3], x.shape[:2] + (2 * C,))

    def shifted_concat(x):
        xp = jnp.pad(x, ((0, 0), (D, D), (0, 0)))
        return jnp.concatenate([xp[:, i * D:i * D + x.shape[1]] for i in range(3)], axis=-1)

    return {
            "pad + 3 slices + concat [B, L, 3C]": timed(shifted_concat, x),
            "dilated-conv matmul [BL, 3C] x [3C, 2C]": timed(lambda a, w: a @ w, jnp.ones((n, 3 * C)), w_conv),
            "mel projection [BL, 80] x [80, 2C]": timed(lambda a, w: a @ w, mel.reshape(n, M), w_cond),
            "gate sigmoid * tanh [B, L, 2C]": timed(lambda y: jax.nn.sigmoid(y[..., :C]) * jnp.tanh(y[..., C:]), y),
            "output projection [BL, C] x [C, 2C]": timed(lambda a, w: a @ w, x.reshape(n, C), w_out),
    }


def main(argv):
    del argv
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(k[0], (FLAGS.batch, FLAGS.length, C))
    emb = jax.random.normal(k[1], (FLAGS.batch, E))
    mel = jax.random.normal(k[2], (FLAGS.batch, FLAGS.length, M))
    for group, rows in [("layer", layer_variants(x, emb, mel)), ("stack", stack_variants(x, emb, mel)),
                        ("piece", pieces(x, mel))]:
        for label, ms in rows.items():
            print(json.dumps({group: label, "batch": FLAGS.batch, "length": FLAGS.length, "ms": round(ms, 1)}),
                  flush=True)


if __name__ == "__main__":
    app.run(main)

"""Where one train step of a shipped config spends its time (issue 22, "the quick start's step").

    python benchmarks/step_profile.py                              # configs/default.py
    python benchmarks/step_profile.py --config diffwave --top 15   # any configs/<name>.py
    python benchmarks/step_profile.py --update_readme              # refresh README's step-profile-<config> table

Builds the config's data-parallel train step exactly as `benchmarks/training.py` times it, runs it
once under `jax.profiler.trace` (XLA's CPU thunks traced, `--xla_cpu_enable_xprof_traceme`), and
attributes each executed XLA op to the model code that produced it through the op's `op_name`
metadata in the compiled HLO. Rows (JSON lines): the share of traced op time per
(pass, part): pass is forward or backward (`transpose(jvp(...))`) inside the network, or
outside it (loss, optimizer, EMA); part is the first module path component under the network (e.g. `block_3/attn` -> `attn`,
DiffWave's `layers/dilated_conv` -> `dilated_conv`) or the op kind outside it. Then the `--top`
ops by time, and the split by op kind (`op_kind`).

The trace times each thunk on the thread that runs it; XLA's CPU runtime may overlap independent
ops, so the shares are of traced op time, not of wall time (the step's wall time is printed too).
"""
from __future__ import annotations

import argparse
import collections
import gzip
import importlib
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from benchmarks.tables import machine, replace_block  # noqa: E402
from benchmarks.training import build_train_step  # noqa: E402

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*?op_name=\"([^\"]*)\"", re.M)
OUTSIDE = "outside (loss, optimizer, EMA)"
_MOVEMENT = {"copy", "transpose", "concatenate", "pad", "slice", "dynamic-slice", "dynamic-update-slice",
             "broadcast", "bitcast", "reshape", "select"}
_NETWORK_ROOTS = ("DiT", "DiffWave", "UNet1D", "UNet2D", "MLP", "MPDiT", "MPUNet")


def op_names(hlo_text: str) -> dict[str, str]:
    """Compiled HLO text -> {instruction name: its `op_name` metadata} (fusions and plain ops)."""
    return {m.group(1): m.group(2) for m in _INSTRUCTION.finditer(hlo_text)}


def attribute(op_name: str) -> tuple[str, str]:
    """`op_name` metadata -> (pass, part). pass: 'backward' under `transpose(...)`, 'forward'
    inside the network, else OUTSIDE. part: the first module under the network, block indices and
    scan plumbing dropped, else the primitive's name."""
    if not op_name.startswith("jit("):  # metadata naming an argument: a copy of the train state
        return OUTSIDE, "state copies"
    path = op_name.split("/")
    backward = any(p.startswith("transpose(") for p in path)
    modules = [p for p in path if not p.startswith(("jit(", "jvp(", "transpose(", "checkpoint", "rematted",
                                                    "while", "body", "closed_call", "cond", "branch"))]
    network = next((i for i, p in enumerate(path) if p.split("(")[-1].rstrip(")") in _NETWORK_ROOTS), None)
    if network is None:
        return ("backward" if backward else OUTSIDE), (modules[-1] if modules else "other")
    inner = [p for p in modules if p not in path[:network + 1]]
    inner = [re.sub(r"_\d+$", "", p) for p in inner if not re.fullmatch(r"(block|layer)_\d+|blocks|layers|"
                                                                          r"[A-Za-z]+\._\w+", p)]
    part = inner[0] if len(inner) > 1 else (inner[0] if inner else "network")
    return ("backward" if backward else "forward"), part


def op_kind(instruction: str) -> str:
    """An executed XLA instruction's kind from its name (XLA names a fusion after its ops):
    'matmul' (YNNPACK/Eigen dots and convolutions), 'data movement' (only copies, transposes,
    concatenations, pads, slices, scan-buffer updates, broadcasts) or 'elementwise and reductions'
    (anything computing, possibly fused with movement)."""
    if instruction.startswith(("ynn_fusion", "dot", "convolution")):
        return "matmul"
    ops = set(re.sub(r"\.\d+$", "", instruction).split("_")) - {"fusion", "wrapped"}
    return "data movement" if ops and ops <= _MOVEMENT else "elementwise and reductions"


def trace_durations(directory: str) -> dict[str, float]:
    """Perfetto trace in `directory` -> {event name: total microseconds} of its complete events."""
    path = next(os.path.join(d, f) for d, _, files in os.walk(directory) for f in files
                if f.endswith(".trace.json.gz"))
    events = json.load(gzip.open(path))
    events = events["traceEvents"] if isinstance(events, dict) else events
    totals: dict[str, float] = collections.Counter()
    for e in events:
        if e.get("ph") == "X":
            totals[e["name"]] += e.get("dur", 0)
    return dict(totals)


def profile(config_name: str, min_share: float = 0.005) -> tuple[list[dict], list[dict], float]:
    """(share rows by pass and part, top ops, step seconds) of one traced step of `config_name`;
    parts under `min_share` of the traced op time are summed into one row."""
    config = importlib.import_module(f"configs.{config_name}").get_config()
    step, state, batch, keys, _, _ = build_train_step(config)
    compiled = step.lower(state, batch, keys).compile()  # compiled once: its HLO is what runs
    names = op_names(compiled.as_text())
    state, metrics = compiled(state, batch, keys)  # warm-up
    jax.block_until_ready(metrics["loss"])
    with tempfile.TemporaryDirectory() as directory:
        with jax.profiler.trace(directory, create_perfetto_trace=True):
            tic = time.perf_counter()
            state, metrics = compiled(state, batch, keys)
            jax.block_until_ready(metrics["loss"])
            wall = time.perf_counter() - tic
        durations = {op: us for op, us in trace_durations(directory).items() if op in names}  # XLA ops only
    total = sum(durations.values()) or 1.0
    groups: dict[tuple[str, str], float] = collections.Counter()
    for op, us in durations.items():
        groups[attribute(names.get(op, op))] += us
    small = sum(us for us in groups.values() if us < min_share * total)
    groups = {k: us for k, us in groups.items() if us >= min_share * total}
    if small:
        groups[("all", f"parts under {100 * min_share:g} % each")] = small
    shares = [{"config": config_name, "pass": p, "part": part, "ms": round(us / 1e3, 1),
               "share": round(us / total, 3)} for (p, part), us in sorted(groups.items(), key=lambda kv: -kv[1])]
    kinds: dict[str, float] = collections.Counter()
    for op, us in durations.items():
        kinds[op_kind(op)] += us
    shares += [{"config": config_name, "kind": k, "ms": round(us / 1e3, 1), "share": round(us / total, 3)}
               for k, us in sorted(kinds.items(), key=lambda kv: -kv[1])]
    top = [{"config": config_name, "op": op, "ms": round(us / 1e3, 1), "share": round(us / total, 3),
            "from": names.get(op, "")[-90:]} for op, us in sorted(durations.items(), key=lambda kv: -kv[1])]
    return shares, top, wall


def table(config_name: str, shares: list[dict], wall: float, *, rows: int = 10) -> str:
    """Markdown: the largest (pass, part) rows, then the split by op kind."""
    parts = [r for r in shares if "part" in r][:rows]
    kinds = [r for r in shares if "kind" in r]
    lines = [f"`python benchmarks/step_profile.py --config {config_name}` on {machine()}: one train step "
             f"({wall:.2f} s wall, traced); traced op time by pass and part, then by op kind.", "",
             "| pass | part | ms | share |", "|---|---|---:|---:|"]
    lines += [f"| {r['pass']} | {r['part']} | {r['ms']:.1f} | {100 * r['share']:.1f} % |" for r in parts]
    lines += ["", "| op kind | ms | share |", "|---|---:|---:|"]
    lines += [f"| {r['kind']} | {r['ms']:.1f} | {100 * r['share']:.1f} % |" for r in kinds]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="default", help="configs/<name>.py")
    parser.add_argument("--top", type=int, default=10, help="ops to list by time")
    parser.add_argument("--update_readme", action="store_true")
    args = parser.parse_args()
    # Trace XLA's CPU thunks; read when the backend starts, which is after this (nothing ran yet).
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true").strip()
    shares, top, wall = profile(args.config)
    print(json.dumps({"config": args.config, "step_s": round(wall, 3), "machine": machine()}), flush=True)
    for row in shares + top[:args.top]:
        print(json.dumps(row), flush=True)
    if args.update_readme:
        replace_block(README, f"step-profile-{args.config}", table(args.config, shares, wall))


if __name__ == "__main__":
    main()

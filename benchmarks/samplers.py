"""Which sampler gives the best samples per NFE? Quality vs NFE for every sampler, and overhead.

    /work/venv/bin/python benchmarks/samplers.py [--peer-python /tmp/peer/bin/python] [--quick]

For 8-mode Gaussian mixtures in 2-D and 16-D with the exact denoiser (`diffjax.toy`), every sampler
runs at NFE ~ 5, 10, 20, 50 (the most steps within the budget) from the same initial noise, and is
scored by
- `ode_error`: RMS distance of deterministic samples to the converged PF-ODE solution from the
  same noise (Dopri8 at rtol = atol = 1e-10, float64), i.e. pure discretisation error;
- `energy_distance`: to exact samples of the mixture (`toy.energy_distance`; two exact sets of
  the same size measure the noise floor, printed as `exact`).
k-diffusion's DPM++ 2M runs on the same grids and the same denoiser, written in torch, in the
peer's venv (`samplers_peer.py`), and the ratio to our best at equal NFE is reported. Overhead:
time per NFE of each sampler on a cheap denoiser against the denoiser alone.

Prints one JSON line per row and rewrites the tables in docs/samplers.md between the markers.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from diffjax import toy  # noqa: E402
from diffjax.sampling import (SAMPLERS, get_grid, get_sampler, initial_noise,  # noqa: E402
                              nfe, seed_keys)

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "samplers.md"
BEGIN, END = "<!-- BENCHMARK:samplers:begin -->", "<!-- BENCHMARK:samplers:end -->"
BUDGETS = (5, 10, 20, 50)
SIGMA_MAX = 80.0
STANDARD = ("karras", 0.002, {"rho": 7.0})  # EDM's grid, k-diffusion's usual setting
TUNED = ("polyexponential", 0.02, {"rho": 1.5})  # our few-step recipe (docs/samplers.md)
TUNED_SAMPLERS = ("unipc", "dpmpp_3m", "dpmpp_2m")
DATASETS = {"gmm2d": (2, 2000), "gmm16d": (16, 1000)}
OPTIONS = {"ddim": {"eta": 0.0}}


def own_samplers():
    return [n for n in SAMPLERS.names()
            if SAMPLERS.get(n).__module__.startswith("diffjax.sampling") and n != "adaptive"]


def steps_within(name, budget):
    """The most levels whose NFE fits the budget, or None."""
    best = None
    for n in range(1, budget + 1):
        if nfe(name, n) <= budget:
            best = n
    return best


def make_grid(recipe, num_steps):
    name, sigma_min, options = recipe
    return get_grid(name)(num_steps, sigma_min, SIGMA_MAX, **options)


def emit(row, rows):
    rows.append(row)
    print(json.dumps(row), flush=True)


def run_peer(peer_python, mix, x_unit, grids):
    """k-diffusion DPM++ 2M on `grids` {label: sigmas}; returns {label: (x, seconds)}."""
    with tempfile.TemporaryDirectory() as tmp:
        path_in, path_out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(path_in, weights=np.asarray(mix.weights, np.float64),
                 means=np.asarray(mix.means, np.float64), stds=np.asarray(mix.stds, np.float64),
                 x_init=np.asarray(x_unit, np.float64), grid_names=np.array(list(grids)),
                 **{f"grid_{k}": np.asarray(v, np.float64) for k, v in grids.items()})
        subprocess.run([peer_python, str(ROOT / "benchmarks" / "samplers_peer.py"), path_in, path_out],
                       check=True)
        out = np.load(path_out)
        return {k: (out[f"x_{k}"], float(out[f"time_{k}"])) for k in grids}


def quality(dataset, dim, num, peer_python, rows):
    mix = jax.tree.map(lambda a: a.astype(jnp.float64), toy.gmm(dim=dim))
    seeds = np.arange(num)
    x_unit = initial_noise(seeds, (dim,), 1.0, dtype=jnp.float64)
    keys = seed_keys(seeds)
    exact = mix.sample(jax.random.PRNGKey(10_000), num)
    reference = get_sampler("adaptive")(mix.denoiser, SIGMA_MAX * x_unit, jnp.array([SIGMA_MAX, 1e-5, 0.0]),
                                        solver="dopri8", rtol=1e-10, atol=1e-10, max_steps=200_000)
    floor = float(toy.energy_distance(mix.sample(jax.random.PRNGKey(10_001), num), exact))
    emit({"bench": "samplers", "dataset": dataset, "sampler": "exact", "grid": "-", "nfe": 0,
          "energy_distance": floor, "ode_error": None}, rows)

    def score(name, grid_label, x, cost, budget):
        deterministic = not SAMPLERS.meta(name)["stochastic"] if name in SAMPLERS else True
        err = float(jnp.sqrt(jnp.mean(jnp.sum((x - reference) ** 2, -1)))) if deterministic else None
        emit({"bench": "samplers", "dataset": dataset, "sampler": name, "grid": grid_label, "nfe": cost,
              "budget": budget, "energy_distance": float(toy.energy_distance(jnp.asarray(x), exact)), "ode_error": err}, rows)

    jobs = [(n, STANDARD) for n in own_samplers()] + [(n, TUNED) for n in TUNED_SAMPLERS]
    for name, recipe in jobs:
        sample = get_sampler(name)
        for budget in BUDGETS:
            steps = steps_within(name, budget)
            if steps is None:
                continue
            sigmas = make_grid(recipe, steps)
            run = jax.jit(lambda x, k, s: sample(mix.denoiser, x * s[0], s, key=k, **OPTIONS.get(name, {})))
            score(name, recipe[0], run(x_unit, keys, sigmas), nfe(name, steps), budget)
    if peer_python:
        grids = {f"{recipe[0]}_{b}": make_grid(recipe, b) for recipe in (STANDARD, TUNED) for b in BUDGETS}
        for label, (x, _) in run_peer(peer_python, mix, x_unit, grids).items():
            grid_name, budget = label.rsplit("_", 1)
            score("k-diffusion dpmpp_2m", grid_name, jnp.asarray(x), int(budget), int(budget))


def overhead(rows, num_steps=50, batch=4096, dim=16):
    """Seconds per NFE of each sampler on `D(x, s) = x / (1 + s^2)` (N(0, I) data), vs D alone."""
    x = jnp.ones((batch, dim), jnp.float32)
    sigmas = get_grid("karras")(num_steps, 0.002, SIGMA_MAX).astype(jnp.float32)
    denoiser = lambda x, s: x / (1.0 + s**2)  # noqa: E731

    def timed(fn, *args):
        jax.block_until_ready(fn(*args))
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            best = min(best, time.perf_counter() - start)
        return best

    alone = jax.jit(lambda x, s: jax.lax.scan(lambda c, si: (denoiser(c, si), None), x, s)[0])
    per_call = timed(alone, x, sigmas[:-1]) / num_steps
    emit({"bench": "sampler_overhead", "sampler": "denoiser alone", "seconds_per_nfe": per_call,
          "ratio": 1.0}, rows)
    key = jax.random.PRNGKey(0)
    for name in own_samplers():
        run = jax.jit(lambda x, k, name=name: get_sampler(name)(denoiser, x, sigmas, key=k))
        seconds = timed(run, x, key) / nfe(name, num_steps)
        emit({"bench": "sampler_overhead", "sampler": name, "seconds_per_nfe": seconds,
              "ratio": seconds / per_call}, rows)


# --------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------


def _cell(value, fmt="{:.2e}"):
    return "-" if value is None else fmt.format(value)


def quality_table(rows, dataset, metric):
    select = [r for r in rows if r.get("dataset") == dataset and r["bench"] == "samplers"]
    if metric == "ode_error":
        select = [r for r in select if r["ode_error"] is not None]
    keys = sorted({(r["sampler"], r["grid"]) for r in select if r["sampler"] != "exact"},
                  key=lambda k: (k[1] != STANDARD[0], k[0]))
    lines = [f"| sampler | grid | " + " | ".join(f"NFE<={b}" for b in BUDGETS) + " |",
             "|---|---|" + "---|" * len(BUDGETS)]
    for sampler, grid in keys:
        cells = []
        for budget in BUDGETS:
            hits = [r for r in select if (r["sampler"], r["grid"], r.get("budget")) == (sampler, grid, budget)]
            cells.append(f"{_cell(hits[0][metric])} ({hits[0]['nfe']})" if hits else "-")
        lines.append(f"| {sampler} | {grid} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline(rows, dataset, budget=10):
    pick = lambda s, g: next((r for r in rows if r.get("dataset") == dataset and r["sampler"] == s  # noqa: E731
                              and r["grid"] == g and r["nfe"] == budget), None)
    ours, peer = pick("unipc", TUNED[0]), pick("k-diffusion dpmpp_2m", STANDARD[0])
    peer_tuned = pick("k-diffusion dpmpp_2m", TUNED[0])
    if not (ours and peer):
        return ""
    text = (f"- {dataset}, NFE {budget}: ours (unipc, {TUNED[0]}) ODE error {ours['ode_error']:.2e} vs "
            f"k-diffusion DPM++ 2M (karras) {peer['ode_error']:.2e}: **{peer['ode_error'] / ours['ode_error']:.1f}x** lower")
    if peer_tuned:
        text += (f"; vs k-diffusion DPM++ 2M on our grid {peer_tuned['ode_error']:.2e}: "
                 f"{peer_tuned['ode_error'] / ours['ode_error']:.1f}x")
    return text


def write_doc(rows):
    parts = ["", "Headline (ratio = k-diffusion error / ours, same noise, same denoiser, same NFE):", ""]
    parts += [headline(rows, d) for d in DATASETS] + [""]
    for dataset in DATASETS:
        parts += [f"**{dataset}: discretisation error vs the converged PF-ODE** (RMS; actual NFE in brackets)",
                  "", quality_table(rows, dataset, "ode_error"), "",
                  f"**{dataset}: energy distance to exact samples** (noise floor: "
                  f"{next(r['energy_distance'] for r in rows if r.get('dataset') == dataset and r['sampler'] == 'exact'):.1e})",
                  "", quality_table(rows, dataset, "energy_distance"), ""]
    over = [r for r in rows if r["bench"] == "sampler_overhead"]
    if over:
        parts += ["**Overhead**: seconds per NFE on `D(x, s) = x / (1 + s^2)`, batch 4096 x 16, 50 levels, "
                  "jitted, vs the denoiser alone", "", "| sampler | s / NFE | ratio |", "|---|---|---|"]
        parts += [f"| {r['sampler']} | {r['seconds_per_nfe']:.2e} | {r['ratio']:.2f} |" for r in over] + [""]
    text = DOC.read_text()
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n".join(parts) + "\n" + text[stop:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default="/tmp/peer/bin/python",
                        help="python of the venv with torch + k-diffusion; '' to skip the peer")
    parser.add_argument("--quick", action="store_true", help="2-D only, no overhead table, no doc")
    parser.add_argument("--from-jsonl", help="rewrite the doc tables from a saved run's output")
    args = parser.parse_args()
    if args.from_jsonl:
        write_doc([json.loads(line) for line in open(args.from_jsonl) if line.startswith("{")])
        return
    peer = args.peer_python if args.peer_python and os.path.exists(args.peer_python) else None
    rows = []
    for dataset, (dim, num) in DATASETS.items():
        if args.quick and dim != 2:
            continue
        quality(dataset, dim, num, peer, rows)
    if not args.quick:
        with jax.enable_x64(False):
            overhead(rows)
        write_doc(rows)


if __name__ == "__main__":
    main()

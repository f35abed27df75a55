"""diffjax side by side with its PyTorch peers, measured in one run, both sides interleaved.

    python benchmarks/peers.py [--rows diffwave,samplers,unet] [--rounds 3] [--quick] [--update_readme]

Rows (one JSON line each; medians over `--rounds` rounds; ratio = diffjax time / peer time):
- `diffwave`: one DiffWave-base train step (30 residual layers x 64 channels, mel-conditioned,
  batch 4 x 15872 samples = lmnt's 62 mel frames x hop 256, Adam 2e-4, noise-prediction MSE on
  lmnt's 50-level schedule): diffjax (the `configs/diffwave.py` network, `make_train_step`)
  against lmnt-com/diffwave's `DiffWave`;
- `unet`: the same train step for diffjax's `unet1d/small` against audio-diffusion-pytorch's
  `UNetV0` at the same widths, downsampling factors, blocks per level and attention level
  (batch 4 x 16384 samples, `x cos(t pi/2) + eps sin(t pi/2)`);
- `samplers`: seconds per NFE of diffjax's jitted `dpmpp_2m` and `heun` against k-diffusion's eager
  `sample_dpmpp_2m` / `sample_heun`, on the exact denoiser of a 16-D, 8-mode Gaussian mixture
  (`diffjax.toy.gmm`), batch 2048, the same Karras grid (sigma 80 -> 0.002, rho 7) and noise.
  `max_abs_diff` reports how far the peer's samples are from ours; its denoiser is checked against
  the closed form (`gmm_posterior_mean`) and the run stops if they disagree.
The compile time of each diffjax step is reported separately (XLA compile, not in the medians).
The table also gives the ratio of the minima: on a shared machine, the peer's many small eager ops
(each an OpenMP region on 2 threads) are the most disturbed by other processes.

The peers live in their own venv (`--venv`, created once: torch 2.13 CPU, then `diffwave`,
`k-diffusion`, `audio-diffusion-pytorch` and `a-unet` with `--no-deps`, plus `einops`), never in the
project's dependencies. Their worker (`peers_torch.py`) runs with `torch.set_num_threads(2)` and
answers JSON jobs on stdin, so each model is built once and the rounds alternate peer/diffjax.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from benchmarks.tables import machine, replace_block  # noqa: E402
from configs import diffwave as diffwave_config  # noqa: E402
from diffjax import models, toy  # noqa: E402
from diffjax.models.diffwave import DIFFWAVE_SIZES  # noqa: E402
from diffjax.sampling import get_grid, get_sampler, nfe  # noqa: E402
from diffjax.training.state import TrainState  # noqa: E402
from diffjax.training.step import make_train_step  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
WORKER = ROOT / "benchmarks" / "peers_torch.py"
DEFAULT_VENV = pathlib.Path.home() / ".cache" / "diffjax" / "peers-venv"
PEER_REQUIREMENTS = ("torch==2.13.0", "numpy", "einops")  # torch: the local CPU wheel
PEER_NO_DEPS = ("diffwave", "k-diffusion", "audio-diffusion-pytorch", "a-unet")
ROWS = ("diffwave", "samplers", "unet")
SAMPLER_RUNS = (("dpmpp_2m", 10), ("dpmpp_2m", 50), ("heun", 10), ("heun", 50))
DIFFWAVE_SCHEDULE = np.linspace(1e-4, 0.05, 50)  # lmnt's params.noise_schedule (betas)
HOP = 256  # mel hop of DiffWave's upsampler (16 x 16)


# --------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------


def compare(ours: Sequence[float], peer: Sequence[float]) -> dict:
    """Medians (and minima) of two lists of timings, `ratio = ours / peer` of the medians, the faster side."""
    if not ours or not peer:
        raise ValueError("compare needs at least one timing on each side")
    ours_s, peer_s = statistics.median(ours), statistics.median(peer)
    ratio = ours_s / peer_s
    return {"ours_s": ours_s, "peer_s": peer_s, "ratio": ratio, "ours_min_s": min(ours), "peer_min_s": min(peer),
            "faster": "diffjax" if ratio < 1 else "peer" if ratio > 1 else "tie"}


def steps_for(name: str, budget: int) -> int:
    """The most grid steps whose NFE (`diffjax.sampling.nfe`) fits the budget."""
    fits = [n for n in range(1, budget + 1) if nfe(name, n) <= budget]
    if not fits:
        raise ValueError(f"sampler {name!r} needs more than {budget} NFE for one step")
    return fits[-1]


def gmm_posterior_mean(x, sigma, weights, means, stds):
    """Exact `E[x0 | x0 + sigma eps = x]` of `sum_k w_k N(mu_k, diag(c_k^2))` in numpy (float64),
    the reference for the torch denoiser of the peer (`diffjax.toy` module docstring, D(x~, sigma)).
    Shapes: x [B, D], sigma [B], weights [K], means and stds [K, D] -> [B, D]."""
    x, sigma = np.asarray(x, np.float64), np.asarray(sigma, np.float64)
    var = np.asarray(stds, np.float64)[None] ** 2 + sigma.reshape(-1, 1, 1) ** 2  # [B, K, D]
    diff = x[:, None, :] - np.asarray(means, np.float64)[None]
    log_comp = -0.5 * np.sum(diff**2 / var + np.log(2 * np.pi * var), -1) + np.log(weights)
    resp = np.exp(log_comp - log_comp.max(-1, keepdims=True))
    resp /= resp.sum(-1, keepdims=True)
    return np.einsum("bk,bkd->bd", resp, means[None] + stds[None] ** 2 / var * diff)


def _fmt(seconds: float) -> str:
    return f"{seconds:.3g}"


def format_table(rows: Sequence[dict], *, header: str) -> str:
    """Markdown: one line per row (medians, their ratio, the faster side, the ratio of the minima,
    which a busy machine disturbs less), then diffjax's compile times."""
    lines = [header, "", "| row | diffjax | peer | diffjax (s) | peer (s) | diffjax / peer | faster | ratio of minima |",
             "|---|---|---|---:|---:|---:|---|---:|"]
    for r in (r for r in rows if not r.get("skipped")):
        lines.append(f"| {r['row']} | {r['ours']} | {r['peer']} | {_fmt(r['ours_s'])} | {_fmt(r['peer_s'])} | "
                     f"{r['ratio']:.2f} | {r['faster']} | {r['ours_min_s'] / r['peer_min_s']:.2f} |")
    compiled = [r for r in rows if r.get("compile_s") is not None]
    if compiled:
        lines += ["", "Compile time of each diffjax step (XLA, once per shape; not in the medians):", "",
                  "| row | compile (s) |", "|---|---:|"]
        lines += [f"| {r['row']} | {r['compile_s']:.1f} |" for r in compiled]
    skipped = [r for r in rows if r.get("skipped")]
    lines += [f"\nSkipped: {r['row']}: {r['skipped']}" for r in skipped]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The peers' venv and worker
# --------------------------------------------------------------------------------------


def ensure_venv(path: pathlib.Path) -> pathlib.Path:
    """The python of the peers' venv at `path`, created and filled on first use (marker: .ready)."""
    python = path / "bin" / "python"
    if (path / ".ready").exists():
        return python
    print(f"creating the peers' venv in {path} (once)", file=sys.stderr, flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(path)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + list(PEER_REQUIREMENTS), check=True)
    subprocess.run(pip + ["--no-deps"] + list(PEER_NO_DEPS), check=True)
    (path / ".ready").write_text("\n".join(PEER_REQUIREMENTS + PEER_NO_DEPS) + "\n")
    return python


class PeerError(RuntimeError):
    """A job the peer worker could not run (e.g. a peer that does not import)."""


class PeerWorker:
    """`peers_torch.py` in the peers' venv: `ask(job) -> reply`, one JSON line each way."""

    def __init__(self, python: pathlib.Path):
        self.proc = subprocess.Popen([str(python), str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the peer worker exited (code {self.proc.poll()}); its error is printed above")
        return json.loads(line)

    def ask(self, job: dict) -> dict:
        self.proc.stdin.write(json.dumps(job) + "\n")
        reply = self._read()
        if "error" in reply:
            raise PeerError(f"peer {job['row']!r}: {reply['error']}")
        return reply

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# --------------------------------------------------------------------------------------
# diffjax side
# --------------------------------------------------------------------------------------


def random_params(network, *inputs):
    """Parameters of `network` without compiling its init: N(0, 0.02^2) at the init's shapes
    (a train step's cost does not depend on the values)."""
    shapes = models.unbox(jax.eval_shape(network.init, jax.random.PRNGKey(0), *inputs))["params"]
    rng = np.random.default_rng(0)
    return jax.tree.map(lambda s: jnp.asarray(0.02 * rng.standard_normal(s.shape), s.dtype), shapes)


def timed_train_step(network, loss_fn, batch, init_inputs) -> tuple[Callable[[], float], float, int]:
    """`(run() -> seconds of one step, compile seconds, parameter count)` for `network` trained
    with Adam(2e-4) by the project's generic `make_train_step` (jitted, state donated)."""
    params = random_params(network, *init_inputs)
    state = TrainState.create(params, optax.adam(2e-4), 0)
    step = jax.jit(make_train_step(loss_fn, ()), donate_argnums=0)
    key = jax.random.PRNGKey(0)
    tic = time.perf_counter()
    compiled = step.lower(state, batch, key).compile()
    compile_s = time.perf_counter() - tic
    holder = {"state": compiled(state, batch, key)[0], "n": 0}  # warm-up
    jax.block_until_ready(holder["state"])

    def run() -> float:
        holder["n"] += 1
        tic = time.perf_counter()
        holder["state"], metrics = compiled(holder["state"], batch, jax.random.fold_in(key, holder["n"]))
        jax.block_until_ready(metrics["loss"])
        return time.perf_counter() - tic

    return run, compile_s, sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def diffwave_ours(size: str, batch: int, length: int, n_mels: int):
    """DiffWave of `configs/diffwave.py` (size overridden), noise-prediction MSE on lmnt's schedule."""
    section = diffwave_config.get_config().model
    network = models.MODELS.build({**section.to_dict(), "size": size})
    noise_level = jnp.asarray(np.cumprod(1 - DIFFWAVE_SCHEDULE), jnp.float32)
    rng = np.random.default_rng(0)
    data = {"audio": jnp.asarray(np.clip(rng.standard_normal((batch, length, 1)), -1, 1), jnp.float32),
            "mel": jnp.asarray(rng.standard_normal((batch, length // HOP, n_mels)), jnp.float32)}

    def loss_fn(params, batch, key, extra):
        del extra
        key_t, key_eps = jax.random.split(key)
        t = jax.random.randint(key_t, (batch["audio"].shape[0],), 0, len(DIFFWAVE_SCHEDULE))
        scale = noise_level[t][:, None, None]
        eps = jax.random.normal(key_eps, batch["audio"].shape)
        noisy = jnp.sqrt(scale) * batch["audio"] + jnp.sqrt(1 - scale) * eps
        pred = network.apply({"params": params}, noisy, t.astype(jnp.float32), {"features": batch["mel"]})
        return jnp.mean((pred - eps) ** 2, axis=(1, 2)), {}

    inputs = (data["audio"][:1], jnp.zeros((1,)), {"features": data["mel"][:1]})
    return timed_train_step(network, loss_fn, data, inputs)


def unet_ours(size: str, batch: int, length: int):
    """`unet1d/<size>` trained on the noise-prediction MSE of `x cos(t pi/2) + eps sin(t pi/2)`."""
    network = models.MODELS.build({"name": "unet1d", "size": size})
    data = {"x": jnp.asarray(np.random.default_rng(0).standard_normal((batch, length, 1)), jnp.float32)}

    def loss_fn(params, batch, key, extra):
        del extra
        key_t, key_eps = jax.random.split(key)
        t = jax.random.uniform(key_t, (batch["x"].shape[0],))
        angle = (t * jnp.pi / 2)[:, None, None]
        eps = jax.random.normal(key_eps, batch["x"].shape)
        pred = network.apply({"params": params}, batch["x"] * jnp.cos(angle) + eps * jnp.sin(angle), t)
        return jnp.mean((pred - eps) ** 2, axis=(1, 2)), {}

    return timed_train_step(network, loss_fn, data, (data["x"][:1], jnp.zeros((1,))))


def unet_peer_job(size: str, batch: int, length: int) -> dict:
    """UNetV0's arguments for the layout of `unet1d/<size>` (same widths, factors, blocks, attention)."""
    kw = models.MODELS.build({"name": "unet1d", "size": size})
    channels = [kw.channels * m for m in kw.channel_mults]
    heads = kw.num_heads
    return {"row": "unet", "batch": batch, "length": length, "channels": channels,
            "factors": [1] + [s[0] for s in kw.strides], "items": [kw.num_res_blocks] * len(channels),
            "attentions": [int(i in kw.attn_levels) for i in range(len(channels))], "heads": heads,
            "head_dim": max(channels) // heads, "modulation_features": 4 * kw.channels}


# --------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------


def interleave(rounds: int, peer: Callable[[], list], ours: Callable[[], list]) -> tuple[list, list]:
    """Alternates the two sides for `rounds` rounds (peer first on even rounds, ours on odd)."""
    peer_s, ours_s = [], []
    for r in range(rounds):
        order = (peer, ours) if r % 2 == 0 else (ours, peer)
        for side in order:
            (peer_s if side is peer else ours_s).extend(side())
    return peer_s, ours_s


def train_row(worker, rounds, label, ours_name, peer_name, ours, peer_job, warmup) -> dict:
    run, compile_s, n_params = ours
    setup = worker.ask({**peer_job, "steps": 0, "warmup": warmup})  # build + warm-up, untimed
    peer_s, ours_s = interleave(rounds, lambda: worker.ask({**peer_job, "steps": 1})["seconds"], lambda: [run()])
    return {"bench": "peers", "row": label, "ours": ours_name, "peer": peer_name, **compare(ours_s, peer_s),
            "unit": "s/step", "compile_s": compile_s, "ours_params": n_params, "peer_params": setup["params"],
            "ours_all": ours_s, "peer_all": peer_s}


def sampler_rows(worker, rounds, batch, budgets, runs=5) -> list[dict]:
    mix = toy.gmm(dim=16)
    x_unit = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (batch, 16)), np.float32)
    probe_x = 3.0 * x_unit[:8]
    probe_sigma = np.geomspace(0.01, 10.0, 8).astype(np.float32)
    reference = gmm_posterior_mean(probe_x, probe_sigma, *(np.asarray(a) for a in (mix.weights, mix.means, mix.stds)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, budget in SAMPLER_RUNS:
            if budget not in budgets:
                continue
            num_steps = steps_for(name, budget)
            cost = nfe(name, num_steps)
            sigmas = np.asarray(get_grid("karras")(num_steps, 0.002, 80.0), np.float32)
            inputs, outputs = os.path.join(tmp, f"in_{name}_{cost}.npz"), os.path.join(tmp, f"out_{name}_{cost}.npz")
            np.savez(inputs, weights=np.asarray(mix.weights), means=np.asarray(mix.means), stds=np.asarray(mix.stds),
                     sigmas=sigmas, x_init=x_unit, probe_x=probe_x, probe_sigma=probe_sigma)
            job = {"row": "sampler", "sampler": name, "inputs": inputs, "outputs": outputs}
            sample = get_sampler(name)
            fn = jax.jit(lambda x, s: sample(mix.denoiser, x * s[0], s, key=jax.random.PRNGKey(0)))
            x, s = jnp.asarray(x_unit), jnp.asarray(sigmas)
            tic = time.perf_counter()
            compiled = fn.lower(x, s).compile()
            compile_s = time.perf_counter() - tic
            ours_x = np.asarray(compiled(x, s))

            def ours():
                out = []
                for _ in range(runs):
                    tic = time.perf_counter()
                    jax.block_until_ready(compiled(x, s))
                    out.append((time.perf_counter() - tic) / cost)
                return out

            worker.ask({**job, "steps": 0, "warmup": 3})
            peer_s, ours_s = interleave(rounds, lambda: [t / cost for t in worker.ask({**job, "steps": runs})["seconds"]],
                                        ours)
            got = np.load(outputs)
            if not np.allclose(got["probe_d"], reference, rtol=1e-4, atol=1e-4):
                raise RuntimeError("the peer's GMM denoiser disagrees with the closed form")
            rows.append({"bench": "peers", "row": f"{name}, NFE {cost}, batch {batch} x 16 (s/NFE)",
                         "ours": f"jitted {name}", "peer": f"k-diffusion sample_{name}", **compare(ours_s, peer_s),
                         "unit": "s/NFE", "compile_s": compile_s,
                         "max_abs_diff": float(np.max(np.abs(got["x"] - ours_x)))})
    return rows


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_rows(text: str) -> list[str]:
    rows = [r.strip() for r in text.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad or not rows:
        raise SystemExit(f"--rows: unknown {bad or text!r}; valid rows: {', '.join(ROWS)} (comma-separated)")
    return rows


def run_rows(worker, names, rounds, quick) -> list[dict]:
    rows = []
    warmup = 4 if quick else 2  # untimed peer steps: torch's first steps are slow (~2 s extra each)

    def emit(row):
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("_all")}), flush=True)

    if "diffwave" in names:
        size, batch, length = ("tiny", 1, 8 * HOP) if quick else ("base", 4, 62 * HOP)
        preset = DIFFWAVE_SIZES[size]
        job = {"row": "diffwave", "batch": batch, "length": length, "n_mels": 80, "layers": preset["residual_layers"],
               "channels": preset["residual_channels"], "dilation_cycle": preset["dilation_cycle"]}
        emit(train_row(worker, rounds, f"DiffWave-{size} train step, {batch} x {length}", f"diffwave/{size}",
                       "lmnt-com/diffwave", diffwave_ours(size, batch, length, 80), job, warmup))
    if "unet" in names:
        size, batch, length = ("tiny", 1, 1024) if quick else ("small", 4, 16384)
        label = f"UNet1D train step, {batch} x {length}"
        job = unet_peer_job(size, batch, length)
        try:
            worker.ask({**job, "steps": 0, "warmup": warmup})  # the peer first: skip the row if it fails
        except PeerError as error:
            emit({"bench": "peers", "row": label, "skipped": str(error)})
        else:
            emit(train_row(worker, rounds, label, f"unet1d/{size}", "audio-diffusion-pytorch UNetV0",
                           unet_ours(size, batch, length), job, warmup))
    if "samplers" in names:
        for row in sampler_rows(worker, rounds, 64 if quick else 2048, (10,) if quick else (10, 50)):
            emit(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {', '.join(ROWS)}")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are reported)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, NFE 10 only: a smoke check")
    parser.add_argument("--update_readme", action="store_true", help="refresh <!-- peers-table --> in README.md")
    parser.add_argument("--venv", default=str(DEFAULT_VENV), help="the peers' venv (created if absent)")
    args = parser.parse_args()
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be >= 1, got {args.rounds}")
    names = parse_rows(args.rows)
    worker = PeerWorker(ensure_venv(pathlib.Path(args.venv)))
    try:
        rows = run_rows(worker, names, args.rounds, args.quick)
    finally:
        worker.close()
    header = (f"Measured on {machine()} by `python benchmarks/peers.py --rounds {args.rounds}"
              f"{' --quick' if args.quick else ''}`: medians of interleaved rounds; peers on torch "
              f"{worker.info['torch']} CPU with {worker.info['threads']} threads. Ratio < 1: diffjax is faster.")
    table = format_table(rows, header=header)
    print(table)
    if args.update_readme:
        replace_block(str(README), "peers-table", table)


if __name__ == "__main__":
    main()

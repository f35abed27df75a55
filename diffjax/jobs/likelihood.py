"""Likelihood of a trained checkpoint on a dataset split: the library behind experiments/likelihood.py.

    summary = evaluate_checkpoint("runs/toy", EvalSpec(num_examples=512, divergence="hutchinson"))

Each host evaluates its own share of every global batch (`process_index` / `process_count`) and
appends one JSON line per batch to `<workdir>/likelihood/<name>.host<i>of<n>.jsonl`, flushed and
fsynced, so an evaluation interrupted part-way resumes at the first batch it has not written.
The first line records the spec and checkpoint step; resuming with different ones is an error.
At the end the per-example values of all hosts are gathered and `<workdir>/likelihood/<name>.json`
gets the means with standard errors.

Data are scored as the process state at `t_min` (`process_log_likelihood`). With a quantiser
(e.g. 'pcm16' for audio) the batch is first encoded to integer codes, then uniformly dequantised, and
`bits` are bits per code, i.e. per audio sample (`diffjax.likelihood.units`); otherwise `bits` are
bits per dimension of the continuous data, which can be negative.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from diffjax import factory, generation, toy
from diffjax.likelihood.elbo import elbo as ve_elbo
from diffjax.likelihood.ode import LikelihoodOptions, check_result, solve_log_likelihood
from diffjax.likelihood.units import bits_per_dim, get_quantiser
from diffjax.training import checkpoint

EVAL_SEED_OFFSET = 10_007  # toy data: the 'eval' split is drawn from seed + this offset


@dataclasses.dataclass(frozen=True)
class EvalSpec:
    """What to evaluate; the likelihood knobs are `LikelihoodOptions` fields."""

    split: str = "eval"                # 'eval' or 'train'
    num_examples: int = 256            # global; rounded down to whole batches
    batch_size: int = 64               # global batch, divisible by the process count
    quantiser: str = ""                # '' (continuous data) or a QUANTISERS name: pcm16, mulaw8, ...
    elbo_samples: int = 0              # > 0: also the ELBO with this many (sigma, eps) draws
    seed: int = 0                      # probes, dequantisation noise and ELBO draws
    step: int = -1                     # checkpoint step; -1 = latest
    ema_index: int = 0                 # which EMA (-1 = raw weights)
    likelihood: tuple = ()             # LikelihoodOptions overrides as (key, value) pairs

    def options(self) -> LikelihoodOptions:
        return LikelihoodOptions(**dict(self.likelihood))

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "likelihood": dict(self.likelihood)}


def _split(dataset, split: str):
    if split not in ("train", "eval"):
        raise ValueError(f"split must be one of ['eval', 'train'], got {split!r}")
    if isinstance(dataset, toy.GaussianMixture):
        return dataset  # sample-based; the split picks the seed
    return dataset.eval if split == "eval" else dataset


def _host_batch(dataset, spec: EvalSpec, config, step: int) -> tuple[np.ndarray, np.ndarray]:
    """`(data [b, ...], global example ids [b])` of this host for batch `step`."""
    index, count = jax.process_index(), jax.process_count()
    if isinstance(dataset, toy.GaussianMixture):
        seed = config.seed + (EVAL_SEED_OFFSET if spec.split == "eval" else 0)
        batch = dataset.batch(step, spec.batch_size, seed=seed, process_index=index, process_count=count)
        data = np.asarray(batch["x"])
    else:
        batch = dataset.batch(step, spec.batch_size, seed=spec.seed, process_index=index,
                              process_count=count)
        if np.any(np.asarray(batch["mask"]) == 0):
            raise ValueError("likelihood evaluation needs unpadded clips (a batch has mask == 0): "
                             "set data.crop_seconds to at most the shortest clip")
        data = np.asarray(batch["x"])
    local = spec.batch_size // count
    ids = step * spec.batch_size + index * local + np.arange(local)
    return data, ids


def make_batch_fn(config, spec: EvalSpec):
    """`fn(params, y, log_det, key, ids) -> dict of [b] arrays`, jitted once: ODE (+ ELBO) of the
    dequantised or continuous batch `y`, as data at the process's `t_min`, in nats and bits."""
    process = factory.build_process(config)
    model, pc = factory.build_model(config), factory.build_precond(config, process)
    options = spec.options()
    alpha = float(process.alpha(jnp.asarray(process.t_min)))
    sigma_min, sigma_max = process.sigma_range()
    num_classes = int(config.model.get("num_classes", 0) or 0)

    def fn(params, y, log_det, key, ids):
        cond = ({"label": jnp.full(y.shape[:1], num_classes, jnp.int32)} if num_classes else None)
        denoiser = factory.build_denoiser(config, params, cond=cond, model=model, pc=pc)
        dim = math.prod(y.shape[1:])
        jacobian = log_det - dim * math.log(alpha)
        key_ode, key_elbo = jax.random.split(key)
        res = solve_log_likelihood(denoiser, y / alpha, key_ode, ids, sigma_min=sigma_min,
                                   sigma_max=sigma_max, options=options)
        res = res.replace(logp=res.logp + jacobian, log_det=res.log_det + jacobian)
        out = {"ode": res.replace(z=None), "logp": res.logp, "bits": bits_per_dim(res.logp, dim)}
        if spec.elbo_samples:
            bound = ve_elbo(denoiser, y / alpha, key_elbo, sigma_min=sigma_min, sigma_max=sigma_max,
                            num_samples=spec.elbo_samples, example_ids=ids)
            out["elbo"] = bound.elbo + jacobian
            out["elbo_bits"] = bits_per_dim(out["elbo"], dim)
        return out

    return jax.jit(fn), options, (sigma_min, sigma_max)


# --------------------------------------------------------------------------------------
# Incremental, resumable results
# --------------------------------------------------------------------------------------


def _read_done(path: str, header: dict) -> dict[int, dict]:
    """Batches already in `path` (a torn last line is dropped); raises if the header differs."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        lines = f.read().splitlines()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # interrupted mid-write: everything after is redone
    if records and records[0].get("header") != header:
        raise ValueError(f"{path} was written with {records[0].get('header')}, not {header}; pass another "
                         f"--name or delete the file")
    done = {r["batch"]: r for r in records[1:]}
    with open(path, "w") as f:  # rewrite without any torn line
        for r in records[:1] + list(done.values()):
            f.write(json.dumps(r) + "\n")
    return done


def _append(path: str, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _mean_stderr(values: np.ndarray) -> dict:
    values = np.asarray(values, np.float64)
    stderr = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return {"mean": float(values.mean()), "stderr": stderr}


def _gather(values: np.ndarray) -> np.ndarray:
    """All hosts' per-example values, in host order."""
    if jax.process_count() == 1:
        return values
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(values)).reshape(-1)


def evaluate_checkpoint(workdir: str, spec: EvalSpec, *, name: str = "likelihood",
                        progress: bool = True) -> dict:
    """Evaluates the checkpoint in `workdir` on `spec.split`; returns and writes the summary."""
    generation.require_waveform_model(checkpoint.load_config(workdir), "an audio likelihood")
    config, params, ckpt_step = checkpoint.load_for_sampling(
            workdir, step=None if spec.step < 0 else spec.step, ema_index=spec.ema_index)
    num_batches = spec.num_examples // spec.batch_size
    if num_batches < 1 or spec.batch_size % jax.process_count():
        raise ValueError(f"need num_examples >= batch_size and batch_size divisible by the process count "
                         f"{jax.process_count()}; got {spec.num_examples}, {spec.batch_size}")
    dataset = _split(factory.build_dataset(config), spec.split)
    quantiser = get_quantiser(spec.quantiser) if spec.quantiser else None
    batch_fn, options, (sigma_min, sigma_max) = make_batch_fn(config, spec)
    out_dir = os.path.join(workdir, "likelihood")
    os.makedirs(out_dir, exist_ok=True)
    host = f"host{jax.process_index()}of{jax.process_count()}"
    path = os.path.join(out_dir, f"{name}.{host}.jsonl")
    header = {"spec": spec.to_json(), "checkpoint_step": int(ckpt_step)}
    done = _read_done(path, header)
    if not done:
        _append(path, {"header": header})
    base_key = jax.random.PRNGKey(spec.seed)
    for step in tqdm.trange(num_batches, disable=not progress, desc="likelihood"):
        if step in done:
            continue
        data, ids = _host_batch(dataset, spec, config, step)
        key = jax.random.fold_in(base_key, step)
        ids_array = jnp.asarray(ids)
        if quantiser is None:
            y, log_det = jnp.asarray(data), jnp.zeros(data.shape[:1])
        else:
            y, log_det = quantiser.dequantise(jax.random.fold_in(key, 1), quantiser.encode(data), ids_array)
        out = jax.device_get(batch_fn(params, y, log_det, jax.random.fold_in(key, 0), ids_array))
        check_result(out["ode"], sigma_min=sigma_min, sigma_max=sigma_max, options=options)
        fields = [k for k in ("logp", "bits", "elbo", "elbo_bits") if k in out]
        record = {"batch": step, "ids": ids.tolist(), "nfe": int(out["ode"].nfe),
                  **{k: np.asarray(out[k]).tolist() for k in fields}}
        _append(path, record)
        done[step] = record
    return _summarise(done, spec, options, ckpt_step, num_batches, os.path.join(out_dir, f"{name}.json"))


def _summarise(done: dict, spec: EvalSpec, options: LikelihoodOptions, ckpt_step: int, num_batches: int,
               path: str) -> dict:
    records = [done[s] for s in range(num_batches)]
    unit = f"bits per {'code (audio sample)' if spec.quantiser else 'dimension'}"
    summary = {"checkpoint_step": int(ckpt_step), "split": spec.split, "quantiser": spec.quantiser or None,
               "unit_bits": unit, "options": dataclasses.asdict(options),
               "num_examples": num_batches * spec.batch_size,
               "nfe_mean": float(np.mean([r["nfe"] for r in records]))}
    for field in ("logp", "bits", "elbo", "elbo_bits"):
        if field in records[0]:
            summary[field] = _mean_stderr(_gather(np.concatenate([r[field] for r in records])))
    if jax.process_index() == 0:
        with open(path + ".tmp", "w") as f:
            json.dump(summary, f, indent=2)
        os.replace(path + ".tmp", path)
    return summary

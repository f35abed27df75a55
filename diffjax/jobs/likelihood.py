"""Likelihood of a trained checkpoint on a dataset split: the job behind experiments/likelihood.py.

    summary = evaluate_likelihood("runs/toy", likelihood_config.get_config())   # configs/likelihood.py

The model comes from `workdir.load` (the only loader) and is scored unconditionally
(`model.denoiser(params)`, every condition null). Each host evaluates its own share of every global
batch (`process_index` / `process_count`) and appends one JSON line per batch to
`<workdir>/likelihood/<name>.host<i>of<n>.jsonl`, flushed and fsynced, so an evaluation interrupted
part-way resumes at the first batch it has not written. The first line records the settings and
checkpoint step; resuming with different ones is an error. At the end the per-example values of all
hosts are gathered and `<workdir>/likelihood/<name>.json` gets the means with standard errors.

Data are scored as the process state at `t_min`. With a quantiser (e.g. 'pcm16' for audio) the batch
is first encoded to integer codes, then uniformly dequantised, and `bits` are bits per code, i.e.
per audio sample (`diffjax.likelihood.units`); otherwise `bits` are bits per dimension of the
continuous data, which can be negative. Only a model whose codec is the identity has a likelihood
of the data itself (`codec.is_identity`); a latent model is refused with the reason
(`require_data_model`: its likelihood would be per latent dimension, not of the audio).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from diffjax import audio, toy  # noqa: F401  (register their datasets)
from diffjax import data
from diffjax.jobs import workdir as workdir_lib
from diffjax.likelihood.elbo import elbo as ve_elbo
from diffjax.likelihood.ode import LikelihoodOptions, check_result, solve_log_likelihood
from diffjax.likelihood.units import QUANTISERS, bits_per_dim
from diffjax.model import DiffusionModel

RESULT_FIELDS = ("logp", "bits", "elbo", "elbo_bits")


def require_data_model(config, model: DiffusionModel) -> None:
    """An exact likelihood is defined on the data itself: only the identity codec is a bijection
    whose Jacobian is known (vector data are fine). Any other codec (a latent autoencoder's, a
    STFT, log-mel) is refused: the ODE likelihood would be per dimension of its z, not of the data."""
    if model.codec.is_identity:
        return
    codec = config.get("codec", {}).get("name", "waveform")
    raise ValueError(
        f"an exact likelihood of the audio needs a waveform model (the identity codec on the data), but this "
        f"model works in the {codec!r} codec's space: one example is z of shape {tuple(model.latent_shape)}, not "
        f"the audio {tuple(model.spec.shape)}. The likelihood there (for a latent model, in the latent space of an "
        "autoencoder) would be in nats per latent dimension of z, not of the audio: the encoder is no bijection "
        "with a known Jacobian, so nothing maps it back to bits per audio sample, and it is not reported. "
        "Train a waveform model with configs/waveform.py: python experiments/train.py --config "
        "configs/waveform.py --workdir runs/waveform")


def quantiser_of(section):
    """The quantiser of `config.quantiser` (QUANTISERS.build), or None for continuous data (name '')."""
    return QUANTISERS.build(section) if section.get("name") else None


def make_batch_fn(model: DiffusionModel, options: LikelihoodOptions, *, elbo_samples: int = 0):
    """`fn(params, y, log_det, key, ids) -> dict of [b] arrays`, jitted once: the PF-ODE (+ ELBO)
    log-likelihood of the dequantised or continuous batch `y`, as data at the process's `t_min`,
    in nats and bits, with every condition null."""
    process = model.process
    alpha = float(process.alpha(jnp.asarray(process.t_min)))
    sigma_min, sigma_max = process.sigma_range()

    def fn(params, y, log_det, key, ids):
        denoiser = model.denoiser(params)
        dim = math.prod(y.shape[1:])
        jacobian = log_det - dim * math.log(alpha)
        key_ode, key_elbo = jax.random.split(key)
        res = solve_log_likelihood(denoiser, y / alpha, key_ode, ids, sigma_min=sigma_min,
                                   sigma_max=sigma_max, options=options)
        res = res.replace(logp=res.logp + jacobian, log_det=res.log_det + jacobian)
        out = {"ode": res.replace(z=None), "logp": res.logp, "bits": bits_per_dim(res.logp, dim)}
        if elbo_samples:
            bound = ve_elbo(denoiser, y / alpha, key_elbo, sigma_min=sigma_min, sigma_max=sigma_max,
                            num_samples=elbo_samples, example_ids=ids)
            out["elbo"] = bound.elbo + jacobian
            out["elbo_bits"] = bits_per_dim(out["elbo"], dim)
        return out

    return jax.jit(fn)


def split_of(dataset: data.AbstractDataset, split: str) -> data.AbstractDataset:
    if split not in ("train", "eval"):
        raise ValueError(f"split must be one of ['eval', 'train'], got {split!r}")
    return dataset.eval if split == "eval" else dataset


def host_batch(dataset: data.AbstractDataset, step: int, batch_size: int, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """`(data [b, ...], global example ids [b])` of this host for batch `step`."""
    index, count = jax.process_index(), jax.process_count()
    batch = dataset.batch(step, batch_size, seed=seed, process_index=index, process_count=count)
    if np.any(np.asarray(batch["mask"]) == 0):
        raise ValueError("likelihood evaluation needs unpadded clips (a batch has mask == 0): "
                         "set the dataset's crop_seconds to at most the shortest clip")
    local = batch_size // count
    ids = step * batch_size + index * local + np.arange(local)
    return np.asarray(batch["x"]), ids


# --------------------------------------------------------------------------------------
# Incremental, resumable results
# --------------------------------------------------------------------------------------


def read_done(path: str, header: dict) -> dict[int, dict]:
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
        raise ValueError(f"{path} was written with {records[0].get('header')}, not {header}; choose another "
                         f"--config.name or delete the file")
    done = {r["batch"]: r for r in records[1:]}
    with open(path, "w") as f:  # rewrite without any torn line
        for r in records[:1] + list(done.values()):
            f.write(json.dumps(r) + "\n")
    return done


def append_line(path: str, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def mean_stderr(values: np.ndarray) -> dict:
    values = np.asarray(values, np.float64)
    stderr = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return {"mean": float(values.mean()), "stderr": stderr}


def gather_hosts(values: np.ndarray) -> np.ndarray:
    """All hosts' per-example values, in host order."""
    if jax.process_count() == 1:
        return values
    from jax.experimental import multihost_utils  # a heavy third-party import, multi-host only
    return np.asarray(multihost_utils.process_allgather(values)).reshape(-1)


def evaluate_likelihood(workdir: str, config, *, step: Optional[int] = None, progress: bool = True) -> dict:
    """Evaluates checkpoint `step` (default the latest) of `workdir` with the settings `config`
    (configs/likelihood.py); returns the summary and writes it to `<workdir>/likelihood/<name>.json`."""
    options = LikelihoodOptions(**config.likelihood)
    quantiser = quantiser_of(config.quantiser)
    num_batches = config.num_examples // config.batch_size
    if num_batches < 1 or config.batch_size % jax.process_count():
        raise ValueError(f"need num_examples >= batch_size and batch_size divisible by the process count "
                         f"{jax.process_count()}; got {config.num_examples}, {config.batch_size}")
    loaded = workdir_lib.load(workdir, step=step, ema=config.ema, check=require_data_model)
    dataset = split_of(data.build_dataset(workdir_lib.data_section_for_reading(loaded.config)), config.split)
    batch_fn = make_batch_fn(loaded.model, options, elbo_samples=config.elbo_samples)
    sigma_min, sigma_max = loaded.model.process.sigma_range()
    out_dir = os.path.join(workdir, "likelihood")
    os.makedirs(out_dir, exist_ok=True)
    host = f"host{jax.process_index()}of{jax.process_count()}"
    path = os.path.join(out_dir, f"{config.name}.{host}.jsonl")
    header = {"config": config.to_dict(), "checkpoint_step": int(loaded.step)}
    done = read_done(path, header)
    if not done:
        append_line(path, {"header": header})
    base_key = jax.random.PRNGKey(config.seed)
    for batch_index in tqdm.trange(num_batches, disable=not progress, desc="likelihood"):
        if batch_index in done:
            continue
        x, ids = host_batch(dataset, batch_index, config.batch_size, loaded.config.seed)
        key = jax.random.fold_in(base_key, batch_index)
        ids_array = jnp.asarray(ids)
        if quantiser is None:
            y, log_det = jnp.asarray(x), jnp.zeros(x.shape[:1])
        else:
            y, log_det = quantiser.dequantise(jax.random.fold_in(key, 1), quantiser.encode(x), ids_array)
        out = jax.device_get(batch_fn(loaded.params, y, log_det, jax.random.fold_in(key, 0), ids_array))
        check_result(out["ode"], sigma_min=sigma_min, sigma_max=sigma_max, options=options)
        fields = [k for k in RESULT_FIELDS if k in out]
        record = {"batch": batch_index, "ids": ids.tolist(), "nfe": int(out["ode"].nfe),
                  **{k: np.asarray(out[k]).tolist() for k in fields}}
        append_line(path, record)
        done[batch_index] = record
    summary = summarise([done[b] for b in range(num_batches)], config, options, loaded.step, config.batch_size)
    if jax.process_index() == 0:
        workdir_lib.write_json_atomically(os.path.join(out_dir, f"{config.name}.json"), summary)
    return summary


def summarise(records: list[dict], config, options: LikelihoodOptions, checkpoint_step: int,
              batch_size: int) -> dict:
    """Means with standard errors over every host's examples, and the settings that made them."""
    quantiser = config.quantiser.get("name") or None
    unit = f"bits per {'code (audio sample)' if quantiser else 'dimension'}"
    summary = {"checkpoint_step": int(checkpoint_step), "split": config.split, "quantiser": quantiser,
               "unit_bits": unit, "options": dataclasses.asdict(options),
               "num_examples": len(records) * batch_size,
               "nfe_mean": float(np.mean([r["nfe"] for r in records]))}
    for field in RESULT_FIELDS:
        if field in records[0]:
            summary[field] = mean_stderr(gather_hosts(np.concatenate([r[field] for r in records])))
    return summary

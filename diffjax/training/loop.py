"""`train_and_evaluate(config, workdir)`: the training loop behind experiments/train.py.

Resumes from the latest checkpoint in the workdir; the data and the per-step keys are derived from
(seed, step), so a resumed run matches an uninterrupted one. A NaN/Inf loss or gradient stops the
run before anything is saved, so the last good checkpoint stays intact.
"""
from __future__ import annotations

import json
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from diffjax import factory
from diffjax.precond import flax_net_fn, make_denoiser
from diffjax.training import checkpoint, evaluation
from diffjax.training.state import TrainState, build_optimizer, ema_decay, num_params
from diffjax.training.step import make_train_step

log = logging.getLogger("diffjax")


class DivergenceError(FloatingPointError):
    """Raised when the loss or a gradient becomes NaN/Inf."""


def data_array(batch: dict) -> jax.Array:
    """The array to model in a dataset batch: 'x' (vectors) or 'audio' (waveforms)."""
    for field in ("x", "audio"):
        if field in batch:
            return jnp.asarray(batch[field])
    raise KeyError(f"a batch needs an 'x' or 'audio' entry, got keys {sorted(batch)}")


def make_loss_fn(model, pc, loss, *, num_classes: int = 0, label_dropout: float = 0.0):
    """`loss_fn(params, batch, key) -> (per-example loss, sigma)`; labels are dropped to the null
    class with probability `label_dropout` for classifier-free guidance (Ho & Salimans 2022)."""

    def loss_fn(params, batch, key):
        key_loss, key_drop = jax.random.split(key)
        cond = None
        if num_classes > 0:
            label = jnp.asarray(batch["label"], jnp.int32)
            drop = jax.random.bernoulli(key_drop, label_dropout, label.shape)
            cond = {"label": jnp.where(drop, num_classes, label)}
        denoiser = make_denoiser(pc, flax_net_fn(model, params), cond)
        return loss.per_example(denoiser, data_array(batch), key_loss, batch.get("mask"))

    return loss_fn


def _write_metrics(path: str, step: int, metrics: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps({"step": step, **metrics}) + "\n")


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains `config` in `workdir` (resuming if possible), then evaluates; returns final metrics."""
    os.makedirs(workdir, exist_ok=True)
    checkpoint.save_config(workdir, config)
    process = factory.build_process(config)
    pc = factory.build_precond(config, process)
    model = factory.build_model(config)
    loss = factory.build_loss(config, process, pc)
    dataset = factory.build_dataset(config)
    train = config.training
    seed = config.seed

    example = data_array(dataset.batch(0, train.batch_size, seed=seed))
    params = factory.init_params(model, example, jax.random.PRNGKey(seed))
    tx = build_optimizer(name=config.optim.name, **factory.kwargs_of(config.optim))
    decays = [ema_decay(h, train.batch_size) for h in train.ema_halflife_examples]
    state = TrainState.create(params, tx, len(decays))
    manager = checkpoint.make_manager(workdir, max_to_keep=train.keep_last, keep_every=train.keep_every)
    restored = checkpoint.restore_latest(manager, state.checkpoint_items())
    if restored is not None:
        state = state.replace_items(restored)
    start = int(state.step)
    log.info("model %s: %d parameters; starting at step %d", config.model.name, num_params(params), start)

    num_classes = int(config.model.get("num_classes", 0))
    loss_fn = make_loss_fn(model, pc, loss, num_classes=num_classes, label_dropout=train.label_dropout)
    train_step = jax.jit(make_train_step(loss_fn, decays), donate_argnums=0)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    base_key = jax.random.PRNGKey(seed)
    progress = tqdm.trange(start, train.num_steps, initial=start, total=train.num_steps,
                           desc="train", disable=not train.progress_bar)
    tic = time.time()
    for step in progress:
        batch = dataset.batch(step, train.batch_size, seed=seed)
        state, metrics = train_step(state, batch, jax.random.fold_in(base_key, step))
        should_log = (step + 1) % train.log_every == 0 or step + 1 == train.num_steps
        should_save = (step + 1) % train.checkpoint_every == 0 or step + 1 == train.num_steps
        if should_log or should_save:  # NaN params keep the loss NaN, so a check here guards saves
            if not bool(metrics["finite"]):
                raise DivergenceError(
                    f"loss or gradient is NaN/Inf at step {step + 1} (loss={float(metrics['loss'])}); "
                    f"stopped without saving, the last good checkpoint in {checkpoint.checkpoint_dir(workdir)}"
                    " is intact. Lower optim.learning_rate or set optim.grad_clip.")
        if should_log:
            scalars = {"loss": float(metrics["loss"]), "grad_norm": float(metrics["grad_norm"]),
                       "steps_per_s": (step + 1 - start) / (time.time() - tic)}
            progress.set_postfix(loss=f"{scalars['loss']:.4f}")
            _write_metrics(metrics_path, step + 1, scalars)
        if should_save:
            checkpoint.save(manager, step + 1, state.checkpoint_items())

    denoiser = make_denoiser(pc, flax_net_fn(model, state.ema_params[0]))
    results = evaluation.evaluate(config, dataset, denoiser, process, workdir)
    _write_metrics(metrics_path, int(state.step), {"eval": results})
    return results

"""`train_and_evaluate(config, workdir)`: the training loop behind experiments/train.py.

- Data parallel over every device of every host (`training.parallel`): batch sharded, params replicated.
- Resumes from the latest checkpoint in the workdir. The data of step s and its key
  `fold_in(PRNGKey(seed), s)` depend only on (seed, s, host), so a run killed at any step and
  resumed ends bitwise identical to an uninterrupted one.
- SIGTERM (preemption) saves a checkpoint at the current step, then exits cleanly.
- A NaN/Inf loss or gradient stops the run before anything is saved: the last good checkpoint stays.
- Several steps per dispatch (`training.steps_per_dispatch`) run as one `lax.scan` on device.
"""
from __future__ import annotations

import logging
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from diffjax import distillation, factory, generation
from diffjax.precond import flax_net_fn, make_denoiser
from diffjax.training import checkpoint, evaluation, parallel
from diffjax.training.state import (TrainState, build_optimizer, ema_decay, learning_rate_schedule,
                                    num_params)
from diffjax.training.step import make_train_step
from diffjax.training.writer import MetricWriter

log = logging.getLogger("diffjax")
NOISE_BUCKETS = (0.05, 0.2, 1.0, 5.0)  # sigma~ edges for the loss-by-noise-level curves


class DivergenceError(FloatingPointError):
    """Raised when the loss or a gradient becomes NaN/Inf."""


def data_array(batch: dict) -> jax.Array:
    """The array to model in a dataset batch: 'x' (vectors) or 'audio' (waveforms)."""
    for field in ("x", "audio"):
        if field in batch:
            return jnp.asarray(batch[field])
    raise KeyError(f"a batch needs an 'x' or 'audio' entry, got keys {sorted(batch)}")


def make_loss_fn(model, pc, loss, *, codec=None, num_classes: int = 0, label_dropout: float = 0.0):
    """`loss_fn(params, batch, key) -> (per-example loss, sigma)`.

    Audio is encoded by `codec` first; labels are dropped to the null class with probability
    `label_dropout` for classifier-free guidance (Ho & Salimans 2022).
    """

    def loss_fn(params, batch, key):
        key_loss, key_drop = jax.random.split(key)
        x0 = data_array(batch)
        mask = batch.get("mask")
        if codec is not None and "audio" in batch:
            waveform_codec = x0.shape == codec.encode(x0).shape
            x0, mask = codec.encode(x0), (mask if waveform_codec else None)
        cond = None
        if num_classes > 0:
            label = jnp.asarray(batch["label"], jnp.int32)
            drop = jax.random.bernoulli(key_drop, label_dropout, label.shape)
            cond = {"label": jnp.where(drop, num_classes, label)}
        denoiser = make_denoiser(pc, flax_net_fn(model, params), cond)
        return loss.per_example(denoiser, x0, key_loss, mask)

    return loss_fn


def make_multi_step(train_step, steps_per_dispatch: int):
    """Runs `steps_per_dispatch` train steps in one `lax.scan` over stacked batches and keys."""
    if steps_per_dispatch == 1:
        return lambda state, batches, keys: train_step(state, jax.tree.map(lambda a: a[0], batches), keys[0])

    def multi_step(state, batches, keys):
        def body(state, inputs):
            state, metrics = train_step(state, *inputs)
            return state, metrics

        state, metrics = jax.lax.scan(body, state, (batches, keys))
        return state, jax.tree.map(lambda m: m[-1], metrics)

    return multi_step


def _loss_by_noise_level(per_example, sigma) -> dict:
    edges = np.asarray(NOISE_BUCKETS)
    bucket = np.searchsorted(edges, np.asarray(sigma))
    names = ([f"<{edges[0]:g}"] + [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:])]
             + [f">{edges[-1]:g}"])
    per_example = np.asarray(per_example)
    return {f"loss_by_sigma/{names[b]}": float(per_example[bucket == b].mean())
            for b in range(len(names)) if np.any(bucket == b)}


class _Preemption:
    """Turns SIGTERM into a flag the loop polls, so it can save and exit cleanly."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def _handle(self, signum, frame):
        self.requested = True
        log.warning("SIGTERM received: saving a checkpoint and stopping")

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _host_batches(dataset, first_step: int, count: int, batch_size: int, seed: int) -> dict:
    """This host's batches for steps [first_step, first_step + count), stacked on a new axis 0."""
    batches = [dataset.batch(s, batch_size, seed=seed, process_index=jax.process_index(),
                             process_count=jax.process_count()) for s in range(first_step, first_step + count)]
    return {k: np.stack([np.asarray(b[k]) for b in batches]) for k in batches[0] if k != "index"}


def _check_finite(metrics, step: int, workdir: str) -> None:
    if not bool(parallel.to_host(metrics["finite"])):
        raise DivergenceError(
            f"loss or gradient is NaN/Inf at step {step} (loss={float(parallel.to_host(metrics['loss']))}); "
            f"stopped without saving, the last good checkpoint in {checkpoint.checkpoint_dir(workdir)} is "
            "intact. Lower optim.learning_rate or set optim.grad_clip.")


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains `config` in `workdir` (resuming if possible), then evaluates; returns final metrics."""
    os.makedirs(workdir, exist_ok=True)
    train = config.training
    mesh = parallel.make_mesh(train.get("num_devices") or None)
    parallel.check_batch_size(train.batch_size, mesh)
    k = int(train.get("steps_per_dispatch", 1))
    for every in ("log_every", "checkpoint_every", "num_steps"):
        if train[every] % k:
            raise ValueError(f"training.{every}={train[every]} must be a multiple of "
                             f"training.steps_per_dispatch={k}")
    if jax.process_index() == 0:
        checkpoint.save_config(workdir, config)
    process = factory.build_process(config)
    pc = factory.build_precond(config, process)
    model = factory.build_model(config)
    loss = factory.build_loss(config, process, pc)
    dataset = factory.build_dataset(config)
    codec = generation.build_codec(config) if generation.is_audio(config) else None
    seed = config.seed

    example = data_array(dataset.batch(0, jax.process_count() * 2, seed=seed,
                                       process_index=jax.process_index(), process_count=jax.process_count()))
    example = codec.encode(example) if codec is not None else example
    params = factory.init_params(model, example, jax.random.PRNGKey(seed))
    # Few-step students (diffjax.distillation): CD, CT, progressive distillation.
    distill = (distillation.make_objective(config, model=model, process=process, pc=pc, codec=codec,
                                           dataset=dataset) if "distill" in config else None)
    if distill is not None:
        params = distill.init_params(params)
    tx = build_optimizer(name=config.optim.name, **factory.kwargs_of(config.optim))
    schedule = learning_rate_schedule(**factory.kwargs_of(
        config.optim, "b1", "b2", "eps", "weight_decay", "grad_clip", "accumulate_steps"))
    decays = [ema_decay(h, train.batch_size) for h in train.ema_halflife_examples]
    state = TrainState.create(params, tx, len(decays))
    manager = checkpoint.make_manager(workdir, max_to_keep=train.keep_last, keep_every=train.keep_every)
    restored = checkpoint.restore_latest(manager, state.checkpoint_items())
    if restored is not None:
        state = state.replace_items(restored)
    state = parallel.replicate(state, mesh)
    start = int(parallel.to_host(state.step))
    log.info("model %s: %d parameters; %d devices, %d hosts; starting at step %d", config.model.name,
             num_params(params), mesh.devices.size, jax.process_count(), start)

    loss_fn = make_loss_fn(model, pc, loss, codec=codec, num_classes=int(config.model.get("num_classes", 0)),
                           label_dropout=train.label_dropout)
    train_step = make_train_step(loss_fn, decays) if distill is None else distill.make_train_step(decays)
    step_fn = make_multi_step(train_step, k)
    train_steps = parallel.jit_data_parallel(step_fn, mesh, stacked=True)
    writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
    base_key = jax.random.PRNGKey(seed)
    progress = tqdm.tqdm(total=train.num_steps, initial=start, desc="train",
                         disable=not train.progress_bar or jax.process_index() != 0)
    tic, tic_step = time.time(), start
    with _Preemption() as preemption:
        for step in range(start, train.num_steps, k):
            batches = parallel.shard_batch(_host_batches(dataset, step, k, train.batch_size, seed), mesh,
                                           stacked=True)
            keys = jnp.stack([jax.random.fold_in(base_key, s) for s in range(step, step + k)])
            state, metrics = train_steps(state, batches, parallel.replicate(keys, mesh))
            done = step + k
            stop = preemption.requested  # read once: a signal between the save and the exit is not lost
            progress.update(k)
            should_log = done % train.log_every == 0 or done == train.num_steps
            should_save = done % train.checkpoint_every == 0 or done == train.num_steps or stop
            if should_log or should_save:  # NaN params keep the loss NaN, so this check guards saves
                _check_finite(metrics, done, workdir)
            if should_log:
                host = parallel.to_host(metrics)
                elapsed = max(time.time() - tic, 1e-9)
                scalars = {"loss": host["loss"], "grad_norm": host["grad_norm"],
                           "learning_rate": float(schedule(done)),
                           "steps_per_s": (done - tic_step) / elapsed,
                           "examples_per_s": (done - tic_step) * train.batch_size / elapsed,
                           **_loss_by_noise_level(host["per_example_loss"], host["sigma"])}
                writer.scalars(done, scalars)
                progress.set_postfix(loss=f"{float(host['loss']):.4f}")
                tic, tic_step = time.time(), done
            if should_save:
                checkpoint.save(manager, done, state.checkpoint_items())
            if train.get("sample_every") and done % train.sample_every == 0 and done < train.num_steps:
                evaluation.log_samples(config, parallel.to_host(state.ema_params[0]), writer, done, dataset)
            if stop:
                log.warning("stopped at step %d after SIGTERM; rerun the same command to resume", done)
                writer.close()
                return {"preempted_at": done}
    progress.close()

    ema_params = parallel.to_host(state.ema_params[0])
    results = evaluation.evaluate(config, dataset, ema_params, workdir, writer, int(parallel.to_host(state.step)))
    writer.record(int(parallel.to_host(state.step)), {"eval": results})
    writer.close()
    return results

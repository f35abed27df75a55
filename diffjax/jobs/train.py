"""`train_and_evaluate(config, workdir)`: the training job behind experiments/train.py.

- Over every device of every host (`training.parallel`): a `data x fsdp x tensor` mesh
  (`config.parallel`); the batch is sharded over data x fsdp, parameters, EMAs and optimiser state
  by the networks' logical-axis annotations (replicated when fsdp = tensor = 1). The compiled
  step's per-device memory is logged at start. Checkpoints restore onto any mesh.
- Post-hoc EMA (EDM2): power-function EMAs of `training.phema.sigma_rels`, snapshotted every
  `training.phema.snapshot_every` steps to `<workdir>/phema_snapshots` (`diffjax.jobs.phema`).
- Resumes from the latest checkpoint in the workdir. The data of step s and its key
  `fold_in(PRNGKey(seed), s)` depend only on (seed, s, host), so a run killed at any step and
  resumed ends bitwise identical to an uninterrupted one.
- SIGTERM (preemption) saves a checkpoint at the current step, then exits cleanly.
- A NaN/Inf loss, gradient or updated parameter stops the run before anything is saved.
- Several steps per dispatch (`training.steps_per_dispatch`) run as one `lax.scan` on device.
- The method (plain diffusion, or distillation when the config has `distill`) supplies only the
  loss, the initial parameters and its method state; everything else is shared.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from diffjax import audio, distillation, losses, sampling, toy  # noqa: F401  (audio, toy: register datasets)
from diffjax import data as data_lib
from diffjax.jobs import autoencoder as autoencoder_job
from diffjax.jobs import defaults
from diffjax.jobs import latents, phema as phema_job, train_eval
from diffjax.jobs.workdir import (checkpoint_dir, is_autoencoder, load, load_config, model_for, save_config,
                                  save_spec)
from diffjax.model import data_spec, learns_weighting
from diffjax.sampling import SAMPLERS
from diffjax.training import checkpoint, parallel, phema
from diffjax.training.objective import diffusion_loss_fn
from diffjax.training.state import TrainState, build_optimizer, ema_decay, learning_rate_schedule, num_params
from diffjax.training.step import all_finite, make_train_step
from diffjax.training.writer import MetricWriter

log = logging.getLogger("diffjax")
NOISE_BUCKETS = (0.05, 0.2, 1.0, 5.0)  # sigma~ edges for the loss-by-noise-level curves
MODEL_SECTIONS = ("sde", "precond", "model", "codec", "conditioning", "autoencoder")  # what the weights mean


class DivergenceError(FloatingPointError):
    """Raised when the loss, a gradient or an updated parameter becomes NaN/Inf."""


def make_multi_step(train_step, steps_per_dispatch: int):
    """Runs `steps_per_dispatch` train steps in one `lax.scan` over stacked batches and keys."""
    if steps_per_dispatch == 1:
        return lambda state, batches, keys: train_step(state, jax.tree.map(lambda a: a[0], batches), keys[0])

    def multi_step(state, batches, keys):
        state, metrics = jax.lax.scan(lambda s, inputs: train_step(s, *inputs), state, (batches, keys))
        return state, jax.tree.map(lambda m: m[-1], metrics)

    return multi_step


def loss_by_noise_level(per_example, sigma) -> dict:
    edges = np.asarray(NOISE_BUCKETS)
    bucket = np.searchsorted(edges, np.asarray(sigma))
    names = ([f"<{edges[0]:g}"] + [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:])]
             + [f">{edges[-1]:g}"])
    per_example = np.asarray(per_example)
    return {f"loss_by_sigma/{names[b]}": float(per_example[bucket == b].mean())
            for b in range(len(names)) if np.any(bucket == b)}


STEP_METRICS = ("loss", "grad_norm", "finite", "per_example_loss", "sigma")


def loss_terms(host_metrics: dict) -> dict:
    """Per-noise-level losses (diffusion: aux 'sigma') and the mean of every other aux term
    (the autoencoder's 'stft', 'kl', ...)."""
    terms = {f"terms/{k}": float(np.mean(v)) for k, v in host_metrics.items() if k not in STEP_METRICS}
    if "sigma" in host_metrics:
        terms.update(loss_by_noise_level(host_metrics["per_example_loss"], host_metrics["sigma"]))
    return terms


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


def host_batches(dataset, first_step: int, count: int, batch_size: int, seed: int, prepare: Callable) -> dict:
    """This host's batches for steps [first_step, first_step + count), each through `prepare` (what
    the train step reads: arrays only), stacked on a new axis 0."""
    batches = [prepare(dataset.batch(s, batch_size, seed=seed, process_index=jax.process_index(),
                                     process_count=jax.process_count()))
               for s in range(first_step, first_step + count)]
    return jax.tree.map(lambda *leaves: np.stack([np.asarray(v) for v in leaves]), *batches)


def audio_only(batch: dict) -> dict:
    """The data of a batch ('x', 'mask') without its attributes (the autoencoder's `prepare`)."""
    return {k: np.asarray(batch[k]) for k in ("x", "mask")}


def check_unchanged(workdir: str, config) -> None:
    """Refuses a config whose model, process, parameterisation, codec or conditioning differ from
    the workdir's (its checkpoints would mean something else), with the differing keys."""
    if not os.path.exists(os.path.join(workdir, "config.json")):
        return
    stored = load_config(workdir)
    changes = []
    for section in MODEL_SECTIONS:
        old = stored[section].to_dict() if section in stored else {}
        new = config[section].to_dict() if section in config else {}
        changes += [f"{section}.{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                    if old.get(k) != new.get(k)]
    if learns_weighting(stored) != learns_weighting(config):  # the log-variance head is part of the weights
        changes.append(f"loss.weighting: {stored.loss.weighting!r} -> {config.loss.weighting!r}")
    if changes:
        raise ValueError(f"{workdir} holds a model trained with another config; changed: {'; '.join(changes)}. "
                         "Use a new --workdir (nothing was written).")


def validate_sampling(sampling_config, model) -> None:
    """Checks the sampler, grid, level count and grid options at start (not at the final
    evaluation): unknown names list the valid ones; impossible values name the key."""
    steps = sampling_config.num_steps
    if int(steps) != steps or steps < 1:
        raise ValueError(f"sampling.num_steps must be a positive integer, got {steps!r}")
    options = dict(sampling_config.get("grid_options") or {})
    sampling.validate_grid(sampling.grid_for_process(model.process, sampling_config.grid, int(steps), **options))
    sampling.get_sampler(sampling_config.sampler)
    if SAMPLERS.meta(sampling_config.sampler)["nfe"] is not None:
        sampling.nfe(sampling_config.sampler, int(steps))


def _check_steps(train, k: int) -> None:
    if int(train.batch_size) < 1:
        raise ValueError(f"training.batch_size must be >= 1, got {train.batch_size}")
    for every in ("log_every", "checkpoint_every", "num_steps"):
        if train[every] % k:
            raise ValueError(f"training.{every}={train[every]} must be a multiple of training.steps_per_dispatch={k}")


def _check_finite(metrics, step: int, workdir: str) -> None:
    if not bool(parallel.to_host(metrics["finite"])):
        raise DivergenceError(
            f"loss, gradient or updated parameters are NaN/Inf at step {step} "
            f"(loss={float(parallel.to_host(metrics['loss']))}); stopped without saving it: the checkpoints "
            f"in {checkpoint_dir(workdir)} are intact (every save is checked finite first). Lower optim.learning_rate or set "
            "optim.grad_clip.")


def load_teacher(distill):
    """The distillation teacher's workdir through the one loader, or None when the method needs none."""
    workdir = distill.get("teacher_workdir", "")
    if not distillation.needs_teacher(distill) or not workdir:
        return None  # make_objective raises "distill.teacher_workdir is empty" when it needs one
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"distill.teacher_workdir={workdir!r} does not exist: train the teacher "
                                "first (experiments/train.py --workdir ...)")
    try:
        return load(workdir, ema=int(distill.get("teacher_ema", 0)))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"distill.teacher_workdir={workdir!r} has no teacher checkpoint: {error}") from None


def fine_tuning_start(source_workdir: str, params):
    """The EMA weights of another workdir, to fine-tune from (`training.init_from`); they must have
    this model's shapes. Used only when this workdir has no checkpoint yet (a resume wins)."""
    source = load(source_workdir).params
    shapes = lambda tree: jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), tree)  # noqa: E731
    if shapes(source) != shapes(params):
        raise ValueError(f"training.init_from={source_workdir!r} holds weights of another shape than this "
                         "config's model; fine-tune with the same model section")
    log.info("fine-tuning from the EMA weights of %s", source_workdir)
    return source


def with_block_remat(config):
    """A copy of `config` whose network rematerialises each block (`parallel.remat='block'`); the
    parameter tree is unchanged, so the stored config keeps `model.remat` as given."""
    built = config.copy_and_resolve_references()
    with built.unlocked():
        built.model.remat = True
    return built


def model_param_shardings(model, params, mesh):
    """The params' shardings from the model's logical axes (`DiffusionModel.logical_axes`); a method
    that trains another tree (none today) is replicated."""
    axes = model.logical_axes()
    if jax.tree.structure(axes, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec)) != jax.tree.structure(params):
        log.warning("the trained parameters differ from the model's: replicating them")
        return jax.tree.map(lambda _: parallel.replicated_sharding(mesh), params)
    return parallel.param_shardings(axes, params, mesh)


def phema_settings(train) -> tuple[tuple[float, ...], int]:
    """(`training.phema.sigma_rels`, `training.phema.snapshot_every`); snapshots need sigma_rels."""
    section = train.get("phema") or {}
    sigma_rels = tuple(float(s) for s in section.get("sigma_rels", ()))
    every = int(section.get("snapshot_every", 0) or 0)
    if every < 0 or (every and not sigma_rels):
        raise ValueError(f"training.phema.snapshot_every={every} needs training.phema.sigma_rels (e.g. (0.05, 0.1)) "
                         "and must be >= 0 (0: no snapshots)")
    return sigma_rels, every


def compile_logged(step_fn, state, batches, keys):
    """Compiles the jitted step for these arguments and logs its per-device memory (params,
    optimiser state, temporaries, peak) and compile time."""
    tic = time.time()
    compiled = step_fn.lower(state, batches, keys).compile()
    report = parallel.memory_report(compiled, state)
    log.info("compiled the train step in %.1f s; per device: %s", time.time() - tic,
             ", ".join(f"{name} {value / 2**20:.1f} MiB" for name, value in report.items()))
    return compiled


@dataclasses.dataclass(frozen=True)
class Method:
    """What a training method supplies to the shared loop (everything else is common).

    Attributes:
      dataset: the batches it trains on (pre-encoded latents for a codec with `encode_once`).
      prepare: a dataset batch -> the arrays the train step reads (host side: captions tokenised).
      loss_fn, update_method_state: the generic train step's contract (`diffjax.training.step`).
      init_params: fresh params -> the params to start from (a distillation student: the teacher's).
      init_method_state: params -> the state the method keeps beside the weights.
      log_samples: (params, writer, step) -> None, periodic TensorBoard media.
      evaluate: (params, step) -> metrics, at the end of training.
    """

    dataset: Any
    prepare: Callable
    loss_fn: Callable
    init_params: Callable
    init_method_state: Callable
    update_method_state: Optional[Callable]
    log_samples: Callable
    evaluate: Callable


def training_data(config, model, dataset):
    """The dataset itself, or its pre-encoded latents when the codec encodes once (cached)."""
    if not getattr(model.codec, "encode_once", False):
        return dataset
    passes = int(config.training.get("pre_encode_passes", 1))
    latent_data, path, reused = latents.cached_latents(dataset, model.codec, config.data.to_dict(), passes=passes,
                                                       cache_dir=config.data.get("cache_dir"))
    log.info("training on %s latents from %s", "cached" if reused else "freshly encoded", path)
    return latent_data


def diffusion_method(config, model, dataset, workdir: str) -> Method:
    """Plain diffusion, or distillation when the config has `distill`."""
    validate_sampling(config.sampling, model)
    train_data = training_data(config, model, dataset)
    log_samples = lambda p, writer, step: train_eval.log_samples(config, model, p, writer, step)  # noqa: E731
    evaluate = lambda p, step: train_eval.evaluate(config, model, p, dataset, workdir, step)  # noqa: E731
    if "distill" not in config:
        loss = losses.make_loss(process=model.process, precond=model.precond, **config.loss.to_dict())
        return Method(train_data, model.host_batch, diffusion_loss_fn(model, loss), lambda p: p, lambda p: {}, None, log_samples, evaluate)
    objective = distillation.make_objective(config, model=model, teacher=load_teacher(config.distill), dataset=dataset)
    return Method(train_data, model.host_batch, objective.loss_fn, objective.init_params, objective.init_method_state,
                  objective.update_method_state, log_samples, evaluate)


def autoencoder_method(config, model, dataset, workdir: str) -> Method:
    """The audio autoencoder (`configs/autoencoder.py`): reconstruction losses, optional GAN."""
    objective = autoencoder_job.build_objective(config, model)
    example = jax.numpy.zeros((1,) + model.spec.shape, jax.numpy.float32)
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0xD15C)
    return Method(dataset, audio_only, objective.loss_fn, lambda p: p, lambda p: objective.init_method_state(p, key, example),
                  objective.update_method_state,
                  lambda p, writer, step: autoencoder_job.log_reconstructions(model, p, dataset, writer, step),
                  lambda p, step: autoencoder_job.evaluate(config, model, p, dataset, workdir, step))


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains `config` in `workdir` (resuming if possible), then evaluates; returns final metrics."""
    job_start = time.time()
    config = defaults.resolve_decay_steps(config)  # None: the steps after warmup
    train = config.training
    budget_s = 60.0 * float(train.get("max_minutes", 0) or 0)
    k = int(train.get("steps_per_dispatch", 1))
    _check_steps(train, k)
    mesh = parallel.mesh_from_config(config)
    parallel.check_batch_size(train.batch_size, mesh)
    remat = parallel.check_remat((config.get("parallel") or {}).get("remat", "none"))
    dataset = data_lib.build_dataset(config.data)
    model = model_for(with_block_remat(config) if remat == "block" else config, data_spec(dataset), workdir=workdir,
                      dataset=dataset)
    check_unchanged(workdir, config)
    method = (autoencoder_method if is_autoencoder(config) else diffusion_method)(config, model, dataset, workdir)
    if not is_autoencoder(config):
        defaults.check_sigma_data(config, model, method.dataset)  # warns when the config's is > 25 % off
    if jax.process_index() == 0:
        save_config(workdir, config)
        save_spec(workdir, model.spec)
    seed = config.seed
    manager = checkpoint.make_manager(checkpoint_dir(workdir), max_to_keep=train.keep_last, keep_every=train.keep_every)
    params = method.init_params(model.init(jax.random.PRNGKey(seed)))
    if train.get("init_from") and not manager.all_steps():
        params = fine_tuning_start(train.init_from, params)
    tx = build_optimizer(**config.optim.to_dict())
    schedule = learning_rate_schedule(**{k_: v for k_, v in config.optim.items() if k_ in (
        "learning_rate", "warmup_steps", "decay", "decay_steps", "end_factor")})
    decays = [ema_decay(h, train.batch_size) for h in train.ema_halflife_examples]
    sigma_rels, snapshot_every = phema_settings(train)
    gammas = [phema.sigma_rel_to_gamma(s) for s in sigma_rels]
    state = TrainState.create(params, tx, len(decays), method.init_method_state(params), num_phema=len(gammas))
    shardings = parallel.state_shardings(state, model_param_shardings(model, params, mesh), mesh)
    state = parallel.place(state, shardings)  # then restore into it: a checkpoint lands on this mesh
    restored = checkpoint.restore_latest(manager, state.checkpoint_items(), accept=lambda items: bool(all_finite(items)))
    if restored is not None:
        state = state.replace_items(restored)
    start = int(parallel.to_host(state.step))
    log.info("model %s: %d parameters; mesh %s over %d hosts; starting at step %d", type(model.network).__name__,
             num_params(params), dict(mesh.shape), jax.process_count(), start)

    train_step = make_train_step(method.loss_fn, decays, update_method_state=method.update_method_state,
                                 phema_gammas=gammas, project_params=getattr(model, "project_params", None), remat=remat)
    train_steps = parallel.jit_sharded(make_multi_step(train_step, k), mesh, shardings, stacked=True)
    snapshots = phema_job.snapshot_manager(workdir) if snapshot_every else None
    compiled = None
    writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
    base_key = jax.random.PRNGKey(seed)
    progress = tqdm.tqdm(total=train.num_steps, initial=start, desc="train",
                         disable=not train.progress_bar or jax.process_index() != 0)
    tic, tic_step = time.time(), start
    with _Preemption() as preemption:
        for step in range(start, train.num_steps, k):
            batches = parallel.shard_batch(host_batches(method.dataset, step, k, train.batch_size, seed, method.prepare), mesh, stacked=True)
            keys = jnp.stack([jax.random.fold_in(base_key, s) for s in range(step, step + k)])
            keys = parallel.replicate(keys, mesh)
            if compiled is None:  # compile once, explicitly, to log what each device holds
                compiled = compile_logged(train_steps, state, batches, keys)
            state, metrics = compiled(state, batches, keys)
            done = step + k
            stop = preemption.requested  # read once: a signal between the save and the exit is not lost
            out_of_time = budget_s > 0 and time.time() - job_start > budget_s
            progress.update(k)
            should_log = done % train.log_every == 0 or done == train.num_steps or out_of_time
            should_save = done % train.checkpoint_every == 0 or done == train.num_steps or stop or out_of_time
            if should_log or should_save:  # non-finite parameters stay non-finite, so this guards saves
                _check_finite(metrics, done, workdir)
            if should_log:
                host = parallel.to_host(metrics)
                elapsed = max(time.time() - tic, 1e-9)
                scalars = {"loss": host["loss"], "grad_norm": host["grad_norm"],
                           "learning_rate": float(schedule(done)), "steps_per_s": (done - tic_step) / elapsed,
                           "examples_per_s": (done - tic_step) * train.batch_size / elapsed,
                           **loss_terms(host)}
                writer.scalars(done, scalars)
                progress.set_postfix(loss=f"{float(host['loss']):.4f}")
                tic, tic_step = time.time(), done
            if should_save:
                checkpoint.save(manager, done, state.checkpoint_items())
            if snapshots is not None and (done % snapshot_every == 0 or done == train.num_steps):
                _check_finite(metrics, done, workdir)
                phema_job.save_snapshot(snapshots, done, state.phema_params, sigma_rels)
            if train.get("sample_every") and done % train.sample_every == 0 and done < train.num_steps:
                method.log_samples(parallel.to_host(state.ema_params[0]), writer, done)
            if stop:
                log.warning("stopped at step %d after SIGTERM; rerun the same command to resume", done)
                writer.close()
                return {"preempted_at": done}
            if out_of_time:
                log.warning("training.max_minutes=%g reached at step %d of %d: evaluating this checkpoint (rerun "
                            "with a larger budget to continue)", train.max_minutes, done, train.num_steps)
                break
    progress.close()

    final_step = int(parallel.to_host(state.step))
    results = method.evaluate(parallel.to_host(state.ema_params[0]), final_step)
    writer.record(final_step, {"eval": results})
    writer.close()
    return results

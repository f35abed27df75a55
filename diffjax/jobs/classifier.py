"""Training and loading the evaluation classifier: the job behind experiments/train_classifier.py.

    results = train_classifier(config, "runs/classifier")   # configs/classifier.py; resumes
    clf = load_classifier("runs/classifier")                 # diffjax.evaluation.classifier.Classifier
    emb = evaluation.get_embedder("classifier", classifier=clf)

A classifier workdir is laid out as a diffusion one (`jobs.workdir`): `config.json`, `model.json`
(what one data example is: sample rate, classes), `checkpoints/` (the training checkpoint manager),
plus `metrics.jsonl` and `classifier_eval.json` (held-out accuracy, per class). It trains with the
generic `training.step.make_train_step` on `evaluation.classifier.classifier_loss_fn`.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Optional

import jax
import jax.numpy as jnp

from diffjax import audio, toy  # noqa: F401  (register their datasets)
from diffjax import data
from diffjax.evaluation import classifier as classifier_lib
from diffjax.jobs import workdir as workdir_lib
from diffjax.model import DataSpec, data_spec
from diffjax.training import checkpoint
from diffjax.training.state import TrainState, build_optimizer, ema_decay, num_params
from diffjax.training.step import make_train_step

log = logging.getLogger("diffjax")
EVAL_FILE = "classifier_eval.json"
METRICS_FILE = "metrics.jsonl"
LOGGED = ("loss", "grad_norm", "train_accuracy")


def init_params(model: classifier_lib.AudioClassifier, spec: DataSpec, seed: int):
    """Fresh parameters (they do not depend on the clip length: the network pools over time)."""
    return jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.zeros((1,) + tuple(spec.shape)))["params"]


def abstract_params(model: classifier_lib.AudioClassifier, spec: DataSpec):
    return jax.eval_shape(lambda: init_params(model, spec, 0))


def append_metrics(path: str, step: int, metrics: dict) -> None:
    scalars = {k: float(metrics[k]) for k in LOGGED}
    with open(path, "a") as f:
        f.write(json.dumps({"step": step, **scalars}) + "\n")


def train_classifier(config, workdir: str) -> dict:
    """Trains on `config` (configs/classifier.py), resuming from the workdir's latest checkpoint, and
    returns the eval-split accuracy of the EMA weights, also written to `<workdir>/classifier_eval.json`."""
    dataset = data.build_dataset(config.data)
    spec = data_spec(dataset)
    model = classifier_lib.build_classifier(config, spec)
    os.makedirs(workdir, exist_ok=True)
    workdir_lib.save_config(workdir, config)
    workdir_lib.save_spec(workdir, spec)
    train = config.training
    params = init_params(model, spec, config.seed)
    state = TrainState.create(params, build_optimizer(**config.optim), 1)
    manager = checkpoint.make_manager(workdir_lib.checkpoint_dir(workdir), max_to_keep=2)
    restored = checkpoint.restore_latest(manager, state.checkpoint_items())
    if restored is not None:
        state = state.replace_items(restored)
    log.info("classifier: %d parameters, %d classes; starting at step %d", num_params(params),
             model.num_classes, int(state.step))
    loss_fn = classifier_lib.classifier_loss_fn(
            model, **classifier_lib.augment_options(train, spec.sample_rate))
    decays = [ema_decay(train.ema_halflife_examples, train.batch_size)]
    step_fn = jax.jit(make_train_step(loss_fn, decays), donate_argnums=0)
    base_key = jax.random.PRNGKey(config.seed)
    metrics_path = os.path.join(workdir, METRICS_FILE)
    for step in range(int(state.step), train.num_steps):
        batch = dataset.batch(step, train.batch_size, seed=config.seed)
        batch = {"x": batch["x"], "label": batch["label"]}  # one jit signature for all datasets
        state, metrics = step_fn(state, batch, jax.random.fold_in(base_key, step))
        last = step + 1 == train.num_steps
        log_now = (step + 1) % train.log_every == 0 or last
        save_now = (step + 1) % train.checkpoint_every == 0 or last
        if (log_now or save_now) and not bool(metrics["finite"]):
            raise FloatingPointError(f"classifier loss is {float(metrics['loss'])} at step {step + 1}; "
                                     "the last good checkpoint is kept")
        if log_now:
            append_metrics(metrics_path, step + 1, metrics)
        if save_now:
            checkpoint.save(manager, step + 1, state.checkpoint_items())
    results = classifier_lib.accuracy_on(model, state.ema_params[0], dataset.eval)
    results["step"] = int(state.step)
    workdir_lib.write_json_atomically(os.path.join(workdir, EVAL_FILE), results)
    return results


def load_classifier(workdir: str, *, step: Optional[int] = None) -> classifier_lib.Classifier:
    """The EMA weights of a classifier workdir (latest checkpoint unless `step`) with their network."""
    config, spec = workdir_lib.load_config(workdir, required=("classifier", "data", "training")), workdir_lib.load_spec(workdir)
    model = classifier_lib.build_classifier(config, spec)
    manager = checkpoint.make_manager(workdir_lib.checkpoint_dir(workdir))
    step = manager.latest_step() if step is None else int(step)
    if step is None:
        raise FileNotFoundError(f"no classifier checkpoint in {workdir_lib.checkpoint_dir(workdir)}; "
                                "train one with experiments/train_classifier.py")
    target = checkpoint.on_first_local_device({"ema_params": (abstract_params(model, spec),)})
    items = checkpoint.restore_partial(manager, step, target)
    return classifier_lib.Classifier(model=model, params=items["ema_params"][0], source=os.path.abspath(workdir),
                                     step=int(step), class_names=tuple(spec.class_names))

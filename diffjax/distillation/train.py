"""`make_objective(config, ...)`: a distillation method as the generic train step's loss and state.

The training job keeps all its infrastructure (data parallelism, resume, EMAs, logging, NaN guard,
evaluation); distillation supplies the initial parameters, its loss and its method state:

    teacher = jobs.workdir.load(config.distill.teacher_workdir, ema=config.distill.teacher_ema)
              if distillation.needs_teacher(config.distill) else None
    objective = make_objective(config, model=student_model, teacher=teacher, dataset=dataset)
    params = objective.init_params(model.init(key))            # the teacher's weights (CD, progressive)
    state = TrainState.create(params, tx, num_emas, objective.init_method_state(params))
    train_step = make_train_step(objective.loss_fn, decays,
                                 update_method_state=objective.update_method_state)

What a method keeps beside the weights lives in `TrainState.method_state`, never in an EMA slot
(every entry of `training.ema_halflife_examples` is a real EMA):

    kind 'cd'/'ct', target 'ema'   {"target": theta-}: the target network (Song et al. 2023, Alg. 2),
                                   theta- <- mu theta- + (1 - mu) theta after every step, with mu =
                                   `distill.target_decay` (0.95 in the paper) or mu(k) of the 'ct'
                                   curriculum
    target 'online'                {}: theta- = stop_gradient(theta), mu = 0 (iCT, Song & Dhariwal 2023)
    kind 'progressive'             {"round_teacher": params}: the current round's teacher, replaced by
                                   the student at the end of every round, frozen otherwise

Layer 3 of DESIGN.md: this module takes a model object and a loaded teacher; it reads no workdir
and imports neither the model module nor the training library (it only relies on their shapes).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from diffjax.distillation.distances import get_distance
from diffjax.distillation.objectives import ConsistencyLoss, ProgressiveLoss
from diffjax.distillation.schedules import get_curriculum, get_level_sampling, get_pair_weighting
from diffjax.distillation.teacher import check_compatible, solver_step
from diffjax.precond import PRECONDS

log = logging.getLogger("diffjax")
KINDS = ("cd", "ct", "progressive")
TARGETS = ("ema", "online")

# The generic train step's contract (`diffjax.training.step`):
# loss_fn(params, batch, key, extra) -> (loss [B], {"sigma": [B]}), extra = {"step", "method_state"}
LossFn = Callable[[Any, dict, jax.Array, dict], tuple]
# update_method_state(method_state, new_params, step, batch, key) -> method_state
MethodUpdate = Callable[[Any, Any, jax.Array, dict, jax.Array], Any]


def _keep(method_state, params, step, batch, key):
    return method_state


@dataclasses.dataclass(frozen=True)
class Objective:
    """A distillation method as the generic train step sees it.

    Attributes:
      kind: 'cd', 'ct' or 'progressive'.
      loss_fn: `loss_fn(params, batch, key, extra) -> (loss [B], {"sigma": [B]})`.
      update_method_state: `(method_state, new_params, step, batch, key) -> method_state`, after each update.
      state_names: the entries of the method state, each starting as a copy of the initial params.
      initial_params: parameters to start from (the teacher's), or None to keep the fresh init.
    """

    kind: str
    loss_fn: LossFn
    update_method_state: MethodUpdate = _keep
    state_names: tuple[str, ...] = ()
    initial_params: Optional[Any] = None

    def init_params(self, params):
        """The teacher's weights when the student starts from them (same structure required)."""
        if self.initial_params is None:
            return params
        got = jax.tree.map(lambda a: (a.shape, str(a.dtype)), self.initial_params)
        want = jax.tree.map(lambda a: (a.shape, str(a.dtype)), params)
        if got != want:
            raise ValueError("distill.init_from_teacher: the teacher's parameters do not fit the student's "
                             "model; give the student the teacher's config.model or set init_from_teacher=False")
        return self.initial_params

    def init_method_state(self, params) -> dict:
        """`{}`, `{"target": params}` or `{"round_teacher": params}` (copies of `params`)."""
        return {name: jax.tree.map(jnp.copy, params) for name in self.state_names}


# --------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------


def _kwargs(section, name: str) -> dict:
    value = section.get(name)
    return dict(value.to_dict() if callable(getattr(value, "to_dict", None)) else (value or {}))


def needs_teacher(distill) -> bool:
    """Whether `config.distill` distils a trained teacher, i.e. whether the job must load
    `distill.teacher_workdir` (CT has none; `exact_teacher` uses the data's closed form)."""
    return distill.get("kind", "") != "ct" and not distill.get("exact_teacher", False)


def _ema(target, params, decay):
    return jax.tree.map(lambda t, p: decay * t + (1.0 - decay) * p, target, params)


def _teacher(config, model, teacher, dataset):
    """`(teacher denoiser, params to start from or None)` of `config.distill`."""
    d = config.distill
    if d.get("exact_teacher", False):
        closed_form = None if dataset is None else dataset.closed_form
        if closed_form is None:
            raise ValueError("distill.exact_teacher needs toy data with a closed-form denoiser "
                             f"(config.data.name 'gaussian' or 'gmm'), got {config.data.name!r}")
        return closed_form.denoiser, None
    workdir = d.get("teacher_workdir", "")
    if teacher is None:
        raise ValueError("distill.teacher_workdir is empty: give the teacher's training workdir "
                         "(or distill.exact_teacher=True for toy data)")
    check_compatible(teacher.config, config, workdir)
    if teacher.model.conditioners:
        raise ValueError(f"the teacher in {workdir!r} is class-conditional "
                         f"({sorted(teacher.model.conditioners)}); distillation supports unconditional "
                         "teachers only")
    denoiser = teacher.model.denoiser(teacher.params)
    if not d.get("init_from_teacher", True):
        return denoiser, None
    if teacher.model.network != model.network:
        raise ValueError(f"distill.init_from_teacher: the student's network {model.network} differs from the "
                         f"teacher's {teacher.model.network}; use the teacher's config.model or set "
                         "distill.init_from_teacher=False")
    return denoiser, teacher.params


def _distance(d, model):
    """The distance on model-space arrays; through the codec's `decode` when it needs waveforms."""
    distance = get_distance(d.get("distance", "l2"), **_kwargs(d, "distance_kwargs"))
    if not distance.needs_waveform or model.codec.is_identity:
        return distance
    length = model.spec.shape[0]
    return lambda x, y: distance(model.codec.decode(x, length), model.codec.decode(y, length))


def _target_decay(d, curriculum, total: int):
    """`mu(step)`: the curriculum's (CT's adaptive mu(k)) or the configured `distill.target_decay`."""
    configured = d.get("target_decay")
    if curriculum.target_decay(jnp.zeros((), jnp.int32), total) is None:
        if configured is None:
            raise ValueError("distill.target='ema' needs distill.target_decay (mu, 0.95 in Song et al. "
                             "2023): the target network is no longer kept in the last EMA of "
                             "training.ema_halflife_examples, which now holds only real EMAs")
        if not 0.0 <= float(configured) <= 1.0:
            raise ValueError(f"distill.target_decay must be in [0, 1], got {configured}")

    def decay(step):
        mu = curriculum.target_decay(step, total)
        return float(configured) if mu is None else mu

    return decay


# --------------------------------------------------------------------------------------
# Config -> objective
# --------------------------------------------------------------------------------------


def make_objective(config, *, model, teacher=None, dataset=None) -> Objective:
    """Builds the objective of `config.distill` (see configs/distill_*.py for every key).

    Args:
      config: the student's config; reads `distill`, `training.num_steps`, `precond.name`, `data.name`
        and (progressive) `sampling`.
      model: the student's model object (`diffjax.model.DiffusionModel`); its denoiser is the student.
      teacher: the loaded teacher (`diffjax.jobs.workdir.Loaded`: `model`, `params`, `config`), or
        None for CT and `distill.exact_teacher` (see `needs_teacher`).
      dataset: the training dataset; `exact_teacher` uses its `closed_form`.
    """
    d = config.distill
    kind = d.get("kind", "")
    if kind not in KINDS:
        raise ValueError(f"distill.kind must be one of {list(KINDS)}, got {kind!r}")
    if model.conditioners:
        raise ValueError(f"distillation trains unconditional students; remove config.conditioning "
                         f"({sorted(model.conditioners)})")
    sigma_min, sigma_max = model.process.sigma_range()

    def student(params):
        return model.denoiser(params)

    teacher_fn, initial = (None, None) if kind == "ct" else _teacher(config, model, teacher, dataset)
    if kind == "progressive":
        return _progressive(config, model, student, teacher_fn, initial, sigma_min, sigma_max)
    if not PRECONDS.meta(config.precond.name).get("boundary_identity", False):
        raise ValueError(f"distill.kind={kind!r} needs the boundary condition f(x, sigma_min) = x: set "
                         f"config.precond.name='consistency' (got {config.precond.name!r})")
    target = d.get("target", "ema")
    if target not in TARGETS:
        raise ValueError(f"distill.target must be one of {list(TARGETS)}, got {target!r}")
    curriculum = get_curriculum(d.get("curriculum", "fixed"), **_kwargs(d, "curriculum_kwargs"))
    total = int(config.training.num_steps)
    loss = ConsistencyLoss(
        sigma_min=sigma_min, sigma_max=sigma_max, curriculum=curriculum, total_steps=total,
        level_sampling=get_level_sampling(d.get("level_sampling", "uniform"),
                                          **_kwargs(d, "level_sampling_kwargs")),
        distance=_distance(d, model), weighting=get_pair_weighting(d.get("weighting", "uniform")),
        teacher=teacher_fn,
        teacher_step=None if teacher_fn is None else solver_step(d.get("teacher_sampler", "heun")))

    def loss_fn(params, batch, key, extra):
        theta_minus = (jax.lax.stop_gradient(params) if target == "online"
                       else extra["method_state"]["target"])
        x0, _ = model.encode_batch(batch)
        per_example, sigma = loss.per_example(student(params), student(theta_minus), x0, key, extra["step"])
        return per_example, {"sigma": sigma}

    if target == "online":
        return Objective(kind=kind, loss_fn=loss_fn, initial_params=initial)
    decay = _target_decay(d, curriculum, total)

    def update_method_state(method_state, params, step, batch, key):
        return {**method_state, "target": _ema(method_state["target"], params, decay(step))}

    return Objective(kind=kind, loss_fn=loss_fn, update_method_state=update_method_state,
                     state_names=("target",), initial_params=initial)


def _progressive(config, model, student, teacher, initial, sigma_min, sigma_max) -> Objective:
    """Progressive distillation in `distill.rounds` rounds of equal length (Salimans & Ho 2022, Alg. 2)."""
    d = config.distill
    rounds, steps = int(d.get("rounds", 1)), int(d.get("teacher_steps", 8))
    total = int(config.training.num_steps)
    if rounds < 1 or total % rounds:
        raise ValueError(f"distill.rounds={rounds} must be >= 1 and divide training.num_steps={total}")
    if steps % (2**rounds):
        raise ValueError(f"distill.teacher_steps={steps} must be divisible by 2^rounds = {2 ** rounds}")
    per_round = total // rounds
    final = steps // 2**rounds
    if (config.sampling.grid, config.sampling.num_steps) != ("nested_karras", final):
        log.warning("progressive student trained for %d steps on 'nested_karras'; config.sampling "
                    "samples with %d on %r", final, config.sampling.num_steps, config.sampling.grid)
    loss = ProgressiveLoss(sigma_min=sigma_min, sigma_max=sigma_max, teacher_steps=steps,
                           teacher_step=solver_step(d.get("teacher_sampler", "ddim")))

    def loss_fn(params, batch, key, extra):
        round_index = jnp.minimum(extra["step"] // per_round, rounds - 1)
        previous = student(extra["method_state"]["round_teacher"])

        def round_teacher(x, sigma):  # the loaded teacher in round 0, the last round's student after
            return jax.lax.cond(round_index == 0, teacher, previous, x, sigma)

        x0, _ = model.encode_batch(batch)
        per_example, sigma = loss.per_example(student(params), round_teacher, x0, key, round_index)
        return per_example, {"sigma": sigma}

    def update_method_state(method_state, params, step, batch, key):
        end_of_round = (step + 1) % per_round == 0
        held = method_state["round_teacher"]
        return {**method_state, "round_teacher": jax.tree.map(lambda p, h: jnp.where(end_of_round, p, h),
                                                               params, held)}

    return Objective(kind="progressive", loss_fn=loss_fn, update_method_state=update_method_state,
                     state_names=("round_teacher",), initial_params=initial)

"""`make_objective(config, ...)`: what `train_and_evaluate` runs for a config with a `distill` section.

The training loop keeps all its infrastructure (data parallelism, resume, EMAs, logging, NaN guard,
evaluation); distillation only supplies the initial parameters and the train step:

    objective = make_objective(config, model=model, process=process, pc=pc, codec=codec, dataset=dataset)
    params = objective.init_params(params)              # the teacher's weights (CD, progressive)
    train_step = objective.make_train_step(decays)     # train_step(state, batch, key) -> (state, metrics)

Extra state lives in the last EMA of `training.ema_halflife_examples` (the "slot"), so checkpoints,
resumption and `load_for_sampling` need nothing new (the first EMA stays the one that samples):

    kind 'cd', target 'ema'      the slot is the target network theta- (Song et al. 2023, Alg. 2); its
                                 decay is the slot's half-life (mu = 0.95 in the paper, see
                                 `schedules.halflife_for_decay`), or mu(k) of the 'ct' curriculum
    target 'online'              theta- = stop_gradient(theta), mu = 0 (iCT, Song & Dhariwal 2023); no slot
    kind 'progressive'           the slot is the current round's teacher: copied from the student at
                                 the end of every round (decay 0), frozen otherwise (decay 1)
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from diffjax import factory, toy
from diffjax.distillation.distances import get_distance
from diffjax.distillation.objectives import ConsistencyLoss, ProgressiveLoss
from diffjax.distillation.parameterisation import ConsistencyPrecond
from diffjax.distillation.schedules import get_curriculum, get_level_sampling, get_pair_weighting
from diffjax.distillation.teacher import load_teacher, solver_step
from diffjax.precond import flax_net_fn, make_denoiser
from diffjax.training.state import update_emas
from diffjax.training.step import make_train_step

log = logging.getLogger("diffjax")
KINDS = ("cd", "ct", "progressive")
TARGETS = ("ema", "online")

# loss(params, slot_params or None, x0, key, step) -> (per-example loss [B], sigma [B])
SlotLoss = Callable[[Any, Any, jax.Array, jax.Array, jax.Array], tuple]


@dataclasses.dataclass(frozen=True)
class Objective:
    """A distillation method as the training loop sees it.

    Attributes:
      kind: 'cd', 'ct' or 'progressive'.
      loss: `loss(params, slot, x0, key, step) -> (loss [B], sigma [B])` on model-space data.
      uses_slot: whether the last EMA holds the target network or the round's teacher.
      slot_decay: `(step, configured_decay) -> decay` of the slot after step `step`.
      initial_params: parameters to start from (the teacher's), or None to keep the fresh init.
      encode: batch dict -> model-space data `[B, ...]`.
    """

    kind: str
    loss: SlotLoss
    uses_slot: bool
    slot_decay: Callable[[jax.Array, float], jax.Array]
    encode: Callable[[dict], jax.Array]
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

    def make_train_step(self, decays):
        """`train_step(state, batch, key) -> (state, metrics)`, `training.step.make_train_step` with
        the slot passed to the loss and its decay set by the method."""
        decays = tuple(float(d) for d in decays)
        if self.uses_slot and len(decays) < 2:
            what = "round teacher" if self.kind == "progressive" else "target network"
            raise ValueError(f"distill.kind={self.kind!r} keeps its {what} in the last EMA of "
                             "training.ema_halflife_examples: list two half-lives (the sampling EMA "
                             f"first), got {len(decays)}")

        def slot_loss(params, batch, key):
            return self.loss(params, batch["slot"], self.encode(batch["data"]), key, batch["step"])

        inner = make_train_step(slot_loss, decays)

        def train_step(state, batch, key):
            slot = state.ema_params[-1] if self.uses_slot else None
            new, metrics = inner(state, {"data": batch, "slot": slot, "step": state.step}, key)
            if self.uses_slot:
                decay = self.slot_decay(state.step, decays[-1])
                slot = update_emas((state.ema_params[-1],), new.params, (decay,))[0]
                new = new.replace(ema_params=new.ema_params[:-1] + (slot,))
            return new, metrics

        return train_step


# --------------------------------------------------------------------------------------
# Config -> objective
# --------------------------------------------------------------------------------------


def _kwargs(section, name: str) -> dict:
    value = section.get(name)
    return dict(value.to_dict() if hasattr(value, "to_dict") else (value or {}))


def _teacher(config, dataset, student_model_config):
    """`(denoiser, params to start from or None)` of `config.distill`'s teacher."""
    d = config.distill
    if d.get("exact_teacher", False):
        if not isinstance(dataset, toy.GaussianMixture):
            raise ValueError("distill.exact_teacher needs toy data with a closed-form denoiser "
                             f"(config.data.name 'gaussian' or 'gmm'), got {config.data.name!r}")
        return dataset.denoiser, None
    teacher = load_teacher(d.get("teacher_workdir", ""), config, ema_index=int(d.get("teacher_ema", 0)))
    if not d.get("init_from_teacher", True):
        return teacher.denoiser, None
    if teacher.config.model.to_dict() != student_model_config:
        raise ValueError("distill.init_from_teacher: the student's config.model "
                         f"{student_model_config} differs from the teacher's {teacher.config.model.to_dict()}; "
                         "use the teacher's model or set distill.init_from_teacher=False")
    return teacher.denoiser, teacher.params


def _encoder(codec):
    from diffjax.training.loop import data_array

    def encode(batch):
        x0 = data_array(batch)
        return codec.encode(x0) if codec is not None else x0  # toy data has no codec

    return encode


def _distance(d, codec, dataset):
    from diffjax.audio.codecs import Waveform

    distance = get_distance(d.get("distance", "l2"), **_kwargs(d, "distance_kwargs"))
    if not distance.needs_waveform or codec is None or isinstance(codec, Waveform):
        return distance
    length = dataset.length
    return lambda x, y: distance(codec.decode(x, length), codec.decode(y, length))


def make_objective(config, *, model, process, pc, codec=None, dataset=None) -> Objective:
    """Builds the objective of `config.distill` (see configs/distill_*.py for every key)."""
    d = config.distill
    kind = d.get("kind", "")
    if kind not in KINDS:
        raise ValueError(f"distill.kind must be one of {list(KINDS)}, got {kind!r}")
    dataset = factory.build_dataset(config) if dataset is None else dataset
    sigma_min, sigma_max = process.sigma_range()

    def student(params):
        return make_denoiser(pc, flax_net_fn(model, params))

    teacher, initial = (None, None) if kind == "ct" else _teacher(config, dataset, config.model.to_dict())
    if kind == "progressive":
        return _progressive(config, student, teacher, initial, codec, sigma_min, sigma_max)
    if not isinstance(pc, ConsistencyPrecond):
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
        distance=_distance(d, codec, dataset), weighting=get_pair_weighting(d.get("weighting", "uniform")),
        teacher=teacher, teacher_step=None if teacher is None else solver_step(d.get("teacher_sampler", "heun")))

    def loss_fn(params, slot, x0, key, step):
        target_params = jax.lax.stop_gradient(params) if slot is None else slot
        return loss.per_example(student(params), student(target_params), x0, key, step)

    def slot_decay(step, configured):
        decay = curriculum.target_decay(step, total)
        return configured if decay is None else decay

    return Objective(kind=kind, loss=loss_fn, uses_slot=target == "ema", slot_decay=slot_decay,
                     encode=_encoder(codec), initial_params=initial)


def _progressive(config, student, teacher, initial, codec, sigma_min, sigma_max) -> Objective:
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

    def loss_fn(params, slot, x0, key, step):
        round_index = jnp.minimum(step // per_round, rounds - 1)
        previous = student(slot)

        def round_teacher(x, sigma):  # the loaded teacher in round 0, the last round's student after
            return jax.lax.cond(round_index == 0, teacher, previous, x, sigma)

        return loss.per_example(student(params), round_teacher, x0, key, round_index)

    def slot_decay(step, configured):
        return jnp.where((step + 1) % per_round == 0, 0.0, 1.0)

    return Objective(kind="progressive", loss=loss_fn, uses_slot=True, slot_decay=slot_decay,
                     encode=_encoder(codec), initial_params=initial)

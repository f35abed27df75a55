"""Few-step and real-time generation: consistency distillation and training, progressive distillation.

    from diffjax import distillation
    distillation.ConsistencyLoss(...)      # CD (with a teacher step) or CT / iCT (without)
    distillation.ProgressiveLoss(...)      # Salimans & Ho 2022: two teacher steps in one
    distillation.solver_step("heun")       # one step of any registered deterministic sampler
    distillation.make_objective(config, model=..., teacher=..., dataset=...)   # the train job's method

Registered on import: the parameterisation 'consistency' (PRECONDS, `parameterisation`). The
'consistency' sampler and the 'nested_karras' grid live in `diffjax.sampling.consistency`. The
teacher is loaded by the jobs layer (`diffjax.jobs.workdir.load`) and passed in. See
docs/distillation.md.
"""
from __future__ import annotations

from diffjax.distillation.distances import DISTANCES, get_distance  # noqa: F401
from diffjax.distillation.objectives import ConsistencyLoss, ProgressiveLoss  # noqa: F401
from diffjax.distillation.parameterisation import ConsistencyPrecond  # noqa: F401
from diffjax.distillation.schedules import (CURRICULA, LEVEL_SAMPLINGS, PAIR_WEIGHTINGS,  # noqa: F401
                                            get_curriculum, get_level_sampling, get_pair_weighting,
                                            halflife_for_decay, karras_level, nested_karras,
                                            pair_probabilities, sample_pairs)
from diffjax.distillation.teacher import check_compatible, check_deterministic, solver_step  # noqa: F401
from diffjax.distillation.train import KINDS, TARGETS, Objective, make_objective, needs_teacher  # noqa: F401

"""Few-step and real-time generation: consistency distillation and training, progressive distillation.

    from diffjax import distillation
    distillation.ConsistencyLoss(...)      # CD (with a teacher step) or CT / iCT (without)
    distillation.ProgressiveLoss(...)      # Salimans & Ho 2022: two teacher steps in one
    distillation.solver_step("heun")       # one step of any registered deterministic sampler
    distillation.make_objective(config, ...)  # what train.py runs when the config has `distill`

Registered elsewhere on import: parameterisation 'consistency' (PRECONDS), sampler 'consistency'
(SAMPLERS) and grid 'nested_karras' (GRIDS); `diffjax.sampling` imports them. See docs/distillation.md.

The light modules are imported here; the training-side modules (`objectives`, `train`) are loaded
on first attribute access, so `diffjax.sampling` can import this package without import cycles.
"""
from __future__ import annotations

import importlib

from diffjax.distillation.distances import DISTANCES, get_distance  # noqa: F401
from diffjax.distillation.parameterisation import ConsistencyPrecond  # noqa: F401
from diffjax.distillation.sampler import sample_consistency  # noqa: F401
from diffjax.distillation.schedules import (CURRICULA, LEVEL_SAMPLINGS, PAIR_WEIGHTINGS,  # noqa: F401
                                            get_curriculum, get_level_sampling, get_pair_weighting,
                                            halflife_for_decay, karras_level, nested_karras,
                                            pair_probabilities, sample_pairs)
from diffjax.distillation.teacher import Teacher, check_compatible, load_teacher, solver_step  # noqa: F401

_LAZY = {
    "ConsistencyLoss": "diffjax.distillation.objectives",
    "ProgressiveLoss": "diffjax.distillation.objectives",
    "KINDS": "diffjax.distillation.train",
    "Objective": "diffjax.distillation.train",
    "make_objective": "diffjax.distillation.train",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'diffjax.distillation' has no attribute {name!r}")

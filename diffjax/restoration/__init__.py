"""Restoration and editing with an unconditional prior: degradation operators and posterior samplers.

    op = get_operator("hard_clip", sdr_db=3.0, reference=x_clean)
    y = op.measure(x_clean, key)
    x = get_method("dps")(denoiser, op, y, sigmas[0] * noise, sigmas, key=key, sampler="heun")

`OPERATORS`, `METHODS` and `TASKS` (task -> operator) list what is registered, each entry with its
metadata (`METHODS.meta("ddrm")`: NFE, requirements, defaults); see docs/restoration.md. A model in a
codec's space (a latent model) sees an operator through the codec's decode (`in_model_space`);
`applicable_methods(operator)` lists the methods that work with it (DPS and noise-free PiGDM).
"""
from diffjax.restoration.operators import (CAPABILITIES, OPERATORS, SVD, AbstractLinearOperator,  # noqa: F401
                                           AbstractOperator, DecodedOperator, get_operator, in_model_space,
                                           svd_operator_names)
from diffjax.restoration import clipping  # noqa: F401,E402  (registers hard_clip, soft_clip)
from diffjax.restoration.clipping import threshold_for_sdr  # noqa: F401,E402
from diffjax.restoration import filters  # noqa: F401,E402  (registers the Fourier operators)
from diffjax.restoration.methods import (METHODS, applicable, applicable_methods, get_method,  # noqa: F401,E402
                                         method_nfe, method_options, require_applicable, unmet_requirements)
from diffjax.restoration import schedules  # noqa: F401,E402  (registers repaint, sdedit)
from diffjax.restoration import blind  # noqa: F401,E402  (registers blind_bwe)
from diffjax.restoration.longform import restore_long  # noqa: F401,E402
from diffjax.restoration.tasks import EVAL_TASKS, TASKS, register_task, task_operator  # noqa: F401,E402

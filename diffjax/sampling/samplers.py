"""The sampler registry and NFE accounting.

    sample = get_sampler("dpmpp_3m")          # sample(denoiser, x_init, sigmas, *, key=None, **options)
    nfe("heun", 18)                            # 35: EDM Heun with 18 levels (DESIGN.md, "NFE")
    steps_for_nfe("heun", 35)                  # 18; an odd budget for a 2-stage method lists the valid ones
    SAMPLERS.meta("heun")                      # {'nfe': <formula>, 'stochastic': False, 'order': 2}
    SAMPLERS.names(stochastic=False)           # the deterministic samplers

Every sampler is a module-level `def sample_<name>` registered with its metadata:

    @SAMPLERS.register("heun", nfe=stages_per_level(2), stochastic=False, order=2)
    def sample_heun(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None): ...

- `nfe`: `(num_steps, **cost_knobs) -> int`, denoiser calls per sample; None for an adaptive solver,
  whose cost only the solve knows. The formula names, as keyword arguments, the sampler options
  that change the cost (e.g. `n_corrector_steps`).
- `stochastic`: True when the sampler draws noise from `key` (with its default options).
- `order`: the global order of convergence of the deterministic solver (0 for SDE samplers).

NFE is the number of denoiser calls per sample for a grid of `num_steps` positive levels
(`len(sigmas) == num_steps + 1`). The step to 0 of every sampler here is one call (Tweedie's
denoised estimate, equal to an Euler step), so e.g. a 2-stage method costs `2 N - 1`.
"""
from __future__ import annotations

import inspect

from diffjax.registry import Registry

SAMPLERS = Registry("sampler", required_meta=("nfe", "stochastic", "order"))


def get_sampler(name: str):
    """The sampler registered as `name`: `sample(denoiser, x_init, sigmas, *, key=None, **options) -> x`."""
    return SAMPLERS.get(name)


def _check_options(name: str, options: dict) -> None:
    """Raises a TypeError naming the sampler's options unless every key of `options` is one."""
    params = inspect.signature(SAMPLERS.get(name)).parameters
    accepted = [p for p, v in params.items() if v.kind == inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"sampler {name!r} has no option {', '.join(map(repr, unknown))}; "
                        f"its options are: {', '.join(accepted)}")


def nfe(name: str, num_steps: int, **options) -> int:
    """Denoiser calls per sample of sampler `name` on a grid of `num_steps` positive levels.

    `options` are the sampler's own options (an unknown one is an error); those that change its
    cost (e.g. `n_corrector_steps`) reach its NFE formula.
    """
    count = SAMPLERS.meta(name)["nfe"]
    if count is None:
        raise ValueError(f"sampler {name!r} is adaptive: its NFE is known only after the solve "
                         "(call it with return_info=True)")
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    _check_options(name, options)
    cost_knobs = inspect.signature(count).parameters
    return int(count(int(num_steps), **{k: v for k, v in options.items() if k in cost_knobs}))


def steps_for_nfe(name: str, budget: int, **options) -> int:
    """The number of positive levels at which sampler `name` costs exactly `budget` NFE.

    Raises a ValueError naming the nearest budgets the sampler can meet when `budget` is not one
    (e.g. an even NFE for Heun, whose costs are 1, 3, 5, ...).
    """
    costs = {}
    n = 1
    while True:
        cost = nfe(name, n, **options)
        costs[cost] = n
        if cost >= budget:
            break
        n += 1
    if budget in costs:
        return costs[budget]
    below = max((c for c in costs if c < budget), default=None)
    near = [c for c in (below, cost) if c is not None]
    raise ValueError(f"sampler {name!r} cannot spend exactly {budget} NFE; the nearest valid "
                     f"budgets are {' and '.join(map(str, near))} "
                     f"(num_steps {' and '.join(str(costs[c]) for c in near)})")


# NFE formulas shared by several samplers (N = number of positive levels).
def one_per_level(n: int) -> int:
    """One call per level; the step to 0 is a plain denoise: `N`."""
    return n


def stages_per_level(stages: int):
    """`stages` calls per level, except the step to 0, which is one call: `stages (N - 1) + 1`."""

    def count(n: int) -> int:
        return stages * (n - 1) + 1

    return count

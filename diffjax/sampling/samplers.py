"""The sampler registry and NFE accounting.

    sample = get_sampler("dpmpp_3m")          # sample(denoiser, x_init, sigmas, *, key=None, **options)
    nfe("heun", 18)                            # 35: EDM Heun with 18 levels (DESIGN.md, "NFE")
    steps_for_nfe("heun", 35)                  # 18; an odd budget for a 2-stage method lists the valid ones

NFE is the number of denoiser calls per sample for a grid of `num_steps` positive levels
(`len(sigmas) == num_steps + 1`). The step to 0 of every sampler here is one call (Tweedie's
denoised estimate, equal to an Euler step), so e.g. a 2-stage method costs `2 N - 1`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from diffjax.registry import Registry

SAMPLERS = Registry("sampler")
SAMPLER_INFO: dict[str, "SamplerInfo"] = {}


@dataclasses.dataclass(frozen=True)
class SamplerInfo:
    """What callers need to know about a sampler without running it.

    Attributes:
      nfe: `(num_steps, **options) -> int`, denoiser calls per sample; None when only the solve knows.
      stochastic: True when the sampler draws noise from `key` (with its default options).
      order: the global order of convergence of the deterministic solver (0 for SDE samplers).
    """

    nfe: Callable[..., int] | None
    stochastic: bool
    order: int


def register_sampler(name: str, *, nfe: Callable[..., int] | None, stochastic: bool, order: int = 0):
    """Registers a sampler function under `name`, with its NFE formula."""

    def decorate(fn):
        SAMPLERS.register(name)(fn)
        SAMPLER_INFO[name] = SamplerInfo(nfe=nfe, stochastic=stochastic, order=order)
        return fn

    return decorate


def get_sampler(name: str):
    """The sampler registered as `name`: `sample(denoiser, x_init, sigmas, *, key=None, **options) -> x`."""
    return SAMPLERS.get(name)


def sampler_info(name: str) -> SamplerInfo:
    SAMPLERS.get(name)  # unknown name -> error listing the valid ones
    return SAMPLER_INFO[name]


def nfe(name: str, num_steps: int, **options) -> int:
    """Denoiser calls per sample of sampler `name` on a grid of `num_steps` positive levels.

    `options` are the sampler's own knobs that change its cost (e.g. `n_corrector_steps`); others
    are ignored.
    """
    info = sampler_info(name)
    if info.nfe is None:
        raise ValueError(f"sampler {name!r} is adaptive: its NFE is known only after the solve "
                         "(call it with return_info=True)")
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    return int(info.nfe(int(num_steps), **options))


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
def one_per_level(n, **_):
    """One call per level; the step to 0 is a plain denoise."""
    return n


def stages_per_level(stages: int):
    """`stages` calls per level, except the step to 0, which is one call: `stages (N - 1) + 1`."""

    def count(n, **_):
        return stages * (n - 1) + 1

    return count

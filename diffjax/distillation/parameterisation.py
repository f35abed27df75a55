"""The consistency-model parameterisation, registered as `PRECONDS['consistency']`.

A consistency function `f(x, sigma)` maps any point of a PF-ODE trajectory to its end at
`sigma_min`, so it must be the identity there. Song et al. (2023, eq. 5 and App. C) build that
into the network with EDM-like scalings shifted by `sigma_min`:

    c_skip(s) = sd^2 / ((s - s_min)^2 + sd^2),     c_out(s) = sd (s - s_min) / sqrt(sd^2 + s^2)
    f(x, s)   = c_skip(s) x + c_out(s) F(c_in(s) x, c_noise(s))

with EDM's `c_in = 1/sqrt(sd^2 + s^2)` and `c_noise = ln(s)/4` (the shared input conventions of
`diffjax.precond.AbstractPrecond`). At `s = s_min`, `c_skip = 1` and `c_out = 0` exactly, so
`f(x, s_min) = x` to the bit. For `s >> s_min` the scalings approach EDM's, which is why a student
initialised from an EDM teacher's network starts close to the teacher's denoiser.

In the VE view a consistency function is a denoiser `D(x~, sigma~)`, so students plug into every
sampler; the 'consistency' sampler (`diffjax.sampling.consistency`) is the one they are made for.

It is registered with the metadata `boundary_identity=True`: the consistency objectives ask
`PRECONDS.meta(config.precond.name)` for it, never the class.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

from diffjax.precond import PRECONDS, AbstractSkipPrecond
from diffjax.sde import expand_to

Array = jax.Array


@PRECONDS.register("consistency", boundary_identity=True)
@dataclasses.dataclass(frozen=True)
class ConsistencyPrecond(AbstractSkipPrecond):
    """Boundary-respecting scalings of consistency models (Song et al. 2023, App. C).

    Attributes:
      sigma_min: the boundary level; defaults to the process's `sigma_range()[0]`.
    """

    sigma_min: Optional[float] = None

    def __post_init__(self):
        super().__post_init__()
        if self.sigma_min is not None and self.sigma_min <= 0:
            raise ValueError(f"consistency: sigma_min must be > 0, got {self.sigma_min}")

    def _needs_process(self) -> bool:
        return self.sigma_min is None

    @property
    def boundary(self) -> float:
        """`sigma_min`, the level where the model is the identity."""
        return float(self.sigma_min) if self.sigma_min is not None else self.process.sigma_range()[0]

    def skip_out(self, sigma: Array, x: Array) -> tuple[Array, Array]:
        """`(c_skip, c_out)` shaped to broadcast against `x`."""
        s, sd, s_min = expand_to(sigma, x), self.sigma_data, self.boundary
        return sd**2 / ((s - s_min) ** 2 + sd**2), sd * (s - s_min) / jnp.sqrt(sd**2 + s**2)


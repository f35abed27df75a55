"""Teachers: one step of any registered deterministic sampler, and the teacher/student config check.

`solver_step("heun")` returns `step(denoiser, x, sigma, sigma_next) -> x_next`, one step of the
registered sampler between two adjacent levels, with per-example levels `[B]`. The sampler itself
is reused, not re-implemented: every sampler runs on a grid that ends in 0, so the step is taken on
the grid `[sigma, sigma_next, 0]` with the state doubled along the batch axis,

    z = [x, x_saved]:   D_z([x, x_saved], s) = [D(x, s), x_saved],   hook: x_saved <- x at sigma_next > 0

The saved half is a fixed point of every consistent ODE solver (its derivative `(x - D)/s` is 0),
the hook stores the state at `sigma_next`, and the step to 0 leaves the saved half untouched. A step
to `sigma_next = 0` is, like every sampler's last step here, the denoised estimate `D(x, sigma)`; it
costs one more call per example, so it is only computed when asked for (`to_zero=True`).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from diffjax.sampling.samplers import SAMPLERS, get_sampler

Array = jax.Array
Denoiser = Callable[[Array, Array], Array]


def check_deterministic(name: str) -> None:
    """A teacher solver must be a registered sampler that is deterministic on a fixed grid."""
    meta = SAMPLERS.meta(name)  # unknown name -> error listing the valid ones
    if meta["stochastic"] or meta["nfe"] is None:
        valid = [n for n in SAMPLERS.names(stochastic=False) if SAMPLERS.meta(n)["nfe"] is not None]
        raise ValueError(f"teacher solver {name!r} is {'stochastic' if meta['stochastic'] else 'adaptive'}; "
                         f"a teacher step needs a deterministic fixed-grid sampler: {', '.join(valid)}")


def solver_step(name: str, **options) -> Callable[..., Array]:
    """`step(denoiser, x [B, ...], sigma [B], sigma_next [B], *, to_zero=False) -> x_next [B, ...]`:
    one step of sampler `name` (e.g. 'euler' = DDIM in the VE view, 'heun' = EDM's Alg. 1) from
    `sigma` to `sigma_next`. `sigma_next` must be > 0 unless `to_zero=True`."""
    check_deterministic(name)
    sample = get_sampler(name)

    def one(denoiser, x, sigma, sigma_next, to_zero):  # one example: x [...], scalar levels
        def doubled(z, level):
            return jnp.concatenate([denoiser(z[:1], level), z[1:]], axis=0)

        def keep(z, level):
            return jnp.where(level > 0, jnp.concatenate([z[:1], z[:1]], axis=0), z)

        safe_next = jnp.where(sigma_next > 0, sigma_next, 0.5 * sigma)  # the step to 0 is handled below
        grid = jnp.stack([sigma, safe_next, jnp.zeros_like(sigma)])
        stepped = sample(doubled, jnp.stack([x, x]), grid, hook=keep, **options)[1]
        if not to_zero:
            return stepped
        return jnp.where(sigma_next > 0, stepped, denoiser(x[None], sigma)[0])

    def step(denoiser, x, sigma, sigma_next, *, to_zero: bool = False):
        sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
        sigma_next = jnp.broadcast_to(jnp.asarray(sigma_next, x.dtype), x.shape[:1])
        return jax.vmap(lambda a, s, n: one(denoiser, a, s, n, to_zero))(x, sigma, sigma_next)

    return step


# --------------------------------------------------------------------------------------
# Teacher configs (the jobs layer loads the teacher: `diffjax.jobs.workdir.load`)
# --------------------------------------------------------------------------------------


def _section(config, name: str) -> dict:
    return config[name].to_dict() if name in config else {}


def check_compatible(teacher_config, student_config, workdir: str) -> None:
    """Rejects a teacher whose process, data or representation differs from the student's.

    A pure function of the two configs (`workdir` only names the teacher in the message). Mixing
    them silently would distil a different ODE; convert explicitly by training the student with the
    teacher's `sde` section instead.
    """
    for section in ("sde", "codec", "data"):
        teacher, student = _section(teacher_config, section), _section(student_config, section)
        if section == "data":  # the split sizes may differ; what an example is may not
            keys = {"name", "sample_rate", "clip_seconds", "crop_seconds", "channels", "dim"}
            teacher = {k: v for k, v in teacher.items() if k in keys}
            student = {k: v for k, v in student.items() if k in keys}
        if teacher != student:
            diff = {k: (teacher.get(k), student.get(k)) for k in sorted(set(teacher) | set(student))
                    if teacher.get(k) != student.get(k)}
            raise ValueError(
                f"the teacher in {workdir!r} and the student differ in config.{section}: "
                + ", ".join(f"{k}: teacher {t!r} vs student {s!r}" for k, (t, s) in diff.items())
                + f". A student distils its teacher's ODE: set the student's config.{section} to the "
                  "teacher's (for another process, train a teacher with it).")

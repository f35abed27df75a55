"""Per-example distillation objectives, written on denoisers `D(x~, sigma~)` in the VE view.

`ConsistencyLoss` is consistency distillation (CD, Song et al. 2023, Alg. 2) when it has a teacher
step and consistency training (CT, Alg. 3; iCT, Song & Dhariwal 2023) when it has none:

    n ~ p(n), z ~ N(0, I),  x_(n+1) = x0 + sigma_(n+1) z
    CD:  x_n = Phi(x_(n+1); sigma_(n+1) -> sigma_n)        (one step of a teacher ODE solver)
    CT:  x_n = x0 + sigma_n z                             (the same z: the one-sample estimate)
    loss = lambda(sigma_n, sigma_(n+1)) d(f_theta(x_(n+1), sigma_(n+1)), sg f_theta-(x_n, sigma_n))

`ProgressiveLoss` is progressive distillation (Salimans & Ho 2022, Alg. 2): the student's one DDIM
step from `s` to `s''` must land where the teacher's two steps `s -> s' -> s''` land. In the VE view
a DDIM step is `x'' = D + (s''/s)(x - D)`, so the student's target denoised value is

    D* = (s x''_teacher - s'' x) / (s - s'')          (= x''_teacher for s'' = 0)

and the loss is `max(1/s^2, 1) ||D_student(x, s) - D*||^2` (truncated-SNR weighting, S&H sec. 4,
with SNR = 1/sigma~^2), averaged over dimensions.

Both return `(per-example loss [B], sigma [B])` like `DenoisingLoss.per_example`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from diffjax.distillation.schedules import nested_karras, sample_pairs, uniform_weight
from diffjax.sde import expand_to

Array = jax.Array
Denoiser = Callable[[Array, Array], Array]
TeacherStep = Callable[..., Array]  # (D, x, sigma, sigma_next, *, to_zero=False) -> x_next


@dataclasses.dataclass(frozen=True)
class ConsistencyLoss:
    """CD or CT on the rho-ramp over `[sigma_min, sigma_max]` (`diffjax.distillation.schedules`).

    Attributes:
      sigma_min, sigma_max, rho: the discretisation (the process's range; EDM's rho = 7).
      curriculum: `num_scales_at(step, total_steps)`, `max_scales()` ('fixed', 'ct', 'ict').
      total_steps: K, the length of training the curriculum spans.
      level_sampling: a distribution over pairs ('uniform', 'lognormal').
      weighting: `lambda(sigma_n, sigma_(n+1)) -> [B]` ('uniform', 'inverse_gap').
      distance: `d(x, y) -> [B]` ('l2', 'l1', 'pseudo_huber', 'mrstft').
      teacher: the teacher's denoiser for CD; None for CT.
      teacher_step: `solver_step(name)` for CD.
    """

    sigma_min: float
    sigma_max: float
    curriculum: object
    total_steps: int
    level_sampling: object
    distance: Callable[[Array, Array], Array]
    weighting: Callable[[Array, Array], Array] = uniform_weight
    rho: float = 7.0
    teacher: Optional[Denoiser] = None
    teacher_step: Optional[TeacherStep] = None

    def __post_init__(self):
        if (self.teacher is None) != (self.teacher_step is None):
            raise ValueError("consistency distillation needs both `teacher` and `teacher_step` "
                             "(consistency training neither)")

    def levels(self, key: Array, batch: int, step: Array) -> tuple[Array, Array]:
        """`(sigma_n, sigma_(n+1))` `[B]` under the curriculum at training step `step`."""
        num_scales = self.curriculum.num_scales_at(step, self.total_steps)
        return sample_pairs(key, (batch,), self.level_sampling, num_scales, self.curriculum.max_scales(),
                            self.sigma_min, self.sigma_max, self.rho)

    def per_example(self, student: Denoiser, target: Denoiser, x0: Array, key: Array,
                    step: Array = 0) -> tuple[Array, Array]:
        """Args: `student` = f_theta, `target` = f_theta- (its output is stop-gradient'ed), data
        `x0` `[B, ...]`, the training step (for the curriculum). Returns `(loss [B], sigma_(n+1) [B])`."""
        key_n, key_z = jax.random.split(key)
        sigma, sigma_next = self.levels(key_n, x0.shape[0], step)
        sigma, sigma_next = sigma.astype(x0.dtype), sigma_next.astype(x0.dtype)
        z = jax.random.normal(key_z, x0.shape, x0.dtype)
        x_next = x0 + expand_to(sigma_next, x0) * z
        if self.teacher is None:
            x_cur = x0 + expand_to(sigma, x0) * z
        else:
            x_cur = jax.lax.stop_gradient(self.teacher_step(self.teacher, x_next, sigma_next, sigma))
        goal = jax.lax.stop_gradient(target(x_cur, sigma))
        loss = self.weighting(sigma, sigma_next) * self.distance(student(x_next, sigma_next), goal)
        return loss, sigma_next


def ddim_target(x: Array, x_teacher: Array, sigma: Array, sigma_next: Array) -> Array:
    """The denoised value whose DDIM step `sigma -> sigma_next` from `x` lands on `x_teacher`:
    `(sigma x_teacher - sigma_next x) / (sigma - sigma_next)` (Salimans & Ho 2022, Alg. 2, VE view)."""
    s, s_next = expand_to(sigma, x), expand_to(sigma_next, x)
    return (s * x_teacher - s_next * x) / (s - s_next)


def truncated_snr_weight(sigma: Array) -> Array:
    """`max(SNR, 1) = max(1/sigma~^2, 1)` (Salimans & Ho 2022, sec. 4, "truncated SNR")."""
    return jnp.maximum(sigma**-2, 1.0)


@dataclasses.dataclass(frozen=True)
class ProgressiveLoss:
    """Progressive distillation on the nested grid `nested_karras(teacher_steps)`.

    In round `r` the teacher takes `teacher_steps / 2^r` steps and the student half as many; the
    grids are nested, so round `r` uses every `2^r`-th level of the base grid.

    Attributes:
      sigma_min, sigma_max, rho: the base grid's range (the process's).
      teacher_steps: N, the teacher's steps in round 0 (a power of 2 times 2^rounds).
      teacher_step: `solver_step('ddim')` (or another deterministic sampler's step).
    """

    sigma_min: float
    sigma_max: float
    teacher_steps: int
    teacher_step: TeacherStep
    rho: float = 7.0

    def base_grid(self) -> Array:
        return nested_karras(self.teacher_steps, self.sigma_min, self.sigma_max, rho=self.rho)

    def levels(self, key: Array, batch: int, round_index: Array) -> tuple[Array, Array, Array]:
        """`(s, s', s'')` `[B]` for student steps drawn uniformly among round `round_index`'s."""
        stride = jnp.left_shift(1, jnp.asarray(round_index, jnp.int32))  # 2^r base levels per teacher step
        student_steps = self.teacher_steps // (2 * stride)
        j = jax.random.randint(key, (batch,), 0, jnp.maximum(student_steps, 1))
        grid = self.base_grid()
        return grid[2 * j * stride], grid[(2 * j + 1) * stride], grid[(2 * j + 2) * stride]

    def per_example(self, student: Denoiser, teacher: Denoiser, x0: Array, key: Array,
                    round_index: Array = 0) -> tuple[Array, Array]:
        """Returns `(loss [B], sigma [B])` for data `x0` `[B, ...]` in round `round_index`."""
        key_j, key_z = jax.random.split(key)
        sigma, sigma_mid, sigma_next = (s.astype(x0.dtype) for s in self.levels(key_j, x0.shape[0],
                                                                                 round_index))
        x = x0 + expand_to(sigma, x0) * jax.random.normal(key_z, x0.shape, x0.dtype)
        x_mid = self.teacher_step(teacher, x, sigma, sigma_mid)
        x_teacher = self.teacher_step(teacher, x_mid, sigma_mid, sigma_next, to_zero=True)
        goal = jax.lax.stop_gradient(ddim_target(x, x_teacher, sigma, sigma_next))
        err = jnp.mean((student(x, sigma) - goal).reshape(x0.shape[0], -1) ** 2, axis=1)
        return truncated_snr_weight(sigma) * err, sigma

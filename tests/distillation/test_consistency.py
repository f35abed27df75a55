"""Consistency distillation (exact teacher) and consistency training on toy data with closed forms:
1- and 2-step students land near the teacher's PF-ODE samples and the data."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SIGMA_MAX, SIGMA_MIN, TinyStudent, mean_error, teacher_samples, train

from diffjax import sampling, toy
from diffjax.distillation import (ConsistencyLoss, ConsistencyPrecond, get_curriculum, get_distance,
                                  get_level_sampling, get_pair_weighting, solver_step)


# --------------------------------------------------------------------------------------
# The teacher step reuses the registered samplers
# --------------------------------------------------------------------------------------


def test_teacher_step_is_one_step_of_the_registered_sampler(mixture):
    """Per-example levels; Euler and Heun against their one-step formulas; the step to 0 is D."""
    x = 3.0 * jax.random.normal(jax.random.PRNGKey(0), (6, 2))
    s = jnp.array([3.0, 2.0, 1.0, 0.5, 0.1, 0.05])
    n = jnp.array([2.0, 1.0, 0.5, 0.2, 0.05, 0.0])
    d = mixture.denoiser
    ds = lambda v, level: (v - d(v, level)) / level[:, None]  # dx/dsigma
    heun = x + ((n - s) / 2)[:, None] * (ds(x, s) + ds(x + (n - s)[:, None] * ds(x, s), n))  # EDM Alg. 1
    got = solver_step("heun")(d, x, s, n, to_zero=True)
    np.testing.assert_allclose(got[:-1], heun[:-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[-1], d(x, s)[-1], rtol=1e-6)  # the step to 0
    euler = x + ((n - s) / s)[:, None] * (x - d(x, s))
    np.testing.assert_allclose(solver_step("euler")(d, x[:-1], s[:-1], n[:-1]), euler[:-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(solver_step("ddim")(d, x, s, n, to_zero=True), euler, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(solver_step("dpmpp_2m")(d, x, s, n, to_zero=True)[-1], d(x, s)[-1], rtol=1e-6)
    with pytest.raises(ValueError, match="stochastic.*deterministic fixed-grid sampler: .*heun"):
        solver_step("euler_ancestral")
    with pytest.raises(ValueError, match="adaptive"):
        solver_step("adaptive")


def test_consistency_sampler_one_step_is_one_call(mixture):
    x = SIGMA_MAX * jax.random.normal(jax.random.PRNGKey(0), (4, 2))
    one = sampling.get_grid("nested_karras")(1, SIGMA_MIN, SIGMA_MAX)
    out = sampling.get_sampler("consistency")(mixture.denoiser, x, one)  # deterministic: no key needed
    np.testing.assert_allclose(out, mixture.denoiser(x, SIGMA_MAX), rtol=1e-5, atol=1e-6)
    assert sampling.nfe("consistency", 1) == 1 and sampling.nfe("consistency", 4) == 4
    two = sampling.get_grid("nested_karras")(2, SIGMA_MIN, SIGMA_MAX)
    with pytest.raises(ValueError, match="stochastic: pass key"):
        sampling.get_sampler("consistency")(mixture.denoiser, x, two)


# --------------------------------------------------------------------------------------
# Distillation and training on toy data
# --------------------------------------------------------------------------------------


def _student(data_std):
    return TinyStudent(ConsistencyPrecond(sigma_data=data_std, sigma_min=SIGMA_MIN))


def _cd_loss(teacher, steps, distance="l2"):
    return ConsistencyLoss(SIGMA_MIN, SIGMA_MAX, get_curriculum("fixed", num_scales=18), steps,
                           get_level_sampling("uniform"), get_distance(distance), teacher=teacher,
                           teacher_step=solver_step("heun"))


def _objective(student, loss):
    return lambda p, t, x0, key, k: loss.per_example(student.denoiser(p), student.denoiser(t), x0, key, k)


def _evaluate(student, params, teacher, data, num=1000):
    """1-step error to the teacher's ODE samples from the same noise, and energy distances to data."""
    z = jax.random.normal(jax.random.PRNGKey(7), (num, 2))
    reference = teacher_samples(teacher, z)
    real = data.sample(jax.random.PRNGKey(8), num)
    results = {"teacher_ed": float(toy.energy_distance(reference, real))}
    for steps in (1, 2):
        grid = sampling.get_grid("nested_karras")(steps, SIGMA_MIN, SIGMA_MAX)
        out = sampling.get_sampler("consistency")(student.denoiser(params), SIGMA_MAX * z, grid,
                                                   key=jax.random.PRNGKey(3))
        results[f"err{steps}"] = mean_error(out, reference)
        results[f"ed{steps}"] = float(toy.energy_distance(out, real))
    return results


def test_cd_on_a_gaussian_matches_the_exact_ode_map(gaussian):
    """Exact teacher: the PF-ODE map of a Gaussian is linear and closed form (`ode_map`).

    Measured (600 steps, batch 128, lr 2e-3, target mu = 0.95): 1-step mean error to the exact
    ODE endpoint 0.06 (untrained 1.4); energy distance 0.002 (untrained 0.6). Over seeds 1-5 with 8
    fake devices (issue 20): error 0.063-0.078, energy distance 0.0037-0.0049; the thresholds are
    2.5x and 4x the worst seed."""
    student = _student(1.0)
    params, losses = train(student, _objective(student, _cd_loss(gaussian.denoiser, 600)), gaussian,
                           steps=600, target_decay=0.95)
    assert bool(jnp.all(jnp.isfinite(losses)))
    z = jax.random.normal(jax.random.PRNGKey(7), (1000, 2))
    with jax.numpy_rank_promotion("allow"):  # toy.ode_map broadcasts the mean [D] against [N, D]
        exact = gaussian.ode_map(SIGMA_MAX * z, SIGMA_MAX, SIGMA_MIN)
    err = mean_error(student.denoiser(params)(SIGMA_MAX * z, SIGMA_MAX), exact)
    err_untrained = mean_error(student.denoiser(student.init)(SIGMA_MAX * z, SIGMA_MAX), exact)
    real = gaussian.sample(jax.random.PRNGKey(8), 1000)
    ed = float(toy.energy_distance(student.denoiser(params)(SIGMA_MAX * z, SIGMA_MAX), real))
    print(f"gaussian CD: err {err:.4f} (untrained {err_untrained:.4f}), ED {ed:.4f}")
    assert err < 0.2 < 1.0 < err_untrained
    assert ed < 0.02


def test_cd_on_a_mixture_lands_near_the_teacher_samples(mixture):
    """Measured (800 steps): 1-step error 0.12 to the teacher's Heun-64 samples from the same noise
    (untrained 1.0); energy distance to data 0.006 for 1 step and 0.008 for 2 steps (teacher 0.003,
    untrained 0.7 and 0.4). The 2-step sample re-noises to sigma = 2.5 with fresh noise, so only its
    distribution is compared. Over seeds 1-5 with 8 fake devices (issue 20): 1-step error
    0.124-0.127, energy distances 0.0061-0.0073 and 0.0065-0.0079; thresholds 2x and 3x the worst."""
    student = _student(0.71)
    params, losses = train(student, _objective(student, _cd_loss(mixture.denoiser, 800)), mixture,
                           steps=800, target_decay=0.95)
    got = _evaluate(student, params, mixture.denoiser, mixture)
    untrained = _evaluate(student, student.init, mixture.denoiser, mixture)
    print("mixture CD:", got, "untrained:", untrained)
    assert got["err1"] < 0.25 < 0.8 < untrained["err1"]
    assert got["ed1"] < 0.02 < 0.3 < untrained["ed1"]
    assert got["ed2"] < 0.025 < 0.2 < untrained["ed2"]


def test_ict_without_a_teacher_learns_the_mixture(mixture):
    """Improved consistency training (no teacher): pseudo-Huber, log-normal pairs, 1/(gap) weighting,
    N doubling from 11 to 1281, mu = 0; 2000 steps, batch 256, Adam 2e-3 cosine-annealed to 0 with
    global-norm clipping at 1.

    Issue 20 (item 11): at a constant 2e-3 without clipping the run was unstable once N grew, not
    just chaotic: over seeds 1-4 the final loss was 0.84-0.93 for three and 41 (peak 511) for one,
    and 1-step errors 0.27-0.39 (0.62 inside the suite's 8-device process for seed 1). Annealed and
    clipped, over seeds 1-6 with 8 fake devices: loss peak <= 1.04, 1-step error to the exact
    teacher's ODE samples 0.14-0.19, energy distance 0.007-0.018 for 1 step and 0.005-0.009 for 2
    (untrained 1.0, 0.7 and 0.4). The thresholds sit at twice the worst seed or more."""
    steps = 2000
    student = _student(0.71)
    loss = ConsistencyLoss(SIGMA_MIN, SIGMA_MAX, get_curriculum("ict"), steps, get_level_sampling("lognormal"),
                           get_distance("pseudo_huber"), weighting=get_pair_weighting("inverse_gap"))
    params, losses = train(student, _objective(student, loss), mixture, steps=steps, batch=256, anneal=True)
    got = _evaluate(student, params, mixture.denoiser, mixture)
    print("mixture iCT:", got)
    assert float(jnp.max(losses)) < 5.0  # no late blow-up
    assert got["err1"] < 0.4
    assert got["ed1"] < 0.08 and got["ed2"] < 0.06

"""PF-ODE likelihood against closed forms (STYLE rule 24a): Gaussian and Gaussian-mixture data.

Tolerance of an adaptive solve (derived, not tuned). The PID controller accepts a step when the RMS
over all `B (N + 1)` state components of `err / (atol + rtol |y|)` is <= 1, so a single component
(one example's `delta`) may carry `sqrt(B (N + 1)) (atol + rtol |delta|)` per step. The divergence of
the Gaussian and mixture ODEs does not feed errors in x back into delta faster than they are made,
so the global error of `delta` is at most the sum over steps:

    |error| <= num_steps * sqrt(B (N + 1)) * (atol + rtol (|delta| + 1)).

The prior error (N(0, sigma_max^2) instead of p_{sigma_max}) is separated out exactly: the checks
compare `logp - prior_logp + log p_{sigma_max}(z)` with the analytic `log p_{sigma_min}(x)`.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from diffjax import sde, toy
from diffjax.likelihood import (LikelihoodOptions, LikelihoodSolverError, exact_trace,
                                hutchinson_trace, log_likelihood, process_log_likelihood,
                                solve_log_likelihood)
from diffjax.likelihood.divergence import draw_probes

pytestmark = pytest.mark.usefixtures("x64")

GAUSS = toy.gaussian(dim=3, mean=[0.5, -1.0, 0.0], std=[1.0, 0.5, 2.0])
GMM2 = toy.gmm(dim=2, num_modes=4, radius=1.0, std=0.3)
GMM8 = toy.gmm(dim=8, num_modes=3, radius=1.5, std=0.5, seed=1)
RTOL = ATOL = 1e-5


def gauss_denoiser(x, sigma):
    return GAUSS.denoiser(x, sigma)


def gmm2_denoiser(x, sigma):
    return GMM2.denoiser(x, sigma)


def gmm8_denoiser(x, sigma):
    return GMM8.denoiser(x, sigma)


def ode_error(result, mixture, x, sigma_min, sigma_max):
    """ODE error `[B]` with the prior error removed (module docstring)."""
    corrected = result.logp - result.prior_logp + mixture.log_prob(result.z, sigma_max)
    return corrected - mixture.log_prob(x, sigma_min)


def adaptive_bound(result, x):
    batch, dim = x.shape
    per_step = math.sqrt(batch * (dim + 1)) * (ATOL + RTOL * (jnp.abs(result.delta_logp) + 1))
    return int(result.num_steps) * per_step


def data(mixture, num, seed=0):
    return mixture.sample(jax.random.PRNGKey(seed), num).astype(jnp.float64)


# --------------------------------------------------------------------------------------
# Gaussian data, every process
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sde.SDES.names())
def test_gaussian_exact_trace_every_process(name):
    process = sde.get_sde(name)
    x_data = data(GAUSS, 6)
    t = process.t_min
    x_t = process.alpha(jnp.asarray(t)) * x_data  # a point of the process state at t_min
    result = process_log_likelihood(process, gauss_denoiser, x_t, rtol=RTOL, atol=ATOL)
    sigma_min, sigma_max = process.sigma_range()
    x_ve = x_t / process.alpha(jnp.asarray(t))
    err = ode_error(result.replace(logp=result.logp - result.log_det), GAUSS, x_ve, sigma_min, sigma_max)
    np.testing.assert_array_less(jnp.abs(err), adaptive_bound(result, x_ve))
    # Data space: log p_t(x) = log p~(x / alpha) - N log alpha, against toy.log_prob_t.
    expected = GAUSS.log_prob_t(process, x_t, t) + result.prior_logp - GAUSS.log_prob(result.z, sigma_max)
    np.testing.assert_array_less(jnp.abs(result.logp - expected), adaptive_bound(result, x_ve))
    assert int(result.nfe) == 1 + 6 * int(result.num_steps)


@pytest.mark.parametrize("name", sde.SDES.names())
def test_gaussian_hutchinson_every_process(name):
    """Gaussian probes (Rademacher is exact on this diagonal Jacobian): mean of M independent
    estimates within 4 standard errors (plus the ODE bound) of the analytic density."""
    process = sde.get_sde(name)
    sigma_min, sigma_max = process.sigma_range()
    replicas = 16
    x = jnp.tile(data(GAUSS, 2), (replicas, 1))
    result = log_likelihood(gauss_denoiser, x, sigma_min=sigma_min, sigma_max=sigma_max,
                            divergence="hutchinson", probe="gaussian", key=jax.random.PRNGKey(3),
                            rtol=RTOL, atol=ATOL)
    err = ode_error(result, GAUSS, x, sigma_min, sigma_max).reshape(replicas, 2)
    stderr = jnp.std(err, axis=0, ddof=1) / math.sqrt(replicas)
    assert float(jnp.min(stderr)) > 1e-3  # the probes really are random
    np.testing.assert_array_less(jnp.abs(jnp.mean(err, axis=0)),
                                 4 * stderr + jnp.max(adaptive_bound(result, x)))


def test_fixed_steps_converge_at_fifth_order():
    """Tsit5 on a fixed log-sigma grid: the error falls ~2^5 per halving of the step."""
    sigma_min, sigma_max = 0.01, 80.0
    x = data(GAUSS, 4)
    errors = []
    for num_steps in (8, 16):
        result = log_likelihood(gauss_denoiser, x, sigma_min=sigma_min, sigma_max=sigma_max,
                                stepsize="fixed", num_steps=num_steps)
        assert int(result.nfe) == 1 + 6 * num_steps
        errors.append(float(jnp.max(jnp.abs(ode_error(result, GAUSS, x, sigma_min, sigma_max)))))
    order = math.log2(errors[0] / errors[1])
    assert order > 4.0, errors


# --------------------------------------------------------------------------------------
# Gaussian mixtures, 2-D and 8-D
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mixture,denoiser", [(GMM2, gmm2_denoiser), (GMM8, gmm8_denoiser)],
                         ids=["2d", "8d"])
def test_mixture_exact_trace(mixture, denoiser):
    sigma_min, sigma_max = 0.01, 80.0
    x = data(mixture, 4, seed=1)
    result = log_likelihood(denoiser, x, sigma_min=sigma_min, sigma_max=sigma_max, rtol=RTOL, atol=ATOL)
    err = ode_error(result, mixture, x, sigma_min, sigma_max)
    np.testing.assert_array_less(jnp.abs(err), adaptive_bound(result, x))


def test_mixture_hutchinson_rademacher_8d():
    sigma_min, sigma_max = 0.01, 80.0
    replicas = 16
    x = jnp.tile(data(GMM8, 2, seed=2), (replicas, 1))
    result = log_likelihood(gmm8_denoiser, x, sigma_min=sigma_min, sigma_max=sigma_max,
                            divergence="hutchinson", num_probes=2, key=jax.random.PRNGKey(0),
                            rtol=RTOL, atol=ATOL)
    err = ode_error(result, GMM8, x, sigma_min, sigma_max).reshape(replicas, 2)
    stderr = jnp.std(err, axis=0, ddof=1) / math.sqrt(replicas)
    assert float(jnp.min(stderr)) > 1e-3
    np.testing.assert_array_less(jnp.abs(jnp.mean(err, axis=0)),
                                 4 * stderr + jnp.max(adaptive_bound(result, x)))


# --------------------------------------------------------------------------------------
# Divergence estimators
# --------------------------------------------------------------------------------------


def test_hutchinson_is_unbiased():
    """Mean of many single-probe estimates -> exact trace of a non-diagonal Jacobian (mixture)."""
    x = data(GMM8, 3, seed=4)
    fn = lambda y: GMM8.denoiser(y, 0.7)  # noqa: E731
    num = 4000

    @jax.jit
    def estimates(x):
        _, jvp_fn = jax.linearize(fn, x)
        out = {}
        for probe in ("rademacher", "gaussian"):
            probes = draw_probes(jax.random.PRNGKey(5), jnp.arange(3), x, num_probes=num, probe=probe)
            single = jnp.sum(probes * jax.vmap(jvp_fn)(probes), axis=-1)  # [num, B]
            out[probe] = (single, hutchinson_trace(fn, x, probes)[1])
        dense = jax.vmap(jax.jacfwd(lambda v: GMM8.denoiser(v[None], 0.7)[0]))(x)
        return exact_trace(fn, x)[1], jnp.trace(dense, axis1=1, axis2=2), out

    exact, dense_trace, out = estimates(x)
    np.testing.assert_allclose(exact, dense_trace, rtol=1e-10)
    for probe, (single, pooled) in out.items():
        mean, stderr = jnp.mean(single, axis=0), jnp.std(single, axis=0) / math.sqrt(num)
        np.testing.assert_array_less(jnp.abs(mean - exact), 4 * stderr, err_msg=probe)
        np.testing.assert_allclose(pooled, mean, rtol=1e-10)


def test_nfe_counts_every_denoiser_call():
    """NFE from sol.stats equals the calls actually made (FSAL with rejected steps, and non-FSAL);
    the fixed-step count 1 + 6 n is checked in the order and sharding tests."""
    calls = []

    def counted(x, sigma):
        jax.debug.callback(lambda: calls.append(1))
        return GMM2.denoiser(x, sigma)

    x = data(GMM2, 2)
    for options in (dict(solver="tsit5", rtol=1e-7, atol=1e-7), dict(solver="heun", rtol=1e-3, atol=1e-3)):
        calls.clear()
        result = log_likelihood(counted, x, sigma_min=0.01, sigma_max=80.0, num_steps=4, **options)
        jax.effects_barrier()
        assert len(calls) == int(result.nfe), options


# --------------------------------------------------------------------------------------
# Bad inputs and failures
# --------------------------------------------------------------------------------------


def test_exact_trace_refuses_large_dimension():
    x = jnp.zeros((2, 20, 16))
    with pytest.raises(ValueError, match="hutchinson"):
        log_likelihood(lambda y, s: y, x, sigma_min=0.01, sigma_max=1.0, max_exact_dim=256)


def test_bad_options_list_valid_names():
    with pytest.raises(KeyError, match="hutchinson"):
        LikelihoodOptions(divergence="hutch")
    with pytest.raises(ValueError, match="no error estimate"):
        LikelihoodOptions(solver="euler")
    with pytest.raises(ValueError, match="sigma_min"):
        log_likelihood(gmm2_denoiser, jnp.zeros((1, 2)), sigma_min=1.0, sigma_max=0.5)


def test_non_convergence_reports_sigma_reached():
    x = data(GMM2, 2)
    with pytest.raises(LikelihoodSolverError, match=r"stopped at sigma=.*max_steps=3"):
        log_likelihood(gmm2_denoiser, x, sigma_min=0.01, sigma_max=80.0, max_steps=3, rtol=1e-8, atol=1e-8)
    result = log_likelihood(gmm2_denoiser, x, sigma_min=0.01, sigma_max=80.0, max_steps=3, rtol=1e-8,
                            atol=1e-8, on_failure="return")
    assert not bool(result.success)
    assert 0.01 < float(result.sigma_reached) < 80.0
    assert bool(jnp.all(jnp.isnan(result.logp)))  # never a plausible-looking number


# --------------------------------------------------------------------------------------
# Multi-device: the fixed-NFE mode sharded over 2 devices equals single-device
# --------------------------------------------------------------------------------------


def test_fixed_nfe_sharded_matches_single_device():
    devices = jax.devices()[:2]
    assert len(devices) == 2
    options = LikelihoodOptions(divergence="hutchinson", num_probes=2, stepsize="fixed", num_steps=12)
    solve = jax.jit(lambda x, key, ids: solve_log_likelihood(gmm8_denoiser, x, key, ids, sigma_min=0.01,
                                                             sigma_max=80.0, options=options))
    x = data(GMM8, 8, seed=7)
    key, ids = jax.random.PRNGKey(1), jnp.arange(8)
    single = solve(x, key, ids)
    mesh = Mesh(np.array(devices), ("data",))
    shard = NamedSharding(mesh, PartitionSpec("data"))
    sharded = solve(jax.device_put(x, shard), key, jax.device_put(ids, shard))
    assert len(sharded.logp.sharding.device_set) == 2
    np.testing.assert_allclose(np.asarray(sharded.logp), np.asarray(single.logp), rtol=1e-12, atol=1e-10)
    assert int(sharded.nfe) == int(single.nfe) == 1 + 6 * 12
    # Per-example probes: an example's estimate does not depend on its position in the batch.
    perm = jnp.array([5, 2, 7, 0, 1, 6, 3, 4])
    shuffled = solve(x[perm], key, ids[perm])
    np.testing.assert_allclose(np.asarray(shuffled.logp), np.asarray(single.logp[perm]), rtol=1e-12, atol=1e-10)

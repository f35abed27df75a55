"""Closed-form checks of the consistency discretisation, curricula, schedules, distances and the
boundary condition (fast; no training)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax import precond, sampling, sde
from diffjax.distillation import (ConsistencyPrecond, get_curriculum, get_distance, get_level_sampling,
                                  halflife_for_decay, karras_level, pair_probabilities, sample_pairs)
from diffjax.registry import UnknownNameError
from diffjax.training.state import ema_decay


def test_ramp_levels_are_the_karras_grid_ascending():
    levels = karras_level(jnp.arange(18), 18, 0.002, 80.0)
    np.testing.assert_allclose(levels, sampling.get_grid("karras")(18, 0.002, 80.0)[:-1][::-1], rtol=1e-5)
    assert float(levels[0]) == pytest.approx(0.002, rel=1e-5) and float(levels[-1]) == pytest.approx(80.0)


def test_nested_grid_halves_to_every_other_level():
    fine, coarse = (sampling.get_grid("nested_karras")(n, 0.002, 80.0) for n in (16, 8))
    np.testing.assert_allclose(fine[::2], coarse, rtol=1e-6)
    sampling.validate_grid(fine)
    np.testing.assert_allclose(sampling.get_grid("nested_karras")(1, 0.002, 80.0), [80.0, 0.0], rtol=1e-6)


def _ict_reference(k, K, s0=10, s1=1280):
    """Song & Dhariwal (2023), eq. 7, in plain Python."""
    k_prime = math.floor(K / (math.log2(math.floor(s1 / s0)) + 1))
    return min(s0 * 2 ** math.floor(k / k_prime), s1) + 1


def test_ict_curriculum_doubles_from_s0_to_s1():
    cur = get_curriculum("ict")
    K = 8000  # K' = floor(8000 / (log2(128) + 1)) = 1000
    assert cur.stage_length(K) == 1000
    got = [int(cur.num_scales_at(k, K)) for k in range(0, K, 37)]
    assert got == [_ict_reference(k, K) for k in range(0, K, 37)]
    assert [int(cur.num_scales_at(k, K)) for k in (0, 999, 1000, 2000, 6999, 7000, 7999)] == [
        11, 11, 21, 41, 641, 1281, 1281]
    assert float(cur.target_decay(123, K)) == 0.0  # iCT: the target is the online network
    assert int(get_curriculum("ict", s0=10, s1=1280).num_scales_at(10**6, K)) == 1281


def test_ct_curriculum_and_adaptive_target_decay():
    """Song et al. (2023), App. C: N(k) = ceil(sqrt(k/K ((s1+1)^2 - s0^2) + s0^2) - 1) + 1 and
    mu(k) = exp(s0 log mu0 / N(k)), with s0 = 2, s1 = 150, mu0 = 0.9."""
    cur = get_curriculum("ct")
    K = 1000
    for k in (0, 1, 10, 250, 500, 999, 1000):
        n = math.ceil(math.sqrt(k / K * (151**2 - 4) + 4) - 1) + 1
        assert int(cur.num_scales_at(k, K)) == max(n, 2)
        np.testing.assert_allclose(float(cur.target_decay(k, K)), math.exp(2 * math.log(0.9) / n), rtol=1e-6)
    assert int(cur.num_scales_at(0, K)) == 2 and int(cur.num_scales_at(K, K)) == 151
    assert float(cur.target_decay(0, K)) == pytest.approx(0.9)


def test_lognormal_pair_probabilities_follow_the_erf_formula():
    """p(sigma_i) ∝ erf((ln sigma_(i+1) - P_mean)/(sqrt 2 P_std)) - erf((ln sigma_i - P_mean)/(sqrt 2 P_std))."""
    from scipy.special import erf

    N, M = 11, 21
    probs = np.asarray(pair_probabilities(get_level_sampling("lognormal"), N, M, 0.002, 80.0))
    sig = np.asarray(karras_level(np.arange(N), N, 0.002, 80.0), np.float64)
    cdf = erf((np.log(sig) + 1.1) / (np.sqrt(2) * 2.0))
    expected = np.diff(cdf) / np.sum(np.diff(cdf))
    np.testing.assert_allclose(probs[: N - 1], expected, rtol=1e-4)
    assert np.all(probs[N - 1:] == 0)
    uniform = np.asarray(pair_probabilities(get_level_sampling("uniform"), N, M, 0.002, 80.0))
    np.testing.assert_allclose(uniform[: N - 1], 1 / (N - 1), rtol=1e-6)
    lo, hi = sample_pairs(jax.random.PRNGKey(0), (4000,), get_level_sampling("lognormal"), N, M, 0.002, 80.0)
    assert bool(jnp.all(hi > lo)) and float(jnp.max(hi)) <= 80.0 + 1e-3
    counts = np.bincount(np.searchsorted(sig, np.asarray(lo), side="left").clip(0, N - 2), minlength=N - 1)
    np.testing.assert_allclose(counts / 4000, expected, atol=0.03)


def test_distances():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 4))
    y = x + 0.1
    np.testing.assert_allclose(get_distance("l2")(x, y), 0.01, rtol=1e-5)
    np.testing.assert_allclose(get_distance("l1")(x, y), 0.1, rtol=1e-5)
    huber = get_distance("pseudo_huber")
    c = 0.00054 * math.sqrt(32)
    assert huber.constant(32) == pytest.approx(c)
    np.testing.assert_allclose(huber(x, y), math.sqrt(32 * 0.01 + c**2) - c, rtol=1e-5)
    np.testing.assert_allclose(huber(x, x), 0.0, atol=1e-7)
    wave = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (2, 2048, 1))
    stft = get_distance("mrstft", resolutions=((256, 64), (512, 128)))
    assert float(jnp.max(jnp.abs(stft(wave, wave)))) < 1e-5 and bool(jnp.all(stft(wave, 0.5 * wave) > 0.1))
    with pytest.raises(UnknownNameError, match="valid names: l1, l2, mrstft, pseudo_huber"):
        get_distance("lpips")


def test_boundary_condition_is_exact_identity():
    """c_skip(sigma_min) = 1, c_out(sigma_min) = 0: the student is the identity there, to the bit."""
    process = sde.get_sde("edm")
    pc = precond.get_precond("consistency", process=process, sigma_data=0.5)
    assert pc.boundary == pytest.approx(0.002)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 7))
    wild = lambda x_in, c_noise, cond: 1e3 * jnp.sin(x_in) + 50.0  # any finite network
    out = precond.make_denoiser(pc, wild)(x, pc.boundary)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x))
    c_skip, c_out = pc.skip_out(jnp.array([0.002, 1.0, 80.0]), jnp.zeros((3, 1)))
    np.testing.assert_array_equal(np.asarray(c_skip[0]), 1.0)
    np.testing.assert_array_equal(np.asarray(c_out[0]), 0.0)
    edm = precond.get_precond("edm", sigma_data=0.5)  # far from the boundary it approaches EDM's
    np.testing.assert_allclose(c_skip[2:, 0], edm.skip_out(jnp.array([80.0]), jnp.zeros((1, 1)))[0][:, 0],
                               rtol=1e-3)
    with pytest.raises(ValueError, match="sigma_min must be > 0"):
        ConsistencyPrecond(sigma_min=0.0)
    with pytest.raises(ValueError, match="needs `process`"):
        ConsistencyPrecond()


def test_halflife_for_decay_inverts_ema_decay():
    h = halflife_for_decay(0.95, 512)
    assert ema_decay(h, 512) == pytest.approx(0.95)
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\)"):
        halflife_for_decay(1.0, 8)


def test_unknown_curriculum_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="valid names: ct, fixed, ict"):
        get_curriculum("ict2")
    with pytest.raises(ValueError, match="num_scales must be >= 2"):
        get_curriculum("fixed", num_scales=1)

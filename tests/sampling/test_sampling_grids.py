"""Noise-level grids: shape, ordering, endpoints, the paper formulas, and clear errors."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.sampling import GRIDS, get_grid, grid_for_process, validate_grid
from diffjax.sde import get_sde


OWN_GRIDS = [n for n in GRIDS.names() if GRIDS.get(n).__module__ == "diffjax.sampling.grids"]


@pytest.mark.parametrize("name", OWN_GRIDS)
@pytest.mark.parametrize("num_steps", [1, 2, 10])
def test_grid_contract(name, num_steps):
    process = get_sde("vp")
    sigmas = np.asarray(grid_for_process(process, name, num_steps))
    validate_grid(sigmas)
    assert sigmas.shape == (num_steps + 1,) and sigmas[-1] == 0.0
    low, high = process.sigma_range()
    np.testing.assert_allclose(sigmas[0], high, rtol=0.02)  # vp_discrete: the nearest DDPM level
    if num_steps > 1:
        np.testing.assert_allclose(sigmas[-2], low, rtol=0.06)


def test_karras_is_eq5():
    sigmas = np.asarray(get_grid("karras")(3, 0.002, 80.0, rho=7.0))
    mid = ((80.0 ** (1 / 7) + 0.002 ** (1 / 7)) / 2) ** 7
    np.testing.assert_allclose(sigmas, [80.0, mid, 0.002, 0.0], rtol=1e-5)


def test_log_snr_is_uniform_in_log_sigma():
    sigmas = np.asarray(get_grid("log_snr")(6, 0.01, 100.0))[:-1]
    np.testing.assert_allclose(np.diff(np.log(sigmas)), -math.log(1e4) / 5, rtol=1e-5)
    np.testing.assert_allclose(sigmas, np.asarray(get_grid("polyexponential")(6, 0.01, 100.0))[:-1],
                               rtol=1e-5)


def test_time_quadratic_is_quadratic_in_t():
    process = get_sde("vp")
    sigmas = grid_for_process(process, "time_quadratic", 5)
    t = np.asarray(process.t_from_sigma(sigmas[:-1]))
    t_lo, t_hi = process.t_min, process.T
    np.testing.assert_allclose(t, t_lo + (1 - np.arange(5) / 4) ** 2 * (t_hi - t_lo), rtol=1e-4, atol=1e-6)


def test_vp_discrete_is_the_ddpm_table():
    betas = np.linspace(1e-4, 0.02, 1000)
    table = np.sqrt(1 / np.cumprod(1 - betas) - 1)
    full = np.asarray(get_grid("vp_discrete")(1000, table[0], table[-1]))
    np.testing.assert_allclose(full[:-1], table[::-1], rtol=1e-5)
    subset = np.asarray(get_grid("vp_discrete")(10, 0.01, 157.0))[:-1]
    assert all(np.min(np.abs(table - s) / s) < 1e-5 for s in subset)
    with pytest.raises(ValueError, match="only .* discrete levels"):
        get_grid("vp_discrete")(500, 1.0, 1.5)


def test_bad_grids_are_clear_errors():
    with pytest.raises(ValueError, match="process time: pass process="):
        get_grid("uniform_t")(10, 0.01, 10.0)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        get_grid("karras")(0, 0.01, 10.0)
    with pytest.raises(ValueError, match="sigma_min <= sigma_max"):
        get_grid("karras")(5, 10.0, 0.01)
    with pytest.raises(ValueError, match="end with exactly 0"):
        validate_grid(jnp.array([3.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="strictly decreasing"):
        validate_grid(jnp.array([3.0, 3.0, 0.0]))
    with pytest.raises(ValueError, match="1-D"):
        validate_grid(jnp.zeros((2, 2)))
    assert set(GRIDS.names(process_time=True)) >= {"uniform_t", "time_quadratic"}


def test_grid_for_process_overrides_the_range():
    sigmas = grid_for_process(get_sde("vp"), "karras", 4, sigma_min=0.002, sigma_max=80.0, rho=7.0)
    np.testing.assert_allclose(sigmas, get_grid("karras")(4, 0.002, 80.0), rtol=1e-6)

"""Process invariance (DESIGN.md, "the one idea"): a sampler on a grid of sigma~ gives the same
answer whatever the process, and the VE-view solve is the process's own probability-flow ODE."""
import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax import toy
from diffjax.sampling import get_grid, get_sampler, grid_for_process
from diffjax.sde import get_sde

from conftest import as_dtype

pytestmark = pytest.mark.usefixtures("x64")
PROCESSES = ["ve", "vp", "subvp", "edm", "cosine", "flow"]


def denoiser_through(process, mix):
    """A VE-view denoiser built from the process's exact data-space score at time t(sigma~):
    `D(x~, s) = x~ + s^2 alpha(t) score_t(alpha(t) x~)` (Tweedie in the VE view)."""

    def denoiser(x, sigma):
        t = process.t_from_sigma(sigma)
        alpha = process.alpha(t)
        return x + sigma**2 * alpha * mix.score_t(process, alpha * x, t)

    return denoiser


@pytest.mark.parametrize("name", ["heun", "dpmpp_2m_sde"])
def test_same_answer_for_every_process(name, mixture):
    mix = as_dtype(mixture, jnp.float64)
    sigmas = get_grid("karras")(6, 0.02, 10.0)
    x = sigmas[0] * jax.random.normal(jax.random.PRNGKey(0), (8, 2), jnp.float64)
    key = jax.random.PRNGKey(1)
    direct = get_sampler(name)(mix.denoiser, x, sigmas, key=key)
    for process in PROCESSES:
        via = get_sampler(name)(denoiser_through(get_sde(process), mix), x, sigmas, key=key)
        np.testing.assert_allclose(via, direct, rtol=1e-8, atol=1e-9, err_msg=process)


@pytest.mark.parametrize("name", ["vp", pytest.param("flow", marks=pytest.mark.slow)])
def test_ve_view_solve_is_the_process_pf_ode(name, mixture):
    """Integrate `dx/dt = f x - g^2 score / 2` (Song et al. 2021, eq. 13) in data space from T to
    t_min with diffrax, and compare `x(t_min) / alpha(t_min)` with the VE-view adaptive solve over
    `[sigma~(T), sigma~(t_min)]` from `x(T) / alpha(T)`."""
    process, mix = get_sde(name), as_dtype(mixture, jnp.float64)
    sigma_min, sigma_max = process.sigma_range()
    x_tilde = sigma_max * jax.random.normal(jax.random.PRNGKey(2), (4, 2), jnp.float64)

    def drift(t, x, args):
        return process.ode_drift(mix.denoiser, x, t)

    sol = diffrax.diffeqsolve(diffrax.ODETerm(drift), diffrax.Dopri8(), process.T, process.t_min,
                              None, process.alpha(process.T) * x_tilde,
                              stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10),
                              max_steps=100_000)
    data_space = sol.ys[0] / process.alpha(process.t_min)
    store = {}
    get_sampler("adaptive")(mix.denoiser, x_tilde, jnp.array([sigma_max, sigma_min, 0.0]),
                            rtol=1e-10, atol=1e-10, max_steps=100_000,
                            callback=lambda info: store.setdefault("x", np.asarray(info["x"])))
    jax.effects_barrier()
    np.testing.assert_allclose(store["x"], data_space, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", PROCESSES)
def test_uniform_t_grid_maps_through_the_process(name):
    process = get_sde(name)
    sigmas = grid_for_process(process, "uniform_t", 9)
    t = np.linspace(process.T, process.t_min, 9)
    np.testing.assert_allclose(sigmas[:-1], process.sigma_tilde(jnp.asarray(t)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(sigmas)[[0, -2]], process.sigma_range()[::-1], rtol=1e-6)

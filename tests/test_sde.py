"""Forward processes against Monte-Carlo simulation and their papers' closed forms."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax import sde as sde_lib
from diffjax import toy
from diffjax.registry import UnknownNameError

pytestmark = pytest.mark.usefixtures("x64")
NAMES = sde_lib.SDES.names()


def test_registry_lists_all_paper_processes():
    assert set(NAMES) == {"ve", "vp", "subvp", "edm", "cosine", "flow"}


def _simulation_window(process):
    """A window [t0, t1] where the process moves a lot: from t_min to a mid-range time."""
    t1 = {"edm": 2.0}.get(type(process).__name__.lower(), 0.5 * process.T)
    return process.t_min, t1


@pytest.mark.parametrize("name", NAMES)
def test_marginal_matches_euler_maruyama_simulation(name):
    """Simulate dx = f x dt + g dw from the exact marginal at t0 and compare moments at t1.

    Tolerances: with N paths the sample mean has standard error std/sqrt(N) and the sample std
    std/sqrt(2N); we allow 5 standard errors. Euler-Maruyama's weak error for this linear SDE is
    ~ dt/2 * int f^2 dt (relative), <= 3e-4 here with 4000 steps; we allow 1e-3 relative on top.
    """
    process = sde_lib.get_sde(name)
    t0, t1 = _simulation_window(process)
    num_paths, num_steps = 10_000, 4000
    x0 = jnp.array([[1.0, -2.0]])
    key0, key_path = jax.random.split(jax.random.PRNGKey(0))
    x_start = process.marginal_sample(key0, jnp.broadcast_to(x0, (num_paths, 2)), jnp.asarray(t0))
    times = jnp.linspace(t0, t1, num_steps + 1)

    def step(x, inputs):
        t, dt, key = inputs
        drift, diffusion = process.sde(x, t)
        return x + drift * dt + diffusion * jnp.sqrt(dt) * jax.random.normal(key, x.shape), None

    keys = jax.random.split(key_path, num_steps)
    x_end, _ = jax.jit(lambda x: jax.lax.scan(step, x, (times[:-1], jnp.diff(times), keys)))(x_start)
    mean, std = process.marginal(x0, jnp.asarray(t1))
    mean, std = np.asarray(mean[0]), float(std.reshape(()))
    tol_mean = 5 * std / math.sqrt(num_paths) + 1e-3 * (np.abs(mean) + std)
    tol_std = 5 * std / math.sqrt(2 * num_paths) + 1e-3 * std
    np.testing.assert_array_less(np.abs(np.mean(x_end, 0) - mean), tol_mean)
    np.testing.assert_array_less(np.abs(np.std(x_end, 0) - std), tol_std)


@pytest.mark.parametrize("name", NAMES)
def test_diffusion_satisfies_variance_identity(name):
    """g^2 = d sigma^2/dt - 2 f sigma^2 with derivatives by central differences (error ~ h^2)."""
    process = sde_lib.get_sde(name)
    t = jnp.linspace(process.t_min, process.T, 9)[1:-1]
    h = 1e-6 * process.T
    dsigma2 = (process.sigma(t + h) ** 2 - process.sigma(t - h) ** 2) / (2 * h)
    dlog_alpha = (jnp.log(process.alpha(t + h)) - jnp.log(process.alpha(t - h))) / (2 * h)
    expected = dsigma2 - 2 * dlog_alpha * process.sigma(t) ** 2
    np.testing.assert_allclose(process.diffusion_sq(t), expected, rtol=1e-6)
    np.testing.assert_allclose(process.drift_coef(t), dlog_alpha, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_t_from_sigma_inverts_sigma_tilde(name):
    process = sde_lib.get_sde(name)
    t = jnp.linspace(process.t_min, process.T, 17)
    np.testing.assert_allclose(process.t_from_sigma(process.sigma_tilde(t)), t, rtol=1e-9)
    lo, hi = process.sigma_range()
    sigmas = jnp.exp(jnp.linspace(math.log(lo), math.log(hi), 17))
    np.testing.assert_allclose(process.sigma_tilde(process.t_from_sigma(sigmas)), sigmas, rtol=1e-9)


def _score_sde_log_mean_coeff(t, beta_0=0.1, beta_1=20.0):
    """score_sde `sde_lib.VPSDE.marginal_prob`: -t^2 (b1 - b0)/4 - t b0/2."""
    return -0.25 * t**2 * (beta_1 - beta_0) - 0.5 * t * beta_0


T_POINTS = np.array([1e-3, 0.05, 0.3, 0.7, 1.0])


def test_vp_matches_score_sde_formulas():
    vp = sde_lib.get_sde("vp")
    lmc = _score_sde_log_mean_coeff(T_POINTS)
    np.testing.assert_allclose(vp.alpha(T_POINTS), np.exp(lmc), rtol=1e-12)
    np.testing.assert_allclose(vp.sigma(T_POINTS), np.sqrt(1 - np.exp(2 * lmc)), rtol=1e-12)
    beta = 0.1 + T_POINTS * (20.0 - 0.1)
    np.testing.assert_allclose(vp.drift_coef(T_POINTS), -0.5 * beta, rtol=1e-12)
    np.testing.assert_allclose(vp.diffusion_sq(T_POINTS), beta, rtol=1e-9)


def test_subvp_matches_score_sde_formulas():
    subvp = sde_lib.get_sde("subvp")
    lmc = _score_sde_log_mean_coeff(T_POINTS)
    np.testing.assert_allclose(subvp.alpha(T_POINTS), np.exp(lmc), rtol=1e-12)
    np.testing.assert_allclose(subvp.sigma(T_POINTS), 1 - np.exp(2 * lmc), rtol=1e-12)
    beta = 0.1 + T_POINTS * (20.0 - 0.1)
    discount = 1 - np.exp(-2 * 0.1 * T_POINTS - (20.0 - 0.1) * T_POINTS**2)
    np.testing.assert_allclose(subvp.diffusion_sq(T_POINTS), beta * discount, rtol=1e-9)
    vp = sde_lib.get_sde("vp")
    assert np.all(subvp.diffusion_sq(T_POINTS) < vp.diffusion_sq(T_POINTS))


def test_cosine_matches_iddpm_alpha_bar():
    """iDDPM eq. 17: alpha_bar(t) = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2), at steps t = i/1000."""
    cosine = sde_lib.get_sde("cosine")
    steps = np.array([1, 100, 500, 900, 990]) / 1000
    f = lambda u: np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2
    np.testing.assert_allclose(cosine.alpha(steps) ** 2, f(steps) / f(0.0), rtol=1e-12)
    np.testing.assert_allclose(cosine.alpha(steps) ** 2 + cosine.sigma(steps) ** 2, 1.0, rtol=1e-12)


def test_ve_edm_flow_closed_forms():
    ve, edm, flow = (sde_lib.get_sde(n) for n in ("ve", "edm", "flow"))
    np.testing.assert_allclose(ve.sigma(T_POINTS), 0.01 * 5000.0**T_POINTS, rtol=1e-12)
    np.testing.assert_allclose(ve.diffusion_sq(T_POINTS),
                               2 * np.log(5000.0) * (0.01 * 5000.0**T_POINTS) ** 2, rtol=1e-9)
    np.testing.assert_allclose(edm.diffusion_sq(T_POINTS), 2 * T_POINTS, rtol=1e-12)
    np.testing.assert_allclose(flow.sigma_tilde(T_POINTS[:-1]), T_POINTS[:-1] / (1 - T_POINTS[:-1]))
    assert edm.sigma_range() == pytest.approx((0.002, 80.0))


@pytest.mark.parametrize("name", NAMES)
def test_score_and_ode_drift_from_exact_denoiser(name):
    """score(x, t) from the VE-view exact denoiser equals the exact data-space score."""
    process = sde_lib.get_sde(name)
    data = toy.gmm(dim=2, num_modes=3)
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 2))
    for t in (0.1 * process.T, 0.6 * process.T):
        t = jnp.asarray(t)
        np.testing.assert_allclose(process.score(data.denoiser, x, t), data.score_t(process, x, t),
                                   rtol=1e-9, atol=1e-12)
        g2 = process.diffusion_sq(t)
        drift = process.drift_coef(t) * x - 0.5 * g2 * data.score_t(process, x, t)
        np.testing.assert_allclose(process.ode_drift(data.denoiser, x, t), drift, rtol=1e-9, atol=1e-12)
        reverse, diffusion = process.reverse_sde(data.denoiser, x, t)
        np.testing.assert_allclose(reverse, drift - 0.5 * g2 * data.score_t(process, x, t),
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.broadcast_to(diffusion, x.shape), jnp.sqrt(g2) * jnp.ones_like(x))


@pytest.mark.parametrize("name", NAMES)
def test_prior_matches_marginal_at_T(name):
    process = sde_lib.get_sde(name)
    x = process.prior_sample(jax.random.PRNGKey(0), (4000, 3), jnp.float64)
    assert x.shape == (4000, 3)
    np.testing.assert_allclose(np.std(x), process.sigma(jnp.asarray(process.T)), rtol=0.05)
    expected = jax.scipy.stats.norm.logpdf(x, scale=process.prior_std()).sum(-1)
    np.testing.assert_allclose(process.prior_logp(x), expected, rtol=1e-10)


@pytest.mark.parametrize("name,kwargs,field", [
    ("vp", dict(beta_min=20.0, beta_max=0.1), "beta_min"),
    ("subvp", dict(beta_min=-1.0), "beta_min"),
    ("ve", dict(sigma_min=0.0), "sigma_min"),
    ("ve", dict(sigma_min=5.0, sigma_max=1.0), "sigma_min"),
    ("edm", dict(t_min=0.0), "t_min"),
    ("vp", dict(t_min=2.0), "t_min"),
    ("flow", dict(T=1.0), "T"),
    ("cosine", dict(T=1.5), "T"),
])
def test_invalid_parameters_name_the_field(name, kwargs, field):
    with pytest.raises(ValueError, match=field):
        sde_lib.get_sde(name, **kwargs)


def test_unknown_process_lists_valid_names():
    with pytest.raises(UnknownNameError, match="valid names: cosine, edm, flow, subvp, ve, vp"):
        sde_lib.get_sde("vpp")

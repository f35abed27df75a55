"""Closed-form checks of the deterministic samplers (STYLE rule 24a), in float64.

- Observed order of convergence against a converged PF-ODE solution, as steps double.
- Exactness against the Gaussian's closed-form PF-ODE map at many steps.
- Identities that hold in the VE view (DDIM = Euler, DPM-Solver-2 = DPM-2, ...).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax import toy
from diffjax.sampling import get_grid, get_sampler

from conftest import as_dtype

pytestmark = pytest.mark.usefixtures("x64")

# Global orders. The multistep methods start at order 1 and warm up, and a low-order first step
# costs a global O(h^2): the Karras grid (rho = 7) makes the first steps short in log sigma, so the
# asymptotic order shows. LMS (Adams-Bashforth 4) is checked as "3 or more" (warm-up); UniPC's
# corrector lifts UniP-3 to order 4 (Zhao et al. 2023, Thm. 3.3).
ORDERS = {"euler": 1, "ddim": 1, "dpm_solver_1": 1, "heun": 2, "dpm_2": 2, "dpm_solver_2": 2,
          "dpmpp_2s": 2, "dpmpp_2m": 2, "dpmpp_3m": 3, "dpm_solver_3": 3, "lms": 3, "unipc": 4}
AT_LEAST = {"lms"}
STEPS = (16, 32, 64)
# Tolerance on the fitted slope: with 3 grids (2 doublings) in the asymptotic regime the local
# slopes measured here agree with the order to ~0.1-0.25 (next-order terms still decay by 2 per
# doubling); 0.3 leaves margin yet fails for an off-by-one order (a 1.0 change of slope).
SLOPE_TOL = 0.3


def smooth_mixture():
    """Three overlapping modes: a nonlinear, non-Gaussian flow that is smooth at every level."""
    return as_dtype(toy.gmm(dim=2, num_modes=3, radius=1.0, std=0.5), jnp.float64)


def state_at_last_level(name, denoiser, x_init, sigmas):
    """The sampler's state at the last positive level (before its step to 0), via the callback."""
    store = {}

    def grab(info):
        if int(info["i"]) == sigmas.shape[0] - 3:
            store["x"] = np.asarray(info["x"])

    with jax.disable_jit():  # eager: no compile per grid length, and cheap at these sizes
        get_sampler(name)(denoiser, x_init, sigmas, callback=grab)
    jax.effects_barrier()
    return store["x"]


@pytest.fixture(scope="module")
def order_setup():
    with jax.enable_x64(True):  # module scope: the function-scoped x64 fixture is not active yet
        return _order_setup()


def _order_setup():
    mix = smooth_mixture()
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 2), jnp.float64)
    grids = [get_grid("karras")(n, 0.05, 10.0) for n in STEPS]
    sigma_max, sigma_last = float(grids[0][0]), float(grids[0][-2])  # the same for every N
    # Reference: Dopri8 at 1e-12 over [sigma_max, sigma_last]; its state there, from the callback.
    ref_grid = jnp.array([sigma_max, sigma_last, 0.0])
    store = {}
    get_sampler("adaptive")(mix.denoiser, sigma_max * x, ref_grid, solver="dopri8", rtol=1e-12,
                            atol=1e-12, max_steps=100_000,
                            callback=lambda info: store.setdefault("x", np.asarray(info["x"])))
    jax.effects_barrier()
    return mix, sigma_max * x, grids, store["x"]


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_observed_order_of_convergence(name, order_setup):
    mix, x_init, grids, reference = order_setup
    errors = [np.max(np.abs(state_at_last_level(name, mix.denoiser, x_init, s) - reference))
              for s in grids]
    slope = -np.polyfit(np.log(STEPS), np.log(errors), 1)[0]
    assert slope > ORDERS[name] - SLOPE_TOL, (slope, errors)
    if name not in AT_LEAST:
        assert slope < ORDERS[name] + SLOPE_TOL, (slope, errors)


# Exactness: the whole sample (through the step to 0) against the exact PF-ODE map to 0, on a
# log-SNR grid over [1e-5, 20]. The step to 0 is D(x, sigma_min), off the exact map by about
# sigma_min^2 / (2 c^2) |x - mu| ~ 1e-9 (c >= 0.5). Step counts and bounds: ~3x the measured
# error, so that an error of one order lower (or a wrong coefficient) fails by orders of magnitude.
EXACT = {  # name: (num_steps, tolerance)
    "euler": (16384, 2e-3), "ddim": (16384, 2e-3), "dpm_solver_1": (16384, 2e-3),
    "heun": (8192, 5e-6), "dpm_2": (8192, 3e-6), "dpm_solver_2": (8192, 3e-6),
    "dpmpp_2s": (8192, 3e-6), "dpmpp_2m": (8192, 4e-6),
    "dpmpp_3m": (2048, 2e-6), "lms": (2048, 2e-6), "dpm_solver_3": (1024, 5e-8),
    "unipc": (1024, 3e-8), "adaptive": (2, 2e-9),
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_gaussian_matches_closed_form_map(name, gaussian):
    g = as_dtype(gaussian, jnp.float64)
    num_steps, tol = EXACT[name]
    sigmas = get_grid("log_snr")(num_steps, 1e-5, 20.0)
    x_init = sigmas[0] * jax.random.normal(jax.random.PRNGKey(3), (64, 2), jnp.float64)
    options = {"rtol": 1e-10, "atol": 1e-10} if name == "adaptive" else {}
    out = get_sampler(name)(g.denoiser, x_init, sigmas, **options)
    with jax.numpy_rank_promotion("allow"):  # toy.ode_map broadcasts [D] against [B, D]
        exact = g.ode_map(x_init, sigmas[0], 0.0)
    np.testing.assert_allclose(out, exact, atol=tol, rtol=0)


def test_adaptive_reports_honest_nfe(mixture):
    """`info['nfe']` equals the denoiser calls actually made (counted on the host), per example."""
    calls = []

    def counted(x, sigma):
        jax.debug.callback(lambda: calls.append(1))
        return mixture.denoiser(x, sigma)

    x = 80.0 * jax.random.normal(jax.random.PRNGKey(0), (1, 2))
    out, info = get_sampler("adaptive")(counted, x, jnp.array([80.0, 0.01, 0.0]), rtol=1e-4,
                                        atol=1e-4, return_info=True)
    jax.effects_barrier()
    assert int(info["nfe"][0]) == len(calls) > 10
    assert int(info["nfe"][0]) == 6 * int(info["num_steps"][0]) + 1 + 1  # Tsit5 FSAL + step to 0


@pytest.mark.parametrize("a, b, options_a", [
    ("ddim", "euler", {}),
    ("dpm_solver_1", "euler", {}),
    ("dpm_solver_2", "dpm_2", {}),
    ("dpmpp_2m_sde", "dpmpp_2m", {"eta": 0.0}),
    ("dpmpp_3m_sde", "dpmpp_3m", {"eta": 0.0}),
])
def test_methods_that_coincide_in_the_ve_view(a, b, options_a, gaussian):
    g = as_dtype(gaussian, jnp.float64)
    sigmas = get_grid("log_snr")(7, 0.05, 10.0)
    x = sigmas[0] * jax.random.normal(jax.random.PRNGKey(0), (8, 2), jnp.float64)
    np.testing.assert_allclose(get_sampler(a)(g.denoiser, x, sigmas, **options_a),
                               get_sampler(b)(g.denoiser, x, sigmas), rtol=1e-10, atol=1e-12)


def test_stochastic_identities(gaussian):
    """DDPM ancestral = Euler-ancestral(eta=1) = DDIM(eta=1) = pc(ancestral, none), noise for noise."""
    g = as_dtype(gaussian, jnp.float64)
    sigmas = get_grid("karras")(6, 0.05, 10.0)
    x = sigmas[0] * jax.random.normal(jax.random.PRNGKey(0), (8, 2), jnp.float64)
    key = jax.random.PRNGKey(5)
    base = get_sampler("ancestral")(g.denoiser, x, sigmas, key=key)
    for name, options in [("euler_ancestral", {}), ("ddim", {"eta": 1.0}),
                          ("pc", {"predictor": "ancestral", "corrector": "none"})]:
        np.testing.assert_allclose(get_sampler(name)(g.denoiser, x, sigmas, key=key, **options), base,
                                   rtol=1e-10, atol=1e-12)

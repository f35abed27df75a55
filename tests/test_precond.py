"""Parameterisations: exact conversions, and every parameterisation reproduces the exact denoiser."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax import losses, precond, sde, toy
from diffjax.registry import UnknownNameError

pytestmark = pytest.mark.usefixtures("x64")

# float64 numpy constants: module-level jax arrays would be created before the x64 fixture runs.
_RNG = np.random.default_rng(0)
X0 = _RNG.normal(size=(6, 3))
EPS = _RNG.normal(size=(6, 3))
SIGMA = np.array([0.002, 0.05, 0.5, 1.0, 7.0, 80.0])
X = X0 + SIGMA[:, None] * EPS


def test_conversion_round_trips_are_exact():
    eps = precond.eps_from_x0(x=X, x0=X0, sigma=SIGMA)
    np.testing.assert_allclose(eps, EPS, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(precond.x0_from_eps(x=X, eps=eps, sigma=SIGMA), X0, atol=1e-12)
    v = precond.v_from_x0(x=X, x0=X0, sigma=SIGMA)
    np.testing.assert_allclose(precond.x0_from_v(x=X, v=v, sigma=SIGMA), X0, atol=1e-11)
    score = precond.score_from_x0(x=X, x0=X0, sigma=SIGMA)
    np.testing.assert_allclose(precond.x0_from_score(x=X, score=score, sigma=SIGMA), X0, atol=1e-10)
    np.testing.assert_allclose(score, -EPS / SIGMA[:, None], rtol=1e-9)


def test_v_matches_salimans_ho_definition():
    """v = alpha eps - sigma_vp x0 for the VP process with the same sigma~."""
    alpha = 1 / jnp.sqrt(1 + SIGMA**2)
    expected = alpha[:, None] * EPS - (SIGMA * alpha)[:, None] * X0
    np.testing.assert_allclose(precond.v_from_x0(x=X, x0=X0, sigma=SIGMA), expected, rtol=1e-9, atol=1e-12)


PROCESS = sde.get_sde("vp")
DATA_KWARGS = dict(dim=3, mean=[0.3, -1.0, 0.0], std=[0.5, 1.0, 2.0])
CONFIGS = list(itertools.product(
    precond.PRECONDS.names(), ("unit", "process"), ("log_sigma", "time")))


def _oracle_net(pc, data):
    """A 'network' that outputs the exact regression target, recovering x~ and sigma from its inputs."""

    def net_fn(x_in, c_noise, cond):
        sigma = (jnp.exp(4 * c_noise) if pc.noise_conditioning == "log_sigma"
                 else PROCESS.sigma_tilde(c_noise))
        x = x_in / pc.c_in(sigma)[:, None]
        x0 = data.denoiser(x, sigma)
        return pc.target(x0=x0, eps=(x - x0) / sigma[:, None], sigma=sigma)

    return net_fn


@pytest.mark.parametrize("name,scaling,conditioning", CONFIGS)
def test_every_parameterisation_reproduces_the_exact_denoiser(name, scaling, conditioning):
    pc = precond.get_precond(name, process=PROCESS, input_scaling=scaling,
                             noise_conditioning=conditioning, sigma_data=0.7)
    data = toy.gaussian(**DATA_KWARGS)
    denoiser = precond.make_denoiser(pc, _oracle_net(pc, data))
    sigma = SIGMA[1:-1]  # inside the process range
    x = X[1:-1]
    np.testing.assert_allclose(denoiser(x, sigma), data.denoiser(x, sigma), rtol=1e-8, atol=1e-9)
    # a scalar sigma broadcasts over the batch
    np.testing.assert_allclose(denoiser(x, 0.5), data.denoiser(x, 0.5), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("name", precond.PRECONDS.names())
def test_target_is_inverse_of_output_map(name):
    pc = precond.get_precond(name, process=PROCESS)
    out = pc.target(x0=X0, eps=EPS, sigma=SIGMA)
    np.testing.assert_allclose(pc.output_to_x0(out, X, SIGMA), X0, rtol=1e-7, atol=1e-9)


def test_flow_target_is_rectified_flow_velocity():
    """For the linear interpolant, the flow parameterisation regresses eps - x0 (Liu et al. 2023)."""
    pc = precond.get_precond("flow", process=sde.get_sde("flow"))
    np.testing.assert_allclose(pc.target(x0=X0, eps=EPS, sigma=SIGMA), EPS - X0, rtol=1e-9, atol=1e-12)


def test_native_weighting_recovers_each_parameterisation_loss():
    """||F - target||^2 = w_native ||eps_hat - eps||^2 with the paper weightings (Kingma & Gao 2023, Tab. 1)."""
    expected = {"eps": jnp.ones_like(SIGMA), "x0": SIGMA**2, "v": 1 + SIGMA**2, "score": SIGMA**-2.0,
                "edm": (SIGMA**2 + 0.25) / 0.25}
    for name, weight in expected.items():
        pc = precond.get_precond(name, process=PROCESS)
        np.testing.assert_allclose(losses.native_weight(SIGMA, precond=pc), weight, rtol=1e-9)
    np.testing.assert_allclose(losses.edm_weight(SIGMA, sigma_data=0.5), expected["edm"], rtol=1e-12)


def test_bad_parameterisation_inputs():
    with pytest.raises(UnknownNameError, match="valid names: .*edm, eps, flow, score, v, x0"):
        precond.get_precond("epsilon")
    with pytest.raises(ValueError, match="input_scaling"):
        precond.get_precond("eps", input_scaling="none")
    with pytest.raises(ValueError, match="needs `process`"):
        precond.get_precond("eps", noise_conditioning="time")
    with pytest.raises(ValueError, match="sigma_data"):
        precond.get_precond("edm", sigma_data=0.0)

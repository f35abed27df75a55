"""Stochastic samplers reproduce the target (STYLE rule 24a): moments of a Gaussian, and energy
distance to exact samples of a mixture. Runs are eager (`disable_jit`): at these sizes that is
cheaper than one compile per sampler, and the jitted path is covered by the registry test."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax import toy
from diffjax.sampling import get_grid, get_sampler, initial_noise, seed_keys

from conftest import stochastic_samplers

NUM = 2000
# Steps and options per sampler: enough steps for the first-order ones; the Langevin family needs
# several corrector steps per level and a higher-dimensional target (see the 16-D test below).
CONFIG = {
    "euler_maruyama": (64, {}), "reverse_diffusion": (64, {}), "ancestral": (64, {}),
    "euler_ancestral": (64, {}), "dpm_2_ancestral": (32, {}), "dpmpp_2s_ancestral": (32, {}),
    "dpmpp_2m_sde": (32, {}), "dpmpp_3m_sde": (32, {}), "edm_stochastic": (32, {}),
    "ddim": (32, {"eta": 0.5}),
}
HIGH_DIM = {
    "pc": (32, {}),
    "langevin": (64, {"n_steps": 4, "snr": 0.3}),
    "annealed_langevin": (32, {"n_steps": 10, "snr": 0.3}),
}


def draw(name, denoiser, dim, num_steps, options, num=NUM):
    sigmas = get_grid("karras")(num_steps, 0.01, 20.0)
    seeds = jnp.arange(num)
    with jax.disable_jit():
        return get_sampler(name)(denoiser, initial_noise(seeds, (dim,), float(sigmas[0])), sigmas,
                                 key=seed_keys(seeds), **options)


def test_every_stochastic_sampler_is_covered():
    assert set(CONFIG) | set(HIGH_DIM) >= set(stochastic_samplers()) | {"ddim"}


@pytest.mark.parametrize("name", sorted(CONFIG))
def test_gaussian_moments(name, gaussian):
    """Mean and std of 2000 samples. Standard errors: mean 1.5/sqrt(2000) = 0.034, relative std
    1/sqrt(4000) = 0.016. Measured discretisation biases at these step counts: |rel. std| <= 0.09
    (ancestral at 64 steps, DDIM eta=0.5 at 32), the rest <= 0.06. Bounds: bias + ~4 SE."""
    num_steps, options = CONFIG[name]
    out = draw(name, gaussian.denoiser, 2, num_steps, options)
    mean, std = gaussian.means[0], gaussian.stds[0]
    assert float(jnp.max(jnp.abs(out.mean(0) - mean))) < 0.15
    assert float(jnp.max(jnp.abs(out.std(0) / std - 1.0))) < 0.16


@pytest.mark.parametrize("name", sorted(CONFIG))
def test_mixture_energy_distance(name, mixture):
    """Energy distance to 2000 exact samples of the 8-mode mixture. Two independent exact sets
    measure 0.002 (the noise floor); the samplers measure 0.0005-0.0035; a single Gaussian of the
    mixture's spread measures 0.039. Bound: 0.006."""
    num_steps, options = CONFIG[name]
    out = draw(name, mixture.denoiser, 2, num_steps, options)
    exact = mixture.sample(jax.random.PRNGKey(123), NUM)
    assert float(toy.energy_distance(out, exact)) < 0.006


@pytest.mark.parametrize("name", sorted(HIGH_DIM))
def test_langevin_family_in_16d(name):
    """The snr rule `eps = 2 (snr ||z|| / ||score||)^2` needs norms that concentrate, so these run
    on a 16-D Gaussian (stds 0.5..1.5), 1000 samples. SE: mean 1.5/sqrt(1000) = 0.047 (max of 16:
    ~3 SE); relative std 0.022. Measured: |mean err| <= 0.1, |rel. std err| <= 0.13. Bounds add ~3 SE."""
    num_steps, options = HIGH_DIM[name]
    stds = np.linspace(0.5, 1.5, 16)
    target = toy.gaussian(dim=16, mean=0.3, std=list(stds))
    out = draw(name, target.denoiser, 16, num_steps, options, num=1000)
    assert float(jnp.max(jnp.abs(out.mean(0) - 0.3))) < 0.2
    assert float(jnp.max(jnp.abs(out.std(0) / stds - 1.0))) < 0.2

"""Per-example seeds (DESIGN.md, "Randomness"): a sample depends on its own seed only, not on the
batch size, the batch order or the other examples. Eager runs on 3 levels keep this cheap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.sampling import example_keys, get_grid, get_sampler, initial_noise, seed_keys

from conftest import stochastic_samplers

SIGMAS = get_grid("karras")(3, 0.05, 10.0)
# 'langevin' shares one step size across the batch (score_sde's batch-averaged norms; see
# sde_samplers.langevin_correct), so its samples depend on the batch by design; so does 'pc' with
# that corrector. pc is checked here with the batch-independent annealed corrector.
OPTIONS = {"pc": {"corrector": "annealed_langevin"}}
BATCH_COUPLED = {"langevin"}


def run(name, denoiser, seeds, key=None):
    seeds = np.asarray(seeds)
    x = initial_noise(seeds, (2,), float(SIGMAS[0]))
    with jax.disable_jit():
        return get_sampler(name)(denoiser, x, SIGMAS, key=seed_keys(seeds) if key is None else key,
                                 **OPTIONS.get(name, {}))


@pytest.mark.parametrize("name", [n for n in stochastic_samplers() if n not in BATCH_COUPLED])
def test_samples_do_not_depend_on_batch(name, mixture):
    big = run(name, mixture.denoiser, [7, 3, 11, 5, 2])
    small = run(name, mixture.denoiser, [11, 7])
    np.testing.assert_allclose(small, big[jnp.array([2, 0])], rtol=1e-5, atol=1e-6)
    assert not np.allclose(big[0], big[1])


def test_single_key_is_folded_with_the_example_index(mixture):
    key = jax.random.PRNGKey(4)
    big = run("euler_ancestral", mixture.denoiser, [1, 2, 3, 4], key=key)
    small = run("euler_ancestral", mixture.denoiser, [1, 2], key=key)
    np.testing.assert_allclose(small, big[:2], rtol=1e-5, atol=1e-6)
    keys = example_keys(key, 4)
    np.testing.assert_array_equal(keys[1], jax.random.fold_in(key, 1))


def test_typed_keys_work_like_raw_keys(mixture):
    seeds = np.array([3, 9])
    x = initial_noise(seeds, (2,), float(SIGMAS[0]))
    raw = get_sampler("dpmpp_2m_sde")(mixture.denoiser, x, SIGMAS, key=seed_keys(seeds))
    typed = get_sampler("dpmpp_2m_sde")(mixture.denoiser, x, SIGMAS,
                                         key=jax.random.wrap_key_data(seed_keys(seeds)))
    np.testing.assert_array_equal(raw, typed)


def test_initial_noise_is_per_seed():
    a = initial_noise(np.array([5, 6, 7]), (4, 2), 80.0)
    b = initial_noise(np.array([7, 5]), (4, 2), 80.0)
    assert a.shape == (3, 4, 2)
    np.testing.assert_array_equal(b, a[jnp.array([2, 0])])
    assert 40.0 < float(jnp.std(initial_noise(np.arange(256), (8,), 80.0))) < 120.0


def test_adaptive_steps_are_per_example(mixture):
    x = initial_noise(np.arange(4), (2,), 80.0)
    grid = jnp.array([80.0, 0.01, 0.0])
    big, info = get_sampler("adaptive")(mixture.denoiser, x, grid, return_info=True)
    small = get_sampler("adaptive")(mixture.denoiser, x[:1], grid)
    np.testing.assert_allclose(small, big[:1], rtol=1e-5, atol=1e-6)
    assert info["nfe"].shape == (4,)


def test_wrong_number_of_keys_is_a_clear_error(mixture):
    with pytest.raises(ValueError, match="3 per-example keys for a batch of 2"):
        get_sampler("euler_ancestral")(mixture.denoiser, jnp.ones((2, 2)), SIGMAS,
                                       key=seed_keys(np.arange(3)))

"""Registry-wide properties (STYLE rule 24b): every sampler runs jitted and un-jitted with the same
result, stays finite, keeps shapes, calls the denoiser exactly `nfe()` times, and calls the hook
and the callback once per step at the new level; every sampler is a module-level `def sample_<name>`
registered with its metadata. Also the bad-input errors."""
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.registry import UnknownNameError
from diffjax.sampling import GRIDS, SAMPLERS, get_grid, get_sampler, nfe, steps_for_nfe

NUM_STEPS = 4
SIGMAS = get_grid("karras")(NUM_STEPS, 0.05, 10.0)


def counting(denoiser, calls):
    """Wraps `denoiser` so that every call made at run time appends its sigma to `calls`."""

    def wrapped(x, sigma):
        jax.debug.callback(lambda s: calls.append(float(s)), sigma)
        return denoiser(x, sigma)

    return wrapped


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler_jitted_matches_eager_and_counts(name, mixture):
    x_init = SIGMAS[0] * jax.random.normal(jax.random.PRNGKey(0), (3, 2))
    key = jax.random.PRNGKey(1)
    calls, hooked, steps = [], [], []

    def hook(x, sigma):
        jax.debug.callback(lambda s: hooked.append(float(s)), sigma)
        return x

    sample = get_sampler(name)
    jitted = jax.jit(lambda x, k: sample(counting(mixture.denoiser, calls), x, SIGMAS, key=k,
                                         hook=hook, callback=lambda info: steps.append(int(info["i"]))))
    out = jitted(x_init, key)
    jax.effects_barrier()

    assert out.shape == x_init.shape and out.dtype == x_init.dtype
    assert bool(jnp.all(jnp.isfinite(out)))
    # Host callbacks are unordered: compare as sets. The hook acts after every step, at the new level.
    np.testing.assert_allclose(sorted(hooked, reverse=True), np.asarray(SIGMAS[1:]), rtol=1e-6)
    assert sorted(steps) == list(range(NUM_STEPS))
    if SAMPLERS.meta(name)["nfe"] is not None:  # the adaptive solver reports its own (test_adaptive)
        assert len(calls) == nfe(name, NUM_STEPS)

    if name == "adaptive":  # diffrax jits internally; "un-jitted" is a plain call
        eager = sample(mixture.denoiser, x_init, SIGMAS, key=key)
    else:
        with jax.disable_jit():
            eager = sample(mixture.denoiser, x_init, SIGMAS, key=key)
    np.testing.assert_allclose(out, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler_rejects_a_bad_grid(name, mixture):
    x = jnp.ones((2, 2))
    sample = get_sampler(name)
    with pytest.raises(ValueError, match="end with exactly 0"):
        sample(mixture.denoiser, x, jnp.array([10.0, 1.0, 0.1]), key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample(mixture.denoiser, x, jnp.array([1.0, 10.0, 0.0]), key=jax.random.PRNGKey(0))


def test_stochastic_sampler_without_key_is_a_clear_error(mixture):
    with pytest.raises(ValueError, match="stochastic: pass key"):
        get_sampler("euler_ancestral")(mixture.denoiser, jnp.ones((2, 2)), SIGMAS)


def test_traced_grid_is_accepted(mixture):
    """Under jit the grid is a tracer and cannot be checked; the sampler still runs."""
    out = jax.jit(lambda s: get_sampler("euler")(mixture.denoiser, s[0] * jnp.ones((2, 2)), s))(SIGMAS)
    assert bool(jnp.all(jnp.isfinite(out)))


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError) as info:
        get_sampler("dpmpp_2n")
    assert "dpmpp_2m" in str(info.value) and "euler" in str(info.value)
    with pytest.raises(UnknownNameError) as info:
        get_grid("karas")
    assert "karras" in str(info.value) and "uniform_t" in str(info.value)
    with pytest.raises(UnknownNameError, match="valid names"):
        nfe("nope", 10)


def test_nfe_convention_and_budgets():
    assert nfe("heun", 18) == 35  # DESIGN.md: EDM Heun with N levels costs 2N - 1
    assert nfe("euler", 10) == 10 and nfe("dpm_solver_3", 10) == 28
    assert nfe("pc", 10, n_corrector_steps=2) == 30
    assert steps_for_nfe("heun", 35) == 18 and steps_for_nfe("dpmpp_2m", 10) == 10
    with pytest.raises(ValueError, match="nearest valid budgets are 9 and 11"):
        steps_for_nfe("heun", 10)
    with pytest.raises(ValueError, match="adaptive"):
        nfe("adaptive", 10)
    for name in SAMPLERS:
        if SAMPLERS.meta(name)["nfe"] is not None:
            assert nfe(name, steps_for_nfe(name, nfe(name, 7))) == nfe(name, 7)


def test_bad_sampler_options_are_clear_errors(mixture):
    x = jnp.ones((2, 2))
    with pytest.raises(ValueError, match="eta must be in"):
        get_sampler("euler_ancestral")(mixture.denoiser, x, SIGMAS, key=jax.random.PRNGKey(0), eta=2.0)
    with pytest.raises(UnknownNameError, match="valid names"):
        get_sampler("pc")(mixture.denoiser, x, SIGMAS, key=jax.random.PRNGKey(0), predictor="heun")
    with pytest.raises(ValueError, match="order must be"):
        get_sampler("lms")(mixture.denoiser, x, SIGMAS, order=5)
    with pytest.raises(TypeError):
        get_sampler("euler")(mixture.denoiser, x, SIGMAS, s_churn=1.0)


def test_registries_are_complete():
    assert set(GRIDS.names()) >= {"karras", "uniform_t", "log_snr", "exponential", "polyexponential",
                                  "time_quadratic", "vp_discrete"}
    assert set(SAMPLERS.names()) >= {
        "euler_maruyama", "reverse_diffusion", "ancestral", "langevin", "annealed_langevin", "pc",
        "edm_stochastic", "euler", "heun", "dpm_2", "lms", "ddim", "dpm_solver_1", "dpm_solver_2",
        "dpm_solver_3", "dpmpp_2s", "dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde", "dpmpp_3m_sde", "unipc",
        "euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "adaptive"}


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler_is_a_module_level_def_with_its_metadata(name):
    """`grep "def sample_<name>"` finds every sampler: no factory-made functions."""
    fn = get_sampler(name)
    assert fn.__name__ == "sample_" + name
    assert getattr(sys.modules[fn.__module__], fn.__name__) is fn
    meta = SAMPLERS.meta(name)
    assert {"nfe", "stochastic", "order"} <= set(meta)
    assert isinstance(meta["stochastic"], bool) and isinstance(meta["order"], int)
    assert meta["nfe"] is None or callable(meta["nfe"])


def test_metadata_filters_and_is_required():
    deterministic = SAMPLERS.names(stochastic=False)
    assert {"euler", "heun", "dpmpp_2m", "unipc", "adaptive"} <= set(deterministic)
    assert not {"euler_ancestral", "pc", "consistency"} & set(deterministic)
    assert SAMPLERS.meta("heun")["order"] == 2 and SAMPLERS.meta("adaptive")["nfe"] is None
    with pytest.raises(TypeError, match="needs the metadata"):
        SAMPLERS.register("no_meta", nfe=None)
    with pytest.raises(TypeError, match="needs the metadata"):
        GRIDS.register("no_meta")
    assert GRIDS.meta("karras")["process_time"] is False


def test_nfe_rejects_an_option_the_sampler_does_not_take():
    assert nfe("dpmpp_2m", 10, eta=0.5) == 10  # a known option that does not change the cost
    with pytest.raises(TypeError, match="has no option 'n_corrector_steps'.*eta"):
        nfe("dpmpp_2m", 10, n_corrector_steps=2)

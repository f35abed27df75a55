"""Denoising score matching on Gaussian data, where its minimum and the ELBO are closed form."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax import data as data_lib
from diffjax import losses, precond, sde, toy
from diffjax.models.log_variance import WithLogVariance
from diffjax.registry import UnknownNameError

STD = np.array([0.5, 2.0])  # per-dimension data std c
N = 20_000


def _gaussian():
    return toy.gaussian(dim=2, mean=[0.5, -1.0], std=STD.tolist())


def _mmse_eps(sigma):
    """E||eps_hat - eps||^2 per dimension for the exact denoiser: c^2 / (c^2 + sigma^2) -> [B, D]."""
    return STD[None] ** 2 / (STD[None] ** 2 + sigma[:, None] ** 2)


def _check_mean(samples, expected, what):
    """|mean(samples) - expected| within 5 standard errors of the Monte-Carlo mean."""
    samples = np.asarray(samples)
    stderr = samples.std() / math.sqrt(samples.size)
    assert abs(samples.mean() - expected) < 5 * stderr + 1e-12, (what, samples.mean(), expected, stderr)


# 'learned' needs the model's u(sigma): tested on its own below
FIXED_WEIGHTINGS = [n for n in losses.WEIGHTINGS.names() if not losses.WEIGHTINGS.meta(n).get("learned")]
WEIGHTING_NAMES = [n for n in FIXED_WEIGHTINGS if n != "native"]


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("weighting", WEIGHTING_NAMES)
def test_dsm_reaches_analytic_minimum_and_perturbation_costs_more(weighting):
    """E[loss | sigma] = w(sigma) * mean_d c_d^2/(c_d^2 + sigma^2) for the exact denoiser, and a
    shifted denoiser D + delta adds exactly w(sigma) * delta^2 / sigma^2."""
    process, data = sde.get_sde("vp"), _gaussian()
    pc = precond.get_precond("edm")
    loss = losses.make_loss(process=process, precond=pc, noise_levels="uniform_t", weighting=weighting)
    x0 = data.sample(jax.random.PRNGKey(0), N)
    key = jax.random.PRNGKey(1)
    exact, sigma = loss.per_example(data.denoiser, x0, key)
    weight = loss.weighting(sigma, process=process, precond=pc)
    _check_mean(exact - weight * _mmse_eps(sigma).mean(-1), 0.0, "exact")
    delta = 0.1
    shifted, sigma2 = loss.per_example(lambda x, s: data.denoiser(x, s) + delta, x0, key)
    np.testing.assert_array_equal(sigma, sigma2)
    excess = shifted - exact  # = w * (2 delta (D - x0) + delta^2) / sigma^2 per dim; mean of 1st term is 0
    _check_mean(excess - weight * delta**2 / sigma**2, 0.0, "perturbed")
    assert float(jnp.mean(shifted)) > float(jnp.mean(exact))


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("levels", ["uniform_t", "likelihood_importance"])
@pytest.mark.parametrize("name", sde.SDES.names())
def test_likelihood_weighted_loss_is_negative_elbo(name, levels):
    """(T - t_min)/2 E[loss_sum] = int c^2/(c^2 + s^2) dlog s = sum_d 1/2 log(smax^2 (c^2 + smin^2) /
    (smin^2 (c^2 + smax^2))) for the exact denoiser: the diffusion term of -ELBO (I-MMSE, Guo et al.
    2005), for every process and both estimators."""
    process, data = sde.get_sde(name), _gaussian()
    loss = losses.make_loss(process=process, precond=precond.get_precond("edm"), noise_levels=levels,
                            weighting="likelihood", reduction="sum")
    x0 = data.sample(jax.random.PRNGKey(2), N)
    per_example = losses.negative_elbo_diffusion_term(loss(data.denoiser, x0, jax.random.PRNGKey(3)), process)
    lo, hi = process.sigma_range()
    closed_form = np.sum(0.5 * np.log(hi**2 * (STD**2 + lo**2) / (lo**2 * (STD**2 + hi**2))))
    _check_mean(per_example, closed_form, f"{name}/{levels}")


@pytest.mark.usefixtures("x64")
def test_importance_sampling_has_constant_weight():
    """w_likelihood * correction = 2 log(smax/smin)/(T - t_min): the weighting's variance is gone."""
    process = sde.get_sde("vp")
    levels = losses.get_noise_levels("likelihood_importance", process=process)
    sigma = levels.sample(jax.random.PRNGKey(0), (1000,))
    lo, hi = process.sigma_range()
    assert float(sigma.min()) >= lo * (1 - 1e-9) and float(sigma.max()) <= hi * (1 + 1e-9)
    product = losses.likelihood_weight(sigma, process=process) * levels.correction(sigma)
    np.testing.assert_allclose(product, 2 * math.log(hi / lo) / (process.T - process.t_min), rtol=1e-6)


def test_noise_level_distributions_follow_their_laws():
    process = sde.get_sde("edm")
    key = jax.random.PRNGKey(0)
    log_sigma = jnp.log(losses.get_noise_levels("log_normal").sample(key, (20_000,)))
    assert abs(float(log_sigma.mean()) + 1.2) < 0.05 and abs(float(log_sigma.std()) - 1.2) < 0.05
    sigma = losses.get_noise_levels("log_uniform", process=process).sample(key, (20_000,))
    lo, hi = process.sigma_range()
    u = (jnp.log(sigma) - math.log(lo)) / math.log(hi / lo)
    assert float(u.min()) >= 0 and float(u.max()) <= 1 and abs(float(u.mean()) - 0.5) < 0.01
    t = process.t_from_sigma(losses.get_noise_levels("uniform_t", process=process).sample(key, (20_000,)))
    assert abs(float(t.mean()) - 0.5 * (process.t_min + process.T)) < 0.01 * process.T


class _TinyNet:
    """A linear 'network' with parameters, cheap to compile, for the registry-wide sweep."""

    @staticmethod
    def apply(params, x_in, c_noise, cond):
        return params["a"] * x_in + params["b"] * c_noise[:, None]


@pytest.mark.parametrize("sde_name", sde.SDES.names())
def test_every_parameterisation_and_weighting_runs_jitted(sde_name):
    """Every process x parameterisation x weighting: jitted loss and gradient are finite, loss is [B].

    One jitted program per process holds all parameterisation x weighting combinations, so the
    sweep costs 6 compiles rather than 288.
    """
    process = sde.get_sde(sde_name)
    combos = list(itertools.product(precond.PRECONDS.names(), FIXED_WEIGHTINGS))
    x0 = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    params = {"a": jnp.float32(0.9), "b": jnp.float32(0.1)}

    def all_losses(p, key):
        results = {}
        for pc_name, weighting in combos:
            pc = precond.get_precond(pc_name, process=process)
            loss = losses.make_loss(process=process, precond=pc, noise_levels="log_uniform",
                                    weighting=weighting)
            fn = lambda q: loss(precond.make_denoiser(pc, lambda *a: _TinyNet.apply(q, *a)), x0, key)
            per_example, vjp = jax.vjp(fn, p)
            results[pc_name, weighting] = (per_example, vjp(jnp.ones_like(per_example))[0])
        return results

    results = jax.jit(all_losses)(params, jax.random.PRNGKey(1))
    assert set(results) == set(combos)
    bad = [(combo, per_example.shape) for combo, (per_example, grads) in results.items()
           if per_example.shape != (4,)
           or not all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves((per_example, grads)))]
    assert not bad, bad


@pytest.mark.parametrize("name", losses.NOISE_LEVELS.names())
def test_every_noise_level_distribution_with_every_process(name):
    for sde_name in sde.SDES.names():
        process = sde.get_sde(sde_name)
        levels = losses.get_noise_levels(name, process=process)
        sigma = jax.jit(lambda k: levels.sample(k, (64,)))(jax.random.PRNGKey(0))
        assert sigma.shape == (64,) and bool(jnp.all(sigma > 0)) and bool(jnp.all(jnp.isfinite(sigma)))
        assert bool(jnp.all(jnp.isfinite(levels.correction(sigma))))


def test_mask_excludes_padding():
    data = _gaussian()
    x0 = data.sample(jax.random.PRNGKey(0), 8)
    loss = losses.make_loss(process=sde.get_sde("edm"), precond=precond.get_precond("edm"))
    mask = jnp.ones_like(x0).at[:, 1].set(0.0)
    bad = lambda x, s: data.denoiser(x, s).at[:, 1].add(100.0)  # huge error only where masked out
    np.testing.assert_allclose(loss(bad, x0, jax.random.PRNGKey(1), mask),
                               loss(data.denoiser, x0, jax.random.PRNGKey(1), mask), rtol=1e-5)


def test_unknown_names_list_valid_choices():
    with pytest.raises(UnknownNameError, match="valid names: .*likelihood.*min_snr"):
        losses.get_weighting("elbo")
    with pytest.raises(UnknownNameError, match="valid names: likelihood_importance, log_normal"):
        losses.get_noise_levels("lognormal")
    with pytest.raises(UnknownNameError, match="unknown dataset 'cifar10'; valid names: .*gaussian, gmm"):
        data_lib.get_dataset("cifar10")
    with pytest.raises(ValueError, match=r"weighting 'min_snr' has no parameter\(s\) \['gama'\]; its parameters: \['gamma'\]"):
        losses.get_weighting("min_snr", gama=3.0)
    with pytest.raises(ValueError, match="reduction"):
        losses.make_loss(process=sde.get_sde("vp"), precond=precond.get_precond("eps"),
                         reduction="max")(lambda x, s: x, jnp.ones((2, 2)), jax.random.PRNGKey(0))


def test_learned_weighting_is_edm2_eq21_and_learns_the_log_variance():
    """EDM2 eq. 21: loss = lambda(sigma) ||D - x0||^2 / sigma^2 / e^u + u, per example. For data
    N(0, s^2 I) and the exact denoiser D = s^2/(s^2 + sigma^2) x~, E||D - x0||^2 / sigma^2 per
    dimension is s^2/(s^2 + sigma^2), so the optimal head is u*(sigma) = log(lambda(sigma) s^2 /
    (s^2 + sigma^2)) (d/du [m e^-u + u] = 0). Fitting only the head (Fourier features + Dense) on
    sampled sigmas must find it. Tolerance 0.1 in u: each example's per-dimension mean of D = 64
    scaled chi-square(1) terms has relative std sqrt(2/64) = 0.18, the head averages it over the
    ~10^4 examples per octave of sigma it sees in 400 steps x 256 (0.002 relative), and the rest is
    the head's smoothness bias and Adam's final jitter at lr 1e-2 (about 0.01 per step in u)."""
    import flax.linen as nn
    import optax


    s, sigma_data, dim = 0.5, 1.0, 64
    process = sde.get_sde("edm")
    pc = precond.get_precond("edm", process=process, sigma_data=sigma_data)
    loss = losses.make_loss(process=process, precond=pc, noise_levels="log_uniform",
                            noise_levels_kwargs={"sigma_min": 0.05, "sigma_max": 5.0}, weighting="learned")
    assert loss.learned
    class Identity(nn.Module):  # the backbone does not matter here: only the head is trained
        def __call__(self, x, c_noise, cond=None):
            return x

    head = WithLogVariance(Identity())
    params = head.init(jax.random.PRNGKey(0), jnp.zeros((1, dim)), jnp.zeros((1,)))["params"]
    exact = lambda x, sigma: s**2 / (s**2 + sigma[:, None] ** 2) * x  # noqa: E731
    u = lambda p, sigma: head.apply({"params": p}, sigma, method="log_variance")  # noqa: E731

    # eq. 21 exactly, for a given u
    x0 = s * jax.random.normal(jax.random.PRNGKey(1), (8, dim))
    value, sigma = loss.per_example(exact, x0, jax.random.PRNGKey(2), log_variance=lambda g: 0.3 + 0 * g)
    base, _ = losses.make_loss(process=process, precond=pc, noise_levels="log_uniform", weighting="edm",
                               noise_levels_kwargs={"sigma_min": 0.05, "sigma_max": 5.0}).per_example(
        exact, x0, jax.random.PRNGKey(2))
    np.testing.assert_allclose(value, base * np.exp(-0.3) + 0.3, rtol=1e-6)
    with pytest.raises(ValueError, match="log_variance"):
        loss.per_example(exact, x0, jax.random.PRNGKey(2))

    tx = optax.adam(1e-2)

    @jax.jit
    def step(p, state, key):
        key_x, key_loss = jax.random.split(key)
        batch = s * jax.random.normal(key_x, (256, dim))
        value, grads = jax.value_and_grad(
            lambda q: jnp.mean(loss.per_example(exact, batch, key_loss, log_variance=lambda g: u(q, g))[0]))(p)
        updates, state = tx.update(grads, state)
        return optax.apply_updates(p, updates), state

    state = tx.init(params)
    for i in range(400):
        params, state = step(params, state, jax.random.PRNGKey(100 + i))
    grid = jnp.asarray([0.1, 0.3, 1.0, 3.0])
    lam = (grid**2 + sigma_data**2) / sigma_data**2
    np.testing.assert_allclose(u(params, grid), np.log(lam * s**2 / (s**2 + grid**2)), atol=0.1)

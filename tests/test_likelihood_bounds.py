"""ELBO and units against closed forms: the Gaussian ELBO, dequantisation, PCM and mu-law bits."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from diffjax import losses, sde, toy
from diffjax.likelihood import (bits_per_dim, dequantised_log_likelihood, elbo,
                                gaussian_diffusion_integral, gaussian_elbo, get_quantiser,
                                log_likelihood, process_elbo)

pytestmark = pytest.mark.usefixtures("x64")

CENTRED = toy.gaussian(dim=3, std=[1.0, 0.5, 2.0])
SIGMA_MIN, SIGMA_MAX = 0.2, 80.0


def centred_denoiser(x, sigma):
    return CENTRED.denoiser(x, sigma)


def data(num, seed=0):
    return CENTRED.sample(jax.random.PRNGKey(seed), num).astype(jnp.float64)


# --------------------------------------------------------------------------------------
# ELBO
# --------------------------------------------------------------------------------------


def test_closed_form_elbo_below_exact_and_ode_likelihood():
    """Centred data, so the prior N(0, sigma_max^2) changes the model density by ~c^2 ((c^2 +
    sigma_min^2) / sigma_max^2)^2 < 1e-8 nats: the bound must hold for the analytic density."""
    x = data(8)
    bound = gaussian_elbo(CENTRED.means[0], CENTRED.stds[0], x, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)
    exact = CENTRED.log_prob(x, SIGMA_MIN)
    assert bool(jnp.all(bound < exact - 1e-4)), exact - bound
    ode = log_likelihood(centred_denoiser, x, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, rtol=1e-6, atol=1e-6)
    assert bool(jnp.all(bound < ode.logp)), ode.logp - bound
    # The ODE value itself, prior approximation included: within N c_max^2 / sigma_max^2 (x5) plus the
    # adaptive-solve bound of test_likelihood.py.
    ode_bound = int(ode.num_steps) * math.sqrt(8 * 4) * 1e-6 * (jnp.abs(ode.delta_logp) + 2)
    np.testing.assert_array_less(jnp.abs(ode.logp - exact), 5 * 3 * 2.0**2 / SIGMA_MAX**2 + ode_bound)
    # The bound tightens as sigma_min -> 0 (decoder_ratio 1/sqrt(2) is optimal there).
    tight = gaussian_elbo(CENTRED.means[0], CENTRED.stds[0], x, sigma_min=0.01, sigma_max=SIGMA_MAX)
    gap = CENTRED.log_prob(x, 0.01) - tight
    assert bool(jnp.all((gap > 0) & (gap < 1e-3))), gap


def test_gaussian_diffusion_integral_averages_to_i_mmse():
    """Averaged over x ~ N(0, c^2), the diffusion integral is log(b/a) - log((c^2+b^2)/(c^2+a^2))/2."""
    x = data(20000, seed=3)
    a, b = 0.05, 30.0
    mean = jnp.mean(gaussian_diffusion_integral(CENTRED.means[0], CENTRED.stds[0], x, a, b))
    c2 = CENTRED.stds[0] ** 2
    i_mmse = jnp.sum(math.log(b / a) - 0.5 * jnp.log((c2 + b**2) / (c2 + a**2)))
    np.testing.assert_allclose(mean, i_mmse, atol=0.02)


def test_monte_carlo_elbo_matches_closed_form():
    x = data(4, seed=1)
    result = elbo(centred_denoiser, x, jax.random.PRNGKey(0), sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX,
                  num_samples=512)
    closed = gaussian_elbo(CENTRED.means[0], CENTRED.stds[0], x, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)
    z = (result.elbo - closed) / result.stderr
    assert bool(jnp.all(jnp.abs(z) < 4.0)), z
    assert bool(jnp.all(result.stderr < 0.5))
    np.testing.assert_allclose(result.elbo, result.prior + result.diffusion + result.reconstruction)
    assert result.nfe == 512


def test_process_elbo_adds_the_alpha_jacobian():
    process = sde.get_sde("vp")
    x = data(2, seed=2)
    key = jax.random.PRNGKey(4)
    alpha = float(process.alpha(jnp.asarray(process.t_min)))
    got = process_elbo(process, centred_denoiser, alpha * x, key, num_samples=8)
    ref = elbo(centred_denoiser, x, key, sigma_min=process.sigma_range()[0],
               sigma_max=process.sigma_range()[1], num_samples=8)
    np.testing.assert_allclose(got.elbo, ref.elbo - 3 * math.log(alpha), rtol=1e-10)


def test_elbo_diffusion_term_is_the_likelihood_weighted_loss():
    """diffjax.losses' likelihood weighting with importance sampling, through
    `negative_elbo_diffusion_term`, estimates the same integral on the process's sigma range."""
    process = sde.get_sde("vp")
    lo, hi = process.sigma_range()
    loss = losses.make_loss(process=process, precond=None, noise_levels="likelihood_importance",
                            weighting="likelihood", reduction="sum")
    x = jnp.tile(data(2, seed=5), (512, 1))
    estimate = jax.jit(lambda x, key: losses.negative_elbo_diffusion_term(loss(centred_denoiser, x, key), process))
    value = estimate(x, jax.random.PRNGKey(6)).reshape(512, 2)
    mean, stderr = jnp.mean(value, axis=0), jnp.std(value, axis=0) / math.sqrt(512)
    closed = gaussian_diffusion_integral(CENTRED.means[0], CENTRED.stds[0], x[:2], lo, hi)
    np.testing.assert_array_less(jnp.abs(mean - closed), 4 * stderr)


def test_elbo_rejects_bad_arguments():
    with pytest.raises(ValueError, match="decoder_ratio"):
        elbo(centred_denoiser, data(1), jax.random.PRNGKey(0), sigma_min=0.1, sigma_max=1.0,
             decoder_ratio=1.0)


# --------------------------------------------------------------------------------------
# Units: quantisers, dequantisation, bits
# --------------------------------------------------------------------------------------


def test_quantisers_reject_data_outside_their_range():
    pcm16 = get_quantiser("pcm16")
    with pytest.raises(ValueError, match=r"pcm16: values must lie in \[-1, 0.99996948\]"):
        pcm16.encode(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 65535\]"):
        pcm16.dequantise(jax.random.PRNGKey(0), np.array([[65536]]))
    with pytest.raises(ValueError, match="integers"):
        pcm16.dequantise(jax.random.PRNGKey(0), np.array([[0.5]]))
    with pytest.raises(ValueError, match=r"mulaw8: waveform values must lie in \[-1, 1\]"):
        get_quantiser("mulaw8").encode(np.array([[-1.5]]))
    with pytest.raises(KeyError, match="pcm16"):
        get_quantiser("pcm24")


def test_pcm16_round_trip_and_jacobian():
    pcm16 = get_quantiser("pcm16")
    ints = np.array([[-32768, -1, 0, 1, 32767]])
    codes = pcm16.encode(ints / 32768.0)
    np.testing.assert_array_equal(codes, ints + 32768)
    y, log_det = pcm16.dequantise(jax.random.PRNGKey(0), codes)
    assert bool(jnp.all((y >= ints / 32768.0) & (y < (ints + 1) / 32768.0)))
    np.testing.assert_allclose(log_det, [5 * math.log(2.0**-15)])
    # bits = -log p / (N ln 2) + 15 for 16-bit PCM on [-1, 1).
    np.testing.assert_allclose(bits_per_dim(jnp.zeros(1), 5, log_det=log_det), [15.0])


def test_mulaw_jacobian_matches_autodiff():
    mulaw = get_quantiser("mulaw8")
    codes = np.arange(0, 256, 17, dtype=np.int32)[None]
    y, log_det = mulaw.dequantise(jax.random.PRNGKey(1), codes)
    u = (mulaw.compand(y) + 1.0) / mulaw.width  # continuous code
    dy_du = jax.vmap(jax.grad(lambda v: mulaw.expand(-1.0 + v * mulaw.width)))(u[0])
    np.testing.assert_allclose(log_det[0], jnp.sum(jnp.log(dy_du)), rtol=1e-9)
    np.testing.assert_array_equal(mulaw.encode(np.asarray(y)), codes)


def _exact_log_mass(edges_lo, edges_hi, std):
    return np.log(norm.cdf(edges_hi / std) - norm.cdf(edges_lo / std))


@pytest.mark.parametrize("name", ["pcm8", "mulaw8"])
def test_dequantised_bound_against_exact_bin_mass(name):
    """E_U[log p(y) + log_det] <= log P(c) (Jensen), close to it; exact P(c) from the normal CDF."""
    std = 0.3
    quantiser = get_quantiser(name)
    y0 = np.clip(np.random.default_rng(0).normal(0, std, (1, 64)), -0.99, 0.99)
    codes = quantiser.encode(y0)
    draws = 400  # independent dequantisations: one per example id
    y, log_det = quantiser.dequantise(jax.random.PRNGKey(2), np.repeat(codes, draws, axis=0))
    bounds = np.sum(norm.logpdf(np.asarray(y), scale=std), axis=-1) + np.asarray(log_det)
    edges = np.arange(quantiser.levels + 1) * quantiser.width - 1.0
    if name == "mulaw8":
        edges = np.asarray(quantiser.expand(jnp.asarray(edges)))
    exact = np.sum(_exact_log_mass(edges[codes], edges[codes + 1], std))
    stderr = bounds.std() / math.sqrt(draws)
    assert bounds.mean() <= exact + 4 * stderr
    assert exact - bounds.mean() < 0.01 * codes.size  # the Jensen gap is small per sample


def test_bits_per_audio_sample_through_the_ode():
    """[B, L, 1] i.i.d. Gaussian 'audio', 16-bit PCM: ODE + Hutchinson bits = analytic bits."""
    std, sigma_min, sigma_max = 0.1, 1e-3, 10.0

    def denoiser(x, sigma):
        return std**2 / (std**2 + sigma**2) * x

    waveform = np.random.default_rng(1).normal(0, std, (2, 16, 1)).round(4)
    codes = get_quantiser("pcm16").encode(waveform)
    likelihood_fn = functools.partial(log_likelihood, denoiser, sigma_min=sigma_min, sigma_max=sigma_max,
                                      divergence="hutchinson", rtol=1e-6, atol=1e-6)
    result = dequantised_log_likelihood(likelihood_fn, codes, quantiser=get_quantiser("pcm16"),
                                        key=jax.random.PRNGKey(0))
    bits = bits_per_dim(result.logp, 16)
    y = np.asarray(get_quantiser("pcm16").dequantise(jax.random.split(jax.random.PRNGKey(0))[0], codes)[0])
    var = std**2 + sigma_min**2
    analytic = np.sum(norm.logpdf(y, scale=math.sqrt(var)), axis=(1, 2)) / (16 * math.log(2)) * -1 + 15
    np.testing.assert_allclose(bits, analytic, atol=1e-3)
    assert bool(jnp.all(bits > 0))  # a bound on discrete bits; -log p alone would be negative here

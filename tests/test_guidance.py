"""Guidance wrappers share one signature (`D(x, sigma, cond)` in, `D(x, sigma)` out) and match
closed forms on Gaussian data (x64)."""
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax import guidance

pytestmark = pytest.mark.usefixtures("x64")


def gaussian_class_denoiser(means):
    """Exact `E[x0 | x]` for `x0 ~ N(mu_c, I)` (class c) or `N(0, I)` (null class -1), `x = x0 + sigma z`."""

    def denoiser(x, sigma, cond):
        mu = jnp.where(cond["label"][:, None] < 0, 0.0, means[jnp.maximum(cond["label"], 0)])
        sigma = jnp.broadcast_to(sigma, x.shape[:1])[:, None]
        return (x + sigma**2 * mu) / (1 + sigma**2)

    return denoiser


def test_classifier_free_interpolates_the_two_branches_and_extrapolates_linearly():
    """D_w = D_null + w (D_c - D_null): w = 0 and 1 give the branches, and for Gaussian classes the
    guided denoiser is the exact denoiser of the class mean scaled by w (the means enter linearly)."""
    means = jnp.array([[2.0, -1.0], [0.5, 3.0]])
    D = gaussian_class_denoiser(means)
    x, sigma = jnp.array([[0.3, -0.2], [1.0, 2.0]]), jnp.asarray(0.7)
    cond, null = {"label": jnp.array([0, 1])}, {"label": jnp.array([-1, -1])}
    for w in (0.0, 1.0, 2.5):
        guided = guidance.classifier_free(D, cond, null, scale=w)(x, sigma)
        expected = (x + sigma**2 * w * means) / (1 + sigma**2)
        np.testing.assert_allclose(guided, expected, rtol=1e-12)
    np.testing.assert_allclose(guidance.classifier_free(D, cond, null, scale=1.0)(x, sigma), D(x, sigma, cond))


def test_classifier_guidance_with_an_exact_likelihood_is_the_exact_posterior_denoiser():
    """Prior x0 ~ N(0, I), a measurement y = x0 + s n. Then p(y | x_sigma) = N(y; x/(1+sigma^2),
    sigma^2/(1+sigma^2) + s^2), and D + sigma^2 grad log p(y | x) (scale 1) is E[x0 | x, y] =
    (x/sigma^2 + y/s^2) / (1 + 1/sigma^2 + 1/s^2) exactly (Tweedie on the posterior)."""
    s = 0.4
    y = jnp.array([[1.0, -0.5], [0.2, 0.8]])
    x, sigma = jnp.array([[0.3, 0.1], [-1.0, 2.0]]), jnp.asarray(1.3)

    def unconditional(x, sigma, cond):
        assert cond is None
        return x / (1 + sigma**2)

    def log_prob(x, sigma):
        var = sigma**2 / (1 + sigma**2) + s**2
        return jnp.sum(-0.5 * (y - x / (1 + sigma**2)) ** 2 / var, axis=1)

    guided = guidance.classifier_guidance(unconditional, None, log_prob_fn=log_prob, scale=1.0)(x, sigma)
    expected = (x / sigma**2 + y / s**2) / (1 + 1 / sigma**2 + 1 / s**2)
    np.testing.assert_allclose(guided, expected, rtol=1e-12)


def test_every_guidance_wrapper_takes_a_conditional_denoiser_and_a_condition():
    import inspect

    for name in guidance.GUIDANCE.names():
        params = list(inspect.signature(guidance.get_guidance(name)).parameters)
        assert params[:2] == ["conditional_denoiser", "cond"], name

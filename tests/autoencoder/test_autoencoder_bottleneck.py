"""The VAE bottleneck's KL term against numeric integration, and the registry (closed-form
checks, STYLE rule 24a)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.autoencoder import BOTTLENECKS, kl_divergence, vae_moments

pytestmark = pytest.mark.usefixtures("x64")


def _kl_by_quadrature(m: float, s: float) -> float:
    """KL(N(m, s^2) || N(0, 1)) = int q log(q / p) dx by the trapezoidal rule on m +- 15 s.

    Tolerance: the integrand is analytic and Gaussian-tailed, so the truncated tails weigh
    < exp(-15^2 / 2) ~ 1e-49 and the trapezoidal error on 4e5 steps of h = 7.5e-5 s decays like
    exp(-2 pi^2 s^2 / h^2) (it is spectrally accurate for such integrands): far below the 1e-11
    float64 rounding of the sum. rtol 1e-9 leaves a margin of 100x.
    """
    x = np.linspace(m - 15 * s, m + 15 * s, 400_001)
    log_q = -0.5 * ((x - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)
    log_p = -0.5 * x ** 2 - 0.5 * np.log(2 * np.pi)
    return float(np.trapezoid(np.exp(log_q) * (log_q - log_p), x))


def test_kl_matches_numeric_integration_summed_over_channels_and_averaged_over_frames():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(2, 3, 4))
    std = np.exp(rng.normal(scale=0.5, size=(2, 3, 4)))
    numeric = np.array([[[_kl_by_quadrature(m, s) for m, s in zip(mt, st)]
                         for mt, st in zip(mb, sb)] for mb, sb in zip(mean, std)])
    expected = numeric.sum(axis=2).mean(axis=1)  # sum over D, mean over T: [B]
    got = np.asarray(kl_divergence(jnp.asarray(mean), jnp.asarray(std)))
    assert got.shape == (2,)
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_kl_is_zero_exactly_at_the_prior_and_positive_away_from_it():
    zeros, ones = jnp.zeros((1, 5, 3)), jnp.ones((1, 5, 3))
    assert float(kl_divergence(zeros, ones)[0]) == 0.0
    d = 1e-3
    # Per perturbed entry: 0.5 d^2 for mean d; d + d^2 / 2 - log(1 + d) (~ d^2) for std 1 + d.
    # Three entries (D = 3) in one of five frames -> x 3 / 5. The O(1) terms cancel to O(d^2) =
    # 1e-6, so float64 rounding (1e-16) leaves ~1e-10 relative: rtol 1e-8.
    shifted = kl_divergence(zeros.at[0, 0, :].set(d), ones)[0]
    widened = kl_divergence(zeros, ones.at[0, 0, :].set(1 + d))[0]
    np.testing.assert_allclose(float(shifted), 3 * 0.5 * d ** 2 / 5, rtol=1e-8)
    np.testing.assert_allclose(float(widened), 3 * (d + 0.5 * d ** 2 - np.log1p(d)) / 5, rtol=1e-8)
    assert float(shifted) > 0 and float(widened) > 0


def test_vae_moments_split_and_softplus_floor():
    h = jnp.concatenate([jnp.full((1, 2, 3), 0.5), jnp.full((1, 2, 3), -50.0)], axis=-1)
    mean, std = vae_moments(h)
    np.testing.assert_allclose(np.asarray(mean), 0.5)
    np.testing.assert_allclose(np.asarray(std), 1e-4, rtol=1e-12)  # softplus(-50) ~ 2e-22


@pytest.mark.parametrize("name", BOTTLENECKS.names())
def test_every_bottleneck_keeps_shapes_and_a_nonnegative_kl(name):
    bottleneck = BOTTLENECKS.get(name)()
    h = jax.random.normal(jax.random.PRNGKey(0), (2, 5, bottleneck.encoder_channels(3)))
    mean, std = bottleneck.moments(h)
    z = bottleneck.sample(mean, std, jax.random.PRNGKey(1))
    assert mean.shape == std.shape == z.shape == (2, 5, 3)
    kl = bottleneck.kl(mean, std)
    assert kl.shape == (2,) and bool(jnp.all(kl >= 0))
    if not bottleneck.stochastic:
        np.testing.assert_array_equal(np.asarray(z), np.asarray(mean))
        np.testing.assert_array_equal(np.asarray(kl), 0.0)

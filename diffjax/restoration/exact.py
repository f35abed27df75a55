"""The exact posterior of a Gaussian-mixture prior under a linear-Gaussian measurement.

For `x ~ sum_k pi_k N(mu_k, C_k)` and `y = A x + sigma_y n` the posterior is again a mixture
(Bishop 2006, eqs. 2.113-2.117, per component):

    w_k  propto  pi_k N(y; A mu_k, A C_k A^T + sigma_y^2 I)
    K_k = C_k A^T (A C_k A^T + sigma_y^2 I)^-1,  m_k = mu_k + K_k (y - A mu_k),  P_k = C_k - K_k A C_k

It is the oracle of the posterior-sampling tests and of the benchmark's accuracy table.
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from diffjax.toy import GaussianMixture

Array = jax.Array


@flax.struct.dataclass
class MixturePosterior:
    """`sum_k weights[k] N(means[k], chol[k] chol[k]^T)`: weights [K], means [K, D], chol [K, D, D]."""

    weights: Array
    means: Array
    chol: Array

    def sample(self, key: Array, num: int) -> Array:
        key_k, key_x = jax.random.split(key)
        k = jax.random.categorical(key_k, jnp.log(self.weights), shape=(num,))
        z = jax.random.normal(key_x, (num, self.means.shape[1]), self.means.dtype)
        return self.means[k] + jnp.einsum("nij,nj->ni", self.chol[k], z)

    def mean(self) -> Array:
        return jnp.einsum("k,kd->d", self.weights, self.means)


def gaussian_mixture_posterior(prior: GaussianMixture, matrix: Array, y: Array,
                               noise_sigma: float, *, jitter: float = 1e-9) -> MixturePosterior:
    """The posterior of `prior` given one measurement `y` `[M]` of `A` `[M, D]` with noise `noise_sigma`.

    `noise_sigma = 0` is allowed when every `A C_k A^T` is invertible (e.g. a coordinate mask).
    """
    a = jnp.asarray(matrix, prior.means.dtype)
    m = a.shape[0]

    def component(mu, std):
        cov = jnp.diag(std**2)
        s = a @ cov @ a.T + noise_sigma**2 * jnp.eye(m, dtype=a.dtype)
        gain = jnp.linalg.solve(s, a @ cov).T  # C A^T S^-1 (S, C symmetric)
        resid = y - a @ mu
        post_cov = cov - gain @ a @ cov
        post_cov = 0.5 * (post_cov + post_cov.T) + jitter * jnp.eye(mu.shape[0], dtype=a.dtype)
        chol_s = jnp.linalg.cholesky(s)
        white = jax.scipy.linalg.solve_triangular(chol_s, resid, lower=True)
        log_lik = (-0.5 * jnp.sum(white**2) - jnp.sum(jnp.log(jnp.diag(chol_s)))
                   - 0.5 * m * jnp.log(2 * jnp.pi))
        return mu + gain @ resid, jnp.linalg.cholesky(post_cov), log_lik

    means, chol, log_lik = jax.vmap(component)(prior.means, prior.stds)
    weights = jax.nn.softmax(jnp.log(prior.weights) + log_lik)
    return MixturePosterior(weights=weights, means=means, chol=chol)

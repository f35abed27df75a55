"""Gaussian and Gaussian-mixture data with exact denoisers, scores and densities at every noise level.

A mixture `p_0 = sum_k pi_k N(mu_k, diag(c_k^2))` stays a mixture under VE noising:

    p_sigma(x~) = sum_k pi_k N(x~; mu_k, diag(c_k^2 + sigma^2))

so with responsibilities `r_k(x~) = p(k | x~)` everything below is closed form:

    D(x~, sigma)   = E[x0 | x~] = sum_k r_k (mu_k + c_k^2 / (c_k^2 + sigma^2) (x~ - mu_k))
    score(x~, sigma) = sum_k r_k (mu_k - x~) / (c_k^2 + sigma^2)

and for a process in time, `x_t = alpha x~` has `log p_t(x) = log p_sigma~(x/alpha) - D log alpha`.
These are the oracles of the closed-form tests (STYLE rule 24a).

A mixture is also a dataset (`diffjax.data.AbstractDataset`, registered as 'gaussian' and 'gmm'):
its batches are `{"x": [b, D], "mask": ones [b, 1], "label": component [b]}`, and its
`closed_form` is the mixture itself, so code asks `dataset.closed_form` for the exact denoiser,
score and density instead of checking the class.
"""
from __future__ import annotations

import functools
import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.data import DATASETS, AbstractDataset, host_share
from diffjax.sde import AbstractProcess

Array = jax.Array


SPLITS = ("train", "eval")


@flax.struct.dataclass
class GaussianMixture(AbstractDataset):
    """`sum_k weights[k] N(means[k], diag(stds[k]^2))`. Shapes: weights [K], means [K, D], stds [K, D].

    `split` picks the stream of samples `batch` draws ('eval': independent of 'train's).
    """

    weights: Array
    means: Array
    stds: Array
    split: str = flax.struct.field(pytree_node=False, default="train")

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}; got {self.split!r}")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_classes(self) -> int:
        """The number of components; `batch["label"]` is the component of each example."""
        return self.means.shape[0]

    # ----- dataset interface -----
    @property
    def example_shape(self) -> tuple[int]:
        return (self.dim,)

    @property
    def sample_rate(self) -> None:
        return None

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(f"mode_{k}" for k in range(self.num_classes))

    @property
    def eval(self) -> "GaussianMixture":
        return self.replace(split="eval")

    @property
    def closed_form(self) -> "GaussianMixture":
        return self

    # ----- sampling -----
    def sample_with_labels(self, key: Array, num: int) -> tuple[Array, Array]:
        """Draws `num` points: `(x [num, D], component label [num])`."""
        key_k, key_x = jax.random.split(key)
        labels = jax.random.categorical(key_k, jnp.log(self.weights), shape=(num,))
        noise = jax.random.normal(key_x, (num, self.dim), self.means.dtype)
        return self.means[labels] + self.stds[labels] * noise, labels

    def sample(self, key: Array, num: int) -> Array:
        return self.sample_with_labels(key, num)[0]

    def batch(self, step: int, batch_size: int, *, seed: int = 0, process_index: int = 0,
              process_count: int = 1) -> dict:
        """This host's share of the global batch for `step`: {'x': [b, D], 'mask': [b, 1], 'label': [b]}.

        The global batch is drawn from `fold_in(PRNGKey(seed), step)` (the eval split folds in 1
        more) and host i takes rows [i b, (i + 1) b): a resumed run sees the same data, and the
        global batch does not depend on the number of hosts.
        """
        share = host_share(batch_size, process_index, process_count)
        x, labels = _toy_batch(self, seed, step, batch_size)
        rows = slice(process_index * share, (process_index + 1) * share)
        return {"x": x[rows], "mask": jnp.ones((share, 1), x.dtype),
                "label": labels[rows].astype(jnp.int32)}

    # ----- VE view -----
    def _component_terms(self, x: Array, sigma: Array):
        """Per-component log-densities `[B, K]` and variances `[B or 1, K, D]` of `p_sigma`."""
        sigma = jnp.reshape(jnp.asarray(sigma, x.dtype), (-1, 1, 1))
        var = self.stds[None] ** 2 + sigma**2
        diff = x[:, None, :] - self.means[None]
        log_comp = -0.5 * jnp.sum(diff**2 / var + jnp.log(2 * math.pi * var), axis=-1)
        return log_comp + jnp.log(self.weights)[None], var, diff

    def log_prob(self, x: Array, sigma: Array = 0.0) -> Array:
        """`log p_sigma(x~)` `[B]` for `x` `[B, D]`, `sigma` scalar or `[B]`."""
        log_joint, _, _ = self._component_terms(x, sigma)
        return jax.nn.logsumexp(log_joint, axis=-1)

    def responsibilities(self, x: Array, sigma: Array) -> Array:
        """`p(k | x~)` `[B, K]`."""
        log_joint, _, _ = self._component_terms(x, sigma)
        return jax.nn.softmax(log_joint, axis=-1)

    def score(self, x: Array, sigma: Array) -> Array:
        """`grad log p_sigma(x~)` `[B, D]`."""
        log_joint, var, diff = self._component_terms(x, sigma)
        resp = jax.nn.softmax(log_joint, axis=-1)
        return jnp.einsum("bk,bkd->bd", resp, -diff / var)

    def denoiser(self, x: Array, sigma: Array) -> Array:
        """Exact `D(x~, sigma) = E[x0 | x~]` `[B, D]`."""
        log_joint, var, diff = self._component_terms(x, sigma)
        resp = jax.nn.softmax(log_joint, axis=-1)
        posterior_means = self.means[None] + (self.stds[None] ** 2 / var) * diff
        return jnp.einsum("bk,bkd->bd", resp, posterior_means)

    def posterior_variance(self, sigma: Array) -> Array:
        """`E ||x0 - D(x~)||^2` per dimension for a single Gaussian: `c^2 sigma^2/(c^2 + sigma^2)` [D]."""
        self._require_single("posterior_variance")
        c2 = self.stds[0] ** 2
        return c2 * sigma**2 / (c2 + sigma**2)

    def ode_map(self, x: Array, sigma_from: float, sigma_to: float) -> Array:
        """Exact PF-ODE flow from `sigma_from` to `sigma_to` for a single Gaussian (a linear map).

        `dx/dsigma = (x - D)/sigma` has solution `mu + (x - mu) sqrt((c^2 + s_to^2)/(c^2 + s_from^2))`.
        """
        self._require_single("ode_map")
        c2 = self.stds[:1] ** 2  # [1, D]
        return self.means[:1] + (x - self.means[:1]) * jnp.sqrt((c2 + sigma_to**2) / (c2 + sigma_from**2))

    def _require_single(self, what: str) -> None:
        if self.num_classes != 1:
            raise ValueError(f"{what} is closed-form only for a single Gaussian; this mixture has "
                             f"{self.num_classes} components")

    # ----- process time -----
    def log_prob_t(self, process: AbstractProcess, x: Array, t: Array) -> Array:
        """Exact marginal log-density `log p_t(x)` `[B]` of the process state `x_t = alpha x~`."""
        alpha = process.alpha(jnp.asarray(t, x.dtype))
        return self.log_prob(x / alpha, process.sigma_tilde(t)) - self.dim * jnp.log(alpha)

    def score_t(self, process: AbstractProcess, x: Array, t: Array) -> Array:
        """Exact data-space score `grad log p_t(x)` `[B, D]`."""
        alpha = process.alpha(jnp.asarray(t, x.dtype))
        return self.score(x / alpha, process.sigma_tilde(t)) / alpha


@jax.jit
def _mode_assignment(samples, mixture, num_stds):
    dist = jnp.sqrt(jnp.sum(((samples[:, None] - mixture.means[None]) / mixture.stds[None]) ** 2, -1))
    shares = jnp.bincount(jnp.argmin(dist, axis=1), length=mixture.num_classes) / samples.shape[0]
    return jnp.min(dist, axis=1) <= num_stds, shares


@functools.partial(jax.jit, static_argnums=3)
def _toy_batch(mixture, seed, step, num):
    key = jax.random.fold_in(jax.random.PRNGKey(seed), step)
    key = key if mixture.split == "train" else jax.random.fold_in(key, 1)
    return mixture.sample_with_labels(key, num)


@DATASETS.register("gaussian")
def gaussian(dim: int = 2, mean: float | list = 0.0, std: float | list = 1.0) -> GaussianMixture:
    """A single Gaussian `N(mean, diag(std^2))`; `mean` and `std` are scalars or length-`dim` lists."""
    mean = np.broadcast_to(np.asarray(mean, float), (dim,))
    std = np.broadcast_to(np.asarray(std, float), (dim,))
    if np.any(std <= 0):
        raise ValueError(f"gaussian: std must be > 0, got {std.tolist()}")
    return GaussianMixture(jnp.ones((1,)), jnp.asarray(mean)[None], jnp.asarray(std)[None])


@DATASETS.register("gmm")
def gmm(dim: int = 2, num_modes: int = 8, radius: float = 1.0, std: float = 0.1,
        seed: int = 0) -> GaussianMixture:
    """Equal-weight isotropic mixture. In 2-D the modes sit on a circle of `radius`; in higher
    dimensions at `radius` along directions drawn once from `seed` (deterministic)."""
    if num_modes < 1 or dim < 1 or std <= 0 or radius < 0:
        raise ValueError(f"gmm: need num_modes >= 1, dim >= 1, std > 0, radius >= 0; got "
                         f"num_modes={num_modes}, dim={dim}, std={std}, radius={radius}")
    if dim == 2:
        angles = 2 * np.pi * np.arange(num_modes) / num_modes
        directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        directions = np.random.default_rng(seed).normal(size=(num_modes, dim))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    means = jnp.asarray(radius * directions)
    return GaussianMixture(jnp.full((num_modes,), 1.0 / num_modes), means,
                           jnp.full((num_modes, dim), float(std)))


@jax.jit
def energy_distance(x: Array, y: Array) -> Array:
    """Energy distance `2 E|x - y| - E|x - x'| - E|y - y'|` between samples `[N, D]` and `[M, D]`.

    Székely & Rizzo 2013; V-statistic (includes the zero diagonal), so it is >= 0 and 0 iff x = y.
    """
    def mean_dist(a, b):
        return jnp.mean(jnp.sqrt(jnp.sum((a[:, None] - b[None]) ** 2, axis=-1) + 1e-12))

    return 2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)


def mode_statistics(samples: Array, mixture: GaussianMixture, num_stds: float = 3.0) -> dict:
    """How well samples `[N, D]` recover a mixture's modes.

    Returns 'near_mode_fraction' (share of samples within Mahalanobis distance `num_stds` of the
    nearest mean; exact samples of a 2-D mixture score 1 - exp(-num_stds^2/2) = 0.989 at 3 stds),
    'mode_shares' (share of samples per nearest mode, [K]) and
    'min_share_ratio' (smallest share / its mixture weight; 1 = perfectly balanced, 0 = a lost mode).
    """
    near, shares = _mode_assignment(samples, mixture, num_stds)
    return {"near_mode_fraction": float(jnp.mean(near)), "mode_shares": [float(s) for s in shares],
            "min_share_ratio": float(jnp.min(shares / mixture.weights))}

"""EDM2's learned loss weighting head: `u(sigma)`, the log-variance of the loss at each noise level
(Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models", sec. 5
and eq. 21; its `logvar_fourier` + `logvar_linear`).

`WithLogVariance(backbone)` is the backbone with one more method, `log_variance(sigma [B]) -> u [B]`:
Fourier features of `c = ln(sigma) / 4` with fixed frequencies `f_k ~ N(0, 1)` and phases
`phi_k ~ U[0, 1)` (EDM2's MPFourier: `sqrt(2) cos(2 pi (f_k c + phi_k))`, unit magnitude), then a
Dense to one output. The Dense starts at zero, so `u = 0` and the loss starts as the base weighting.
The training loss becomes `lambda(sigma) / e^u ||D - x0||^2 + u` (`diffjax.losses`, weighting
'learned'); at its optimum `e^u` is the expected weighted error at that sigma, so every noise
level contributes about equally (EDM2 eq. 21 and its discussion).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def fourier_constants(num_features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fixed (not trained) frequencies `N(0, 1)` and phases `U[0, 1)`, `[num_features]` each."""
    rng = np.random.RandomState(seed)
    return rng.randn(num_features).astype(np.float32), rng.rand(num_features).astype(np.float32)


class WithLogVariance(nn.Module):
    """`backbone(x, c_noise, cond)` unchanged, plus `log_variance(sigma) -> u(sigma)` (see module doc).

    Parameters: `{'backbone': ..., 'log_variance': {'kernel': [K, 1], 'bias': [1]}}`."""

    backbone: nn.Module
    num_features: int = 128

    def setup(self):
        self.log_variance_linear = nn.Dense(1, kernel_init=nn.initializers.zeros, name="log_variance")

    def __call__(self, x: jax.Array, c_noise: jax.Array, cond=None, **kwargs) -> jax.Array:
        if self.is_initializing():
            self.log_variance(jnp.ones(x.shape[:1], jnp.float32))
        return self.backbone(x, c_noise, cond, **kwargs)

    def log_variance(self, sigma: jax.Array) -> jax.Array:
        """sigma~ [B] -> u [B] (float32)."""
        frequencies, phases = fourier_constants(self.num_features)
        c = 0.25 * jnp.log(jnp.reshape(jnp.asarray(sigma, jnp.float32), (-1, 1)))
        features = math.sqrt(2.0) * jnp.cos(2 * math.pi * (c * frequencies[None] + phases[None]))
        return self.log_variance_linear(features)[:, 0]

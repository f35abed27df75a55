"""A tiny autoencoder learns a fixed batch of harmonic clips: Adam on MR-STFT + KL, all steps in
one jitted `lax.scan` (one compile)."""
import jax
import pytest
import jax.numpy as jnp
import numpy as np
import optax

from diffjax.autoencoder import autoencoder, init_params, mr_stft_distance, multi_resolution_stft_loss

SR, LENGTH, STEPS = 16000, 2000, 100  # 0.125 s clips


def _harmonic_clips() -> np.ndarray:
    """Two clips [2, 2000, 1]: three decaying harmonics of 110 and of 330 Hz, peak ~0.5."""
    t = np.arange(LENGTH) / SR
    clips = [sum(0.25 / k * np.sin(2 * np.pi * k * f0 * t + k) for k in (1, 2, 3)) * np.exp(-3 * t)
             for f0 in (110.0, 330.0)]
    return np.stack(clips)[:, :, None].astype(np.float32)


@pytest.mark.slow  # the default suite trains the autoencoder through the job: test_latent_pipeline.py
def test_100_adam_steps_reduce_the_stft_distance_more_than_twofold():
    """Measured: the MR-STFT distance of the posterior-mean reconstructions falls from 4.14 at
    initialisation to 0.80 after 100 steps (5.2x; 150 steps: 0.58, 7.2x) at learning rate 3e-3.
    The test asks for 2x, a margin for other seeds and XLA versions. KL weight 1e-4 as Stable
    Audio's. Cost: ~12 s to compile (kept by conftest's compilation cache for later runs) and
    ~5 s for the 100 steps on a loaded 2-core machine."""
    module = autoencoder("tiny")
    params = jax.jit(lambda key: init_params(module, key))(jax.random.PRNGKey(0))
    x = jnp.asarray(_harmonic_clips())
    tx = optax.adam(3e-3)

    def loss(p, key):
        recon, aux = module.apply({"params": p}, x, key)
        return jnp.mean(multi_resolution_stft_loss(x, recon)[0] + 1e-4 * aux["kl"])

    @jax.jit
    def train(p):
        def step(carry, key):
            p, opt = carry
            grads = jax.grad(loss)(p, key)
            updates, opt = tx.update(grads, opt, p)
            return (optax.apply_updates(p, updates), opt), None
        (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), jax.random.split(jax.random.PRNGKey(1), STEPS))
        return p

    @jax.jit
    def distance(p):  # with the posterior mean, as an evaluation would decode
        mean, _ = module.apply({"params": p}, x, method=module.encode_moments)
        recon = module.apply({"params": p}, mean, method=module.decode)[:, :LENGTH]
        return jnp.mean(mr_stft_distance(x, recon))

    before = float(distance(params))
    after = float(distance(train(params)))
    assert np.isfinite(after) and after < before / 2, (before, after)

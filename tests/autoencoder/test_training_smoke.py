"""A tiny autoencoder learns a fixed batch of harmonic clips: Adam on MR-STFT + KL, all steps in
one jitted `lax.scan` (one compile)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffjax.autoencoder import autoencoder, init_params, mr_stft_distance, multi_resolution_stft_loss

SR, LENGTH, STEPS = 16000, 2000, 200  # 0.125 s clips


def _harmonic_clips() -> np.ndarray:
    """Four clips [4, 2000, 1]: three decaying harmonics of 110, 220, 330, 440 Hz, peak ~0.5."""
    t = np.arange(LENGTH) / SR
    clips = [sum(0.25 / k * np.sin(2 * np.pi * k * f0 * t + k) for k in (1, 2, 3)) * np.exp(-3 * t)
             for f0 in (110.0, 220.0, 330.0, 440.0)]
    return np.stack(clips)[:, :, None].astype(np.float32)


def test_a_few_hundred_adam_steps_reduce_the_stft_distance_more_than_twofold():
    """Measured: the MR-STFT distance of the reconstructions falls from 5.2 at initialisation to
    ~1.4 after 200 steps (3.7x) at learning rate 3e-3; the test asks for 2x, so the margin covers
    other seeds and XLA versions. KL weight 1e-4 as Stable Audio's (it barely matters here)."""
    module = autoencoder("tiny")
    params = init_params(module, jax.random.PRNGKey(0))
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
        return jnp.mean(mr_stft_distance(x, module.apply({"params": p}, mean, method=module.decode)[:, :LENGTH]))

    before = float(distance(params))
    after = float(distance(train(params)))
    assert np.isfinite(after) and after < before / 2, (before, after)

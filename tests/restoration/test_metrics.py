"""Reference metrics against hand-computed values on synthetic signals."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.audio import metrics

pytestmark = pytest.mark.usefixtures("x64")


def _signals():
    t = np.arange(4096) / 8000
    x = np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1234 * t)
    n = np.random.default_rng(0).normal(size=t.shape)
    return x, n


def test_si_sdr_is_scale_invariant_and_matches_the_formula():
    x, n = _signals()
    est = 0.5 * x + 0.05 * n
    alpha = np.dot(est, x) / np.dot(x, x)
    expected = 10 * np.log10(np.sum((alpha * x) ** 2) / np.sum((alpha * x - est) ** 2))
    got = metrics.si_sdr(jnp.asarray(x)[None, :, None], jnp.asarray(est)[None, :, None])
    assert float(got[0]) == pytest.approx(expected, abs=1e-6)
    scaled = metrics.si_sdr(jnp.asarray(x)[None, :, None], jnp.asarray(3 * est)[None, :, None])
    assert float(scaled[0]) == pytest.approx(expected, abs=1e-6)
    assert float(metrics.si_sdr(jnp.asarray(x)[None, :, None], jnp.asarray(0.5 * x)[None, :, None])[0]) > 100


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_snr_of_noise_at_a_known_level(snr_db):
    x, n = _signals()
    n = n * np.linalg.norm(x) / np.linalg.norm(n) / 10 ** (snr_db / 20)
    got = metrics.snr(jnp.asarray(x)[None, :, None], jnp.asarray(x + n)[None, :, None])
    assert float(got[0]) == pytest.approx(snr_db, abs=1e-9)


def test_lsd():
    """LSD(x, x) = 0; doubling the amplitude quadruples every power: LSD = log10(4) exactly."""
    _, n = _signals()
    x = jnp.asarray(n)[None, :, None]
    assert float(metrics.lsd(x, x)[0]) == 0.0
    assert float(metrics.lsd(x, 2 * x)[0]) == pytest.approx(np.log10(4.0), abs=1e-9)
    silence = jnp.zeros_like(x)  # below the floor on both sides: no spurious distance
    assert float(metrics.lsd(silence, 1e-7 * x)[0]) == 0.0


def test_multires_stft_distance():
    x, n = _signals()
    xa = jnp.asarray(x)[None, :, None]
    assert float(metrics.multires_stft(xa, xa)[0]) == pytest.approx(0.0, abs=1e-12)
    near = metrics.multires_stft(xa, xa + 0.01 * jnp.asarray(n)[None, :, None])
    far = metrics.multires_stft(xa, xa + 0.3 * jnp.asarray(n)[None, :, None])
    assert 0 < float(near[0]) < float(far[0])


def test_reference_metrics_batch_and_optional_metrics_guard():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 2048, 1))
    out = metrics.reference_metrics(x, x + 0.1)
    assert set(out) == {"si_sdr", "snr", "lsd", "mrstft"} and all(v.shape == (3,) for v in out.values())
    extra = metrics.optional_metrics(np.zeros((2, 16000, 1)), np.zeros((2, 16000, 1)), 16000)
    assert all(np.isnan(v).all() for k, v in extra.items() if k == "pesq")  # all-zero input is guarded
    assert metrics.optional_metrics(np.ones((1, 100, 1)), np.ones((1, 100, 1)), 44100).get("pesq") is None

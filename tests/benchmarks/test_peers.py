"""benchmarks/peers.py: its pure helpers (no torch, no peers' venv needed)."""
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import peers
from diffjax import toy


def test_compare_medians_ratio_and_faster_side():
    out = peers.compare([3.0, 1.0, 2.0, 100.0, 2.5], [4.0, 5.0, 4.5])  # medians 2.5 and 4.5
    assert out["ours_s"] == 2.5 and out["peer_s"] == 4.5 and out["ours_min_s"] == 1.0 and out["peer_min_s"] == 4.0
    assert out["ratio"] == pytest.approx(2.5 / 4.5) and out["faster"] == "diffjax"
    assert peers.compare([2.0], [1.0])["faster"] == "peer"
    with pytest.raises(ValueError, match="at least one timing"):
        peers.compare([], [1.0])


def test_steps_for_matches_k_diffusion_nfe():
    # k-diffusion's Heun: 2 calls per step, 1 on the last (to sigma = 0): NFE = 2n - 1.
    assert peers.steps_for("heun", 10) == 5 and peers.steps_for("heun", 50) == 25
    assert peers.steps_for("dpmpp_2m", 10) == 10


def test_interleave_alternates_sides():
    calls = []
    peer_s, ours_s = peers.interleave(3, lambda: calls.append("p") or [1.0], lambda: calls.append("o") or [2.0])
    assert calls == ["p", "o", "o", "p", "p", "o"] and peer_s == [1.0] * 3 and ours_s == [2.0] * 3


def test_gmm_posterior_mean_single_gaussian_closed_form():
    # K = 1: D(x, sigma) = mu + c^2 / (c^2 + sigma^2) (x - mu).
    rng = np.random.default_rng(0)
    mu, c = rng.normal(size=(1, 3)), rng.uniform(0.5, 2.0, size=(1, 3))
    x, sigma = rng.normal(size=(4, 3)), np.array([0.1, 1.0, 3.0, 10.0])
    expected = mu + c**2 / (c**2 + sigma[:, None] ** 2) * (x - mu)
    np.testing.assert_allclose(peers.gmm_posterior_mean(x, sigma, np.ones(1), mu, c), expected, rtol=1e-12)


def test_gmm_posterior_mean_against_quadrature():
    # 1-D, 2 modes: E[x0 | x] = int x0 p(x0) N(x; x0, sigma^2) / int p(x0) N(x; x0, sigma^2), by the
    # trapezoid rule on [-8, 8] with 40001 nodes (error ~ h^2 * f'' ~ 1e-7 for these widths).
    w, mu, c = np.array([0.3, 0.7]), np.array([[-1.0], [2.0]]), np.array([[0.5], [0.8]])
    grid = np.linspace(-8, 8, 40001)
    prior = sum(wk * np.exp(-0.5 * ((grid - m[0]) / s[0]) ** 2) / s[0] for wk, m, s in zip(w, mu, c))
    for x, sigma in [(0.3, 0.7), (-2.0, 1.5), (1.0, 0.2)]:
        lik = prior * np.exp(-0.5 * ((x - grid) / sigma) ** 2)
        expected = np.trapezoid(grid * lik, grid) / np.trapezoid(lik, grid)
        got = peers.gmm_posterior_mean(np.array([[x]]), np.array([sigma]), w, mu, c)[0, 0]
        assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.usefixtures("x64")
def test_gmm_posterior_mean_agrees_with_toy_denoiser():
    mix = toy.gmm(dim=16)
    mix = mix.replace(weights=mix.weights.astype(jnp.float64), means=mix.means.astype(jnp.float64),
                      stds=mix.stds.astype(jnp.float64))
    x = 3.0 * np.random.default_rng(1).normal(size=(8, 16))
    sigma = np.geomspace(0.01, 10.0, 8)
    want = np.asarray(mix.denoiser(jnp.asarray(x), jnp.asarray(sigma)))
    got = peers.gmm_posterior_mean(x, sigma, *(np.asarray(a) for a in (mix.weights, mix.means, mix.stds)))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_format_table_rows_compile_and_skipped():
    rows = [{"row": "DiffWave-base train step", "ours": "diffwave/base", "peer": "lmnt", "ours_s": 38.1,
             "peer_s": 26.3, "ratio": 38.1 / 26.3, "faster": "peer", "compile_s": 175.04, "ours_min_s": 30.0,
             "peer_min_s": 25.0},
            {"row": "UNet1D", "skipped": "peer 'unet': ImportError: x"}]
    text = peers.format_table(rows, header="Measured on M.")
    assert text.startswith("Measured on M.")
    assert "| DiffWave-base train step | diffwave/base | lmnt | 38.1 | 26.3 | 1.45 | peer | 1.20 |" in text
    assert "| DiffWave-base train step | 175.0 |" in text
    assert "Skipped: UNet1D: peer 'unet': ImportError: x" in text and "| UNet1D |" not in text


def test_parse_rows_lists_valid_choices():
    assert peers.parse_rows("samplers, diffwave") == ["samplers", "diffwave"]
    with pytest.raises(SystemExit, match="valid rows: diffwave, samplers, unet"):
        peers.parse_rows("diffwave,unets")


def test_unet_peer_job_mirrors_the_unet1d_layout():
    job = peers.unet_peer_job("small", 4, 16384)  # 32 x (1, 2, 2, 4), strides 4, 1 block, attention at 3
    assert job["channels"] == [32, 64, 64, 128] and job["factors"] == [1, 4, 4, 4]
    assert job["items"] == [1, 1, 1, 1] and job["attentions"] == [0, 0, 0, 1]
    assert job["heads"] * job["head_dim"] == 128 and job["modulation_features"] == 128

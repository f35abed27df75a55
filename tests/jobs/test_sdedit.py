"""SDEdit of whole inputs (`diffjax.jobs.sdedit`) against its closed form on Gaussian data.

For x0 ~ N(0, c^2 I) the exact denoiser is `D(x, s) = c^2 / (c^2 + s^2) x`, and the PF-ODE
`dx/ds = (x - D)/s = s x / (c^2 + s^2)` gives `x(s) ∝ sqrt(c^2 + s^2)`. SDEdit starts at
`y + sigma_0 z` with `sigma_0 = strength c`, so its exact output is

    x(0) = (y + strength c z) / sqrt(1 + strength^2).

Heun's method is second order, so its error shrinks ~4x when the levels double (observed order).
The denoiser acts sample by sample, so the windowed (long-input) path must reproduce the closed
form everywhere, chunk boundaries included: no seam.
"""
import numpy as np
import pytest
import soundfile

import jax
import jax.numpy as jnp

from diffjax.audio.codecs import Waveform
from diffjax.jobs import SampleRequest, run_sample_request
from diffjax.jobs.sdedit import channel_groups, from_groups, output_dir, sdedit_audio, sdedit_sigma
from diffjax.sampling import seed_keys
from diffjax.sampling.loop import INITIAL_NOISE_STREAM, example_normal
from diffjax.sde import get_sde

C = 0.2  # the data's std (= sigma_data)
CONTEXT = 64  # the model's window, samples


def gaussian_denoiser(x, sigma):
    sigma = jnp.reshape(jnp.broadcast_to(sigma, (x.shape[0],)), (-1,) + (1,) * (x.ndim - 1))
    return C**2 / (C**2 + sigma**2) * x


def edit(y, strength, num_steps, sampler="heun", seeds=(0, 1)):
    keys = seed_keys(np.asarray(seeds))
    out, info = sdedit_audio(gaussian_denoiser, y, keys, codec=Waveform(), process=get_sde("edm"),
                             context=CONTEXT, sigma_start=strength * C, sampler=sampler, num_steps=num_steps)
    z = np.asarray(example_normal(keys, INITIAL_NOISE_STREAM, 0, y.shape[1:], jnp.float32))
    exact = (np.asarray(y) + strength * C * z) / np.sqrt(1 + strength**2)
    return out, exact, info


def test_sdedit_matches_the_gaussian_closed_form_with_second_order_convergence():
    y = C * np.asarray(jax.random.normal(jax.random.PRNGKey(0), (2, 200, 1)))  # > 3 windows
    errors = []
    for steps in (8, 16, 32):
        out, exact, info = edit(y, 0.8, steps)
        assert out.shape == y.shape and info["windows"] == 4
        errors.append(float(np.max(np.abs(out - exact))))
    order = np.log2(np.asarray(errors[:-1]) / np.asarray(errors[1:]))
    assert np.all((order > 1.6) & (order < 2.4)), (errors, order)  # Heun: 2
    assert errors[-1] < 1e-3 * C


def test_strength_sets_the_snr_to_the_input():
    """SI-SDR(output, input) of the closed form is -20 log10(strength) dB (|y|^2 / |strength c z|^2),
    so it decreases with strength; measured on 8192 samples, its sampling error is ~0.1 dB."""
    y = C * np.asarray(jax.random.normal(jax.random.PRNGKey(1), (2, 4096, 1)))
    measured = []
    for strength in (0.1, 0.5, 1.0, 2.0):
        out, _, _ = edit(y, strength, 12, sampler="heun")
        a = np.sum(out * y) / np.sum(y * y)
        measured.append(10 * np.log10(np.sum((a * y) ** 2) / np.sum((out - a * y) ** 2)))
        assert abs(measured[-1] + 20 * np.log10(strength)) < 0.5, (strength, measured[-1])
    assert np.all(np.diff(measured) < 0)
    # the marginal stays N(0, c^2) when y is a draw of the data
    assert abs(np.std(out) / C - 1) < 0.05


def test_a_short_input_is_padded_to_the_window_and_cut_back():
    y = C * np.asarray(jax.random.normal(jax.random.PRNGKey(2), (1, 40, 2)))
    out, exact, info = edit(y, 0.5, 16, seeds=(3,))
    assert out.shape == (1, 40, 2) and info["windows"] == 1
    np.testing.assert_allclose(out, exact, atol=1e-3 * C)


def test_strength_outside_the_noise_range_names_the_valid_range():
    assert sdedit_sigma(0.5, 0.2, (0.002, 80.0)) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"valid strengths: \(0.01, 400\]"):
        sdedit_sigma(500.0, 0.2, (0.002, 80.0))


def test_channel_groups_round_trip():
    stereo = np.stack([np.arange(5.0), -np.arange(5.0)], axis=1)  # [L, 2]
    groups = channel_groups(stereo, 1, "x.wav")  # a mono model edits each channel
    assert groups.shape == (2, 5, 1)
    np.testing.assert_array_equal(from_groups(groups, 2, 1), stereo)
    assert channel_groups(stereo[:, :1], 2, "x.wav").shape == (1, 5, 2)  # mono file, stereo model
    with pytest.raises(ValueError, match="channels"):
        channel_groups(np.zeros((5, 3)), 2, "x.wav")


def test_sample_job_edits_the_whole_stereo_input_into_an_sdedit_folder(smoke_audio_workdir, tmp_path):
    """A 0.4 s stereo 44.1 kHz file and the 16 kHz mono smoke model (0.125 s window): every channel
    and every second is edited (at the model's rate), the folder is named for SDEdit, and a second
    run into it is refused instead of overwriting."""
    rate, seconds = 44100, 0.4
    t = np.arange(int(rate * seconds)) / rate
    path = tmp_path / "song.wav"
    soundfile.write(path, 0.3 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1), rate)
    request = SampleRequest(workdir=str(smoke_audio_workdir), init=str(path), strength=0.5, num=2, nfe=3,
                            out=None)
    out = tmp_path / "edit"
    summary = run_sample_request(SampleRequest(**{**request.__dict__, "out": str(out)}))
    assert summary["mode"] == "sdedit" and summary["windows"] > 1 and summary["sigma_start"] == pytest.approx(
        0.5 * summary["sigma_data"])
    audio, sr = soundfile.read(out / "seed000000.wav")
    assert sr == 16000 and audio.shape == (int(16000 * seconds), 2)
    other, _ = soundfile.read(out / "seed000001.wav")
    assert np.std(other - audio) > 1e-3  # seeds give different edits
    assert np.std(audio[-800:], axis=0).min() > 0.01  # the end of the input is edited too, not silence
    with pytest.raises(FileExistsError):
        run_sample_request(SampleRequest(**{**request.__dict__, "out": str(out)}))

    assert output_dir(request, "euler", 3).endswith("samples/sdedit_song_s0.5_euler_nfe3")

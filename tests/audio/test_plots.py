"""Spectrogram pictures: full band, every channel, axes with units, one dB scale."""
import numpy as np
import pytest

from diffjax.audio.plots import fft_size, power_db, spectrogram_figure, write_spectrograms


def _tone(rate, seconds, freq, channels=1, amp=1.0):
    t = np.arange(int(rate * seconds)) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


def test_power_db_reads_a_full_scale_bin_centred_sine_as_0db():
    # A sine of amplitude A at bin k has |X_k| = A * sum(w) / 2 plus the leakage of its mirror image,
    # 2k bins away, where a Hann window's response is about 1 / (pi m (m^2 - 1)) of its peak (m = 2k):
    # an error of at most 20 log10(1 + that) dB.
    n_fft, rate = 512, 16000
    k = 37
    m = 2 * k
    tol = 20 * np.log10(1 + 1 / (np.pi * m * (m ** 2 - 1)))
    for amp in (1.0, 0.1):
        db = power_db(_tone(rate, 0.25, k * rate / n_fft, amp=amp), n_fft, n_fft // 4)
        assert db.shape[0] == n_fft // 2 + 1
        np.testing.assert_allclose(db[k], 20 * np.log10(amp), rtol=0, atol=tol)
        assert db[k].min() > db[k + 3].max() + 20  # the tone's bin stands out


def test_fft_size_tracks_the_rate_and_the_clip_length():
    assert fft_size(16000, 10 ** 6) == 512 and fft_size(44100, 10 ** 6) == 1024 and fft_size(48000, 10 ** 6) == 1024
    assert fft_size(44100, 300) == 256  # a short clip gets a shorter frame


@pytest.mark.parametrize("rate", [16000, 44100])
def test_figure_has_one_panel_per_clip_and_channel_full_band_with_units(rate):
    clips = [("restored", _tone(rate, 0.1, 1000, channels=2)), ("degraded", _tone(rate, 0.1, 3000, channels=2))]
    fig = spectrogram_figure(clips, rate, reference=("clean", _tone(rate, 0.1, 1000, channels=2)))
    *panels, colorbar = fig.axes
    assert len(panels) == 3 * 2  # (2 clips + reference) x 2 channels; then one colorbar
    assert colorbar.get_ylabel() == "power (dB FS)"
    for ax in panels:
        assert ax.get_ylim() == pytest.approx((0, rate / 2000))  # 22.05 kHz at 44.1 kHz: the full band
        assert ax.get_xlim() == pytest.approx((0, 0.1))
    assert [ax.get_title() for ax in panels[:2]] == ["restored (left)", "restored (right)"]
    assert panels[-1].get_title() == "reference: clean (right)"
    assert panels[0].get_ylabel() == "frequency (kHz)" and panels[2].get_ylabel() == ""  # first column only
    assert panels[1].get_xlabel() == "time (s)" and panels[0].get_xlabel() == ""  # under each clip
    limits = {ax.images[0].get_clim() for ax in panels}
    assert len(limits) == 1  # one colour scale across clips and channels
    vmin, vmax = limits.pop()
    assert vmax == pytest.approx(power_db(clips[0][1][:, 0], fft_size(rate, 10 ** 9), 1).max(), abs=1.0)
    assert vmax - vmin == pytest.approx(100.0)


def test_each_clip_keeps_its_own_rate_and_the_png_is_written(tmp_path):
    clips = [("input 16 kHz", _tone(16000, 0.05, 500)), ("output 48 kHz", _tone(48000, 0.05, 500))]
    fig = spectrogram_figure(clips, [16000, 48000], columns=1)
    assert [ax.get_ylim()[1] for ax in fig.axes[:2]] == pytest.approx([8.0, 24.0])
    path = write_spectrograms(str(tmp_path / "s.png"), clips, [16000, 48000])
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="2 clips but 1 sample rates"):
        spectrogram_figure([("a", np.zeros(100)), ("b", np.zeros(100))], [16000])
    with pytest.raises(ValueError, match="clip 'a'"):
        spectrogram_figure([("a", np.zeros((0, 1)))], 16000)
    with pytest.raises(ValueError, match="reference_rate"):  # no guess between two rates
        spectrogram_figure([("a", np.zeros(100)), ("b", np.zeros(300))], [16000, 48000], reference=("c", np.zeros(300)))

"""Tests for diffjax.audio.io: read/write, resampling, channels, normalisation, bad files."""
import logging

import numpy as np
import pytest
import soundfile as sf

from diffjax.audio import io


def sine(freq, sr, seconds, amp=0.5, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    return np.repeat((amp * np.sin(2 * np.pi * freq * t))[:, None], channels, 1).astype(np.float32)


def peak_freq(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
    return np.fft.rfftfreq(8 * len(x), 1 / sr)[np.argmax(spec)]


@pytest.mark.parametrize("ext,subtype,atol", [(".wav", "FLOAT", 0.0), (".flac", "PCM_16", 1e-4)])
def test_write_read_round_trip(tmp_path, ext, subtype, atol):
    x = sine(440, 16000, 0.25, channels=2)
    path = io.write_audio(str(tmp_path / f"a{ext}"), x, sample_rate=16000, subtype=subtype)
    y = io.read_audio(path, sample_rate=16000, channels=None)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=atol)
    assert io.audio_info(path) == io.AudioInfo(frames=4000, sample_rate=16000, channels=2)


def test_ogg_round_trip_keeps_length_and_pitch(tmp_path):
    path = io.write_audio(str(tmp_path / "a.ogg"), sine(440, 16000, 0.5), sample_rate=16000)
    y = io.read_audio(path, sample_rate=16000)
    assert y.shape == (8000, 1)
    assert abs(peak_freq(y[:, 0], 16000) - 440) < 2


def test_write_refuses_existing_file(tmp_path):
    path = str(tmp_path / "in.wav")
    io.write_audio(path, sine(440, 16000, 0.1), sample_rate=16000)
    before = open(path, "rb").read()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        io.write_audio(path, np.zeros((10, 1)), sample_rate=16000)
    assert open(path, "rb").read() == before
    io.write_audio(path, np.zeros((10, 1)), sample_rate=16000, overwrite=True)
    assert sf.info(path).frames == 10


@pytest.mark.parametrize("sr_in", [44100, 22050])
def test_resampling_keeps_duration_and_frequency(tmp_path, caplog, sr_in):
    path = str(tmp_path / f"s{sr_in}.wav")
    sf.write(path, sine(1000, sr_in, 1.0), sr_in)
    with caplog.at_level(logging.INFO, logger="diffjax"):
        y = io.read_audio(path, sample_rate=16000)
    assert y.shape == (16000, 1)
    assert abs(peak_freq(y[:, 0], 16000) - 1000) < 1.0
    assert np.std(y[1000:-1000]) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    assert any(f"from {sr_in} Hz to 16000 Hz" in r.getMessage() for r in caplog.records)


def test_no_resample_no_log(tmp_path, caplog):
    path = str(tmp_path / "a.wav")
    sf.write(path, sine(440, 16000, 0.1), 16000)
    with caplog.at_level(logging.INFO, logger="diffjax"):
        io.read_audio(path, sample_rate=16000)
    assert not [r for r in caplog.records if "resampling" in r.getMessage()]


def test_channels_and_normalisation(tmp_path):
    path = str(tmp_path / "st.wav")
    x = np.stack([sine(440, 16000, 0.1)[:, 0], 0.5 * sine(440, 16000, 0.1)[:, 0]], 1)
    sf.write(path, x, 16000, subtype="FLOAT")
    mono = io.read_audio(path, sample_rate=16000, channels=1)
    np.testing.assert_allclose(mono[:, 0], x.mean(1), atol=1e-6)
    assert io.read_audio(path, sample_rate=16000, channels=2).shape == (1600, 2)
    assert io.read_audio(path, sample_rate=16000, channels=1, normalize=True).max() == \
        pytest.approx(0.95, abs=1e-5)
    up = io.convert_channels(mono, 2)
    np.testing.assert_array_equal(up[:, 0], up[:, 1])
    with pytest.raises(ValueError, match="channels must be"):
        io.convert_channels(mono, 3)


def test_bad_files_raise_audio_error_naming_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "text.wav"
    text.write_text("this is not audio\n" * 10)
    nan = str(tmp_path / "nan.wav")
    x = sine(440, 16000, 0.1)
    x[100] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")
    for path, reason in [(empty, "unreadable"), (text, "unreadable"), (nan, "non-finite")]:
        with pytest.raises(io.AudioError, match=reason) as e:
            io.read_audio(str(path), sample_rate=16000)
        assert str(path) in str(e.value)

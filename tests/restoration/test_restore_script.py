"""End to end: experiments/restore.py on the shared 4-step `:smoke` audio model (tiny UNet1D, 0.125 s clips)."""
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from diffjax.audio import io
from diffjax.restoration import cli
from diffjax.restoration.tasks import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SR = 16000


@pytest.fixture(scope="module")
def workdir(smoke_audio_workdir):
    return str(smoke_audio_workdir)


@pytest.fixture(scope="module")
def model(workdir):
    return load_model(workdir)


def _tone(path, seconds=0.25, sr=SR, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t)
    sf.write(path, np.repeat(x[:, None], channels, 1).astype(np.float32), sr)
    return path


def test_restore_script_declips_a_file(workdir, tmp_path):
    src = _tone(str(tmp_path / "in.wav"))
    before = open(src, "rb").read()
    out = str(tmp_path / "out.wav")
    cmd = [sys.executable, os.path.join(ROOT, "experiments", "restore.py"), "--workdir", workdir,
           "--task", "declip", "--input", src, "--out", out, "--method", "dps", "--sampler", "heun",
           "--nfe", "3", "--clip-sdr", "3"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    restored = io.read_audio(out, sample_rate=SR, channels=None)
    assert restored.shape == (4000, 1) and np.all(np.isfinite(restored))
    assert os.path.exists(str(tmp_path / "out.png")) and os.path.exists(str(tmp_path / "out.degraded.wav"))
    assert open(src, "rb").read() == before
    again = subprocess.run(cmd[:-8] + ["--out", src], capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "input file" in again.stderr


def _run(model, src, out, **kw):
    args = dict(task="declip", method="replacement", sampler="euler", nfe=2, grid="karras", seed=0,
                stereo="refuse", simulate=False, overwrite=False, params={}, options={})
    args.update(kw)
    return cli.run_file(model, src, out, **args)


def test_bad_inputs_are_refused_with_the_fix(model, tmp_path):
    stereo = _tone(str(tmp_path / "stereo.wav"), channels=2)
    with pytest.raises(ValueError, match="--stereo=mixdown"):
        _run(model, stereo, str(tmp_path / "o1.wav"))
    nan = str(tmp_path / "nan.wav")
    sf.write(nan, np.full(1000, np.nan, np.float32), SR, subtype="FLOAT")
    with pytest.raises(io.AudioError, match="non-finite"):
        _run(model, nan, str(tmp_path / "o2.wav"))
    src = _tone(str(tmp_path / "in.wav"))
    with pytest.raises(ValueError, match="Nyquist"):
        _run(model, src, str(tmp_path / "o3.wav"), task="bwe", params={"cutoff": 8000.0})
    with pytest.raises(ValueError, match="input file"):
        _run(model, src, src)


def test_resampled_input_with_a_long_gap_uses_chunked_mode(model, tmp_path, caplog):
    src = _tone(str(tmp_path / "in22.wav"), sr=22050)
    out = str(tmp_path / "out.wav")
    with caplog.at_level(logging.INFO, logger="diffjax"):
        info = _run(model, src, out, task="inpaint", simulate=True, params={"gap_seconds": 0.1})
    assert info["mode"] == "chunked"
    assert "resampling" in caplog.text and "chunked mode" in caplog.text
    assert io.audio_info(out).sample_rate == 22050 and abs(io.audio_info(out).frames - 5512) <= 1


def test_evaluation_mode_writes_the_table(model, tmp_path):
    ref = tmp_path / "clean"
    ref.mkdir()
    for i in range(2):
        _tone(str(ref / f"c{i}.wav"), seconds=0.125 + 0.05 * i)
    table = str(tmp_path / "table.md")
    rows = cli.run_evaluation(model, str(ref), tasks=["gap_50ms"], methods=["replacement"], sampler="euler",
                              nfe=2, seed=0, max_clips=2, table=table, options={})
    assert len(rows) == 1 and rows[0]["si_sdr_out"] > rows[0]["si_sdr_in"] - 20
    text = open(table).read()
    assert "| task | method |" in text and "lsd_out" in text and "gap_50ms" in text


def test_evaluation_runs_dereverb_on_long_excerpts_and_blind_bwe_only_on_low_passes(model, tmp_path):
    """dereverb_0.5s needs 1 s excerpts (8 x the smoke model's context): windowed mode; blind_bwe
    runs on the low-pass task only and reports the cutoff it implies."""
    ref = tmp_path / "clean"
    ref.mkdir()
    _tone(str(ref / "c0.wav"), seconds=1.0)
    rows = cli.run_evaluation(model, str(ref), tasks=["bwe_4khz", "dereverb_0.5s"], methods=["blind_bwe", "ddnm"],
                              sampler="euler", nfe=2, seed=0, max_clips=1, table=str(tmp_path / "t.md"), options={})
    assert [(r["task"], r["method"]) for r in rows] == [("bwe_4khz", "blind_bwe"), ("bwe_4khz", "ddnm"),
                                                      ("dereverb_0.5s", "ddnm")]
    assert 250 <= rows[0]["fitted_cutoff_hz"] <= 7600 and np.isfinite(rows[2]["lsd_out"])


def test_a_mel_model_is_refused_before_its_weights_load(tmp_path):
    """The quick start's log-mel prior cannot restore waveforms; the message names the config to
    train instead (no checkpoint is needed to find that out)."""
    from configs import default
    from diffjax.training import checkpoint

    checkpoint.save_config(str(tmp_path), default.get_config())
    with pytest.raises(ValueError, match="restoration needs a waveform model.*configs/waveform.py"):
        load_model(str(tmp_path))

"""End to end: experiments/restore.py on the shared 4-step `:smoke` audio model (tiny UNet1D,
0.125 s clips), and the restore job's functions on a freshly initialised smoke model."""
import logging
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile as sf

from configs import default
from configs import restore as restore_config
from configs import waveform
from diffjax.audio import io
from diffjax.jobs import restore as job
from diffjax.jobs import workdir as workdir_lib
from diffjax.model import DataSpec, build_model
from diffjax.restoration import get_operator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SR = 16000
SCRIPT = os.path.join(ROOT, "experiments", "restore.py")


@pytest.fixture(scope="module")
def workdir(smoke_audio_workdir):
    return str(smoke_audio_workdir)


@pytest.fixture(scope="module")
def model():
    """The smoke waveform model (2000-sample context) with fresh weights, as `load` returns it."""
    smoke = waveform.get_config("smoke")
    diffusion = build_model(smoke, DataSpec(shape=(2000, 1), sample_rate=SR))
    return workdir_lib.Loaded(model=diffusion, params=diffusion.init(jax.random.PRNGKey(0)), step=0, config=smoke)


def _tone(path, seconds=0.25, sr=SR, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t)
    sf.write(path, np.repeat(x[:, None], channels, 1).astype(np.float32), sr)
    return path


def _config(task="declip", method="replacement", sampler="euler", nfe=2, **task_keys):
    config = restore_config.get_config()
    config.task.name, config.method.name, config.sampler, config.nfe = task, method, sampler, nfe
    for key, value in task_keys.items():
        if key in ("simulate", "snr", "noise_sigma"):
            config.task[key] = value
        else:
            config.task[task][key] = value
    return config


def _run(model, src, out, overwrite=False, **kw):
    return job.restore_file_with(model, _config(**kw), input=src, out=out, overwrite=overwrite)


def test_restore_script_declips_a_file(workdir, tmp_path):
    src = _tone(str(tmp_path / "in.wav"))
    before = open(src, "rb").read()
    out = str(tmp_path / "out.wav")
    cmd = [sys.executable, SCRIPT, "--workdir", workdir, "--input", src, "--out", out,
           "--config.task.name=declip", "--config.method.name=dps", "--config.sampler=heun", "--config.nfe=3",
           "--config.task.declip.clip_sdr=3"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    restored = io.read_audio(out, sample_rate=SR, channels=None)
    assert restored.shape == (4000, 1) and np.all(np.isfinite(restored))
    assert os.path.exists(str(tmp_path / "out.png")) and os.path.exists(str(tmp_path / "out.degraded.wav"))
    page = (tmp_path / "index.html").read_text()  # the listening page: both files, metrics, the command
    assert 'src="out.wav"' in page and 'src="out.degraded.wav"' in page and 'src="out.png"' in page
    assert "si_sdr_out" in page and "--config.task.name=declip" in page
    assert open(src, "rb").read() == before
    again = subprocess.run(cmd[:6] + ["--out", src] + cmd[8:], capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "input file" in again.stderr


@pytest.mark.slow  # 26 s; the script's file handling stays covered by test_restore_script_declips_a_file
def test_restore_script_reads_a_path_with_dashes_as_given(workdir, tmp_path):
    """`--input=/tmp/x/my-file.wav` reads that file (flag values were once rewritten to my_file.wav);
    a config key the task does not take is an error naming the keys it takes."""
    folder = tmp_path / "my-dir"
    folder.mkdir()
    src = _tone(str(folder / "my-file.wav"))
    _tone(str(folder / "my_file.wav"), seconds=0.1)  # the rewritten name, with a different length
    out = str(folder / "out-put.wav")
    done = subprocess.run([sys.executable, SCRIPT, f"--workdir={workdir}", f"--input={src}", f"--out={out}",
                           "--config.method.name=replacement", "--config.sampler=euler", "--config.nfe=2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert io.audio_info(out).frames == 4000
    bad = subprocess.run([sys.executable, SCRIPT, f"--workdir={workdir}", f"--input={src}",
                          f"--out={folder / 'o2.wav'}", "--config.task.declip.cutoff=3000"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "cutoff" in bad.stderr


def test_bad_inputs_are_refused_with_the_fix(model, tmp_path):
    stereo = _tone(str(tmp_path / "stereo.wav"), channels=2)
    with pytest.raises(ValueError, match="--config.stereo=mixdown"):
        _run(model, stereo, str(tmp_path / "o1.wav"))
    nan = str(tmp_path / "nan.wav")
    sf.write(nan, np.full(1000, np.nan, np.float32), SR, subtype="FLOAT")
    with pytest.raises(io.AudioError, match="non-finite"):
        _run(model, nan, str(tmp_path / "o2.wav"))
    src = _tone(str(tmp_path / "in.wav"))
    with pytest.raises(ValueError, match="Nyquist"):
        _run(model, src, str(tmp_path / "o3.wav"), task="bwe", cutoff=8000.0)
    with pytest.raises(ValueError, match="input file"):
        _run(model, src, src)
    with pytest.raises(TypeError, match=r"'bwe' does not take \['gap_seconds'\]; it takes \['cutoff', 'filter'\]"):
        config = _config(task="bwe")
        config.task.bwe.gap_seconds = 0.1
        job.restore_file_with(model, config, input=src, out=str(tmp_path / "o4.wav"))
    with pytest.raises(ValueError, match="high_band='keep'; valid: auto, input, none"):
        config = _config()
        config.high_band = "keep"
        job.restore_file_with(model, config, input=src, out=str(tmp_path / "o6.wav"))
    with pytest.raises(TypeError, match=r"'dps' does not take \['resamples'\].*zeta"):
        config = _config(method="dps")
        config.method.dps.resamples = 3
        job.restore_file_with(model, config, input=src, out=str(tmp_path / "o5.wav"))


def test_an_impossible_nfe_is_refused_naming_the_nearest_budgets(model, tmp_path):
    """Heun with NFE 10 once ran NFE 9 silently (issue 20, item 9)."""
    src = _tone(str(tmp_path / "in.wav"))
    with pytest.raises(ValueError, match="cannot spend exactly 10 NFE; the nearest valid budgets are 9 and 11"):
        _run(model, src, str(tmp_path / "out.wav"), sampler="heun", nfe=10)
    assert not os.path.exists(str(tmp_path / "out.wav"))


def test_no_input_and_no_existing_file_is_ever_replaced(model, tmp_path):
    """Issue 20, item 1: `--input take.degraded.wav --out take.wav` (simulating) would replace the
    input with the degraded side file; an existing `result.png` was replaced without a check."""
    take = _tone(str(tmp_path / "take.degraded.wav"))
    before = open(take, "rb").read()
    with pytest.raises(ValueError, match="input file"):
        _run(model, take, str(tmp_path / "take.wav"), task="declip", clip_sdr=3.0)
    with pytest.raises(ValueError, match="input file"):  # not even with --overwrite
        _run(model, take, str(tmp_path / "take.wav"), overwrite=True, task="declip", clip_sdr=3.0)
    assert open(take, "rb").read() == before and not os.path.exists(str(tmp_path / "take.wav"))

    src = _tone(str(tmp_path / "in.wav"))
    png = tmp_path / "result.png"
    png.write_bytes(b"someone else's figure")
    with pytest.raises(FileExistsError, match="result.png exists; pass --overwrite"):
        _run(model, src, str(tmp_path / "result.wav"))
    assert png.read_bytes() == b"someone else's figure" and not os.path.exists(str(tmp_path / "result.wav"))
    info = _run(model, src, str(tmp_path / "result.wav"), overwrite=True)
    assert info["png"] == str(png) and png.read_bytes() != b"someone else's figure"


def test_resampled_input_with_a_long_gap_uses_chunked_mode(model, tmp_path, caplog):
    src = _tone(str(tmp_path / "in22.wav"), sr=22050)
    out = str(tmp_path / "out.wav")
    with caplog.at_level(logging.INFO, logger="diffjax"):
        info = _run(model, src, out, task="inpaint", simulate=True, gap_seconds=0.1)
    assert info["mode"] == "chunked"
    assert "resampling" in caplog.text and "chunked mode" in caplog.text
    assert io.audio_info(out).sample_rate == 22050 and io.audio_info(out).frames == 5512
    # simulated: the degraded file is written at the file's rate, and the scores are printed
    assert io.audio_info(str(tmp_path / "out.degraded.wav")).sample_rate == 22050
    assert set(info["metrics"]) == {"si_sdr_in", "si_sdr_out", "lsd_in", "lsd_out"}
    assert "SI-SDR" in caplog.text and "LSD" in caplog.text
    clean, restored = sf.read(src, dtype="float32")[0], sf.read(out, dtype="float32")[0]
    gap = get_operator("gap", sample_rate=22050, gap_seconds=0.1).mask_for((1, 5512, 1))[:, 0] == 0
    np.testing.assert_allclose(restored[~gap], clean[~gap], atol=2 ** -15)  # 16-bit files, outside the gap


def _high_band_db(x, sr, cutoff=8000.0):
    """Energy above `cutoff` in dB of the total, per channel `[C]`."""
    power = np.abs(np.fft.rfft(x, axis=0)) ** 2
    high = np.fft.rfftfreq(len(x), 1 / sr) > cutoff
    return 10 * np.log10(power[high].sum(0) / power.sum(0))


def test_a_44khz_stereo_file_keeps_its_full_band_outside_the_gap(model, tmp_path):
    """Issue 21, item 1: a 16 kHz model filling a 20 ms gap of a 44.1 kHz stereo float file once
    returned the whole file low-passed at 8 kHz (-23 -> -75 dB above 8 kHz). Outside the gap the
    output is the input sample for sample, in the input's sample format."""
    sr, n = 44100, 5512  # 0.125 s: the smoke model's 2000-sample context at 16 kHz
    t = np.arange(n) / sr
    noise = np.random.default_rng(0).standard_normal((n, 2))
    x = np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t + 1)], 1)
    x = (x + 0.1 * np.sin(2 * np.pi * 12000 * t)[:, None] + 0.02 * noise).astype(np.float32)
    src, out = str(tmp_path / "in44.wav"), str(tmp_path / "out.wav")
    sf.write(src, x, sr, subtype="FLOAT")
    config = _config(task="inpaint", gap_seconds=0.02, start_seconds=0.05)
    config.stereo = "per_channel"
    info = job.restore_file_with(model, config, input=src, out=out)
    restored, rate = sf.read(out, dtype="float32")
    assert rate == sr and restored.shape == x.shape and sf.info(out).subtype == "FLOAT"
    gap = (np.arange(n) >= round(0.05 * sr)) & (np.arange(n) < round(0.05 * sr) + round(0.02 * sr))
    assert np.array_equal(restored[~gap], x[~gap])  # bit for bit
    assert not np.allclose(restored[gap], x[gap]) and np.all(np.isfinite(restored))
    before, after = _high_band_db(x, sr), _high_band_db(restored, sr)
    assert np.all(before > -20) and np.all(after > before - 1.5), (before, after)  # the gap is 16 % of the file
    assert info["band"].startswith("0-6960 Hz by the model") and info["sample_rate"] == sr
    assert info["intact_fraction"] == pytest.approx(1 - gap.mean(), abs=1e-4)


def _evaluate(model, reference_dir, table, *, tasks, methods, max_clips):
    config = _config()
    config.evaluation.tasks, config.evaluation.methods = ",".join(tasks), ",".join(methods)
    config.evaluation.max_clips = max_clips
    return job.evaluate_with(model, config, reference_dir=reference_dir, table=table)


def test_evaluation_mode_writes_the_table(model, tmp_path):
    ref = tmp_path / "clean"
    ref.mkdir()
    for i in range(2):
        _tone(str(ref / f"c{i}.wav"), seconds=0.125 + 0.05 * i)
    table = str(tmp_path / "table.md")
    rows = _evaluate(model, str(ref), table, tasks=["gap_50ms"], methods=["replacement"], max_clips=2)
    assert len(rows) == 1 and rows[0]["si_sdr_out"] > rows[0]["si_sdr_in"] - 20
    text = open(table).read()
    assert "| task | method |" in text and "lsd_out" in text and "gap_50ms" in text
    with pytest.raises(FileExistsError, match="table.md exists"):
        _evaluate(model, str(ref), table, tasks=["gap_50ms"], methods=["replacement"], max_clips=2)


def test_evaluation_runs_dereverb_on_long_excerpts_and_blind_bwe_only_on_low_passes(model, tmp_path):
    """dereverb_0.5s needs 1 s excerpts (8 x the smoke model's context): windowed mode; blind_bwe
    runs on the low-pass task only and reports the cutoff it implies."""
    ref = tmp_path / "clean"
    ref.mkdir()
    _tone(str(ref / "c0.wav"), seconds=1.0)
    rows = _evaluate(model, str(ref), str(tmp_path / "t.md"), tasks=["bwe_4khz", "dereverb_0.5s"],
                     methods=["blind_bwe", "ddnm"], max_clips=1)
    assert [(r["task"], r["method"]) for r in rows] == [("bwe_4khz", "blind_bwe"), ("bwe_4khz", "ddnm"),
                                                      ("dereverb_0.5s", "ddnm")]
    assert 250 <= rows[0]["fitted_cutoff_hz"] <= 7600 and np.isfinite(rows[2]["lsd_out"])


def test_a_mel_model_is_refused_before_its_weights_load(tmp_path):
    """The quick start's log-mel prior cannot restore waveforms; the message names the config to
    train instead (no checkpoint is needed to find that out). The codec is asked, not its name."""
    workdir_lib.save_config(str(tmp_path), default.get_config())
    workdir_lib.save_spec(str(tmp_path), DataSpec(shape=(16000, 1), sample_rate=SR))
    with pytest.raises(ValueError, match="restoration needs a waveform model.*configs/waveform.py"):
        job.load_restorable_model(str(tmp_path))

"""End to end: each conditional config trains (smoke), and each `sample.py` flag runs through the
sample job, with the bad inputs the issue names."""
import json
import os

import numpy as np
import pytest
import soundfile

from configs import inpaint, notes_to_audio, text_to_audio
from diffjax.audio import notes as notes_lib
from diffjax.jobs import SampleRequest, run_sample_request, train_and_evaluate

# One xdist worker runs this module (pytest.ini: --dist loadgroup), so each workdir trains once.
pytestmark = pytest.mark.xdist_group("conditioner_jobs")


def _train(module, path):
    config = module.get_config("smoke")
    config.training.num_steps = 2
    config.evaluation.num_samples = 0
    config.data.cache_dir = str(path / "cache")
    train_and_evaluate(config, str(path / "workdir"))
    return str(path / "workdir")


@pytest.fixture(scope="module")
def text_workdir(tmp_path_factory):
    return _train(text_to_audio, tmp_path_factory.mktemp("text"))


@pytest.fixture(scope="module")
def notes_workdir(tmp_path_factory):
    return _train(notes_to_audio, tmp_path_factory.mktemp("notes"))


@pytest.fixture(scope="module")
def inpaint_workdir(tmp_path_factory):
    return _train(inpaint, tmp_path_factory.mktemp("inpaint"))


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("wav") / "in.wav"
    t = np.arange(4000) / 16000
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return str(path)


def _run(tmp_path, **kwargs):
    out = str(tmp_path / "out")
    summary = run_sample_request(SampleRequest(num=2, out=out, **kwargs))
    waves = sorted(f for f in os.listdir(out) if f.endswith(".wav"))
    audio = [soundfile.read(os.path.join(out, f))[0] for f in waves]
    assert len(audio) == 2 and all(np.all(np.isfinite(a)) for a in audio)
    assert json.load(open(os.path.join(out, "samples.json")))["seeds"] == [0, 1]
    return summary, audio


def test_text_prompt_negative_prompt_seconds_and_per_condition_scales(text_workdir, tmp_path):
    assert os.path.exists(os.path.join(text_workdir, "tokenizer.json"))
    summary, audio = _run(tmp_path, workdir=text_workdir, prompt="a soft flute note", negative_prompt="drums",
                          seconds=0.1, cfg_scale=3.0)
    assert summary["conditions"] == ["text", "timing"] and len(audio[0]) == 1600  # trimmed to --seconds
    summary, _ = _run(tmp_path / "scales", workdir=text_workdir, prompt="kick drum pattern", seconds=0.1,
                      cfg_scales="text=4,timing=1")
    assert summary["cfg_scale"] == {"text": 4.0, "timing": 1.0}


def test_an_empty_prompt_is_unconditional_and_says_so(text_workdir, tmp_path, caplog):
    summary, _ = _run(tmp_path, workdir=text_workdir, prompt="  ")
    assert summary["conditions"] == [] and "unconditionally" in caplog.text


def test_notes_from_a_midi_file_and_out_of_range_notes(notes_workdir, tmp_path):
    midi = str(tmp_path / "tune.mid")
    notes_lib.write_midi(midi, np.array([[60, 0.0, 0.05, 0.8], [64, 0.05, 0.05, 0.6]], np.float32))
    summary, _ = _run(tmp_path, workdir=notes_workdir, notes=midi)
    assert summary["conditions"] == ["notes"]
    high = str(tmp_path / "high.mid")
    notes_lib.write_midi(high, np.array([[120, 0.0, 0.05, 0.8]], np.float32))
    with pytest.raises(ValueError, match="24.*96"):
        run_sample_request(SampleRequest(workdir=notes_workdir, notes=high, num=1, out=str(tmp_path / "bad")))


def test_inpainting_a_span_and_a_mask_outside_the_clip(inpaint_workdir, wav, tmp_path):
    summary, _ = _run(tmp_path, workdir=inpaint_workdir, init=wav, mask_start=0.03, mask_end=0.08)
    assert summary["conditions"] == ["inpaint"]
    with pytest.raises(ValueError, match="0.125 s, the clip's length"):
        run_sample_request(SampleRequest(workdir=inpaint_workdir, init=wav, mask_start=0.1, mask_end=0.5, num=1,
                                         out=str(tmp_path / "bad")))


def test_continuation_to_a_long_piece(inpaint_workdir, wav, tmp_path):
    summary, audio = _run(tmp_path, workdir=inpaint_workdir, continue_from=wav, seconds=0.6)
    assert len(audio[0]) == 9600
    np.testing.assert_allclose(audio[0][:2000], soundfile.read(wav)[0][:2000], atol=1e-4)  # the prefix is kept


def test_flags_without_their_conditioner_name_the_config_that_trains_one(inpaint_workdir, text_workdir, wav,
                                                                         tmp_path):
    with pytest.raises(ValueError, match="configs/text_to_audio.py"):
        run_sample_request(SampleRequest(workdir=inpaint_workdir, prompt="flute", num=1, out=str(tmp_path / "a")))
    with pytest.raises(ValueError, match="configs/inpaint.py"):
        run_sample_request(SampleRequest(workdir=text_workdir, continue_from=wav, seconds=1.0, num=1,
                                         out=str(tmp_path / "b")))

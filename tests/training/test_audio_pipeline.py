"""End to end on audio: every shipped config builds; the :smoke configs train, checkpoint, resume
and sample through experiments/sample.py's job, for waveform, spectrogram and conditional models."""
import glob
import importlib
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax import data as data_lib
from diffjax import losses
from diffjax.audio.codecs import LogMel, Waveform
from diffjax.audio.io import read_audio
from diffjax.jobs import SampleRequest, generate, load, run_sample_request, train_and_evaluate
from diffjax.jobs import workdir as workdir_lib
from diffjax.model import build_autoencoder_model, build_codec, build_model, data_spec
from diffjax.registry import UnknownNameError
from diffjax.training.objective import diffusion_loss_fn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(module: str, arg: str = "smoke"):
    return importlib.import_module(module).get_config(arg)


# Every diffusion config shipped in configs/ (the classifier config of the evaluation has no process).
CONFIGS = [m for m in sorted(os.path.relpath(p, ROOT)[:-3].replace(os.sep, ".")
                             for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True)
                             if not os.path.basename(p).startswith(("_", "common")))
           if "sde" in _load(m)]


@pytest.mark.parametrize("module", CONFIGS)
def test_every_config_builds_and_its_loss_has_the_right_shape(module, tmp_path):
    """Builds the dataset, the model object (process, parameterisation, network, codec,
    conditioners) and the loss of each shipped config (smoke size), and traces one loss evaluation
    on a real batch abstractly (no compile)."""
    config = _load(module)
    if "cache_dir" in config.data:
        config.data.cache_dir = str(tmp_path)
    dataset = data_lib.build_dataset(config.data)
    model = build_model(config, data_spec(dataset), codec_context=fresh_codec_context(config, dataset),
                        conditioning_context=workdir_lib.conditioning_context(config, dataset=dataset))
    loss = losses.make_loss(process=model.process, precond=model.precond, **config.loss.to_dict())
    batch = jax.tree.map(jnp.asarray, model.host_batch(dataset.batch(0, 2, seed=0)))  # captions tokenised
    params = model.abstract_params()
    out = jax.eval_shape(lambda p, b: diffusion_loss_fn(model, loss)(p, b, jax.random.PRNGKey(1), {})[0],
                         params, batch)
    assert out.shape == (2,)


def fresh_codec_context(config, dataset) -> dict:
    """A 'latent' codec's autoencoder without a workdir: the tiny preset, freshly initialised."""
    if config.get("codec", {}).get("name") != "latent":
        return {}
    autoencoder = build_autoencoder_model(_load("configs.autoencoder"), data_spec(dataset))
    return {"autoencoder": autoencoder, "autoencoder_params": autoencoder.init(jax.random.PRNGKey(0))}


def _train(module, workdir, **overrides):
    config = _load(module)
    config.data.cache_dir = str(workdir / "cache")
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    return config, train_and_evaluate(config, str(workdir))


def test_waveform_model_trains_resumes_and_samples(smoke_audio_workdir, tmp_path):
    shutil.copytree(smoke_audio_workdir, tmp_path, dirs_exist_ok=True)  # the shared 4-step model
    config = workdir_lib.load_config(str(tmp_path))
    with open(tmp_path / "eval.json") as f:
        assert json.load(f)["nfe"] == config.sampling.num_steps  # Euler (the smoke sampler)
    assert os.path.exists(tmp_path / "spectrograms.png")
    assert load(str(tmp_path)).step == 4
    _train("configs.waveform", tmp_path, **{"training.num_steps": 6})  # resume
    assert load(str(tmp_path)).step == 6
    summary = run_sample_request(SampleRequest(workdir=str(tmp_path), sampler="dpmpp_2m", nfe=4, num=3,
                                               seed=7, out=str(tmp_path / "out")))
    assert summary["nfe"] == 4 and summary["seeds"] == [7, 8, 9] and summary["real_time_factor"] > 0
    wavs = sorted(os.listdir(tmp_path / "out"))
    assert wavs == ["index.html", "samples.json", "seed000007.png", "seed000007.wav", "seed000008.png",
                    "seed000008.wav", "seed000009.png", "seed000009.wav", "spectrograms.png"]
    # per-example seeds: the same seed gives the same clip in a different batch
    again = run_sample_request(SampleRequest(workdir=str(tmp_path), sampler="dpmpp_2m", nfe=4, num=1,
                                             seed=8, out=str(tmp_path / "again")))
    a = read_audio(str(tmp_path / "out" / "seed000008.wav"), sample_rate=16000)
    b = read_audio(str(tmp_path / "again" / "seed000008.wav"), sample_rate=16000)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert again["nfe"] == 4
    edit = run_sample_request(SampleRequest(workdir=str(tmp_path), num=2, init=str(tmp_path / "out" / "seed000007.wav"),
                                            strength=0.5, out=str(tmp_path / "edit")))
    assert edit["strength"] == 0.5 and len(glob.glob(str(tmp_path / "edit" / "*.wav"))) == 2


def test_quick_start_mel_model_trains_and_decodes_to_waveforms(tmp_path):
    """The main job's config (configs/default.py, log-mel frames): training ends in an evaluation
    whose samples are Griffin-Lim waveforms of the crop length, scored like the data."""
    config, results = _train("configs.default", tmp_path, **{"evaluation.num_samples": 2})
    assert config.codec.name == "mel" and results["num_samples"] == 2
    assert 0 <= results["pitch_confidence"]["samples"] <= 1
    wavs = sorted(glob.glob(str(tmp_path / "samples" / "*.wav")))
    assert len(wavs) == 2
    import soundfile
    audio, sr = soundfile.read(wavs[0])
    assert sr == config.data.sample_rate
    assert len(audio) == int(round(config.data.crop_seconds * sr)) and np.all(np.isfinite(audio))


@pytest.mark.slow  # 56 s on 2 cores; the complex-STFT codec's round trip and config build stay in the default suite
def test_spectrogram_model_trains_and_decodes_to_waveforms(tmp_path):
    config, results = _train("configs.spectrogram", tmp_path, **{"evaluation.num_samples": 0})
    loaded = load(str(tmp_path))
    out = generate(loaded.model, loaded.params, sampling_config=config.sampling, seeds=[0, 1], sampler="euler",
                   num_steps=3)
    dataset = data_lib.build_dataset(config.data)
    assert out.audio.shape == (2,) + tuple(dataset.example_shape) and out.latent.ndim == 4
    assert np.all(np.isfinite(out.audio))


def test_conditional_model_samples_a_named_class_with_guidance(tmp_path):
    _train("configs.conditional", tmp_path, **{"evaluation.num_samples": 0})
    summary = run_sample_request(SampleRequest(workdir=str(tmp_path), label="bell", cfg_scale=2.0, num=2, nfe=3,
                                               out=str(tmp_path / "bell")))
    assert summary["label"] == 4 and summary["cfg_scale"] == 2.0
    with open(tmp_path / "bell" / "samples.json") as f:
        assert json.load(f)["label"] == 4
    with pytest.raises(ValueError, match="unknown class 'violin'; valid classes: flute, clarinet"):
        run_sample_request(SampleRequest(workdir=str(tmp_path), label="violin", num=1))


def test_bad_config_values_list_the_valid_choices(tmp_path):
    config = _load("configs.default")
    config.sde.name = "vpsde"
    with pytest.raises(UnknownNameError, match="unknown sde 'vpsde'; valid names: cosine, edm, flow"):
        train_and_evaluate(config, str(tmp_path))
    config = _load("configs.default")
    config.optim.name = "adagrad"
    with pytest.raises(ValueError, match=r"optim.name must be one of \['adam'"):
        train_and_evaluate(config, str(tmp_path / "b"))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        workdir_lib.save_config(str(tmp_path / "c"), config)
        workdir_lib.save_spec(str(tmp_path / "c"), data_spec(data_lib.build_dataset(config.data)))
        load(str(tmp_path / "c"))


def test_a_saved_config_loads_equal_to_the_original(tmp_path):
    """JSON turns tuples into lists; load_config turns them back, so a teacher's config read from
    its workdir compares equal to the student's (distillation checks config.model equality)."""
    config = _load("configs.default", "")
    workdir_lib.save_config(str(tmp_path), config)
    loaded = workdir_lib.load_config(str(tmp_path))
    assert loaded.to_dict() == config.to_dict()
    assert loaded.training.ema_halflife_examples == (2000.0,) and loaded.optim.warmup_steps == 100


def test_codec_section_switches_by_name_and_follows_the_data_rate():
    """`--config.codec.name=waveform` on the mel default ignores the mel-only sub-section, and a
    codec with a sample rate takes the data's rather than its own default."""
    config = _load("configs.default", "")
    codec = build_codec(config.codec, 8000)
    assert isinstance(codec, LogMel) and codec.sample_rate == 8000 and codec.n_mels == 128
    config.codec.name = "waveform"
    assert isinstance(build_codec(config.codec, 8000), Waveform)


def test_a_key_the_chosen_component_does_not_take_is_an_error_naming_its_keys():
    """Strict sections: a misspelt or misplaced key is never silently dropped."""
    config = _load("configs.default", "")
    config.codec.name = "waveform"
    config.codec.n_mels = 64  # a mel key at the top of the section, not under codec.mel
    with pytest.raises(TypeError, match=r"codec 'waveform' does not take \['n_mels'\]"):
        build_codec(config.codec, 16000)
    config = _load("configs.default", "")
    config.model.widht = 3
    with pytest.raises(TypeError, match=r"model 'dit' does not take \['widht'\]; it takes \[.*'width'"):
        build_model(config, data_spec(data_lib.build_dataset(config.data)))


def test_a_workdir_from_before_the_model_object_fails_naming_the_change(tmp_path):
    """Workdirs written before issue 16 have a config.json but no model.json."""
    workdir_lib.save_config(str(tmp_path), _load("configs.default"))
    with pytest.raises(ValueError, match="before the model-object change.*Retrain"):
        load(str(tmp_path))

"""Every codec takes its rate from `data.sample_rate`: built at 44.1 and 48 kHz from the configs'
sections, each keeps the rate and round-trips `[B, L, C]` to the same shape (the waveform and
the complex STFT exactly); the 44.1/48 kHz configs build their models."""
import jax
import numpy as np
import pytest

from configs import default, music44k, music48k
from diffjax.autoencoder.codec import LatentCodec
from diffjax.data import build_dataset
from diffjax.model import build_codec, build_model, data_spec


def _sections():
    codec = default.get_config().codec
    yield "waveform", {"name": "waveform"}, True
    yield "complex_stft", {"name": "complex_stft", **music44k.get_config().codec.complex_stft.to_dict()}, True
    yield "mel", {"name": "mel", **codec.mel.to_dict(), "griffin_lim_iters": 2, "nnls_iters": 2}, False


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("name, section, exact", list(_sections()), ids=lambda v: v if isinstance(v, str) else "")
def test_codecs_take_the_data_rate_and_round_trip(rate, name, section, exact):
    codec = build_codec(section, rate)
    assert getattr(codec, "sample_rate", rate) == rate
    length = 3000
    audio = 0.3 * np.asarray(jax.random.normal(jax.random.PRNGKey(0), (1, length, 2)))
    back = np.asarray(codec.decode(codec.encode(audio), length))
    assert back.shape == audio.shape
    if exact:
        np.testing.assert_allclose(back, audio, atol=1e-4)


@pytest.mark.parametrize("rate", [44100, 48000])
def test_mel_codec_covers_the_full_band(rate):
    codec = build_codec({"name": "mel", **default.get_config().codec.mel.to_dict()}, rate)
    tone = np.sin(2 * np.pi * 0.45 * rate * np.arange(4096) / rate)[None, :, None]  # above 16 kHz
    z = np.asarray(codec.encode(tone))
    assert codec.fmax is None and np.argmax(z.reshape(z.shape[1], -1).mean(0)) >= z.shape[-1] - 8


def test_latent_codec_refuses_an_autoencoder_of_another_rate():
    class Spec:
        sample_rate = 16000

    class Autoencoder:
        spec = Spec()

    with pytest.raises(ValueError, match="trained at 16000 Hz but the data is at 44100 Hz"):
        LatentCodec(workdir="ae", autoencoder=Autoencoder(), autoencoder_params={}, sample_rate=44100)


@pytest.mark.parametrize("module, rate", [(music44k, 44100), (music48k, 48000)])
@pytest.mark.parametrize("arg", ["smoke", "waveform,smoke"])
def test_music_configs_build_stereo_models_at_their_rate(module, rate, arg):
    config = module.get_config(arg)
    model = build_model(config, data_spec(build_dataset(config.data)))
    assert model.spec.sample_rate == rate and model.spec.shape == (int(rate * config.data.crop_seconds), 2)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    x = jax.ShapeDtypeStruct((2,) + tuple(model.latent_shape), np.float32)
    out = jax.eval_shape(lambda p, x: model.denoiser(p)(x, np.ones(2, np.float32)), params, x)
    assert out.shape == x.shape
    full = module.get_config("waveform" if "waveform" in arg else "")
    assert full.data.name == "folder" and full.data.sample_rate == rate and full.data.channels == 2

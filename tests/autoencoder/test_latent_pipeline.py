"""The autoencoder job and latent diffusion end to end: training through the shared loop, the
'latent' codec's round trip, the pre-encoded cache (reused; invalidated by new weights; a damaged
file re-encoded), and latent training, sampling and decoding to wav from one workdir."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import autoencoder as autoencoder_config
from configs import latent as latent_config
from diffjax.audio.codecs import CODECS
from diffjax.autoencoder import metrics
from diffjax.data import build_dataset
from diffjax.jobs import latents, sample, train_and_evaluate
from diffjax.jobs.autoencoder import reconstruct
from diffjax.jobs.workdir import codec_context, load, model_for
from diffjax.model import data_spec


@pytest.fixture(scope="module")
def trained_autoencoder(tmp_path_factory):
    """The smoke autoencoder trained 60 steps; its eval.json, and the same config's metrics at init."""
    path = tmp_path_factory.mktemp("ae")
    config = autoencoder_config.get_config("smoke")
    config.data.cache_dir = str(path / "cache")
    config.training.num_steps = 60
    config.training.log_every = 30
    config.training.checkpoint_every = 60
    config.optim.warmup_steps = 10
    config.optim.decay_steps = 60
    config.optim.learning_rate = 3e-3
    config.training.ema_halflife_examples = (40.0,)  # 5 steps of 8: the evaluated EMA follows 60 steps
    results = train_and_evaluate(config, str(path / "workdir"))
    return path, config, results


def test_autoencoder_training_reduces_the_held_out_stft_distance(trained_autoencoder):
    """60 steps of the tiny autoencoder cut the held-out MR-STFT distance of its initialisation by
    more than 10% (measured: 4.43 at init, 3.69 after, a 17% cut; runs are deterministic on CPU, and
    the training smoke test in test_autoencoder_training_smoke.py shows the > 2x cut of 100 steps
    on a fixed batch)."""
    path, config, results = trained_autoencoder
    loaded = load(str(path / "workdir"), kind="autoencoder")
    fresh = loaded.model.init(jax.random.PRNGKey(config.seed))
    clips = np.asarray(build_dataset(config.data).eval.batch(0, 8, seed=0)["x"])
    at_init = float(np.mean(metrics.mr_stft_distance(jnp.asarray(clips),
                                                     jnp.asarray(reconstruct(loaded.model, fresh, clips)))))
    assert results["mr_stft"] < 0.9 * at_init, (results["mr_stft"], at_init)
    assert set(results) >= {"si_sdr", "mr_stft", "log_mel_l1", "lsd", "pitch_confidence"}
    assert os.path.exists(path / "workdir" / "reconstructions.png")


def test_a_diffusion_loader_refuses_an_autoencoder_workdir(trained_autoencoder):
    path, _, _ = trained_autoencoder
    with pytest.raises(ValueError, match="needs a diffusion model"):
        load(str(path / "workdir"))


def latent_smoke_config(path, autoencoder_workdir):
    config = latent_config.get_config("smoke")
    config.model.size = "tiny"
    config.codec.latent.workdir = str(autoencoder_workdir)
    config.data.cache_dir = str(path / "cache")
    return config


def test_latent_codec_round_trip(trained_autoencoder):
    """encode -> [B, ceil(L / hop), D]; decode(encode(x), L) is the autoencoder's own reconstruction,
    cropped to L, under jit too; decode is differentiable."""
    path, ae_config, _ = trained_autoencoder
    config = latent_smoke_config(path, path / "workdir")
    dataset = build_dataset(config.data)
    model = model_for(config, data_spec(dataset))
    codec = model.codec
    x = jnp.asarray(dataset.batch(0, 4, seed=0)["x"])
    z = codec.encode(x)
    length = x.shape[1]
    assert z.shape == (4, -(-length // codec.hop), codec.autoencoder.network.latent_dim)
    assert model.latent_shape == z.shape[1:]
    audio = codec.decode(z, length)
    assert audio.shape == x.shape
    direct = codec.autoencoder.decode(codec.autoencoder_params, z)[:, :length]
    np.testing.assert_allclose(np.asarray(jax.jit(codec.decode, static_argnums=1)(z, length)), np.asarray(direct),
                               atol=1e-5)
    grad = jax.grad(lambda z: jnp.sum(codec.decode(z, length) ** 2))(z)
    assert np.all(np.isfinite(np.asarray(grad))) and float(jnp.abs(grad).sum()) > 0


def test_latent_cache_is_reused_and_invalidated_by_new_weights(trained_autoencoder, tmp_path):
    path, _, _ = trained_autoencoder
    config = latent_smoke_config(path, path / "workdir")
    dataset = build_dataset(config.data)
    codec = model_for(config, data_spec(dataset)).codec
    section = config.data.to_dict()
    first, file_path, reused = latents.cached_latents(dataset, codec, section, cache_dir=str(tmp_path))
    assert not reused and os.path.exists(file_path)
    again, same_path, reused = latents.cached_latents(dataset, codec, section, cache_dir=str(tmp_path))
    assert reused and same_path == file_path
    np.testing.assert_array_equal(again.examples["z"], first.examples["z"])
    assert first.examples["z"].shape[0] == len(dataset)
    batch = first.batch(3, 4, seed=0)
    assert batch["z"].shape == (4,) + tuple(codec.latent_shape(*dataset.example_shape))
    # New weights (a resumed or retrained autoencoder): another key, encoded afresh.
    moved = jax.tree.map(lambda a: a + 1e-3, codec.autoencoder_params)
    other = type(codec)(workdir=codec.workdir, autoencoder=codec.autoencoder, autoencoder_params=moved,
                        sample_rate=codec.sample_rate)
    _, other_path, reused = latents.cached_latents(dataset, other, section, cache_dir=str(tmp_path))
    assert not reused and other_path != file_path
    # Another data section: another key.
    _, data_path, _ = latents.cached_latents(dataset, codec, {**section, "crop_seconds": 0.1}, cache_dir=str(tmp_path))
    assert data_path != file_path
    # A damaged file is re-encoded, not trusted.
    with open(file_path, "wb") as f:
        f.write(b"not an npz")
    repaired, _, reused = latents.cached_latents(dataset, codec, section, cache_dir=str(tmp_path))
    assert not reused
    np.testing.assert_array_equal(repaired.examples["z"], first.examples["z"])


def test_latent_codec_needs_its_autoencoder(tmp_path):
    config = latent_config.get_config("smoke")
    config.codec.latent.workdir = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="train the autoencoder first"):
        codec_context(config)
    with pytest.raises(ValueError, match="codec.latent.workdir"):
        CODECS.build({"name": "latent", "latent": {"workdir": ""}})


def test_latent_diffusion_trains_samples_and_decodes_to_wav_from_one_workdir(trained_autoencoder):
    """Latent training reads the cache, the end-of-training samples and `sample.py`'s are decoded
    through the autoencoder to audio of the data's shape."""
    path, _, _ = trained_autoencoder
    config = latent_smoke_config(path, path / "workdir")
    workdir = path / "latent"
    results = train_and_evaluate(config, str(workdir))
    assert results["num_samples"] == config.evaluation.num_samples
    assert any(name.endswith(".wav") for name in os.listdir(workdir / "samples"))
    assert os.path.isdir(os.path.join(config.data.cache_dir, "latents"))
    loaded = load(str(workdir))
    assert loaded.model.codec.encode_once and not loaded.model.codec.is_identity
    out = workdir / "generated"
    summary = sample.run_sample_request(sample.SampleRequest(workdir=str(workdir), out=str(out), num=2))
    import soundfile
    audio, rate = soundfile.read(out / "seed000000.wav")
    assert rate == loaded.model.spec.sample_rate and audio.shape[0] == loaded.model.spec.shape[0]
    assert json.load(open(out / "samples.json"))["nfe"] == summary["nfe"]

"""Embedders: registry, shapes, the DCT, sample-rate checks and user callables."""
import numpy as np
import pytest
from scipy import fft

from diffjax.evaluation import features
from diffjax.registry import UnknownNameError

SR = 8000


def tone(freq, n=4, length=4000):
    t = np.arange(length) / SR
    return np.tile((0.5 * np.sin(2 * np.pi * freq * t))[None, :, None], (n, 1, 1)).astype(np.float32)


def user_embedding(audio):
    """A stand-in for a local VGGish/CLAP model: RMS and peak per clip."""
    return np.stack([np.sqrt(np.mean(audio ** 2, axis=(1, 2))), np.max(np.abs(audio), (1, 2))], 1)


def test_registry_lists_names():
    assert features.EMBEDDERS.names() == ["callable", "classifier", "mel_stats", "mfcc_stats"]
    with pytest.raises(UnknownNameError, match="mel_stats"):
        features.get_embedder("vggish")


def test_dct_matrix_matches_scipy():
    x = np.random.default_rng(0).standard_normal((3, 32))
    np.testing.assert_allclose(x @ features.dct_matrix(32, 13),
                               fft.dct(x, type=2, norm="ortho", axis=1)[:, :13], atol=1e-5)


@pytest.mark.parametrize("name,dim", [("mel_stats", 2 * 16), ("mfcc_stats", 4 * 8)])
def test_hand_crafted_stats(name, dim):
    kwargs = {"n_mfcc": 8} if name == "mfcc_stats" else {}
    emb = features.get_embedder(name, sample_rate=SR, n_fft=256, hop=64, n_mels=16, **kwargs)
    low, high = emb.embed(tone(200.0))["embedding"], emb.embed(tone(2000.0))["embedding"]
    assert low.shape == (4, dim) and np.all(np.isfinite(low))
    np.testing.assert_allclose(low[0], low[1])  # identical clips, identical features
    assert np.linalg.norm(low[0] - high[0]) > 1.0  # different pitch, different features
    stereo = np.concatenate([tone(200.0), tone(200.0)], axis=-1)
    np.testing.assert_allclose(emb.embed(stereo)["embedding"], low, rtol=1e-4, atol=1e-4)


def test_embed_all_pads_batches_and_keeps_order():
    emb = features.get_embedder("mel_stats", sample_rate=SR, n_fft=256, hop=64, n_mels=16)
    audio = np.concatenate([tone(f, n=1) for f in (100.0, 300.0, 500.0, 700.0, 900.0)])
    np.testing.assert_allclose(features.embed_all(emb, audio, batch_size=2)["embedding"],
                               emb.embed(audio)["embedding"], rtol=1e-4, atol=1e-4)


def test_callable_from_import_string_and_function():
    by_name = features.get_embedder("callable", fn=f"{__name__}:user_embedding", name="rms")
    by_fn = features.get_embedder("callable", fn=user_embedding, name="rms")
    out = by_name.embed(tone(440.0))["embedding"]
    np.testing.assert_allclose(out, by_fn.embed(tone(440.0))["embedding"])
    np.testing.assert_allclose(out[:, 1], 0.5, atol=1e-3)
    bad = features.get_embedder("callable", fn=lambda a: a[:, :, 0].sum(), name="bad")
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        bad.embed(tone(440.0))


def test_sample_rate_is_never_inferred():
    emb = features.get_embedder("mel_stats", sample_rate=16000)
    with pytest.raises(ValueError, match="expects 16000 Hz"):
        features.check_sample_rate(emb, 8000)
    features.check_sample_rate(features.get_embedder("callable", fn=user_embedding, name="x"), 8000)

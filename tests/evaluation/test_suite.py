"""evaluate_generator with fake generators: real clips score well, noise badly; chunks resume."""
import numpy as np
import pytest

from diffjax.evaluation import features, reference, suite

OPTIONS = suite.MetricOptions(kid_subsets=10, kid_subset_size=64, ndb_bins=8)


@pytest.fixture(scope="module")
def setup(loaded_classifier, smoke_dataset, eval_cache):
    """Embedders, reference features of the train split, and the held-out clips by label."""
    sr = smoke_dataset.sample_rate
    embs = {"classifier": features.get_embedder("classifier", classifier=loaded_classifier),
            "mel": features.get_embedder("mel_stats", sample_rate=sr, n_fft=256, hop=64, n_mels=16)}
    ref = {k: reference.reference_features(e, smoke_dataset, cache_dir=eval_cache)
           for k, e in embs.items()}
    held_out = smoke_dataset.eval.batch(0, len(smoke_dataset.eval), seed=0)
    return embs, ref, held_out


def data_generator(held_out):
    """'Generates' held-out clips: seed i -> clip i mod N; with labels, a clip of that class."""
    audio, label = held_out["x"], held_out["label"]

    def generate(seeds, labels=None):
        if labels is None:
            return audio[np.asarray(seeds) % len(audio)]
        picks = [np.flatnonzero(label == c)[s % max(1, np.sum(label == c))]
                 for s, c in zip(seeds, labels)]
        return audio[picks]

    return generate


def noise_generator(seeds, labels=None):
    return np.stack([0.2 * np.random.default_rng(s).standard_normal((4000, 1)) for s in seeds])


def run(generate, setup, **kwargs):
    embs, ref, _ = setup
    return suite.evaluate_generator(generate, embedders=embs, reference=ref, num=64,
                                    sample_rate=8000, chunk_size=32, options=OPTIONS, **kwargs)


def test_data_beats_noise_on_every_metric(setup):
    data, noise = run(data_generator(setup[2]), setup), run(noise_generator, setup)
    for key in ("fd_classifier", "fd_mel", "kid_classifier", "kid_mel"):
        assert data[key] < 0.2 * noise[key], key
    assert data["is"] > noise["is"]
    assert data["ndb_k_mel"] < noise["ndb_k_mel"]
    assert data["num"] == 64 and data["nonfinite"] == 0
    assert "accuracy" not in data  # unconditional


def test_conditional_accuracy(setup, trained_classifier):
    out = run(data_generator(setup[2]), setup, num_classes=9)
    _, clf_results = trained_classifier
    assert out["accuracy"] > 3.0 / 9
    assert len(out["per_class_accuracy"]) == 9
    assert run(noise_generator, setup, num_classes=9)["accuracy"] < out["accuracy"]


def test_interrupted_run_resumes(setup, tmp_path):
    calls = []
    generate = data_generator(setup[2])

    def failing(seeds):
        calls.append(int(seeds[0]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return generate(seeds)

    with pytest.raises(KeyboardInterrupt):
        run(failing, setup, state_dir=str(tmp_path))
    calls.clear()
    resumed = run(lambda s: calls.append(int(s[0])) or generate(s), setup, state_dir=str(tmp_path))
    assert calls == [32]  # only the chunk that had not finished
    assert resumed == pytest.approx(run(generate, setup))
    with pytest.raises(ValueError, match="different evaluation"):
        suite.evaluate_generator(generate, embedders=setup[0], reference=setup[1], num=32,
                                 sample_rate=8000, chunk_size=32, state_dir=str(tmp_path))


def test_nonfinite_samples_are_counted(setup):
    def broken(seeds):
        audio = noise_generator(seeds)
        audio[::8] = np.nan
        return audio

    assert run(broken, setup)["nonfinite"] == 8


def test_wrong_sample_rate_and_shape(setup):
    embs, ref, _ = setup
    with pytest.raises(ValueError, match="expects 8000 Hz"):
        suite.evaluate_generator(noise_generator, embedders=embs, reference=ref, num=4,
                                 sample_rate=16000)
    with pytest.raises(ValueError, match=r"waveforms \[4, L, C\]"):
        suite.evaluate_generator(lambda s: np.zeros((4, 100)), embedders=embs, reference=ref,
                                 num=4, sample_rate=8000)


def test_reference_cache_is_reused_and_keyed(setup, smoke_dataset, eval_cache):
    embs, ref, _ = setup
    again = reference.reference_features(embs["mel"], smoke_dataset, cache_dir=eval_cache)
    np.testing.assert_array_equal(again["embedding"], ref["mel"]["embedding"])
    other = reference.cache_path(eval_cache, embs["mel"], smoke_dataset.eval, len(smoke_dataset))
    assert other != reference.cache_path(eval_cache, embs["mel"], smoke_dataset, len(smoke_dataset))
    assert ref["classifier"]["probs"].shape == (len(smoke_dataset), 9)
    assert ref["mel"]["label"].shape == (len(smoke_dataset),)

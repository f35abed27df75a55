"""Inception score, modified IS, class accuracy and NDB on cases with known answers."""
import numpy as np
import pytest

from diffjax.evaluation import scores


def test_inception_score_extremes():
    k = 7
    confident_uniform = np.eye(k)[np.arange(70) % k]
    assert scores.inception_score(confident_uniform)["is"] == pytest.approx(k)
    constant = np.tile(np.random.default_rng(0).dirichlet(np.ones(k)), (50, 1))
    assert scores.inception_score(constant)["is"] == pytest.approx(1.0)
    one_class = np.eye(k)[np.zeros(30, int)]
    assert scores.inception_score(one_class)["is"] == pytest.approx(1.0)


def test_inception_score_two_classes_half_confident():
    """p(y|x) in {(1, 0), (1/2, 1/2)} equally often: p(y) = (3/4, 1/4), KL = known."""
    p = np.array([[1.0, 0.0], [0.5, 0.5]] * 10)
    kl1 = np.log(1 / 0.75)
    kl2 = 0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25)
    assert scores.inception_score(p)["is"] == pytest.approx(np.exp((kl1 + kl2) / 2))
    split = scores.inception_score(np.eye(2)[np.arange(20) % 2], num_splits=2)
    assert split == {"is": pytest.approx(2.0), "is_std": pytest.approx(0.0)}


def test_modified_inception_score():
    k = 4
    assert scores.modified_inception_score(np.eye(k)[np.arange(40) % k]) == pytest.approx(1.0)
    # one predicted class with two different confidences: KL(a||b) and KL(b||a) averaged
    a, b = np.array([0.9, 0.1]), np.array([0.6, 0.4])
    kl = lambda p, q: np.sum(p * np.log(p / q))  # noqa: E731
    got = scores.modified_inception_score(np.stack([a, b]))
    assert got == pytest.approx(np.exp((kl(a, b) + kl(b, a)) / 2))


def test_class_accuracy():
    probs = np.eye(3)[[0, 1, 2, 2, 1, 0]]
    out = scores.class_accuracy(probs, np.array([0, 1, 2, 0, 0, 0]))
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["per_class_accuracy"] == pytest.approx([0.5, 1.0, 1.0])
    with pytest.raises(ValueError):
        scores.class_accuracy(np.ones((3, 3)), np.zeros(3))


def test_kmeans_recovers_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + 0.1 * rng.standard_normal((50, 2)) for c in centres])
    got = scores.kmeans(x, 3, seed=1)
    np.testing.assert_allclose(np.sort(got, axis=0), np.sort(centres, axis=0), atol=0.1)


def test_ndb_same_and_different():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2000, 4))
    same = scores.ndb(rng.standard_normal((2000, 4)), ref, num_bins=20)
    assert same["ndb_k"] <= 0.2  # ~alpha = 0.05 expected under the null
    collapsed = scores.ndb(0.3 * rng.standard_normal((2000, 4)), ref, num_bins=20)
    assert collapsed["ndb_k"] >= 0.5
    assert collapsed["js"] > 10 * same["js"]

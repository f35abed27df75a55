"""Classifier-based scores: Inception-style score, modified IS, class accuracy, and NDB.

All take numpy arrays of class probabilities `probs` [N, K] (rows sum to 1) from a classifier the
project trains itself (`diffjax.evaluation.classifier`), which plays Inception's role.
"""
from __future__ import annotations

import numpy as np
from scipy import special

_EPS = 1e-12  # probability floor inside logarithms (KL of one-hot rows stays finite)


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(p, _EPS))


def _check_probs(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or not np.allclose(p.sum(1), 1.0, atol=1e-4) or np.any(p < 0):
        raise ValueError(f"probs must be [N, K] rows of probabilities; got shape {p.shape}")
    return p


def inception_score(probs: np.ndarray, *, num_splits: int = 1) -> dict[str, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))), p(y) the mean prediction (Salimans et al. 2016, sec. 4).

    Ranges from 1 (every prediction equal) to K (confident, and uniform over the K classes). With
    `num_splits` > 1 the set is cut into equal consecutive parts, as in Salimans et al.'s
    10 splits, and the mean and std over parts are returned.
    """
    p = _check_probs(probs)
    scores = []
    for part in np.array_split(p, num_splits):
        marginal = part.mean(0, keepdims=True)
        kl = np.sum(part * (_log(part) - _log(marginal)), axis=1)
        scores.append(float(np.exp(kl.mean())))
    return {"is": float(np.mean(scores)), "is_std": float(np.std(scores))}


def modified_inception_score(probs: np.ndarray) -> float:
    """mIS = exp(E_{x, x' same class} KL(p(y|x) || p(y|x'))) (Gurumurthy et al. 2017, sec. 5.1).

    Within-class diversity: pairs are formed among examples with the same predicted class (argmax)
    and the mean KL of each class is weighted by its share of examples. 1 when all examples of a
    class get identical predictions; higher when the classifier's view of them varies. (Some
    SC09 evaluations average over all pairs instead, which mixes in between-class diversity.)
    """
    p = _check_probs(probs)
    predicted = p.argmax(1)
    total = 0.0
    for c in np.unique(predicted):
        q = p[predicted == c]
        if len(q) < 2:
            continue
        logq = _log(q)
        # KL(q_i || q_j) = sum_k q_ik log q_ik - sum_k q_ik log q_jk, for all pairs (i, j).
        kl = np.sum(q * logq, axis=1)[:, None] - q @ logq.T
        total += len(q) / len(p) * kl.sum() / (len(q) * (len(q) - 1))  # diagonal is 0
    return float(np.exp(total))


def class_accuracy(probs: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> dict:
    """Accuracy of argmax predictions against the labels generation was conditioned on.

    Returns 'accuracy' (over all examples), 'mean_class_accuracy' (mean over classes present) and
    'per_class_accuracy' (list of K; NaN for classes without examples).
    """
    p = _check_probs(probs)
    labels = np.asarray(labels)
    k = p.shape[1] if num_classes is None else num_classes
    correct = p.argmax(1) == labels
    per_class = [float(correct[labels == c].mean()) if np.any(labels == c) else float("nan")
                 for c in range(k)]
    return {"accuracy": float(correct.mean()), "mean_class_accuracy": float(np.nanmean(per_class)),
            "per_class_accuracy": per_class}


# ---------------------------------------------------------------------------------------------
# NDB: number of statistically different bins (Richardson & Weiss 2018)
# ---------------------------------------------------------------------------------------------

def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii 2007); returns centres [k, D]."""
    x = np.asarray(x, np.float64)
    if len(x) < k:
        raise ValueError(f"k-means with {k} bins needs at least {k} reference examples; got {len(x)}")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    d2 = np.sum((x - centres[0]) ** 2, axis=1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1.0 / len(x))
        centres.append(x[rng.choice(len(x), p=probs)])
        d2 = np.minimum(d2, np.sum((x - centres[-1]) ** 2, axis=1))
    centres = np.stack(centres)
    for _ in range(iterations):
        assign = nearest(x, centres)
        new = np.stack([x[assign == j].mean(0) if np.any(assign == j) else centres[j]
                        for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    return centres


def nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre [N] (squared Euclidean distance)."""
    d2 = np.sum(x ** 2, 1)[:, None] - 2 * x @ centres.T + np.sum(centres ** 2, 1)[None, :]
    return np.argmin(d2, axis=1)


def ndb(samples: np.ndarray, reference: np.ndarray, *, num_bins: int = 20, alpha: float = 0.05,
        seed: int = 0) -> dict:
    """NDB/K: the share of k-means bins whose occupancy differs significantly (Richardson & Weiss
    2018, sec. 3; used on SC09 by Donahue et al. 2019 and Kong et al. 2021).

    The reference features are z-scored (per dimension, by their own mean and std), clustered into
    K = `num_bins` bins, and both sets assigned to the nearest centre. Each bin's proportions are
    compared with a two-sided two-proportion z-test at level `alpha` (pooled proportion
    p = (n1 p1 + n2 p2) / (n1 + n2), z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2))).
    A perfect model scores about `alpha` (the test's false-positive rate), not 0.

    Returns 'ndb' (count), 'ndb_k' (count / K), and 'js' (the Jensen-Shannon divergence, nats,
    between the two bin histograms).
    """
    ref = np.asarray(reference, np.float64)
    mu, sd = ref.mean(0), ref.std(0) + 1e-8
    ref, gen = (ref - mu) / sd, (np.asarray(samples, np.float64) - mu) / sd
    centres = kmeans(ref, num_bins, seed=seed)
    p_ref = np.bincount(nearest(ref, centres), minlength=num_bins) / len(ref)
    p_gen = np.bincount(nearest(gen, centres), minlength=num_bins) / len(gen)
    n1, n2 = len(gen), len(ref)
    pooled = (n1 * p_gen + n2 * p_ref) / (n1 + n2)
    se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2), 1e-300))
    pvalues = 2.0 * special.ndtr(-np.abs(p_gen - p_ref) / se)
    count = int(np.sum(pvalues < alpha))
    m = 0.5 * (p_gen + p_ref)
    js = 0.5 * np.sum(p_gen * (_log(p_gen) - _log(m))) + 0.5 * np.sum(p_ref * (_log(p_ref) - _log(m)))
    return {"ndb": count, "ndb_k": count / num_bins, "js": float(js)}

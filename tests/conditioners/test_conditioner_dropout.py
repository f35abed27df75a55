"""Condition dropout for classifier-free guidance (`conditioners.drop_conditions`): each condition
is replaced by its null value with its own rate, per example and independently of the others.

The bounds are binomial: the fraction of `n` independent Bernoulli(p) draws has standard deviation
sqrt(p (1 - p) / n); we allow 5 of them (a two-sided miss has probability 6e-7 under the claimed
law; the keys are fixed, so the outcome is deterministic anyway). Sharing one key between two
conditions would make the joint rate min(p1, p2) = 0.3 instead of p1 p2 = 0.18, 15 deviations away.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.conditioners import drop_conditions, get_conditioner, train_tokenizer

N = 4000


def within_binomial(fraction: float, p: float, n: int = N, deviations: float = 5.0) -> bool:
    return abs(fraction - p) <= deviations * np.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module")
def dropped():
    """Label (rate 0.3) and timing (rate 0.6) values of N examples, after one `drop_conditions`."""
    conditioners = {"label": get_conditioner("label", num_classes=5, dropout=0.3),
                    "timing": get_conditioner("timing", max_seconds=10.0, dropout=0.6)}
    rng = np.random.default_rng(0)
    cond = {"label": rng.integers(0, 5, N).astype(np.int32),
            "timing": {"seconds_start": rng.uniform(0, 5, N).astype(np.float32),
                       "seconds_total": rng.uniform(5, 10, N).astype(np.float32)}}
    out = jax.tree.map(np.asarray, drop_conditions(conditioners, cond, jax.random.key(3)))
    return cond, out


def test_each_condition_is_dropped_at_its_rate(dropped):
    cond, out = dropped
    label_null = out["label"] == 5
    timing_null = out["timing"]["seconds_start"] == -1.0
    assert within_binomial(label_null.mean(), 0.3), label_null.mean()
    assert within_binomial(timing_null.mean(), 0.6), timing_null.mean()
    # Both timing numbers are dropped together (one draw per example and condition).
    np.testing.assert_array_equal(out["timing"]["seconds_total"] == -1.0, timing_null)
    # Kept examples keep their value exactly.
    np.testing.assert_array_equal(out["label"][~label_null], cond["label"][~label_null])
    for key in ("seconds_start", "seconds_total"):
        np.testing.assert_array_equal(out["timing"][key][~timing_null], cond["timing"][key][~timing_null])


def test_conditions_are_dropped_independently(dropped):
    _, out = dropped
    label_null = out["label"] == 5
    timing_null = out["timing"]["seconds_start"] == -1.0
    joint = np.mean(label_null & timing_null)
    assert within_binomial(joint, 0.3 * 0.6), joint
    assert not within_binomial(joint, 0.3)  # the bound separates independent from shared draws


def test_a_structured_value_is_dropped_whole_to_its_null():
    """The text value `{"ids", "mask"}`: a dropped example has ids 0 and mask False in every
    position (the empty caption), a kept one is unchanged."""
    tokenizer = train_tokenizer(["a soft flute note", "kick drum pattern"])
    text = get_conditioner("text", tokenizer=tokenizer, max_tokens=4, dropout=0.5,
                           encoder="bag_of_words")
    value = text.tokenize(["a soft flute note"] * 400)
    out = jax.tree.map(np.asarray, drop_conditions({"text": text}, {"text": value}, jax.random.key(1)))
    dropped_rows = ~out["text"]["mask"].any(axis=1)
    assert within_binomial(dropped_rows.mean(), 0.5, n=400)
    np.testing.assert_array_equal(out["text"]["ids"][dropped_rows], 0)
    np.testing.assert_array_equal(out["text"]["ids"][~dropped_rows], value["ids"][~dropped_rows])
    np.testing.assert_array_equal(out["text"]["mask"][~dropped_rows], value["mask"][~dropped_rows])


def test_a_zero_rate_drops_nothing():
    label = get_conditioner("label", num_classes=3, dropout=0.0)
    value = jnp.arange(64, dtype=jnp.int32) % 3
    out = drop_conditions({"label": label}, {"label": value}, jax.random.key(0))
    np.testing.assert_array_equal(out["label"], value)

"""Learning-rate schedules of `config.optim.decay` against their closed forms."""
import math

import numpy as np
import pytest

from diffjax.training.state import DECAYS, learning_rate_schedule


def test_inverse_sqrt_is_edm2_eq67_after_warmup():
    """EDM2 eq. 67: alpha(t) = alpha_ref / sqrt(max(t / t_ref, 1)), t counted from step 0."""
    schedule = learning_rate_schedule(learning_rate=0.01, warmup_steps=10, decay="inverse_sqrt",
                                      decay_steps=100)
    assert float(schedule(5)) == pytest.approx(0.005)  # linear warm-up
    for step in (10, 50, 100, 400, 2500):
        expected = 0.01 / math.sqrt(max(step / 100, 1.0))
        np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-6)


@pytest.mark.parametrize("decay", ["cosine", "linear"])
def test_decays_reach_end_factor(decay):
    schedule = learning_rate_schedule(learning_rate=1e-3, warmup_steps=0, decay=decay,
                                      decay_steps=200, end_factor=0.1)
    np.testing.assert_allclose(float(schedule(0)), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(200)), 1e-4, rtol=1e-5)


def test_unknown_decay_lists_choices():
    with pytest.raises(ValueError, match="inverse_sqrt"):
        learning_rate_schedule(learning_rate=1e-3, decay="step")
    assert "inverse_sqrt" in DECAYS

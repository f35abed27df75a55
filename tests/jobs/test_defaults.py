"""Defaults derived from the run and the data (`diffjax.jobs.defaults`): decay_steps follows
num_steps unless set, and sigma_data is measured at the start of training."""
import logging
import sys

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from configs import default, waveform
from diffjax.data import build_dataset
from diffjax.jobs.defaults import (check_sigma_data, measure_sigma_data, resolve_decay_steps,
                                   sigma_data_mismatch)
from diffjax.model import build_model, data_spec
from diffjax.training.state import learning_rate_schedule


def test_decay_steps_defaults_to_the_steps_after_warmup_and_reaches_the_end_factor():
    config = default.get_config()
    config.training.num_steps, config.optim.warmup_steps = 700, 100
    config.lock()
    resolved = resolve_decay_steps(config)
    assert config.optim.decay_steps is None and resolved.optim.decay_steps == 600
    schedule = learning_rate_schedule(**{k: resolved.optim[k] for k in (
        "learning_rate", "warmup_steps", "decay", "decay_steps", "end_factor")})
    lr, end = resolved.optim.learning_rate, resolved.optim.end_factor
    assert float(schedule(100)) == pytest.approx(lr)
    assert float(schedule(700)) == pytest.approx(end * lr, rel=1e-5)  # cosine ends with the run
    assert float(schedule(400)) == pytest.approx(lr * (end + (1 - end) * 0.5), rel=1e-5)  # half-way: cos = 0


def test_an_explicit_decay_steps_wins_also_from_the_command_line(monkeypatch):
    argv = ["train.py", "--config=configs/default.py", "--config.optim.decay_steps=500"]
    monkeypatch.setattr(sys, "argv", argv)  # config_flags registers the --config.* overrides from sys.argv
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", "configs/default.py", flag_values=values, lock_config=True)
    values(argv)
    assert resolve_decay_steps(values.config).optim.decay_steps == 500
    config = waveform.get_config()
    assert resolve_decay_steps(config).optim.decay_steps == 6000


class _Batches:
    """Clips of amplitude +-a, the second half of the even examples padded (mask 0)."""

    def __init__(self, amplitude, length=32):
        self.amplitude, self.length = amplitude, length

    def batch(self, step, batch_size, seed=0):
        rng = np.random.default_rng(step)
        x = self.amplitude * np.sign(rng.standard_normal((batch_size, self.length, 1))).astype(np.float32)
        mask = np.ones_like(x)
        mask[::2, self.length // 2:] = 0.0
        return {"x": x * mask + 5.0 * (1 - mask), "mask": mask}  # padding is loud: it must be masked out


class _Model:
    def encode_batch(self, batch):
        return batch["x"], batch["mask"]


def test_measured_sigma_data_is_the_rms_of_what_the_model_sees():
    assert measure_sigma_data(_Model(), _Batches(0.156), batch_size=4, num_batches=3, seed=0) == pytest.approx(0.156)


def test_a_sigma_data_more_than_25_percent_off_is_named_with_the_value_to_set():
    message = sigma_data_mismatch(0.22, 0.156)  # the music
    assert "0.156" in message and "29 %" in message and "--config.precond.sigma_data=0.156" in message
    assert sigma_data_mismatch(0.22, 0.2) is None
    assert sigma_data_mismatch(0.2, 0.26) is not None and sigma_data_mismatch(0.2, 0.24) is None


def test_training_start_warns_on_the_waveform_smoke_config(caplog):
    config = waveform.get_config("smoke")
    config.precond.sigma_data = 1.0  # the data's waveform RMS is ~0.2
    dataset = build_dataset(config.data)
    model = build_model(config, data_spec(dataset))
    with caplog.at_level(logging.WARNING, logger="diffjax"):
        measured = check_sigma_data(config, model, dataset)
    assert 0.05 < measured < 0.5 and "precond.sigma_data=1" in caplog.text
    config.training.sigma_data_batches = 0
    assert check_sigma_data(config, model, dataset) is None

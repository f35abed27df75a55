"""Defaults a training config derives from its run and its data (issue 21, item 9).

- `optim.decay_steps = None` (the default) means "decay over the whole run after warmup":
  `training.num_steps - optim.warmup_steps` (`resolve_decay_steps`, applied once, at the start of
  `train_and_evaluate`, so the saved config.json holds the number). An explicit value wins.
- `precond.sigma_data` is the data's RMS in model space (EDM, Karras et al. 2022, sec. 5). At the
  start of training it is measured on a few batches of what the network sees (codec-encoded, or
  the latent cache; padding masked out) and a value more than `SIGMA_DATA_TOLERANCE` off the
  config's is logged as a warning with the value to set (`check_sigma_data`).

    config = resolve_decay_steps(config)                  # a copy; decay_steps filled in
    measured = measure_sigma_data(model, dataset, batch_size=16, num_batches=2, seed=0)
    message = sigma_data_mismatch(config.precond.sigma_data, measured)   # None when within 25 %
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np

log = logging.getLogger("diffjax")
SIGMA_DATA_TOLERANCE = 0.25  # relative difference that earns a warning


def decay_steps_for(num_steps: int, warmup_steps: int) -> int:
    """The default decay length: the steps left after warmup (at least 1)."""
    return max(int(num_steps) - max(int(warmup_steps), 0), 1)


def resolve_decay_steps(config):
    """`config`, or a copy with `optim.decay_steps` set to `decay_steps_for(training.num_steps,
    optim.warmup_steps)` when it is None (configs/default.py's placeholder)."""
    optim = config.get("optim")
    if optim is None or optim.get("decay_steps") is not None:
        return config
    resolved = config.copy_and_resolve_references()
    with resolved.unlocked():
        resolved.optim.decay_steps = decay_steps_for(config.training.num_steps, optim.get("warmup_steps", 0))
    return resolved


def measure_sigma_data(model, dataset, *, batch_size: int, num_batches: int, seed: int) -> float:
    """RMS of the training data as the network sees it: `model.encode_batch` of `num_batches`
    batches of `dataset` (a latent cache gives its 'z'; the padding mask, where the model uses one,
    excludes padded samples). The batches of steps 0.. are the ones training starts with."""
    total, count = 0.0, 0.0
    for step in range(num_batches):
        z, mask = model.encode_batch(dataset.batch(step, batch_size, seed=seed))
        z = np.asarray(z, np.float64)
        weight = np.ones_like(z) if mask is None else np.broadcast_to(
                np.asarray(mask, np.float64).reshape(np.shape(mask) + (1,) * (z.ndim - np.ndim(mask))), z.shape)
        total += float(np.sum(weight * z ** 2))
        count += float(np.sum(weight))
    return float(np.sqrt(total / max(count, 1.0)))


def sigma_data_mismatch(configured: float, measured: float, tolerance: float = SIGMA_DATA_TOLERANCE) -> Optional[str]:
    """A warning when `measured` differs from `configured` by more than `tolerance` (relative to the
    configured value), naming the value to set; None otherwise."""
    off = abs(measured / configured - 1.0)
    if off <= tolerance:
        return None
    return (f"precond.sigma_data={configured:g} but the training data's RMS in model space is {measured:.3g} "
            f"({100 * off:.0f} % off, more than {100 * tolerance:.0f} %): the preconditioning and the loss weighting "
            f"assume the configured value. Set --config.precond.sigma_data={measured:.3g} (or measure more data with "
            "experiments/estimate_sigma_data.py --config ...)")


def check_sigma_data(config, model, dataset) -> Optional[float]:
    """Measures sigma_data on `training.sigma_data_batches` batches (0: off) and logs a warning when
    it is off the config's `precond.sigma_data`; returns the measured value (None when off)."""
    batches = int(config.training.get("sigma_data_batches", 0) or 0)
    configured = (config.get("precond") or {}).get("sigma_data")
    if batches <= 0 or configured is None:
        return None
    measured = measure_sigma_data(model, dataset, batch_size=int(config.training.batch_size), num_batches=batches,
                                  seed=int(config.seed))
    message = sigma_data_mismatch(float(configured), measured)
    if message:
        log.warning(message)
    else:
        log.info("sigma_data: configured %g, measured %.3g on the training data", configured, measured)
    return measured

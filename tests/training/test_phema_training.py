"""Post-hoc EMA through the training job: power-function EMA snapshots written during training
survive a kill-and-resume, so the reconstruction is bitwise that of an uninterrupted run."""
import json
import os

import jax
import numpy as np
import pytest

from configs import toy_gmm
from diffjax.jobs import phema as phema_job
from diffjax.jobs import train_and_evaluate

pytestmark = pytest.mark.xdist_group("phema_training")


def _config(num_steps):
    config = toy_gmm.get_config("smoke")
    config.training.num_steps = num_steps
    config.training.log_every = config.training.checkpoint_every = 2
    config.training.max_minutes = 0
    config.evaluation.num_samples = 0
    config.training.phema.sigma_rels = (0.05, 0.10)
    config.training.phema.snapshot_every = 2
    return config


def test_snapshots_survive_resume_and_reconstruct_identically(tmp_path):
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    train_and_evaluate(_config(6), straight)
    train_and_evaluate(_config(4), resumed)  # "killed" after step 4 (its checkpoint and snapshots 2, 4)
    train_and_evaluate(_config(6), resumed)  # resumed: restores the power-function EMAs from the checkpoint
    for workdir in (straight, resumed):
        with open(os.path.join(workdir, "phema_snapshots", "index.json")) as f:
            assert sorted(int(s) for s in json.load(f)["snapshots"]) == [2, 4, 6]
    summaries = {w: phema_job.reconstruct_main(w, (0.07, 0.2)) for w in (straight, resumed)}
    assert [s["target_step"] for s in summaries[resumed]] == [6, 6]
    for sigma_rel in (0.07, 0.2):
        a, b = (phema_job.load_phema(w, sigma_rel) for w in (straight, resumed))
        jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
        assert a.step == 6
    # the two lengths are different averages of the same run (not one copied into both)
    first = lambda w, s: jax.tree.leaves(phema_job.load_phema(w, s).params)[0]  # noqa: E731
    assert not np.array_equal(first(straight, 0.07), first(straight, 0.2))
    with pytest.raises(FileExistsError, match="overwrite"):
        phema_job.reconstruct_main(straight, (0.07,))

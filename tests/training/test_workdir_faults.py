"""Damaged workdirs (issue 20, items 3, 6 and 7): a corrupted or non-finite latest checkpoint is
skipped by name, with a fall-back to the newest usable one; a hand-edited config.json names the
file and what is wrong. Fault injection on the toy smoke config (2 checkpoints: steps 2 and 4)."""
import json
import os
import pathlib

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import toy_gmm
from diffjax.jobs import load, train_and_evaluate


def _config(num_steps=4):
    config = toy_gmm.get_config("smoke")
    config.training.num_steps = num_steps
    config.training.checkpoint_every = 2
    config.training.log_every = 2
    config.evaluation.num_samples = 0
    return config


@pytest.fixture
def workdir(tmp_path):
    train_and_evaluate(_config(), str(tmp_path))
    return tmp_path


def _corrupt(workdir: pathlib.Path, step: int) -> None:
    """Overwrites every data file of checkpoint `step` with garbage (metadata files kept)."""
    files = [p for p in (workdir / "checkpoints" / str(step)).rglob("*") if p.is_file()]
    assert files
    for path in files:
        path.write_bytes(b"\x00garbage" * 7)


def test_a_corrupted_latest_checkpoint_falls_back_by_name(workdir, caplog):
    good = load(str(workdir), step=2).params
    _corrupt(workdir, 4)
    with caplog.at_level("WARNING", logger="diffjax"):
        loaded = load(str(workdir))
    assert loaded.step == 2
    assert "step 4" in caplog.text
    jax.tree.map(np.testing.assert_array_equal, good, loaded.params)
    with pytest.raises(ValueError, match=r"cannot read the checkpoint\(s\).*step 4.*--step with another of \[2, 4\]"):
        load(str(workdir), step=4)


def test_resume_skips_a_corrupted_latest_checkpoint(workdir, caplog):
    _corrupt(workdir, 4)
    with caplog.at_level("WARNING", logger="diffjax"):
        train_and_evaluate(_config(num_steps=6), str(workdir))
    assert "resuming from checkpoint 2; skipped newer ones: step 4: unreadable" in caplog.text
    assert load(str(workdir)).step == 6


def test_resume_skips_a_non_finite_latest_checkpoint(workdir, caplog):
    """A checkpoint written by an older version with NaN weights is never resumed from."""
    manager = ocp.CheckpointManager(str(workdir / "checkpoints"))
    items = manager.restore(4, args=ocp.args.StandardRestore())
    items["params"] = jax.tree.map(lambda a: np.full_like(a, np.nan), items["params"])
    manager.delete(4)
    manager.save(4, args=ocp.args.StandardSave(items))
    manager.wait_until_finished()
    with caplog.at_level("WARNING", logger="diffjax"):
        train_and_evaluate(_config(num_steps=6), str(workdir))
    assert "step 4: rejected (non-finite values)" in caplog.text
    assert all(np.isfinite(a).all() for a in jax.tree.leaves(load(str(workdir), ema=-1).params))


def test_a_hand_edited_config_names_the_file_and_the_problem(workdir):
    path = workdir / "config.json"
    values = json.loads(path.read_text())
    del values["model"]
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=r"config.json has no \['model'\] section"):
        load(str(workdir))
    path.write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        load(str(workdir))


def test_a_changed_size_in_the_config_names_the_mismatch(workdir):
    path = workdir / "config.json"
    values = json.loads(path.read_text())
    values["model"]["width"] = values["model"].get("width", 128) * 2
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match="config.json no longer matches them"):
        load(str(workdir))
    assert os.path.exists(workdir / "checkpoints" / "4")

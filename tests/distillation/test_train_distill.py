"""train.py runs distillation configs with all its infrastructure; bad teachers are clear errors."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import distill_cd, distill_ct, distill_progressive, toy_gmm
from diffjax import generation
from diffjax.training import checkpoint, train_and_evaluate


@pytest.fixture(scope="module")
def teacher_workdir(tmp_path_factory):
    """A 4-step smoke teacher on the 2-D mixture (EDM process, MLP)."""
    workdir = str(tmp_path_factory.mktemp("teacher"))
    train_and_evaluate(toy_gmm.get_config("smoke"), workdir)
    return workdir


def _items(workdir):
    config = checkpoint.load_config(workdir)
    manager = checkpoint.make_manager(workdir)
    return manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(checkpoint.abstract_items(config)))


def test_cd_from_a_teacher_workdir_trains_checkpoints_and_samples(teacher_workdir, tmp_path):
    config = distill_cd.get_config("toy,smoke")
    config.distill.teacher_workdir = teacher_workdir
    results = train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(results["energy_distance"])
    items = _items(str(tmp_path))
    _, teacher, _ = checkpoint.load_for_sampling(teacher_workdir)
    leaves = lambda tree: jax.tree.leaves(tree)
    # the student started from the teacher's EMA weights and moved; theta- trails it (mu = 0.95)
    assert all(a.shape == b.shape for a, b in zip(leaves(items["params"]), leaves(teacher)))
    assert any(bool(jnp.any(a != b)) for a, b in zip(leaves(items["params"]), leaves(teacher)))
    assert any(bool(jnp.any(a != b)) for a, b in zip(leaves(items["params"]), leaves(items["ema_params"][1])))
    saved, params, step = checkpoint.load_for_sampling(str(tmp_path))
    assert step == 4 and saved.precond.name == "consistency"
    out = generation.generate(saved, params, seeds=range(4), sampler="consistency", grid="nested_karras",
                              num_steps=2)
    assert out.nfe == 2 and out.audio.shape == (4, 2) and np.all(np.isfinite(out.audio))


def test_progressive_rounds_copy_the_student_into_the_teacher_slot(tmp_path):
    """2 rounds of 2 steps from the exact teacher: after each round the slot is the student."""
    config = distill_progressive.get_config("toy,smoke")
    config.distill.exact_teacher = True
    train_and_evaluate(config, str(tmp_path))
    items = _items(str(tmp_path))
    jax.tree.map(np.testing.assert_array_equal, items["params"], items["ema_params"][-1])
    config.training.num_steps = 6
    config.distill.rounds = 4
    with pytest.raises(ValueError, match="must be >= 1 and divide"):
        train_and_evaluate(config, str(tmp_path / "x"))
    config.training.num_steps = 8
    with pytest.raises(ValueError, match="teacher_steps=4 must be divisible by 2\\^rounds = 16"):
        train_and_evaluate(config, str(tmp_path / "y"))


def test_ict_without_a_teacher_runs(tmp_path):
    config = distill_ct.get_config("toy,smoke")
    results = train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(results["energy_distance"])


def test_bad_teachers_are_clear_errors(teacher_workdir, tmp_path):
    config = distill_cd.get_config("toy,smoke")
    config.distill.teacher_workdir = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_and_evaluate(config, str(tmp_path / "a"))

    no_checkpoint = tmp_path / "no_checkpoint"
    no_checkpoint.mkdir()
    with open(os.path.join(teacher_workdir, checkpoint.CONFIG_FILE)) as f:
        (no_checkpoint / checkpoint.CONFIG_FILE).write_text(f.read())
    config.distill.teacher_workdir = str(no_checkpoint)
    with pytest.raises(FileNotFoundError, match="has no teacher checkpoint.*no checkpoint in"):
        train_and_evaluate(config, str(tmp_path / "b"))

    config.distill.teacher_workdir = teacher_workdir
    config.sde.name = "vp"  # the teacher is EDM
    with pytest.raises(ValueError, match=r"differ in config.sde: name: teacher 'edm' vs student 'vp'"):
        train_and_evaluate(config, str(tmp_path / "c"))

    config = distill_cd.get_config("toy,smoke")
    config.distill.teacher_workdir = teacher_workdir
    config.precond.name = "edm"
    with pytest.raises(ValueError, match="precond.name='consistency'"):
        train_and_evaluate(config, str(tmp_path / "d"))

    config = distill_cd.get_config("toy,smoke")
    config.distill.teacher_workdir = teacher_workdir
    config.training.ema_halflife_examples = (1000.0,)
    with pytest.raises(ValueError, match="last EMA of training.ema_halflife_examples"):
        train_and_evaluate(config, str(tmp_path / "e"))

    config.distill.kind = "lcm"
    with pytest.raises(ValueError, match=r"distill.kind must be one of \['cd', 'ct', 'progressive'\]"):
        train_and_evaluate(config, str(tmp_path / "f"))

    config = distill_cd.get_config("smoke")  # audio student, toy teacher
    config.distill.teacher_workdir = teacher_workdir
    with pytest.raises(ValueError, match="differ in config"):
        train_and_evaluate(config, str(tmp_path / "g"))

    config = distill_cd.get_config("toy,smoke")
    config.distill.teacher_workdir = teacher_workdir
    config.model.width = 16
    with pytest.raises(ValueError, match="init_from_teacher"):
        train_and_evaluate(config, str(tmp_path / "h"))

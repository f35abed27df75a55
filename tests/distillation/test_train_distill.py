"""The train job runs distillation configs with all its infrastructure; bad teachers are clear errors.

The objective is also checked on its own, through the generic train step (`training.step`): the
target network and the progressive round's teacher live in `TrainState.method_state`, not in EMAs.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import distill_cd, distill_ct, distill_progressive, toy_gmm
from diffjax import distillation, toy  # noqa: F401  (toy: registers the toy datasets)
from diffjax.data import build_dataset
from diffjax.jobs.generation import generate
from diffjax.jobs.train import train_and_evaluate
from diffjax.jobs.workdir import CONFIG_FILE, MODEL_FILE, checkpoint_dir, load
from diffjax.model import build_model, data_spec
from diffjax.training import checkpoint
from diffjax.training.state import TrainState
from diffjax.training.step import make_train_step


@pytest.fixture(scope="module")
def teacher_workdir(tmp_path_factory):
    """A 4-step smoke teacher on the 2-D mixture (EDM process, MLP)."""
    workdir = str(tmp_path_factory.mktemp("teacher"))
    train_and_evaluate(toy_gmm.get_config("smoke"), workdir)
    return workdir


def _method_state(workdir, name):
    """`(raw params, method_state[name])` of a workdir's latest checkpoint."""
    loaded = load(workdir, ema=-1)
    manager = checkpoint.make_manager(checkpoint_dir(workdir))
    abstract = checkpoint.on_first_local_device(loaded.model.abstract_params())
    items = checkpoint.restore_partial(manager, loaded.step, {"method_state": {name: abstract}})
    return loaded.params, items["method_state"][name]


def _train_directly(config, teacher=None, steps=None):
    """The train job's flow without the job: objective, TrainState with its method state, and the
    generic step. Returns `(objective, state)`."""
    dataset = build_dataset(config.data)
    model = build_model(config, data_spec(dataset))
    objective = distillation.make_objective(config, model=model, teacher=teacher, dataset=dataset)
    params = objective.init_params(model.init(jax.random.PRNGKey(0)))
    state = TrainState.create(params, optax.adam(1e-3), len(config.training.ema_halflife_examples),
                              objective.init_method_state(params))
    step = jax.jit(make_train_step(objective.loss_fn, [0.9] * len(config.training.ema_halflife_examples),
                                   update_method_state=objective.update_method_state))
    for k in range(config.training.num_steps if steps is None else steps):
        state, metrics = step(state, dataset.batch(k, config.training.batch_size, seed=0), jax.random.PRNGKey(k))
        assert bool(metrics["finite"]) and metrics["sigma"].shape == (config.training.batch_size,)
    return objective, state


def test_the_objective_keeps_its_state_beside_the_weights():
    """CD's theta- trails theta with mu = target_decay; iCT keeps nothing; progressive copies the
    student into its round teacher at the end of each round and holds it otherwise."""
    config = distill_cd.get_config("toy,smoke")
    config.distill.exact_teacher = True
    objective, state = _train_directly(config)
    assert set(state.method_state) == {"target"} and len(state.ema_params) == 1
    leaves = jax.tree.leaves
    assert any(bool(jnp.any(a != b)) for a, b in zip(leaves(state.params), leaves(state.method_state["target"])))
    target = objective.init_method_state(state.params)["target"]
    moved = objective.update_method_state({"target": target}, jax.tree.map(jnp.zeros_like, target), 0, None, None)["target"]
    jax.tree.map(lambda m, t: np.testing.assert_allclose(m, 0.95 * t, rtol=1e-6), moved, target)

    _, state = _train_directly(distill_ct.get_config("toy,smoke"))
    assert state.method_state == {}

    config = distill_progressive.get_config("toy,smoke")  # 4 steps in 2 rounds
    config.distill.exact_teacher = True
    _, state = _train_directly(config, steps=1)
    assert any(bool(jnp.any(a != b)) for a, b in zip(leaves(state.params), leaves(state.method_state["round_teacher"])))
    _, state = _train_directly(config, steps=2)  # the end of round 0
    jax.tree.map(np.testing.assert_array_equal, state.params, state.method_state["round_teacher"])


def test_cd_from_a_teacher_workdir_trains_checkpoints_and_samples(teacher_workdir, tmp_path):
    config = distill_cd.get_config("toy,smoke")
    config.distill.teacher_workdir = teacher_workdir
    results = train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(results["energy_distance"])
    params, target = _method_state(str(tmp_path), "target")
    teacher = load(teacher_workdir).params
    leaves = lambda tree: jax.tree.leaves(tree)
    # the student started from the teacher's EMA weights and moved; theta- trails it (mu = 0.95)
    assert all(a.shape == b.shape for a, b in zip(leaves(params), leaves(teacher)))
    assert any(bool(jnp.any(a != b)) for a, b in zip(leaves(params), leaves(teacher)))
    assert any(bool(jnp.any(a != b)) for a, b in zip(leaves(params), leaves(target)))
    saved = load(str(tmp_path))
    assert saved.step == 4 and saved.config.precond.name == "consistency"
    out = generate(saved.model, saved.params, sampling_config=saved.config.sampling, seeds=range(4),
                   sampler="consistency", grid="nested_karras", num_steps=2)
    assert out.nfe == 2 and out.audio.shape == (4, 2) and np.all(np.isfinite(out.audio))


def test_progressive_rounds_copy_the_student_into_the_teacher_slot(tmp_path):
    """2 rounds of 2 steps from the exact teacher: after each round the round teacher is the student."""
    config = distill_progressive.get_config("toy,smoke")
    config.distill.exact_teacher = True
    train_and_evaluate(config, str(tmp_path))
    params, round_teacher = _method_state(str(tmp_path), "round_teacher")
    jax.tree.map(np.testing.assert_array_equal, params, round_teacher)
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
    for name in (CONFIG_FILE, MODEL_FILE):
        with open(os.path.join(teacher_workdir, name)) as f:
            (no_checkpoint / name).write_text(f.read())
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

    # The target network is no longer an EMA: a config without distill.target_decay (as configs
    # written when theta- was the last EMA) is an error that says so.
    config = distill_cd.get_config("toy,smoke")
    config.distill.teacher_workdir = teacher_workdir
    del config.distill["target_decay"]
    with pytest.raises(ValueError, match="last EMA of training.ema_halflife_examples"):
        train_and_evaluate(config, str(tmp_path / "e"))
    config.distill.target_decay = 1.5
    with pytest.raises(ValueError, match=r"distill.target_decay must be in \[0, 1\]"):
        train_and_evaluate(config, str(tmp_path / "e2"))

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

    config = distill_cd.get_config("toy,smoke")
    config.distill.teacher_workdir = ""
    with pytest.raises(ValueError, match="distill.teacher_workdir is empty"):
        train_and_evaluate(config, str(tmp_path / "i"))

"""Extending diffjax takes one definition in one place (docs/extending.md): a sampler, a
degradation operator and a conditioner registered here run through their jobs end to end."""
import dataclasses
import os
from typing import ClassVar

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import soundfile

from configs import conditional
from configs import restore as restore_config
from diffjax.conditioners import CONDITIONERS, AbstractConditioner
from diffjax.jobs import SampleRequest, generate, load, run_sample_request, train_and_evaluate
from diffjax.jobs import restore as restore_job
from diffjax.restoration import TASKS, register_task
from diffjax.restoration.operators import OPERATORS, AbstractLinearOperator, get_operator, register_operator
from diffjax.sampling import SAMPLERS, nfe
from diffjax.sampling.loop import run
from diffjax.sampling.steps import euler_step


@pytest.fixture
def midpoint_sampler():
    """A new sampler: the explicit midpoint rule on the PF-ODE, two calls per level."""

    @SAMPLERS.register("test_midpoint", nfe=lambda n: 2 * n - 1, stochastic=False, order=2)
    def sample_test_midpoint(denoiser, x_init, sigmas, *, key=None, hook=None, callback=None):
        del key

        def step(x, state, ctx):
            denoised = ctx.denoise(x, ctx.sigma)
            middle = jnp.sqrt(ctx.sigma * jnp.maximum(ctx.sigma_next, 1e-12))
            x_mid = euler_step(x, denoised, ctx.sigma, middle)
            denoised_mid = ctx.denoise(x_mid, middle)
            return euler_step(x, denoised_mid, ctx.sigma, ctx.sigma_next), denoised, state

        def last(x, state, ctx):  # the step to 0 is the denoised estimate (one call)
            denoised = ctx.denoise(x, ctx.sigma)
            return denoised, denoised, state

        return run(step, denoiser, x_init, sigmas, sampler="test_midpoint", final=last, hook=hook,
                   callback=callback)

    yield "test_midpoint"
    SAMPLERS.unregister("test_midpoint")


def test_a_new_sampler_runs_through_the_sample_job(midpoint_sampler, smoke_audio_workdir, tmp_path):
    summary = run_sample_request(SampleRequest(workdir=str(smoke_audio_workdir), sampler=midpoint_sampler, nfe=5,
                                               num=2, out=str(tmp_path / "out")))
    assert summary["nfe"] == 5 == nfe(midpoint_sampler, 3) and summary["num_steps"] == 3
    assert sorted(f for f in os.listdir(tmp_path / "out") if f.endswith(".wav")) == ["seed000000.wav",
                                                                                     "seed000001.wav"]
    with pytest.raises(ValueError, match="nearest valid budgets are 3 and 5"):
        run_sample_request(SampleRequest(workdir=str(smoke_audio_workdir), sampler=midpoint_sampler, nfe=4,
                                         num=1, out=str(tmp_path / "odd")))


@dataclasses.dataclass(frozen=True)
class PitchClass(AbstractConditioner):
    """A new conditioner: the data's MIDI 'pitch' as one of 12 pitch classes (octave-invariant)."""

    dropout: float = 0.2

    def null(self, batch_size):
        return jnp.full((batch_size,), -1, jnp.int32)  # mapped to the null class 12 below

    def network_inputs(self, value):
        value = jnp.asarray(value, jnp.int32)
        return {"label": jnp.where(value < 0, 12, value % 12)}

    def network_kwargs(self):
        return {"num_classes": 12}

    def host_value(self, batch):
        return None if "pitch" not in batch else np.asarray(batch["pitch"], np.int32)

    def train_value(self, value, x0, key):
        return value

    def embedder(self):
        return None  # feeds the network's own class embedding


@pytest.fixture
def pitch_conditioner():
    CONDITIONERS.register("pitch")(PitchClass)
    yield "pitch"
    CONDITIONERS.unregister("pitch")


def test_a_new_conditioner_trains_and_guides_through_the_train_job(pitch_conditioner, tmp_path):
    config = conditional.get_config("smoke")
    config.conditioning = ml_collections.ConfigDict({pitch_conditioner: {"dropout": 0.25}})
    config.training.num_steps = 2
    config.evaluation.num_samples = 0
    config.data.cache_dir = str(tmp_path / "cache")
    train_and_evaluate(config, str(tmp_path / "run"))
    loaded = load(str(tmp_path / "run"))
    assert set(loaded.model.conditioners) == {"pitch"}
    tables = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(loaded.params)[0]
              if "embed" in jax.tree_util.keystr(path) and leaf.ndim == 2 and leaf.shape[0] == 13]
    assert tables, "the network's class embedding has 12 pitch classes + the null class"
    # Two training steps barely move the zero-initialised conditioning path: perturb the weights so
    # that every condition shows in the output, then sample through the job's generate + CFG.
    leaves, tree = jax.tree.flatten(loaded.params)
    keys = jax.random.split(jax.random.PRNGKey(0), len(leaves))
    params = jax.tree.unflatten(tree, [a + 0.1 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])

    def sample(pitches, cfg_scale):
        cond = {"pitch": np.asarray(pitches, np.int32)}
        return generate(loaded.model, params, sampling_config=config.sampling, seeds=[3, 3],
                        cond=cond, cfg_scale=cfg_scale).latent  # model space: Griffin-Lim phases are random

    for cfg_scale in (None, 2.0):
        same_class = sample([48, 60], cfg_scale)  # C3 and C4: one pitch class
        other_class = sample([48, 50], cfg_scale)  # C3 and D3
        np.testing.assert_allclose(same_class[0], same_class[1], atol=1e-6)
        assert np.max(np.abs(other_class[0] - other_class[1])) > 1e-3


@pytest.fixture
def polarity_operator():
    """A new degradation (polarity inversion, `A = -I`) and the restoration task that uses it."""

    @register_operator("test_polarity")
    @flax.struct.dataclass
    class Polarity(AbstractLinearOperator):
        has_svd: ClassVar[bool] = False
        noise_sigma: float = flax.struct.field(pytree_node=False, default=0.0)

        def apply(self, x):
            return -x

        def adjoint(self, y):
            return -y

        def pinv(self, y):
            return -y

        def support(self, y):
            return y

    @register_task("test_flip", operator="test_polarity")
    def test_flip(*, sample_rate, noise_sigma=0.0, reference=None, degraded=None):
        return get_operator("test_polarity", noise_sigma=noise_sigma)

    yield "test_flip"
    TASKS.unregister("test_flip")
    OPERATORS.unregister("test_polarity")


def test_a_new_operator_runs_through_the_restore_job(polarity_operator, smoke_audio_workdir, tmp_path):
    """Projection onto `A x = y` with an invertible `A` returns the clean input exactly."""
    clean = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / 16000)[:, None]
    soundfile.write(tmp_path / "in.wav", clean, 16000, subtype="FLOAT")
    config = restore_config.get_config()
    config.task.name = polarity_operator
    config.task[polarity_operator] = ml_collections.ConfigDict()
    config.task.simulate = True
    config.method.name, config.sampler, config.nfe = "projection", "euler", 3
    info = restore_job.run(config, workdir=str(smoke_audio_workdir), input=str(tmp_path / "in.wav"),
                           out=str(tmp_path / "out.wav"))
    restored, rate = soundfile.read(tmp_path / "out.wav", always_2d=True)
    assert info["nfe"] == 3 and rate == 16000
    np.testing.assert_allclose(restored, clean, atol=1e-4)

"""Extending diffjax takes one definition in one place (docs/extending.md): a sampler, a
degradation operator and a conditioner registered here run through their jobs end to end."""
import dataclasses
import os

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import conditional
from diffjax.conditioners import CONDITIONERS, AbstractConditioner
from diffjax.jobs import SampleRequest, generate, load, run_sample_request, train_and_evaluate
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


@pytest.fixture
def pitch_conditioner():
    CONDITIONERS.register("pitch")(PitchClass)
    yield "pitch"
    CONDITIONERS.unregister("pitch")


def test_a_new_conditioner_trains_and_guides_through_the_train_job(pitch_conditioner, tmp_path):
    config = conditional.get_config("smoke")
    config.conditioning = ml_collections.ConfigDict({pitch_conditioner: {"dropout": 0.5}})
    config.training.num_steps = 2
    config.evaluation.num_samples = 0
    config.data.cache_dir = str(tmp_path / "cache")
    train_and_evaluate(config, str(tmp_path / "run"))
    loaded = load(str(tmp_path / "run"))
    assert set(loaded.model.conditioners) == {"pitch"}

    def sample(pitches):
        cond = {"pitch": np.asarray(pitches, np.int32)}
        return generate(loaded.model, loaded.params, sampling_config=config.sampling, seeds=[3, 3],
                        cond=cond, cfg_scale=2.0).latent  # model space: Griffin-Lim phases are random

    same_class, other_class = sample([60, 72]), sample([60, 62])
    np.testing.assert_allclose(same_class[0], same_class[1], atol=1e-5)  # C4 and C5: one pitch class
    assert np.max(np.abs(other_class[0] - other_class[1])) > 1e-4  # C and D differ

"""The sample job's autoguidance (--guide_workdir, --guide_step, --guide_ema, --guidance) on the
shared 4-step smoke waveform model (`smoke_audio_workdir`, checkpoints at steps 2 and 4)."""
import json
import os
import shutil

import numpy as np
import pytest

from diffjax.audio.io import read_audio
from diffjax.jobs import SampleRequest, run_sample_request


def _sample(workdir, out, **guide):
    summary = run_sample_request(SampleRequest(workdir=str(workdir), sampler="euler", nfe=3, num=2, seed=5,
                                               out=str(out), **guide))
    audio = np.stack([read_audio(str(out / f"seed00000{s}.wav"), sample_rate=16000) for s in (5, 6)])
    return summary, audio


def test_guidance_one_is_the_main_model_and_a_weaker_guide_changes_the_samples(smoke_audio_workdir, tmp_path):
    _, plain = _sample(smoke_audio_workdir, tmp_path / "plain")
    same, unguided = _sample(smoke_audio_workdir, tmp_path / "same", guide_workdir=str(smoke_audio_workdir),
                             guidance=1.0)
    np.testing.assert_allclose(unguided, plain, atol=1e-4)  # 16-bit wavs: equal to a quantisation step
    assert same["guide"] == {"workdir": str(smoke_audio_workdir), "checkpoint_step": 4, "ema": 0, "weight": 1.0}
    assert same["nfe"] == 3 and same["cfg_scale"] is None

    # In 4 warmup steps (lr <= 4e-5) the weights move by ~1e-5, so the step-2 raw weights guide with
    # D_good - D_bad ~ 4e-5 at w = 2 (one 16-bit step); w = 30 scales it to ~1e-3, 35 steps, in the wavs.
    summary, guided = _sample(smoke_audio_workdir, tmp_path / "guided", guide_workdir=str(smoke_audio_workdir),
                              guide_step=2, guide_ema=-1, guidance=30.0)
    assert np.max(np.abs(guided - plain)) > 3e-4 and np.all(np.isfinite(guided))
    with open(tmp_path / "guided" / "samples.json") as f:
        assert json.load(f)["guide"] == {"workdir": str(smoke_audio_workdir), "checkpoint_step": 2, "ema": -1,
                                         "weight": 30.0}
    assert summary["checkpoint_step"] == 4


def test_guide_flags_are_checked_before_sampling(smoke_audio_workdir, tmp_path):
    workdir = str(smoke_audio_workdir)
    with pytest.raises(ValueError, match="--guidance without --guide_workdir"):
        run_sample_request(SampleRequest(workdir=workdir, guidance=2.0, num=1))
    with pytest.raises(ValueError, match="--guide_workdir without --guidance"):
        run_sample_request(SampleRequest(workdir=workdir, guide_workdir=workdir, num=1))
    with pytest.raises(ValueError, match="choose one"):
        run_sample_request(SampleRequest(workdir=workdir, guide_workdir=workdir, guidance=2.0, cfg_scale=3.0, num=1))
    other = tmp_path / "other_rate"  # the same weights, declared as data at another sample rate
    shutil.copytree(smoke_audio_workdir, other)
    with open(other / "model.json") as f:
        values = json.load(f)
    values["data"]["sample_rate"] = 22050
    with open(other / "model.json", "w") as f:
        json.dump(values, f)
    with pytest.raises(ValueError, match=f"guide workdir '{other}' cannot guide '{workdir}': data spec"):
        run_sample_request(SampleRequest(workdir=workdir, guide_workdir=str(other), guidance=2.0, num=1,
                                         out=str(tmp_path / "never")))
    assert not os.path.exists(tmp_path / "never")

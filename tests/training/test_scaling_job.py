"""Issue 19 end to end: `configs/edm2.py` (magnitude-preserving DiT, learned weighting, post-hoc EMA
snapshots) trains sharded over fsdp=4 x tensor=2 on 8 fake devices, resumes data-parallel on 2,
and its reconstructed post-hoc EMA samples and is evaluated, with autoguidance by an earlier checkpoint."""
import json
import os

import jax
import numpy as np
import pytest

from configs import edm2
from configs import evaluate as evaluate_config
from diffjax.jobs import load, phema as phema_job, train_and_evaluate
from diffjax.jobs.evaluate import run_evaluation
from diffjax.jobs.sample import SampleRequest, run_sample_request
from diffjax.models.magnitude import MP_KERNEL

pytestmark = pytest.mark.xdist_group("scaling_job")


def _config(num_steps, **parallel):
    config = edm2.get_config("smoke")
    config.training.num_steps = num_steps
    config.training.batch_size = 8
    config.training.log_every = config.training.checkpoint_every = 2
    config.training.max_minutes = 0
    config.evaluation.num_samples = 0
    for key, value in parallel.items():
        if key == "num_devices":
            config.training.num_devices = value
        else:
            config.parallel[key] = value
    return config


def _mp_norms(params):
    """RMS of each MP kernel's output rows (forced weight normalisation keeps them at 1)."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return [np.sqrt(np.mean(np.asarray(w) ** 2, axis=tuple(range(w.ndim - 1))))
            for path, w in leaves if getattr(path[-1], "key", None) == MP_KERNEL]


def test_edm2_trains_sharded_resumes_on_another_mesh_and_samples(tmp_path, caplog):
    workdir = str(tmp_path / "edm2")
    caplog.set_level("INFO", logger="diffjax")
    train_and_evaluate(_config(4, fsdp=4, tensor=2), workdir)
    assert "'fsdp': 4, 'tensor': 2" in caplog.text and "per device: params" in caplog.text
    sharded = load(workdir, ema=-1)
    assert sharded.step == 4 and "log_variance" in sharded.params
    norms = _mp_norms(sharded.params)
    assert norms and all(np.allclose(n, 1.0, atol=1e-3) for n in norms)  # fixed across 4 Adam steps

    train_and_evaluate(_config(6, num_devices=2), workdir)  # resumed data-parallel on 2 devices
    resumed = load(workdir, ema=-1)
    assert resumed.step == 6
    assert not np.array_equal(jax.tree.leaves(resumed.params)[0], jax.tree.leaves(sharded.params)[0])
    with open(os.path.join(workdir, "phema_snapshots", "index.json")) as f:
        assert sorted(int(s) for s in json.load(f)["snapshots"]) == [2, 4, 6]

    phema_job.reconstruct_main(workdir, (0.08,))
    summary = run_sample_request(SampleRequest(workdir=workdir, num=2, nfe=3, sampler="euler", sigma_rel=0.08,
                                               guide_workdir=workdir, guide_step=2, guidance=2.0,
                                               out=str(tmp_path / "samples")))
    assert summary["sigma_rel"] == 0.08 and summary["guide"]["checkpoint_step"] == 2
    wavs = [f for f in os.listdir(tmp_path / "samples") if f.endswith(".wav")]
    assert len(wavs) == 2

    # the evaluation sweeps post-hoc EMA lengths, with autoguidance
    config = evaluate_config.get_config()
    config.num, config.chunk_size, config.embedders, config.reference.num = 4, 4, "mel_stats", 4
    config.sampling.sampler, config.sampling.nfe = "euler", 3
    config.sigma_rels = (0.08,)
    config.guide.workdir, config.guide.step, config.guide.weight = workdir, 2, 2.0
    done = run_evaluation(workdir, config, out_dir=str(tmp_path / "eval"))
    assert list(done) == [0.08] and done[0.08]["sigma_rel"] == 0.08 and done[0.08]["guide"]["step"] == 2
    assert np.isfinite(done[0.08]["fd_mel"])
    with pytest.raises(FileNotFoundError, match="reconstruct_ema.py"):
        config.sigma_rels = (0.2,)
        run_evaluation(workdir, config, out_dir=str(tmp_path / "eval"))

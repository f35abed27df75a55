"""evaluate_checkpoint / experiments/evaluate.py on a workdir, with a fake sampler; polling."""
import dataclasses
import importlib.util
import json
import os

import numpy as np
import pytest

from diffjax.evaluation import workdir as wd
from diffjax.training import checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass
class FakeGenerated:
    audio: np.ndarray
    nfe: int
    num_steps: int


@pytest.fixture
def fake_workdir(tmp_path, smoke_config, smoke_dataset, monkeypatch):
    """A diffusion workdir whose 'model' returns held-out clips (seed i -> clip i mod 64)."""
    from configs import default

    config = default.get_config()
    config.data = smoke_config.data
    config.model.num_classes = 9
    workdir = str(tmp_path / "run")
    checkpoint.save_config(workdir, config)
    for step in (100, 200):
        os.makedirs(os.path.join(checkpoint.checkpoint_dir(workdir), str(step)))
    held_out = smoke_dataset.eval.batch(0, len(smoke_dataset.eval), seed=0)
    calls = []

    def load_for_sampling(path, *, step=None, ema_index=0):
        return checkpoint.load_config(path), {}, 200 if step is None else step

    def generate(config, params, *, seeds, labels=None, nfe=None, **kwargs):
        calls.append({"seeds": list(seeds), "labels": labels, "nfe": nfe, **kwargs})
        return FakeGenerated(held_out["x"][np.asarray(seeds) % 64], nfe=nfe, num_steps=nfe)

    monkeypatch.setattr(checkpoint, "load_for_sampling", load_for_sampling)
    monkeypatch.setattr("diffjax.generation.generate", generate)
    return workdir, calls


def test_evaluate_checkpoint_writes_and_reuses_results(fake_workdir, trained_classifier):
    workdir, calls = fake_workdir
    kwargs = dict(sampler="heun", nfe=7, num=40, chunk_size=20, classifier_workdir=trained_classifier[0],
                  reference_num=128, progress=False)
    results = wd.evaluate_checkpoint(workdir, **kwargs)
    assert [len(c["seeds"]) for c in calls] == [20, 20]
    assert calls[0]["labels"] is not None and list(calls[0]["labels"][:3]) == [0, 1, 2]
    assert calls[0]["sampler"] == "heun" and calls[0]["nfe"] == 7
    for key in ("fd_classifier", "fd_mel", "fd_mfcc", "kid_mel", "is", "mis", "accuracy",
                "ndb_k_classifier"):
        assert np.isfinite(results[key]), key
    assert results["step"] == 200 and results["nfe"] == 7 and results["reference_num"] == 128
    assert results["cfg_scale"] == 1.0  # the config's default, passed to the sampler
    assert calls[0]["cfg_scale"] == 1.0
    run_dir = os.path.join(workdir, "eval", "step200_heun_nfe7_n40_train")
    with open(os.path.join(run_dir, "results.json")) as f:
        assert json.load(f)["fd_mel"] == pytest.approx(results["fd_mel"])
    assert "FD clf" in open(os.path.join(run_dir, "results.md")).read()
    calls.clear()
    again = wd.evaluate_checkpoint(workdir, **kwargs)
    assert json.dumps(again, sort_keys=True) == json.dumps(results, sort_keys=True)
    assert calls == []  # complete evaluations are not recomputed
    with pytest.raises(ValueError, match="embedders"):
        wd.evaluate_checkpoint(workdir, **kwargs, embedders=["mel_stats"])


def test_cli_main(fake_workdir, trained_classifier, capsys):
    workdir, _ = fake_workdir
    spec = importlib.util.spec_from_file_location("evaluate_main",
                                                  os.path.join(REPO, "experiments", "evaluate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.FLAGS(["evaluate.py", f"--workdir={workdir}", "--nfe=3", "--num=20", "--chunk_size=20",
                  "--embedders=classifier,mel_stats", f"--classifier={trained_classifier[0]}",
                  "--reference_split=eval", "--ndb_bins=5", "--kid_subset_size=20"])
    module.main([])
    out = capsys.readouterr().out
    assert "| step 200 |" in out and '"fd_classifier"' in out
    lines = open(os.path.join(workdir, "eval", "results.jsonl")).read().splitlines()
    sampler = checkpoint.load_config(workdir).sampling.sampler  # the config's default
    assert json.loads(lines[-1])["tag"] == f"step200_{sampler}_nfe3_n20_eval"


def test_missing_classifier_is_a_clear_error(fake_workdir):
    workdir, _ = fake_workdir
    with pytest.raises(FileNotFoundError, match="train_classifier.py"):
        wd.evaluate_checkpoint(workdir, nfe=3, num=4, classifier_workdir=None)


def test_watch_evaluates_new_checkpoints_until_timeout(tmp_path):
    workdir = str(tmp_path)
    ckpt = checkpoint.checkpoint_dir(workdir)
    os.makedirs(os.path.join(ckpt, "10"))
    os.makedirs(os.path.join(ckpt, "20.orbax-checkpoint-tmp-1"))  # a save in progress
    now, evaluated = [0.0], []

    def sleep(seconds):  # training writes step 30 during the first wait
        now[0] += seconds
        os.makedirs(os.path.join(ckpt, "30"), exist_ok=True)

    def evaluate(step):
        evaluated.append(step)
        return {"step": step}

    done = wd.watch_checkpoints(workdir, evaluate, poll_seconds=5, timeout_seconds=12,
                                sleep=sleep, clock=lambda: now[0])
    assert evaluated == [10, 30] and sorted(done) == [10, 30]
    assert now[0] >= 12  # waited out the timeout after the last checkpoint
    evaluated.clear()
    wd.watch_checkpoints(workdir, evaluate, last_step=30, sleep=sleep, clock=lambda: now[0])
    assert evaluated == [10, 30]  # stops at the last training step without waiting


def test_build_embedders_callable():
    embs = wd.build_embedders(["mel_stats", "callable"], sample_rate=8000,
                              embedder_fn="tests.evaluation.test_features:user_embedding",
                              embedder_name="rms")
    assert sorted(embs) == ["mel", "rms"]
    with pytest.raises(ValueError, match="embedder_name"):
        wd.build_embedders(["callable"], sample_rate=8000)

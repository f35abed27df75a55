"""diffjax.jobs.evaluate / experiments/evaluate.py on a workdir, with a fake sampler; polling."""
import dataclasses
import json
import os
import types

import numpy as np
import pytest

from configs import default
from configs import evaluate as evaluate_config
from diffjax.conditioners import LabelConditioner
from diffjax.jobs import evaluate as wd
from diffjax.jobs import workdir as workdir_lib
from diffjax.model import DataSpec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass
class FakeGenerated:
    audio: np.ndarray
    nfe: int
    num_steps: int


@pytest.fixture
def fake_workdir(tmp_path, smoke_config, smoke_dataset, monkeypatch):
    """A diffusion workdir whose 'model' returns held-out clips (seed i -> clip i mod 64)."""
    config = default.get_config()
    config.data = smoke_config.data
    workdir = str(tmp_path / "run")
    workdir_lib.save_config(workdir, config)
    for step in (100, 200):
        os.makedirs(os.path.join(workdir_lib.checkpoint_dir(workdir), str(step)))
    held_out = smoke_dataset.eval.batch(0, len(smoke_dataset.eval), seed=0)
    calls = []
    # a class-conditional model (9 classes); the fake sampler never calls its network
    model = types.SimpleNamespace(conditioners={"label": LabelConditioner(num_classes=9)},
                                  spec=DataSpec(shape=(4000, 1), sample_rate=8000, num_classes=9))

    def load(path, *, step=None, ema=0):
        return workdir_lib.Loaded(model=model, params={}, step=200 if step is None else step,
                                  config=workdir_lib.load_config(path))

    def generate(model, params, *, sampling_config, seeds, cond=None, nfe=None, **kwargs):
        labels = None if cond is None else cond["label"]
        calls.append({"seeds": list(seeds), "labels": labels, "nfe": nfe, **kwargs})
        return FakeGenerated(held_out["x"][np.asarray(seeds) % 64], nfe=nfe, num_steps=nfe)

    monkeypatch.setattr(workdir_lib, "load", load)
    monkeypatch.setattr(wd, "generate", generate)
    return workdir, calls


def settings(**overrides):
    """configs/evaluate.py with `overrides` ({'sampling.nfe': 7, 'num': 40, ...})."""
    config = evaluate_config.get_config()
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        (config[section] if section else config)[name] = value
    return config


def test_evaluate_checkpoint_writes_and_reuses_results(fake_workdir, trained_classifier):
    workdir, calls = fake_workdir
    config = settings(**{"sampling.sampler": "heun", "sampling.nfe": 7, "num": 40, "chunk_size": 20,
                         "reference.num": 128, "metrics.bootstrap": 10})
    kwargs = dict(classifier_workdir=trained_classifier[0], progress=False)
    results = wd.evaluate_checkpoint(workdir, config, **kwargs)
    assert [len(c["seeds"]) for c in calls] == [20, 20]
    assert calls[0]["labels"] is not None and list(calls[0]["labels"][:3]) == [0, 1, 2]
    assert calls[0]["sampler"] == "heun" and calls[0]["nfe"] == 7
    for key in ("fd_classifier", "fd_mel", "fd_mfcc", "kid_mel", "is", "mis", "accuracy",
                "ndb_k_classifier"):
        assert np.isfinite(results[key]), key
    assert results["fd_mel_low"] < results["fd_mel"] < results["fd_mel_high"] and np.isfinite(results["kad_mel"])
    assert results["step"] == 200 and results["nfe"] == 7 and results["reference_num"] == 128
    assert results["cfg_scale"] == 1.0  # the config's default, passed to the sampler
    assert calls[0]["cfg_scale"] == 1.0
    run_dir = os.path.join(workdir, "eval", "step200_heun_nfe7_n40_train")
    with open(os.path.join(run_dir, "results.json")) as f:
        assert json.load(f)["fd_mel"] == pytest.approx(results["fd_mel"])
    assert "FD clf" in open(os.path.join(run_dir, "results.md")).read()
    page = open(os.path.join(run_dir, "index.html")).read()  # the first 4 generated examples + metrics
    assert page.count("<audio") == 4 and os.path.isfile(os.path.join(run_dir, "clips", "seed000000.wav"))
    assert "fd_classifier" in page
    calls.clear()
    again = wd.evaluate_checkpoint(workdir, config, **kwargs)
    assert json.dumps(again, sort_keys=True) == json.dumps(results, sort_keys=True)
    assert calls == []  # complete evaluations are not recomputed
    with pytest.raises(ValueError, match="embedders"):
        config.embedders = "mel_stats"
        wd.evaluate_checkpoint(workdir, config, **kwargs)


def test_cli_main(fake_workdir, trained_classifier, capsys, evaluate_main):
    workdir, _ = fake_workdir
    argv = ["evaluate.py", f"--config={os.path.join(REPO, 'configs', 'evaluate.py')}:smoke",
            f"--workdir={workdir}", "--config.embedders=classifier,mel_stats",
            f"--classifier={trained_classifier[0]}", "--config.reference.split=eval"]
    evaluate_main(argv)
    out = capsys.readouterr().out
    assert "| step 200 |" in out and '"fd_classifier"' in out
    lines = open(os.path.join(workdir, "eval", "results.jsonl")).read().splitlines()
    sampler = workdir_lib.load_config(workdir).sampling.sampler  # the config's default
    assert json.loads(lines[-1])["tag"] == f"step200_{sampler}_nfe3_n20_eval"


def test_missing_classifier_is_a_clear_error(fake_workdir):
    workdir, _ = fake_workdir
    with pytest.raises(FileNotFoundError, match="train_classifier.py"):
        wd.evaluate_checkpoint(workdir, settings(**{"sampling.nfe": 3, "num": 4}), classifier_workdir=None)


def test_watch_evaluates_new_checkpoints_until_timeout(tmp_path):
    workdir = str(tmp_path)
    ckpt = workdir_lib.checkpoint_dir(workdir)
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
    options = evaluate_config.get_config().embedder
    options.callable.fn, options.callable.name = "tests.evaluation.test_features:user_embedding", "rms"
    embs = wd.build_embedders(["mel_stats", "callable"], options, sample_rate=8000)
    assert sorted(embs) == ["mel", "rms"]
    with pytest.raises(ValueError, match="callable.name"):
        wd.build_embedders(["callable"], evaluate_config.get_config().embedder, sample_rate=8000)


def test_an_embedder_key_it_does_not_take_is_an_error():
    options = evaluate_config.get_config().embedder
    options.mel_stats.n_fftt = 512
    with pytest.raises(TypeError, match="n_fftt"):
        wd.build_embedders(["mel_stats"], options, sample_rate=8000)


def test_watch_survives_a_checkpoint_deleted_while_it_is_read(tmp_path, caplog):
    """Issue 20, item 6: keep-last deleted a checkpoint during its evaluation; orbax raised a
    non-FileNotFoundError and watch mode crashed. Now the step is logged as missed and skipped."""
    workdir = str(tmp_path)
    ckpt = workdir_lib.checkpoint_dir(workdir)
    for step in ("2", "4"):
        os.makedirs(os.path.join(ckpt, step))

    def evaluate(step):
        if step == 2:
            os.rmdir(os.path.join(ckpt, "2"))  # deleted by the trainer's keep-last mid-read
            raise ValueError("cannot read the checkpoint(s)")
        return {"step": step}

    with caplog.at_level("WARNING", logger="diffjax"):
        done = wd.watch_checkpoints(workdir, evaluate, last_step=4, sleep=lambda s: None)
    assert done == {2: {}, 4: {"step": 4}}
    assert "checkpoint 2 was deleted" in caplog.text and "missed so far: [2]" in caplog.text

    def broken(step):  # a checkpoint that is still there but unreadable is an error, not a miss
        raise ValueError("damaged")

    with pytest.raises(ValueError, match="damaged"):
        wd.watch_checkpoints(workdir, broken, last_step=4, sleep=lambda s: None)

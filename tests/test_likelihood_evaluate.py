"""experiments/likelihood.py's job: checkpoint -> per-batch JSON lines -> summary; resume."""
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import default
from configs import likelihood as likelihood_config
from configs import toy_gmm
from diffjax.jobs import workdir as workdir_lib
from diffjax.jobs.likelihood import evaluate_likelihood
from diffjax.model import DataSpec, build_model
from diffjax.training import checkpoint


def settings(**overrides):
    """configs/likelihood.py with 16 examples in batches of 8, a fixed 6-step solver and the ELBO."""
    config = likelihood_config.get_config()
    config.num_examples, config.batch_size, config.elbo_samples = 16, 8, 4
    config.likelihood.stepsize, config.likelihood.num_steps = "fixed", 6
    config.update(overrides)
    return config


SPEC = settings()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A checkpoint of an untrained smoke MLP (the likelihood code does not care about training)."""
    path = tmp_path_factory.mktemp("likelihood_run")
    config = toy_gmm.get_config("smoke")
    model = build_model(config, DataSpec(shape=(2,)))
    params = model.init(jax.random.PRNGKey(0))
    workdir_lib.save_config(str(path), config)
    workdir_lib.save_spec(str(path), model.spec)
    manager = checkpoint.make_manager(workdir_lib.checkpoint_dir(str(path)))
    checkpoint.save(manager, 3, {"step": 3, "params": params, "ema_params": (params,)})
    return path


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_evaluation_writes_results_and_resumes(workdir):
    summary = evaluate_likelihood(str(workdir), settings(name="run"), progress=False)
    assert summary["num_examples"] == 16 and summary["checkpoint_step"] == 3
    assert summary["nfe_mean"] == 1 + 6 * 6
    for field in ("logp", "bits", "elbo", "elbo_bits"):
        assert np.isfinite(summary[field]["mean"]) and summary[field]["stderr"] > 0
    np.testing.assert_allclose(summary["bits"]["mean"], -summary["logp"]["mean"] / (2 * np.log(2)))
    assert json.loads((workdir / "likelihood" / "run.json").read_text()) == summary

    # Interrupt: keep batch 0 (marked), tear the line of batch 1 mid-write, and resume.
    jsonl = workdir / "likelihood" / "run.host0of1.jsonl"
    header, first, second = _lines(jsonl)
    first["logp"] = [123.0] * 8
    jsonl.write_text("\n".join(json.dumps(r) for r in (header, first)) + "\n" + json.dumps(second)[:40])
    resumed = evaluate_likelihood(str(workdir), settings(name="run"), progress=False)
    records = _lines(jsonl)
    assert [r.get("batch") for r in records] == [None, 0, 1]
    assert records[1]["logp"] == [123.0] * 8  # batch 0 was not recomputed
    np.testing.assert_allclose(records[2]["logp"], second["logp"], rtol=1e-6)  # batch 1 was, identically

    with pytest.raises(ValueError, match="another --config.name"):
        evaluate_likelihood(str(workdir), settings(name="run", elbo_samples=0), progress=False)
    del resumed


def test_unknown_config_keys_are_errors(workdir):
    config = settings()
    config.quantiser.name = "pcm16"
    config.quantiser.levels_typo = 3
    with pytest.raises(TypeError, match="levels_typo"):
        evaluate_likelihood(str(workdir), config, progress=False)
    config = settings()
    config.likelihood.rtoll = 1e-3
    with pytest.raises(TypeError, match="rtoll"):
        evaluate_likelihood(str(workdir), config, progress=False)


@pytest.mark.slow
def test_entry_point_runs(workdir):
    out = subprocess.run([sys.executable, "experiments/likelihood.py", "--config=configs/likelihood.py:smoke",
                          f"--workdir={workdir}", "--config.name=cli"],
                         capture_output=True, text=True, check=True)
    assert "bits" in out.stdout and (workdir / "likelihood" / "cli.json").exists()


def test_a_spectrogram_model_is_refused_with_the_fix(tmp_path):
    """Log-mel frames are not a bijection of the audio: no likelihood of the waveform exists."""
    workdir_lib.save_config(str(tmp_path), default.get_config())  # the quick start: codec 'mel'
    workdir_lib.save_spec(str(tmp_path), DataSpec(shape=(16000, 1), sample_rate=16000))
    with pytest.raises(ValueError, match="'mel' codec.*configs/waveform.py"):
        evaluate_likelihood(str(tmp_path), SPEC, progress=False)

"""experiments/likelihood.py's library: checkpoint -> per-batch JSON lines -> summary; resume."""
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import toy_gmm
from diffjax import factory
from diffjax.likelihood.evaluate import EvalSpec, evaluate_checkpoint
from diffjax.training import checkpoint

SPEC = EvalSpec(num_examples=16, batch_size=8, elbo_samples=4,
                likelihood=(("stepsize", "fixed"), ("num_steps", 6)))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A checkpoint of an untrained smoke MLP (the likelihood code does not care about training)."""
    path = tmp_path_factory.mktemp("likelihood_run")
    config = toy_gmm.get_config("smoke")
    model = factory.build_model(config)
    params = factory.init_params(model, jnp.zeros((1, 2)), jax.random.PRNGKey(0))
    checkpoint.save_config(str(path), config)
    manager = checkpoint.make_manager(str(path))
    checkpoint.save(manager, 3, {"step": 3, "params": params, "ema_params": (params,)})
    return path


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_evaluation_writes_results_and_resumes(workdir):
    summary = evaluate_checkpoint(str(workdir), SPEC, name="run", progress=False)
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
    resumed = evaluate_checkpoint(str(workdir), SPEC, name="run", progress=False)
    records = _lines(jsonl)
    assert [r.get("batch") for r in records] == [None, 0, 1]
    assert records[1]["logp"] == [123.0] * 8  # batch 0 was not recomputed
    np.testing.assert_allclose(records[2]["logp"], second["logp"], rtol=1e-6)  # batch 1 was, identically

    with pytest.raises(ValueError, match="another --name"):
        evaluate_checkpoint(str(workdir), EvalSpec(num_examples=16, batch_size=8), name="run", progress=False)
    del resumed


@pytest.mark.slow
def test_entry_point_runs(workdir):
    out = subprocess.run([sys.executable, "experiments/likelihood.py", f"--workdir={workdir}", "--name=cli",
                          "--num_examples=8", "--batch_size=8", "--stepsize=fixed", "--num_steps=4"],
                         capture_output=True, text=True, check=True)
    assert "bits" in out.stdout and (workdir / "likelihood" / "cli.json").exists()


def test_a_spectrogram_model_is_refused_with_the_fix(tmp_path):
    """Log-mel frames are not a bijection of the audio: no likelihood of the waveform exists."""
    from configs import default

    checkpoint.save_config(str(tmp_path), default.get_config())  # the quick start: codec 'mel'
    with pytest.raises(ValueError, match="'mel' codec.*configs/waveform.py"):
        evaluate_checkpoint(str(tmp_path), SPEC, progress=False)

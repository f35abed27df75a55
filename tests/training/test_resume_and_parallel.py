"""Preemption and parallelism: SIGKILL/SIGTERM + resume are bitwise exact; 8 devices and 2 hosts
match 1 device. The toy MLP config keeps compiles short; the loop is the same for audio."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import toy_gmm
from diffjax.jobs import load, train_and_evaluate
from diffjax.training import parallel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(ROOT, "experiments", "train.py")


def _config(**training):
    config = toy_gmm.get_config("smoke")
    config.training.log_every = 1
    config.training.checkpoint_every = 1
    config.evaluation.num_samples = 0  # these tests compare weights; skip the sampling evaluation
    for key, value in training.items():
        config.training[key] = value
    return config


def _flags(config) -> list[str]:
    """The command-line overrides that reproduce `_config(...)` in a subprocess."""
    t = config.training
    return ["--config", "configs/toy_gmm.py:smoke", f"--config.training.log_every={t.log_every}",
            f"--config.training.checkpoint_every={t.checkpoint_every}",
            f"--config.training.num_steps={t.num_steps}", "--config.evaluation.num_samples=0"]


def _params(workdir):
    loaded = load(str(workdir), ema=-1)
    return loaded.params, loaded.step


def _wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _latest_step(workdir) -> int:
    ckpt = os.path.join(workdir, "checkpoints")
    steps = [int(d) for d in os.listdir(ckpt) if d.isdigit()] if os.path.isdir(ckpt) else []
    return max(steps, default=0)


def _assert_trees_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def _resume_matches_fresh(tmp_path, interrupted_dir, stopped_at):
    """Resumes the interrupted run for 3 more steps and compares it with a fresh run, bitwise."""
    target = stopped_at + 3
    train_and_evaluate(_config(num_steps=target), str(interrupted_dir))
    fresh = tmp_path / "fresh"
    train_and_evaluate(_config(num_steps=target), str(fresh))
    (resumed_params, resumed_step), (fresh_params, fresh_step) = _params(interrupted_dir), _params(fresh)
    assert resumed_step == fresh_step == target
    _assert_trees_equal(resumed_params, fresh_params)


def test_sigkill_at_any_step_then_resume_is_bitwise_identical(tmp_path):
    workdir = tmp_path / "killed"
    config = _config(num_steps=400)
    proc = subprocess.Popen([sys.executable, TRAIN, *_flags(config), "--workdir", str(workdir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: _latest_step(workdir) >= 3), "no checkpoint appeared"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    stopped_at = _latest_step(workdir)
    assert 3 <= stopped_at < 400
    _resume_matches_fresh(tmp_path, workdir, stopped_at)


def test_sigterm_saves_the_current_step_and_exits_cleanly(tmp_path):
    workdir = tmp_path / "terminated"
    config = _config(num_steps=100_000, checkpoint_every=50_000)
    proc = subprocess.Popen([sys.executable, TRAIN, *_flags(config), "--workdir", str(workdir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics = workdir / "metrics.jsonl"
    assert _wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    last_logged = json.loads(metrics.read_text().splitlines()[-1])["step"]
    stopped_at = _latest_step(workdir)
    assert stopped_at == last_logged and stopped_at % 50_000 != 0  # saved at the SIGTERM step
    _resume_matches_fresh(tmp_path, workdir, stopped_at)


def test_eight_devices_match_one_device(tmp_path):
    assert jax.device_count() >= 8
    results = {}
    for devices in (1, 8):
        train_and_evaluate(_config(num_steps=4, num_devices=devices), str(tmp_path / str(devices)))
        results[devices] = _params(tmp_path / str(devices))[0]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), results[1], results[8])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_on_localhost_match_one_process(tmp_path):
    """2 hosts x 1 device (jax.distributed over 127.0.0.1) equal 1 host x 2 devices."""
    config = _config(num_steps=4, checkpoint_every=2, log_every=2)
    port = _free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, TRAIN, *_flags(config), "--workdir", str(tmp_path / "multi"),
                               f"--coordinator=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for i in range(2)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr.decode()[-3000:]
    train_and_evaluate(_config(num_steps=4, checkpoint_every=2, log_every=2, num_devices=2),
                       str(tmp_path / "single"))
    (multi, step_multi), (single, step_single) = _params(tmp_path / "multi"), _params(tmp_path / "single")
    assert step_multi == step_single == 4
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), multi, single)


def test_batch_not_divisible_by_devices_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"batch_size=12 is not divisible by the 8 batch shards \(data x fsdp = "
                                         r"8 x 1\); use a multiple of 8"):
        train_and_evaluate(_config(batch_size=12), str(tmp_path))
    with pytest.raises(ValueError, match=r"parallel.fsdp=3 x parallel.tensor=1 does not divide the 8 devices; valid"):
        config = _config()
        config.parallel.fsdp = 3
        train_and_evaluate(config, str(tmp_path))
    with pytest.raises(ValueError, match="parallel.remat must be one of"):
        config = _config()
        config.parallel.remat = "layer"
        train_and_evaluate(config, str(tmp_path))


def test_multi_process_cpu_runs_disable_the_persistent_cache_with_a_reason(caplog, tmp_path):
    """Issue 20, item 10: the cache is turned off for Gloo runs, and the log says why."""
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    try:
        with caplog.at_level("WARNING", logger="diffjax"):
            parallel.disable_compilation_cache("multi-process CPU runs with Gloo collectives")
        assert jax.config.jax_compilation_cache_dir is None
        assert f"persistent compilation cache {tmp_path} disabled for multi-process CPU" in caplog.text
    finally:
        jax.config.update("jax_compilation_cache_dir", before)

"""Test-wide settings (STYLE rule 24).

- 8 fake CPU devices for the data-parallel tests (most parallel tests use 2 of them);
- `jax_numpy_rank_promotion="raise"`, so silent broadcasting bugs fail loudly;
- the `x64` fixture runs a closed-form math test in float64 (`pytestmark = pytest.mark.usefixtures("x64")`);
- a persistent compilation cache, so repeated local runs skip XLA compiles;
- one numba cache directory per xdist worker. librosa's kernels (pYIN, Griffin-Lim) use numba's
  on-disk cache, which is not safe against two processes writing it at once: a half-written index
  in site-packages made every later pYIN call segfault.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_NUMBA_BASE = os.environ.setdefault(  # set by the controller; inherited by the workers it spawns
        "DIFFJAX_NUMBA_CACHE_BASE",
        os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "diffjax", "numba"))
os.environ["NUMBA_CACHE_DIR"] = os.path.join(_NUMBA_BASE, os.environ.get("PYTEST_XDIST_WORKER", "main"))

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_compilation_cache_dir",
                  os.path.join(os.path.expanduser("~"), ".cache", "diffjax", "jax_cache"))

# Project modules after the settings above, so anything they build at import time sees them.
from configs import waveform  # noqa: E402
from diffjax.jobs import train_and_evaluate  # noqa: E402


@pytest.fixture
def x64():
    """Runs the test with 64-bit floats."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="session")
def smoke_audio_workdir(tmp_path_factory):
    """One `configs/waveform.py:smoke` audio model (4 steps), trained once per test session (per
    xdist worker) and shared read-only by the tests of sampling, restoration and evaluation entry
    points. A test that resumes or writes into it must copy it first."""
    path = tmp_path_factory.mktemp("smoke_audio")
    config = waveform.get_config("smoke")
    config.data.cache_dir = str(path / "cache")
    train_and_evaluate(config, str(path / "workdir"))
    return path / "workdir"

"""Post-hoc EMA files: snapshots (kept, never overwritten), reconstruction streamed from disk,
its outputs (refused when present) and loading them back. A tiny pytree stands in for a model."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from diffjax.jobs import phema as job
from diffjax.training import phema

TRACKED = (0.05, 0.10)
STEPS, EVERY = 60, 10


def _params(rng):
    return {"dense": {"kernel": rng.normal(size=(3, 2)).astype(np.float32),
                      "bias": rng.normal(size=(2,)).astype(np.float32)}}


def _abstract(params):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A fake run: a random-walk pytree, the tracked EMAs saved every EVERY steps, and in memory
    the snapshots, a directly tracked 0.07 EMA and the bound max_tau |theta_tau| over all leaves."""
    workdir = str(tmp_path_factory.mktemp("phema") / "workdir")
    rng = np.random.default_rng(0)
    gammas = tuple(phema.sigma_rel_to_gamma(s) for s in TRACKED + (0.07,))
    update = jax.jit(lambda emas, p, step: phema.update_phema(emas, p, step, gammas))
    params = _params(rng)
    emas = tuple(jax.tree.map(jnp.zeros_like, params) for _ in gammas)
    manager = job.snapshot_manager(workdir)
    snapshots, largest = {}, 0.0
    for step in range(1, STEPS + 1):
        params = jax.tree.map(lambda x: x + rng.normal(size=x.shape).astype(np.float32) * 0.1, params)
        emas = update(emas, params, jnp.int32(step))
        largest = max(largest, *(float(np.abs(x).max()) for x in jax.tree.leaves(params)))
        if step % EVERY == 0:
            assert job.save_snapshot(manager, step, emas[:2], TRACKED)
            snapshots[step] = jax.device_get(emas[:2])
    return workdir, manager, snapshots, jax.device_get(emas[2]), _abstract(params), largest


def test_snapshots_are_indexed_kept_and_never_overwritten(run):
    workdir, manager, snapshots, _, abstract, _ = run
    assert manager.all_steps() == list(range(EVERY, STEPS + 1, EVERY))
    index = job.read_index(job.snapshot_dir(workdir))
    assert index == {s: TRACKED for s in snapshots}
    with open(os.path.join(job.snapshot_dir(workdir), job.INDEX_FILE)) as f:
        gammas = json.load(f)["snapshots"]["10"]["gammas"]
    assert gammas == pytest.approx([phema.sigma_rel_to_gamma(s) for s in TRACKED])
    changed = jax.tree.map(lambda x: x + 1.0, snapshots[STEPS])
    assert not job.save_snapshot(manager, STEPS, changed, TRACKED)  # a resumed run reaching the step again
    restored = manager.restore(STEPS, args=ocp.args.StandardRestore({"phema": (abstract, abstract)}))
    np.testing.assert_array_equal(restored["phema"][0]["dense"]["kernel"], snapshots[STEPS][0]["dense"]["kernel"])
    with pytest.raises(ValueError, match="cannot change its tracked EMAs"):
        job.save_snapshot(manager, STEPS, changed, (0.05, 0.2))


def test_reconstruct_workdir_matches_the_library_and_the_tracked_ema(run):
    workdir, _, snapshots, direct, abstract, largest = run
    summaries = job.reconstruct_workdir(workdir, [0.07, 0.2], abstract_params=abstract)
    assert [s["sigma_rel"] for s in summaries] == [0.07, 0.2]
    first = summaries[0]
    assert first["target_step"] == STEPS and first["method"] == "discrete"
    assert first["path"] == job.reconstructed_path(workdir, 0.07) and first["path"].endswith("sigma_rel_0.070")
    with open(os.path.join(first["path"], job.SUMMARY_FILE)) as f:
        written = json.load(f)
    assert written["coefficients"] == pytest.approx(first["coefficients"])
    assert written["snapshots"] == [[s, r] for s in snapshots for r in TRACKED]
    assert written["gamma"] == pytest.approx(phema.sigma_rel_to_gamma(0.07))

    # tests/training/test_phema.py derives the bound: residual M + (sum|c| + 1) E + u |rec|, with
    # E = u M (T + 18 (g + 1)(1 + ln T)) the float32 error of one EMA after T updates.
    u, g = np.finfo(np.float32).eps / 2, phema.sigma_rel_to_gamma(0.05)
    rounding = (np.abs(first["coefficients"]).sum() + 1) * u * largest * (STEPS + 18 * (g + 1) * (1 + np.log(STEPS)))
    bound = first["residual"] * largest + rounding + u * largest
    loaded = job.load_reconstructed(workdir, 0.07, abstract)
    in_memory = phema.reconstruct([ema for s in snapshots for ema in snapshots[s]], first["coefficients"])
    for a, b, d in zip(jax.tree.leaves(loaded), jax.tree.leaves(in_memory), jax.tree.leaves(direct)):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(a), b)  # the same float64 sum, rounded once
        assert np.abs(np.asarray(a) - d).max() <= bound
    wrong = job.load_reconstructed(workdir, 0.2, abstract)
    assert np.abs(np.asarray(wrong["dense"]["kernel"]) - direct["dense"]["kernel"]).max() > 3 * bound


def test_outputs_are_refused_unless_overwrite_and_missing_ones_name_the_command(run):
    workdir, _, _, _, abstract, _ = run
    job.reconstruct_workdir(workdir, [0.12], abstract_params=abstract, target_step=30)
    with pytest.raises(FileExistsError, match=r"sigma_rel_0\.120.*overwrite=True"):
        job.reconstruct_workdir(workdir, [0.12], abstract_params=abstract)
    (summary,) = job.reconstruct_workdir(workdir, [0.12], abstract_params=abstract, overwrite=True)
    assert summary["target_step"] == STEPS
    expected = r"available: .*0\.120.*reconstruct_ema\.py --workdir .* --sigma_rel 0\.15"
    with pytest.raises(FileNotFoundError, match=expected):
        job.load_reconstructed(workdir, 0.15, abstract)
    with pytest.raises(ValueError, match="after the last snapshot"):
        job.reconstruct_workdir(workdir, [0.13], abstract_params=abstract, target_step=STEPS + 1)
    assert not [n for n in os.listdir(os.path.join(workdir, job.RECONSTRUCTED_DIR)) if n.startswith(".")]


def test_no_snapshots_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no post-hoc EMA snapshots"):
        job.reconstruct_workdir(str(tmp_path), [0.1], abstract_params={"w": jax.ShapeDtypeStruct((2,), np.float32)})

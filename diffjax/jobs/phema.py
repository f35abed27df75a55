"""Post-hoc EMA on disk (EDM2 sec. 3.1; the math is `diffjax.training.phema`).

    <workdir>/phema_snapshots/<step>/               orbax: {"phema": (ema for each tracked sigma_rel)}
    <workdir>/phema_snapshots/index.json            {"snapshots": {"<step>": {"sigma_rels": [...], "gammas": [...]}}}
    <workdir>/phema/sigma_rel_0.070/checkpoint/     orbax: {"params": the reconstructed EMA}
    <workdir>/phema/sigma_rel_0.070/reconstruction.json
                                                    sigma_rel, gamma, target_step, residual, snapshots, coefficients

    manager = snapshot_manager(workdir)                      # training: every N steps
    save_snapshot(manager, step, state.phema_params, (0.05, 0.10))
    reconstruct_main(workdir, (0.07, 0.12))                  # python experiments/reconstruct_ema.py
    params = load_reconstructed(workdir, 0.07, model.abstract_params())

A snapshot's step is counted in optimiser updates (`update_phema`'s `step`). The index is written
after the snapshot, so a step in orbax but not yet in the index (a run killed in between) is
ignored by reconstruction and recorded by the resumed run when it reaches that step again.
Reconstruction runs on one host (restores go to its first local device).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any, Optional, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp

from diffjax.jobs.workdir import Loaded, load_config, load_spec, model_for, write_json_atomically
from diffjax.training import checkpoint
from diffjax.training import phema

log = logging.getLogger("diffjax")
SNAPSHOT_DIR = "phema_snapshots"
RECONSTRUCTED_DIR = "phema"
INDEX_FILE = "index.json"
CHECKPOINT_SUBDIR = "checkpoint"
SUMMARY_FILE = "reconstruction.json"


def snapshot_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), SNAPSHOT_DIR)


def reconstructed_path(workdir: str, sigma_rel: float) -> str:
    """`<workdir>/phema/sigma_rel_<sigma_rel:.3f>`."""
    return os.path.join(os.path.abspath(workdir), RECONSTRUCTED_DIR, f"sigma_rel_{float(sigma_rel):.3f}")


def snapshot_manager(workdir: str) -> ocp.CheckpointManager:
    """An orbax manager over `<workdir>/phema_snapshots` that keeps every snapshot."""
    return checkpoint.make_manager(snapshot_dir(workdir), max_to_keep=None)


# ----------------------------------------------------------------------------------------------
# Snapshots (training side)
# ----------------------------------------------------------------------------------------------

def read_index(directory: str) -> dict[int, tuple[float, ...]]:
    """{step: tracked sigma_rels} from `<directory>/index.json` ({} when there is none)."""
    path = os.path.join(directory, INDEX_FILE)
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            entries = json.load(f)["snapshots"]
        return {int(step): tuple(float(s) for s in entry["sigma_rels"]) for step, entry in entries.items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is damaged ({checkpoint.describe_error(error)}); it lists the EMA lengths of each "
                         "snapshot step: restore it from a backup or delete it and re-save the snapshots") from None


def _record(directory: str, step: int, sigma_rels: tuple[float, ...]) -> None:
    entries = read_index(directory)
    entries[int(step)] = sigma_rels
    write_json_atomically(os.path.join(directory, INDEX_FILE), {"snapshots": {
        str(s): {"sigma_rels": list(r), "gammas": [phema.sigma_rel_to_gamma(x) for x in r]}
        for s, r in sorted(entries.items())}})


def save_snapshot(manager: ocp.CheckpointManager, step: int, phema_params: tuple, sigma_rels: Sequence[float]) -> bool:
    """Saves `{"phema": phema_params}` as snapshot `step` and records `sigma_rels` (one per EMA,
    in order) in the index. An existing snapshot of `step` is kept, never overwritten (a resumed
    run reaching the step again holds the same values); returns whether it wrote one.

    Raises:
      ValueError: the EMAs and sigma_rels differ in number, or `step` is indexed with other sigma_rels.
    """
    sigma_rels = tuple(float(s) for s in sigma_rels)
    for s in sigma_rels:
        phema.sigma_rel_to_gamma(s)  # validates
    if len(phema_params) != len(sigma_rels):
        raise ValueError(f"{len(phema_params)} EMAs but {len(sigma_rels)} sigma_rels")
    directory = str(manager.directory)
    recorded = read_index(directory).get(int(step))
    if recorded is not None and recorded != sigma_rels:
        raise ValueError(f"snapshot {step} in {directory} tracks sigma_rels {recorded}, not {sigma_rels}: a run "
                         "cannot change its tracked EMAs within one workdir; train into a new workdir")
    wrote = int(step) not in manager.all_steps()
    if wrote:
        checkpoint.save(manager, int(step), {"phema": tuple(phema_params)})
    else:
        log.info("post-hoc EMA snapshot %d exists in %s; kept", step, directory)
    if recorded is None and jax.process_index() == 0:
        _record(directory, int(step), sigma_rels)
    return wrote


# ----------------------------------------------------------------------------------------------
# Reconstruction
# ----------------------------------------------------------------------------------------------

def _indexed_steps(workdir: str, manager: ocp.CheckpointManager) -> dict[int, tuple[float, ...]]:
    directory = snapshot_dir(workdir)
    index, saved = read_index(directory), set(manager.all_steps())
    unindexed = sorted(saved - set(index))
    if unindexed:
        log.warning("snapshots %s in %s are not in %s (the run stopped while saving them); ignored",
                    unindexed, directory, INDEX_FILE)
    steps = {s: index[s] for s in sorted(saved & set(index))}
    if not steps:
        raise FileNotFoundError(f"no post-hoc EMA snapshots in {directory}: train with "
                                "--config.training.phema.sigma_rels=0.05,0.1 --config.training.phema.snapshot_every=N "
                                "(snapshots are written during training), then reconstruct")
    return steps


def _check_outputs(workdir: str, sigma_rels: Sequence[float], overwrite: bool) -> list[str]:
    paths = [reconstructed_path(workdir, s) for s in sigma_rels]
    if len(set(paths)) != len(paths):
        raise ValueError(f"sigma_rels {list(sigma_rels)} name the same output twice at 3 decimals")
    for path in paths:
        if os.path.lexists(path) and not overwrite:
            raise FileExistsError(f"{path} exists (a reconstruction made before); pass overwrite=True "
                                  "(--overwrite) to replace it, or remove the directory")
    return paths


def _write(path: str, params: Any, summary: dict, overwrite: bool) -> None:
    """The checkpoint and JSON in a temporary directory, renamed to `path` once complete."""
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(temporary)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.join(temporary, CHECKPOINT_SUBDIR), {"params": params})
        checkpointer.wait_until_finished()
    write_json_atomically(os.path.join(temporary, SUMMARY_FILE), summary)
    if overwrite and os.path.lexists(path):
        shutil.rmtree(path)
    os.replace(temporary, path)


def reconstruct_workdir(workdir: str, sigma_rels: Sequence[float], *, target_step: Optional[int] = None,
                        abstract_params: Any, method: str = "auto", overwrite: bool = False) -> list[dict]:
    """Reconstructs the EMA of each `sigma_rels` at `target_step` from the snapshots (EDM2
    appendix C.3) and writes `<workdir>/phema/sigma_rel_<s:.3f>` (checkpoint + JSON).

    Snapshots are read one at a time (only those with a nonzero coefficient); the sums are float64
    numpy, one per target, cast to `abstract_params`' dtypes when written.

    Args:
      workdir: a training workdir with `phema_snapshots/`.
      sigma_rels: target EMA lengths, each in (0, 0.2887].
      target_step: the step to reconstruct at (default: the last snapshot's); at most the last.
      abstract_params: a pytree of `jax.ShapeDtypeStruct`, one tracked EMA's shapes and dtypes.
      method: 'auto', 'discrete' or 'continuous' (`phema.solve_coefficients`).
      overwrite: replace existing outputs (otherwise an existing one is an error, before any work).
    Returns:
      One summary per target: sigma_rel, gamma, target_step, method, residual, snapshots
      ([step, sigma_rel] per column), coefficients, path.
    """
    sigma_rels = [float(s) for s in sigma_rels]
    gammas = [phema.sigma_rel_to_gamma(s) for s in sigma_rels]
    paths = _check_outputs(workdir, sigma_rels, overwrite)
    manager = snapshot_manager(workdir)
    index = _indexed_steps(workdir, manager)
    last = max(index)
    target_step = last if target_step is None else int(target_step)
    if target_step > last:
        raise ValueError(f"target_step={target_step} is after the last snapshot ({last}) in {snapshot_dir(workdir)}; "
                         "the updates after it were never saved")
    columns = [(step, s) for step, tracked in index.items() for s in tracked]  # one per (step, tracked EMA)
    column_steps = [step for step, _ in columns]
    column_gammas = [phema.sigma_rel_to_gamma(s) for _, s in columns]
    solved = [phema.solve_coefficients(column_steps, column_gammas, target_step, g, method=method) for g in gammas]
    coefficients = np.stack([c for c, _ in solved])  # [targets, columns]

    abstract = checkpoint.on_first_local_device(abstract_params)
    totals: list[Any] = [None] * len(sigma_rels)
    start = 0
    for step, tracked in index.items():
        block = coefficients[:, start:start + len(tracked)]  # [targets, tracked]
        start += len(tracked)
        if not block.any():
            continue
        try:
            items = manager.restore(step, args=ocp.args.StandardRestore({"phema": tuple(abstract for _ in tracked)}))
        except Exception as error:  # noqa: BLE001  (orbax raises many types for a damaged checkpoint)
            raise ValueError(f"cannot read snapshot {os.path.join(snapshot_dir(workdir), str(step))} "
                             f"({checkpoint.describe_error(error)}): if the model changed, pass the abstract "
                             "params of the trained one; otherwise pass --step before this snapshot") from None
        snapshot = jax.device_get(items["phema"])
        del items
        for target, row in enumerate(block):
            for ema, c in zip(snapshot, row):
                if c != 0.0:
                    totals[target] = phema.add_weighted(totals[target], ema, c)

    summaries = []
    for sigma_rel, gamma, path, total, (c, residual) in zip(sigma_rels, gammas, paths, totals, solved):
        params = jax.tree.map(lambda t, a: t.astype(a.dtype), total, abstract_params)
        summary = {"sigma_rel": sigma_rel, "gamma": gamma, "target_step": target_step,
                   "method": phema.resolve_method(method, target_step, sum(s <= target_step for s in column_steps)),
                   "residual": residual, "snapshots": [[step, s] for step, s in columns],
                   "coefficients": c.tolist()}
        _write(path, params, summary, overwrite)
        log.info("post-hoc EMA sigma_rel=%.3f at step %d: residual %.2e, written to %s",
                 sigma_rel, target_step, residual, path)
        summaries.append({**summary, "path": path})
    return summaries


def available_reconstructions(workdir: str) -> list[float]:
    """The sigma_rels reconstructed in `<workdir>/phema` (read from their JSON)."""
    root = os.path.join(os.path.abspath(workdir), RECONSTRUCTED_DIR)
    found = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, name, SUMMARY_FILE)
        if name.startswith("sigma_rel_") and os.path.exists(path):
            with open(path) as f:
                found.append(float(json.load(f)["sigma_rel"]))
    return found


def load_reconstructed(workdir: str, sigma_rel: float, abstract_params: Any) -> Any:
    """The parameters reconstructed for `sigma_rel` by `reconstruct_workdir`, on this host's first device.

    Raises:
      FileNotFoundError: none for this sigma_rel; lists those available and the command that makes one.
    """
    path = reconstructed_path(workdir, sigma_rel)
    if not os.path.exists(os.path.join(path, SUMMARY_FILE)):
        available = ", ".join(f"{s:.3f}" for s in available_reconstructions(workdir)) or "none"
        raise FileNotFoundError(f"no post-hoc EMA reconstruction for sigma_rel={float(sigma_rel):.3f} in {path} "
                                f"(available: {available}); make it with python experiments/reconstruct_ema.py "
                                f"--workdir {workdir} --sigma_rel {float(sigma_rel):g}")
    target = {"params": checkpoint.on_first_local_device(abstract_params)}
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(os.path.join(path, CHECKPOINT_SUBDIR), target)["params"]


def load_phema(workdir: str, sigma_rel: float) -> Loaded:
    """`load(workdir)` with the post-hoc EMA of `sigma_rel` as the weights (made beforehand by
    `experiments/reconstruct_ema.py`); `step` is the reconstruction's target step."""
    config = load_config(workdir)
    model = model_for(config, load_spec(workdir), workdir=workdir)
    params = load_reconstructed(workdir, sigma_rel, model.abstract_params())
    with open(os.path.join(reconstructed_path(workdir, sigma_rel), SUMMARY_FILE)) as f:
        step = int(json.load(f)["target_step"])
    return Loaded(model=model, params=params, step=step, config=config)


def reconstruct_main(workdir: str, sigma_rels: Sequence[float], step: Optional[int] = None,
                     method: str = "auto", *, overwrite: bool = False) -> list[dict]:
    """`experiments/reconstruct_ema.py`: the workdir's model gives the parameter shapes (nothing is
    allocated), then `reconstruct_workdir`."""
    config = load_config(workdir)
    model = model_for(config, load_spec(workdir), workdir=workdir)
    return reconstruct_workdir(workdir, sigma_rels, target_step=step, abstract_params=model.abstract_params(),
                               method=method, overwrite=overwrite)

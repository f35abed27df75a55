"""Evaluation of restoration on clean references: degrade, restore, score; the markdown table.
(Reading the references and writing tables and spectrograms is the job's: `diffjax.jobs.restore`.)"""
from __future__ import annotations

import logging
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.audio import metrics
from diffjax.restoration.methods import METHODS, unmet_requirements
from diffjax.restoration.operators import in_model_space
from diffjax.restoration.tasks import (EVAL_TASKS, degraded_view, eval_length, eval_task, restorable_length,
                                       restore_audio, task_operator)

log = logging.getLogger("diffjax")

METRICS = ("si_sdr", "snr", "lsd", "mrstft")


def evaluate(model, denoiser, clean: np.ndarray, *, tasks=tuple(EVAL_TASKS), methods=("dps",),
             sampler: str = "heun", nfe: int = 49, seed: int = 0, options=None, progress=None) -> list[dict]:
    """One row per (task, method): metrics of the degraded input and of the output (means over clips).

    `denoiser` is the model's (`model.denoiser(params)`); `model` supplies the process, `spec` and
    codec. `clean` `[B, L, C]` is cut to each task's `eval_length` (at least the model's context),
    so it must be as long as the longest (1 s for `dereverb_0.5s`). `options`: method -> its options
    (`methods.method_options`). A method whose requirements the operator (as the model sees it,
    `operators.in_model_space`) lacks is skipped, and so is a task longer than a model in a codec's
    space restores (`tasks.restorable_length`). `progress(label)`, where given, returns the
    `(done, total)` callback of one row's restoration (`restore_audio`'s `progress`)."""
    sample_rate, rows = int(model.spec.sample_rate), []
    longest = restorable_length(model)
    for task_name in tasks:
        spec = eval_task(task_name)
        length = eval_length(task_name, model)
        if longest is not None and length > longest:
            log.info("skipping %s: its %g s excerpts exceed the model's %g s context", task_name,
                     length / sample_rate, longest / sample_rate)
            continue
        if np.shape(clean)[1] < length:
            raise ValueError(f"{task_name} restores {length / sample_rate:g} s excerpts but the clean "
                             f"clips have {np.shape(clean)[1] / sample_rate:g} s; pass longer clips")
        task_clean = jnp.asarray(clean)[:, :length]
        op = task_operator(spec.task, sample_rate, reference=np.asarray(task_clean), **spec.params)
        # the measurement noise depends on the task's name, not its position: subsets reproduce rows
        noise_key = jax.random.fold_in(jax.random.PRNGKey(seed + 1000), zlib.crc32(task_name.encode()))
        y = op.measure(task_clean, noise_key)
        before = metrics.reference_metrics(task_clean, degraded_view(op, y, task_clean.shape))
        for method in methods:
            method_options = (options or {}).get(method, {})
            unmet = unmet_requirements(method, in_model_space(op, model.codec, length), method_options)
            if unmet:
                log.info("skipping %s on %s: the operator lacks %s", method, task_name, unmet)
                continue
            out, info = restore_audio(model, denoiser, op, y, method=method, sampler=sampler, nfe=nfe, seed=seed,
                                      progress=None if progress is None else progress(f"{task_name} {method}"),
                                      **method_options)
            after = metrics.reference_metrics(task_clean, out)
            row = {"task": task_name, "method": method, "sampler": sampler, "nfe": info["nfe"],
                   "seconds_per_second": round(info["seconds_per_audio_second"], 3)}
            for name in METRICS:
                row[f"{name}_in"] = round(float(jnp.mean(before[name])), 3)
                row[f"{name}_out"] = round(float(jnp.mean(after[name])), 3)
            report = METHODS.meta(method)["report"]
            if report is not None:  # e.g. blind_bwe: the cutoff the restoration implies
                row.update(report(out, y, sample_rate))
            log.info("%s", row)
            rows.append(row)
    return rows


def markdown_table(rows: list[dict], columns=None) -> str:
    """Rows as a markdown table (columns default to the keys of the first row)."""
    if not rows:
        return "(no rows)\n"
    columns = list(rows[0]) if columns is None else list(columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"

"""Evaluation of restoration on clean references: degrade, restore, score; tables and spectrograms."""
from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.audio import io, metrics
from diffjax.restoration.methods import METHODS
from diffjax.restoration.tasks import EVAL_TASKS, Model, degraded_view, restore_audio, task_operator

log = logging.getLogger("diffjax")

METRICS = ("si_sdr", "snr", "lsd", "mrstft")


def load_references(directory: str, model: Model, *, max_clips: int = 8) -> np.ndarray:
    """Up to `max_clips` files of `directory`, at the model's rate, mono, cut/padded to its length:
    `[B, L, C]`."""
    files = sorted(f for f in os.listdir(directory) if f.lower().endswith(io.AUDIO_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f"no {'/'.join(io.AUDIO_EXTENSIONS)} files in {directory}")
    clips = []
    for f in files[:max_clips]:
        x = io.read_audio(os.path.join(directory, f), sample_rate=model.sample_rate, channels=model.channels)
        x = x[:model.length]
        clips.append(np.pad(x, ((0, model.length - x.shape[0]), (0, 0))))
    return np.stack(clips)


def applicable(method: str, operator) -> bool:
    """DDRM needs an SVD; the others run with every operator."""
    return method != "ddrm" or operator.has_svd


def evaluate(model: Model, clean: np.ndarray, *, tasks=tuple(EVAL_TASKS), methods=("dps",),
             sampler: str = "heun", nfe: int = 50, seed: int = 0, options=None) -> list[dict]:
    """One row per (task, method): metrics of the degraded input and of the output (means over clips)."""
    clean = jnp.asarray(clean)
    rows = []
    for t, task_name in enumerate(tasks):
        if task_name not in EVAL_TASKS:
            raise ValueError(f"unknown evaluation task {task_name!r}; valid: {', '.join(EVAL_TASKS)}")
        task, params = EVAL_TASKS[task_name]
        op = task_operator(task, model.sample_rate, reference=np.asarray(clean), **params)
        y = op.measure(clean, jax.random.PRNGKey(seed + 1000 + t))
        before = metrics.reference_metrics(clean, degraded_view(op, y, clean.shape))
        for method in methods:
            METHODS.get(method)
            if not applicable(method, op):
                log.info("skipping %s on %s: it needs an operator with an SVD", method, task_name)
                continue
            out, info = restore_audio(model, op, y, method=method, sampler=sampler, nfe=nfe, seed=seed,
                                      **(options or {}).get(method, {}))
            after = metrics.reference_metrics(clean, out)
            row = {"task": task_name, "method": method, "sampler": sampler, "nfe": info["nfe"],
                   "seconds_per_second": round(info["seconds_per_audio_second"], 3)}
            for name in METRICS:
                row[f"{name}_in"] = round(float(jnp.mean(before[name])), 3)
                row[f"{name}_out"] = round(float(jnp.mean(after[name])), 3)
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


def plot_spectrograms(path: str, before: np.ndarray, after: np.ndarray, sample_rate: int, *,
                      titles=("degraded", "restored")) -> str:
    """Writes a before/after log-magnitude spectrogram PNG of two mono signals `[L]`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, signal, title in zip(axes, (before, after), titles):
        n_fft = 512 if len(signal) >= 512 else 2 ** int(np.log2(max(len(signal), 16)))
        with np.errstate(divide="ignore"):  # silent bins are -inf dB
            ax.specgram(np.asarray(signal, np.float64), NFFT=n_fft, Fs=sample_rate,
                        noverlap=n_fft * 3 // 4, cmap="magma", vmin=-120)
        ax.set_title(title)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (Hz)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path

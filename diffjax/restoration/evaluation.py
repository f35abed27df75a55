"""Evaluation of restoration on clean references: degrade, restore, score; tables and spectrograms."""
from __future__ import annotations

import logging
import os
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.audio import io, metrics
from diffjax.restoration.blind import fit_lowpass
from diffjax.restoration.filters import LowPass
from diffjax.restoration.methods import METHODS
from diffjax.restoration.tasks import EVAL_TASKS, Model, degraded_view, eval_length, restore_audio, task_operator

log = logging.getLogger("diffjax")

METRICS = ("si_sdr", "snr", "lsd", "mrstft")


def load_references(directory: str, model: Model, *, max_clips: int = 8, length: int | None = None) -> np.ndarray:
    """Up to `max_clips` files of `directory`, at the model's rate, mono, cut/padded to `length`
    samples (default the model's context): `[B, L, C]`."""
    length = model.length if length is None else length
    files = sorted(f for f in os.listdir(directory) if f.lower().endswith(io.AUDIO_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f"no {'/'.join(io.AUDIO_EXTENSIONS)} files in {directory}")
    clips = []
    for f in files[:max_clips]:
        x = io.read_audio(os.path.join(directory, f), sample_rate=model.sample_rate, channels=model.channels)
        x = x[:length]
        clips.append(np.pad(x, ((0, length - x.shape[0]), (0, 0))))
    return np.stack(clips)


def applicable(method: str, operator, options=None) -> bool:
    """DDRM needs an SVD, blind_bwe a low-pass degradation and DPS with `consistency` a noise-free
    one; the others run with every operator."""
    if method == "blind_bwe":
        return isinstance(operator, LowPass)
    if method == "dps" and (options or {}).get("consistency"):
        return operator.noise_sigma == 0
    return method != "ddrm" or operator.has_svd


def evaluate(model: Model, clean: np.ndarray, *, tasks=tuple(EVAL_TASKS), methods=("dps",),
             sampler: str = "heun", nfe: int = 50, seed: int = 0, options=None) -> list[dict]:
    """One row per (task, method): metrics of the degraded input and of the output (means over clips).

    `clean` `[B, L, C]` is cut to each task's `eval_length` (at least the model's context), so it
    must be as long as the longest (1 s for `dereverb_0.5s`)."""
    rows = []
    for task_name in tasks:
        if task_name not in EVAL_TASKS:
            raise ValueError(f"unknown evaluation task {task_name!r}; valid: {', '.join(EVAL_TASKS)}")
        task, params = EVAL_TASKS[task_name]
        length = eval_length(task_name, model)
        if np.shape(clean)[1] < length:
            raise ValueError(f"{task_name} restores {length / model.sample_rate:g} s excerpts but the clean "
                             f"clips have {np.shape(clean)[1] / model.sample_rate:g} s; pass longer clips")
        task_clean = jnp.asarray(clean)[:, :length]
        params = {k: v for k, v in params.items() if k != "seconds"}
        op = task_operator(task, model.sample_rate, reference=np.asarray(task_clean), **params)
        # the measurement noise depends on the task's name, not its position: subsets reproduce rows
        noise_key = jax.random.fold_in(jax.random.PRNGKey(seed + 1000), zlib.crc32(task_name.encode()))
        y = op.measure(task_clean, noise_key)
        before = metrics.reference_metrics(task_clean, degraded_view(op, y, task_clean.shape))
        for method in methods:
            METHODS.get(method)
            if not applicable(method, op, (options or {}).get(method)):
                log.info("skipping %s on %s: not applicable (see evaluation.applicable)", method, task_name)
                continue
            out, info = restore_audio(model, op, y, method=method, sampler=sampler, nfe=nfe, seed=seed,
                                      **(options or {}).get(method, {}))
            after = metrics.reference_metrics(task_clean, out)
            row = {"task": task_name, "method": method, "sampler": sampler, "nfe": info["nfe"],
                   "seconds_per_second": round(info["seconds_per_audio_second"], 3)}
            for name in METRICS:
                row[f"{name}_in"] = round(float(jnp.mean(before[name])), 3)
                row[f"{name}_out"] = round(float(jnp.mean(after[name])), 3)
            if method == "blind_bwe":  # the cutoff the restoration implies (the task's is op.cutoff)
                row["fitted_cutoff_hz"] = round(float(jnp.mean(fit_lowpass(out, y, model.sample_rate)[0])), 1)
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

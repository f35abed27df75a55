"""Logs: TensorBoard event files (tensorboardX: no TensorFlow) plus a JSON-lines copy of the scalars.

Only process 0 writes; the others get a writer whose methods do nothing.
"""
from __future__ import annotations

import json
import os

import numpy as np


class MetricWriter:
    """`scalars`, `audio` and `image` to `<workdir>/tensorboard`, scalars also to metrics.jsonl."""

    def __init__(self, workdir: str, *, enabled: bool = True):
        self.enabled = enabled
        self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if enabled:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(logdir=os.path.join(workdir, "tensorboard"))

    def scalars(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self._tb.add_scalar(name, float(value), step)
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps({"step": int(step), **{k: _plain(v) for k, v in values.items()}}) + "\n")

    def record(self, step: int, values: dict) -> None:
        """A JSON-only record (e.g. evaluation results with lists)."""
        if self.enabled:
            with open(self.jsonl_path, "a") as f:
                f.write(json.dumps({"step": int(step), **values}) + "\n")

    def audio(self, step: int, name: str, wave: np.ndarray, sample_rate: int) -> None:
        if self.enabled:
            wave = np.asarray(wave, np.float32)
            wave = wave[:, 0] if wave.ndim == 2 else wave
            self._tb.add_audio(name, np.clip(wave, -1, 1), step, sample_rate=sample_rate)

    def image(self, step: int, name: str, image: np.ndarray) -> None:
        if self.enabled:
            self._tb.add_image(name, image, step, dataformats="HWC")

    def flush(self) -> None:
        if self.enabled:
            self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._tb.close()


def _plain(value):
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()

"""Conditions of a sampling request (`sample.py` flags) -> condition pytrees for `generate`.

    cond, negative = request_conditions(model, num=4, prompt="a soft flute note", seconds=0.75)
    cond["text"]      # {"ids", "mask"} [4, S]; cond["timing"]: seconds_start 0, seconds_total 0.75

Every flag needs the matching conditioner in the model, and says which config trains one when it
is missing. Bad input names the problem: an empty prompt is unconditional (logged), a MIDI file
with notes outside the model's range names the range, a mask outside the clip names its length.
"""
from __future__ import annotations

import logging
from typing import Optional

import jax.numpy as jnp
import numpy as np

from diffjax.audio import io as audio_io
from diffjax.audio import notes as notes_lib
from diffjax.conditioners import frame_mask, host_condition
from diffjax.model import DataSpec, DiffusionModel

log = logging.getLogger("diffjax")
TRAINS = {"label": "configs/conditional.py", "text": "configs/text_to_audio.py", "timing": "configs/text_to_audio.py",
          "notes": "configs/notes_to_audio.py", "inpaint": "configs/inpaint.py"}


def require(model: DiffusionModel, name: str, flag: str) -> None:
    """Raises unless the model has the conditioner `name` that `flag` needs."""
    if name not in model.conditioners:
        raise ValueError(f"{flag} needs a model trained with the {name!r} conditioner ({TRAINS[name]}); this model's "
                         f"conditions: {sorted(model.conditioners) or 'none'}")


def resolve_label(label: Optional[str], spec: DataSpec) -> Optional[int]:
    """A class name or index -> index; an unknown name lists the valid ones."""
    if label is None:
        return None
    names = list(spec.class_names)
    if label.isdigit() and int(label) < max(len(names), spec.num_classes):
        return int(label)
    if label in names:
        return names.index(label)
    raise ValueError(f"unknown class {label!r}; valid classes: {', '.join(names)} (or their indices)")


def read_clip(path: str, spec: DataSpec) -> np.ndarray:
    """A wav at the model's rate and channels, `[L, C]` (any length)."""
    return audio_io.read_audio(path, sample_rate=spec.sample_rate, channels=spec.shape[1])


def fit_window(audio: np.ndarray, length: int) -> np.ndarray:
    """`[L, C]` cut or zero-padded to the model's window `[length, C]`."""
    if audio.shape[0] < length:
        audio = np.pad(audio, ((0, length - audio.shape[0]), (0, 0)))
    return audio[:length]


def inpaint_condition(model: DiffusionModel, init: np.ndarray, mask_start: float, mask_end: float,
                      num: int) -> dict:
    """Trained inpainting of `[mask_start, mask_end)` seconds of `init` [L, C] (the model's window)."""
    length, _ = model.spec.shape
    seconds = length / model.spec.sample_rate
    conditioner = model.conditioners["inpaint"]
    fps = conditioner.num_frames / seconds
    mask = np.asarray(frame_mask(conditioner.num_frames, fps, mask_start, mask_end, seconds))
    known = np.asarray(model.codec.encode(jnp.asarray(fit_window(init, length)[None])))
    known = known * mask.reshape((1, -1) + (1,) * (known.ndim - 2))
    return {"known": np.repeat(known, num, axis=0), "mask": np.repeat(mask[None], num, axis=0)}


def request_conditions(model: DiffusionModel, *, num: int, label: Optional[str] = None,
                       prompt: Optional[str] = None, negative_prompt: Optional[str] = None,
                       notes: Optional[str] = None, seconds: Optional[float] = None,
                       timing: bool = True) -> tuple[Optional[dict], Optional[dict]]:
    """`(cond, negative)` for `num` samples from the request's flags (None: nothing given).

    `seconds` becomes the timing condition (`seconds_start` 0, `seconds_total` = seconds) when the
    model has one and `timing` is set (long-form pieces condition each window on the full window).
    """
    raw: dict = {}
    index = resolve_label(label, model.spec)
    if index is not None:
        require(model, "label", "--class")
        raw["label"] = np.full(num, index, np.int32)
    if prompt is not None:
        require(model, "text", "--prompt")
        if prompt.strip():
            raw["caption"] = np.array([prompt] * num, object)
        else:
            log.warning("--prompt is empty: generating unconditionally on text (the null caption)")
    if notes is not None:
        require(model, "notes", "--notes")
        events = notes_lib.read_midi(notes, max_seconds=model.spec.shape[0] / model.spec.sample_rate)
        model.conditioners["notes"].roll(events[None], source=notes)  # range check, naming the file
        raw["events"] = np.repeat(events[None], num, axis=0)
    if seconds is not None and timing and "timing" in model.conditioners:
        raw["seconds_start"] = np.zeros(num, np.float32)
        raw["seconds_total"] = np.full(num, seconds, np.float32)
    cond = host_condition(model.conditioners, raw) or None
    negative = None
    if negative_prompt is not None:
        require(model, "text", "--negative_prompt")
        negative = host_condition(model.conditioners, {"caption": np.array([negative_prompt] * num, object)})
    return cond, negative


def parse_scales(text: Optional[str], model: DiffusionModel) -> Optional[dict]:
    """`"text=4,timing=1"` -> `{"text": 4.0, "timing": 1.0}`; unknown names list the model's conditions."""
    if not text:
        return None
    scales = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in model.conditioners:
            raise ValueError(f"--cfg_scales takes name=scale pairs over this model's conditions "
                             f"{sorted(model.conditioners)}; got {item!r}")
        scales[name.strip()] = float(value)
    return scales

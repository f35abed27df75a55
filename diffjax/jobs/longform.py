"""Long-form generation by continuation: a piece many windows long, generated window by window by a
model trained with the inpainting conditioner (`conditioning.inpaint`, causal masks).

Window k (T model frames) is conditioned on the last K frames of window k-1 (the overlap) through
the inpainting mask; its first K frames are then set to exactly those frames, so each window starts
where the previous one ended. Windows are decoded one by one and overlap-added with a raised-cosine
crossfade over the samples they share. With `prefix` audio (`sample.py --continue_from`), the
prefix's last window plays the role of window 0.

    piece = generate_long(model, params, sampling_config=..., seeds=[0], seconds=30.0,
                          overlap_seconds=0.25, cond={"text": ...})
    piece.audio   # [B, round(30 * sr), C]; piece.latents: one [B, T, ...] per window
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.jobs.generation import generate
from diffjax.model import DiffusionModel


@dataclasses.dataclass(frozen=True)
class LongForm:
    audio: np.ndarray            # [B, N, C], N = round(seconds * sample_rate)
    latents: tuple               # per window: [B, T, ...] in model space
    offsets: tuple               # per window: its first sample in `audio` (the prefix's window first)
    overlap_frames: int
    hop: int                     # audio samples per model frame
    nfe: int                     # denoiser calls per window


def frame_hop(model: DiffusionModel) -> int:
    """Audio samples per model-space frame, from the codec's shapes at two lengths (1 for waveforms,
    the STFT hop for mel or complex-STFT frames, the autoencoder's hop for latents)."""
    length, channels = model.spec.shape
    probe = 8192

    def frames(n):
        return jax.eval_shape(model.codec.encode, jax.ShapeDtypeStruct((1, n, channels), jnp.float32)).shape[1]

    return probe // (frames(length + probe) - frames(length))


def crossfade(previous: np.ndarray, following: np.ndarray) -> np.ndarray:
    """Overlap-add of two signals over their common span `[B, n, C]` with complementary raised-cosine
    ramps (`w + (1 - w) = 1`, so identical signals pass unchanged)."""
    n = previous.shape[1]
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    ramp = ramp[None, :, None].astype(previous.dtype)
    return (1.0 - ramp) * previous + ramp * following


def _check(model: DiffusionModel, overlap: int, frames: int) -> None:
    if "inpaint" not in model.conditioners:
        raise ValueError("long-form generation and --continue_from need a model trained with the inpainting "
                         f"conditioner (configs/inpaint.py); this model's conditions: {sorted(model.conditioners) or 'none'}")
    if not 1 <= overlap < frames:
        raise ValueError(f"the overlap must be 1..{frames - 1} model frames (less than the window); got {overlap}")


def generate_long(model: DiffusionModel, params: Any, *, sampling_config: Mapping, seeds: Sequence[int],
                  seconds: float, overlap_seconds: float, cond: Optional[Mapping] = None,
                  prefix: Optional[np.ndarray] = None, **generate_kwargs) -> LongForm:
    """A piece of `seconds` (including `prefix` [B, L0, C] if given) generated window by window.

    Args:
      model, params, sampling_config, seeds, generate_kwargs: as `jobs.generation.generate`
        (sampler, nfe, cfg_scale, negative, ...); window k uses seeds offset by k * 1000003.
      seconds: the length of the whole piece, prefix included.
      overlap_seconds: audio shared by consecutive windows (rounded to model frames).
      cond: conditions other than 'inpaint', the same for every window (a prompt, a label).
    """
    length, _ = model.spec.shape
    rate = model.spec.sample_rate
    frames = model.latent_shape[0]
    hop = frame_hop(model)
    overlap = int(round(overlap_seconds * rate / hop))
    _check(model, overlap, frames)
    total = int(round(seconds * rate))
    batch = len(seeds)
    inpaint = model.conditioners["inpaint"]
    mask = np.zeros((batch, frames), np.float32)
    mask[:, :overlap] = 1.0
    shift = (frames - overlap) * hop  # samples between consecutive window starts

    latents, offsets, audio, previous = [], [], None, None
    if prefix is not None:
        prefix = np.asarray(prefix, np.float32)
        window = prefix[:, -length:]
        if window.shape[1] < length:
            window = np.pad(window, ((0, 0), (length - window.shape[1], 0), (0, 0)))
        previous = np.asarray(model.codec.encode(jnp.asarray(window)))
        audio, offsets = prefix, [prefix.shape[1] - length]
    nfe = 0
    while audio is None or audio.shape[1] < total:
        k = len(latents)
        window_cond = dict(cond or {})
        if previous is None:  # the first window of a piece without prefix: nothing known
            window_cond["inpaint"] = jax.tree.map(np.asarray, inpaint.null(batch))
        else:
            known = np.zeros_like(previous)
            known[:, :overlap] = previous[:, frames - overlap:]
            window_cond["inpaint"] = {"known": known, "mask": mask}
        out = generate(model, params, sampling_config=sampling_config, seeds=[s + 1000003 * (k + 1) for s in seeds],
                       cond=window_cond, **generate_kwargs)
        nfe = out.nfe
        latent = np.asarray(out.latent)  # its known frames are exactly the previous window's (generate)
        decoded = np.asarray(model.codec.decode(jnp.asarray(latent), length))
        audio, offset = _append(audio, offsets, decoded, shift)
        offsets.append(offset)
        latents.append(latent)
        previous = latent
    return LongForm(audio=audio[:, :total], latents=tuple(latents), offsets=tuple(offsets), overlap_frames=overlap,
                    hop=hop, nfe=nfe)


def _append(audio: Optional[np.ndarray], offsets: list, decoded: np.ndarray, shift: int) -> tuple[np.ndarray, int]:
    """`audio` extended by the window `decoded` [B, L, C] starting `shift` samples after the last
    window, crossfaded over the samples they share."""
    if audio is None:
        return decoded, 0
    offset = offsets[-1] + shift
    shared = audio.shape[1] - offset
    if shared <= 0:
        raise ValueError("consecutive windows do not overlap in audio; raise the overlap")
    shared = min(shared, decoded.shape[1])
    joined = crossfade(audio[:, offset:offset + shared], decoded[:, :shared])
    return np.concatenate([audio[:, :offset], joined, decoded[:, shared:]], axis=1), offset


def num_windows(model: DiffusionModel, seconds: float, overlap_seconds: float) -> int:
    """Windows `generate_long` needs for a piece of `seconds` without prefix."""
    length = model.spec.shape[0]
    hop = frame_hop(model)
    overlap = int(round(overlap_seconds * model.spec.sample_rate / hop))
    shift = (model.latent_shape[0] - overlap) * hop
    return 1 + max(0, math.ceil((seconds * model.spec.sample_rate - length) / shift))

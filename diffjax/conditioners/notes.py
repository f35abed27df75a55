"""Notes conditioning (MIDI-to-audio, as Magenta's music-spectrogram-diffusion, Hawthorne et al.
2022, but frame-aligned): note events -> a piano roll on the model's frames, concatenated to the
network's input channels.

    notes = get_conditioner("notes", latent_shape=(63, 128), frames_per_second=63.0)
    value = notes.host_value({"events": events})     # events float32 [B, E, 4]: pitch, onset s, duration s, velocity
    value["roll"]   # float32 [B, T, P, 2]: onset, velocity while sounding (diffjax.audio.notes)
    value["given"]  # float32 [B]: 1, or 0 for the null value (no notes given: unconditional)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.audio import notes as notes_lib
from diffjax.conditioners.base import CONDITIONERS, AbstractConditioner

Array = jax.Array


class RollEmbedder(nn.Module):
    """`{"roll" [B, T, P, 2], "given" [B]}` -> `{"concat": [B, T, 2P + 1]}`: the roll's channels
    and a 'notes given' channel (0 for the null value, so silence and 'no condition' differ)."""

    @nn.compact
    def __call__(self, value: Mapping[str, Array]) -> dict:
        roll = jnp.asarray(value["roll"], jnp.float32)
        b, t = roll.shape[:2]
        given = jnp.broadcast_to(jnp.asarray(value["given"], jnp.float32)[:, None, None], (b, t, 1))
        return {"concat": jnp.concatenate([roll.reshape(b, t, -1), given], axis=-1)}


@CONDITIONERS.register("notes")
@dataclasses.dataclass(frozen=True)
class NotesConditioner(AbstractConditioner):
    """Note events (batch key `events`, `[B, E, 4]`, padding rows have pitch -1) as a piano roll.

    Attributes:
      latent_shape: one example in model space (its first axis is the frame axis T; from the model).
      frames_per_second: model frames per second of audio (from the model).
      low_pitch, high_pitch: the MIDI range of the roll (inclusive); events outside it are an error
        naming the range.
      dropout: per example, the roll replaced by the null value in training.
    """

    latent_shape: tuple
    frames_per_second: float
    low_pitch: int = 24
    high_pitch: int = 96
    dropout: float = 0.1

    def __post_init__(self):
        if not 0 <= self.low_pitch <= self.high_pitch <= 127:
            raise ValueError(f"conditioning.notes needs 0 <= low_pitch <= high_pitch <= 127, got "
                             f"{self.low_pitch}..{self.high_pitch}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"conditioning.notes.dropout must be in [0, 1), got {self.dropout}")

    @property
    def num_frames(self) -> int:
        return int(self.latent_shape[0])

    @property
    def num_pitches(self) -> int:
        return int(self.high_pitch) - int(self.low_pitch) + 1

    def null(self, batch_size: int) -> dict:
        return {"roll": jnp.zeros((batch_size, self.num_frames, self.num_pitches, notes_lib.PIANO_ROLL_CHANNELS)),
                "given": jnp.zeros((batch_size,))}

    def roll(self, events: np.ndarray, *, source: str = "the batch") -> dict[str, np.ndarray]:
        """Events `[B, E, 4]` -> the value (`roll`, `given`); pitches outside the range raise."""
        events = np.asarray(events, np.float32)
        notes_lib.check_pitch_range(events, int(self.low_pitch), int(self.high_pitch), source=source)
        roll = notes_lib.events_to_roll(events, num_frames=self.num_frames,
                                        frames_per_second=float(self.frames_per_second),
                                        low_pitch=int(self.low_pitch), high_pitch=int(self.high_pitch))
        return {"roll": roll.astype(np.float32), "given": np.ones((events.shape[0],), np.float32)}

    def host_value(self, batch: Mapping[str, Any]):
        return None if "events" not in batch else self.roll(batch["events"])

    def train_value(self, value: dict, x0: Array, key: Array) -> dict:
        return value

    def network_inputs(self, value: dict) -> dict:
        return {"notes": {"roll": jnp.asarray(value["roll"], jnp.float32),
                          "given": jnp.asarray(value["given"], jnp.float32)}}

    def network_kwargs(self) -> dict:
        return {}

    def embedder(self) -> nn.Module:
        return RollEmbedder()

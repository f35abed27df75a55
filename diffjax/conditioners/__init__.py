"""Conditioners (DESIGN.md, "Conditioning is data"): one registry, one class per kind of condition.

- `label`: a class label through the network's class embedding;
- `text`: captions through a project-trained vocabulary and a jointly trained text encoder;
- `timing`: `seconds_start` / `seconds_total` number embeddings (Stable Audio);
- `notes`: note events as a frame-aligned piano roll;
- `inpaint`: known frames and their mask (trained inpainting and continuation).

See `base` for the interface and `network` for how embedders reach the backbone.
"""
from diffjax.conditioners.base import (CONDITIONERS, AbstractConditioner, build_conditioners, drop_conditions,
                                       get_conditioner, host_condition, merge_network_kwargs, network_condition,
                                       null_condition, training_condition)
from diffjax.conditioners.inpaint import MASK_KINDS, InpaintConditioner, draw_masks, frame_mask
from diffjax.conditioners.label import LabelConditioner
from diffjax.conditioners.network import ConditionedNetwork, conditioned_network
from diffjax.conditioners.notes import NotesConditioner
from diffjax.conditioners.text import TEXT_ENCODERS, TextConditioner, tokenize, train_tokenizer
from diffjax.conditioners.timing import TIMING_KEYS, TimingConditioner

__all__ = ["CONDITIONERS", "AbstractConditioner", "build_conditioners", "drop_conditions", "get_conditioner",
           "host_condition", "merge_network_kwargs", "network_condition", "null_condition", "training_condition",
           "MASK_KINDS", "InpaintConditioner", "draw_masks", "frame_mask", "LabelConditioner", "ConditionedNetwork",
           "conditioned_network", "NotesConditioner", "TEXT_ENCODERS", "TextConditioner", "tokenize",
           "train_tokenizer", "TIMING_KEYS", "TimingConditioner"]

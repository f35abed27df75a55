"""Trained inpainting and continuation (Stable Audio's inpainting model, JEN-1): the known mel frames
and their mask are concatenated to the DiT's input; training draws a gap (40%), a known prefix
(40%: continuation) or nothing known (20%: unconditional) per example. One model then inpaints
(`--init --mask_start --mask_end`), continues (`--continue_from --seconds 30`: long-form, window by
window) and generates from nothing.

    python experiments/train.py --config configs/inpaint.py --workdir runs/inpaint
    python experiments/sample.py --workdir runs/inpaint --init in.wav --mask_start 0.4 --mask_end 0.6
    python experiments/sample.py --workdir runs/inpaint --continue_from in.wav --seconds 30
"""
import ml_collections

from configs import default


def get_config(arg: str = ""):
    config = default.get_config()
    config.conditioning.inpaint = ml_collections.ConfigDict(dict(segment=0.4, causal=0.4, full=0.2,
                                                                 max_gap_fraction=0.5))
    if "smoke" in arg.split(","):
        default.apply_smoke(config)
    return config

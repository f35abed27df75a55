"""Waveform model: the small UNet1D on 0.25 s crops of raw 16 kHz audio. Restoration
(experiments/restore.py) and exact likelihoods need a waveform prior; this is the one to train.

    python experiments/train.py --config configs/waveform.py --workdir runs/waveform

6000 steps take 52 min on 2 CPU cores; the restoration tables (docs/restoration.md) use that
model. Its samples are still barely pitched (pitch confidence 0.037; data 0.316, noise 0.010;
1000 steps: 0.010): it needs GPU-scale training to become musical.
"""
import ml_collections

from configs import default


def get_config(arg: str = ""):
    config = default.get_config()
    config.data.crop_seconds = 0.25  # 4000 samples
    config.codec.name = "waveform"  # takes no keys; the other codecs' sub-sections are ignored
    config.model = ml_collections.ConfigDict(dict(name="unet1d", size="small",
                                                  dtype="float32"))
    config.precond.sigma_data = 0.22  # waveform RMS of synth_music (experiments/estimate_sigma_data.py)
    config.optim.decay_steps = 6000
    config.training.num_steps = 6000
    config.training.checkpoint_every = 1000
    config.training.sample_every = 2000
    config.sampling.sampler = "heun"  # deterministic samplers did best on waveforms (flatness 0.069 vs 0.14)
    if "smoke" in arg.split(","):
        default.apply_smoke(config)
    return config

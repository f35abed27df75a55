"""DiffWave (Kong et al. 2021), unconditional, on the embedded music: the paper's 'base' network
(30 residual layers x 64 channels) trained with the EDM objective.

    python experiments/train.py --config configs/diffwave.py --workdir runs/diffwave
"""
from configs import default, waveform


def get_config(arg: str = ""):
    config = waveform.get_config()
    config.model.name = "diffwave"
    config.model.size = "base"
    config.training.batch_size = 8
    if "smoke" in arg.split(","):
        default.apply_smoke(config)
    return config

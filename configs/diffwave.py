"""DiffWave (Kong et al. 2021), unconditional, on the embedded music: the paper's 'base' network
(30 residual layers x 64 channels) trained with the EDM objective.

    python experiments/train.py --config configs/diffwave.py --workdir runs/diffwave
"""
from configs import default, waveform


def get_config(arg: str = ""):
    config = waveform.get_config()
    config.model.name = "diffwave"
    config.model.size = "base"
    # One nn.scan over the 30 layers (diffjax/models/scan.py): the train step compiles in 24 s
    # instead of 95 s (benchmarks/compile.py). Older workdirs keep their saved config (unscanned)
    # and load as before; diffjax.models.scan.stack_layers converts their parameters.
    config.model.scan_layers = True
    config.training.batch_size = 8
    if "smoke" in arg.split(","):
        default.apply_smoke(config)
    return config

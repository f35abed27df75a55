"""Class-conditional generation of the embedded music's 9 instrument classes, trained with label
dropout for classifier-free guidance (Ho & Salimans 2022).

    python experiments/train.py --config configs/conditional.py --workdir runs/cond
    python experiments/sample.py --workdir runs/cond --class flute --cfg 2.0
"""
import ml_collections

from configs import default


def get_config(arg: str = ""):
    config = default.get_config()
    # synth_music's 9 classes (flute clarinet brass pluck bell epiano kick snare hihat) from the data;
    # the null label with probability 0.1 in training, for classifier-free guidance.
    config.conditioning.label = ml_collections.ConfigDict(dict(dropout=0.1))
    config.sampling.cfg_scale = 2.0
    if "smoke" in arg.split(","):
        default.apply_smoke(config)
    return config

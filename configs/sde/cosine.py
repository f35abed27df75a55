"""SDE ablation with the 'cosine' process (see configs/sde/common.py).

    python experiments/train.py --config configs/sde/cosine.py --workdir runs/sde_cosine
"""
from configs.sde.common import ablation_config as _ablation


def get_config(arg: str = ""):
    return _ablation("cosine", arg)

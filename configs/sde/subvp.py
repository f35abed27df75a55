"""SDE ablation with the 'subvp' process (see configs/sde/common.py).

    python experiments/train.py --config configs/sde/subvp.py --workdir runs/sde_subvp
"""
from configs.sde.common import ablation_config as _ablation


def get_config(arg: str = ""):
    return _ablation("subvp", arg)

"""SDE ablation with the 've' process (see configs/sde/common.py).

    python experiments/train.py --config configs/sde/ve.py --workdir runs/sde_ve
"""
from configs.sde.common import ablation_config as _ablation


def get_config(arg: str = ""):
    return _ablation("ve", arg)

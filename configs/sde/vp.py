"""SDE ablation with the 'vp' process (see configs/sde/common.py).

    python experiments/train.py --config configs/sde/vp.py --workdir runs/sde_vp
"""
from configs.sde.common import ablation_config as _ablation


def get_config(arg: str = ""):
    return _ablation("vp", arg)

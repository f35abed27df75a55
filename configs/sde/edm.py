"""SDE ablation with the 'edm' process (see configs/sde/common.py).

    python experiments/train.py --config configs/sde/edm.py --workdir runs/sde_edm
"""
from configs.sde.common import ablation_config as _ablation


def get_config(arg: str = ""):
    return _ablation("edm", arg)

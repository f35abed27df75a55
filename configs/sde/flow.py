"""SDE ablation with the 'flow' process (see configs/sde/common.py).

    python experiments/train.py --config configs/sde/flow.py --workdir runs/sde_flow
"""
from configs.sde.common import ablation_config as _ablation


def get_config(arg: str = ""):
    return _ablation("flow", arg)

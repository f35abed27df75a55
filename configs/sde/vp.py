"""SDE ablation: the quick-start data and network with the 'vp' process.

Only the process changes between configs/sde/*.py: noise levels are drawn uniformly in the
process's time and sampling uses a grid uniform in that time, so the schedule, the effective
training weighting and the time grid follow the process, and nothing else does.

    python experiments/train.py --config configs/sde/vp.py --workdir runs/sde_vp
"""
from configs.sde import common


def get_config(arg: str = ""):
    return common.ablation_config("vp", arg)

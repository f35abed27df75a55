"""The shared base of the SDE ablation configs (configs/sde/<process>.py).

Only the process changes between them: noise levels are drawn uniformly in the process's time and
sampling uses a grid uniform in that time, so the schedule, the effective training weighting and
the time grid follow the process, and nothing else does (DESIGN.md).
"""
from configs import default


def ablation_config(process: str, arg: str = ""):
    config = default.get_config(arg)
    config.sde.name = process
    config.loss.noise_levels = "uniform_t"  # t ~ U[t_min, T]: the process sets the noise schedule
    config.sampling.grid = "uniform_t"  # uniform in the process's time
    return config

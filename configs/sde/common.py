"""The shared base of the SDE ablation configs (configs/sde/<process>.py)."""
from configs import default


def ablation_config(process: str, arg: str = ""):
    config = default.get_config(arg)
    config.sde.name = process
    config.loss.noise_levels = "uniform_t"  # t ~ U[t_min, T]: the process sets the noise schedule
    config.sampling.grid = "uniform_t"  # uniform in the process's time
    return config

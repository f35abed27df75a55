"""2-D Gaussian mixture with a small MLP: the toy run of the foundations (about a minute on CPU).

    python experiments/train.py --config configs/toy_gmm.py --workdir runs/toy_gmm
    python experiments/train.py --config configs/toy_gmm.py --workdir runs/toy_vp --config.sde.name=vp
"""
from configs import default


def get_config(arg: str = ""):
    config = default.get_config(arg)
    config.data.name = "gmm"
    config.precond.sigma_data = 0.71  # sqrt(radius^2 / 2 + std^2) for 8 modes on the unit circle
    return config

"""Improved consistency training (Song & Dhariwal 2023): a 1-step model without a teacher.

    python experiments/train.py --config configs/distill_ct.py --workdir runs/ict
    python experiments/train.py --config configs/distill_ct.py:toy --workdir runs/ict_toy   # 2-D mixture

The paper's recipe: pseudo-Huber distance with c = 0.00054 sqrt(d), log-normal pairs over the
discretisation (P_mean = -1.1, P_std = 2.0), lambda = 1/(sigma_n+1 - sigma_n), N doubling from
s0 + 1 = 11 to s1 + 1 = 1281 over training (K' = K / 8), and target decay mu = 0 (theta- =
stop_gradient(theta)). `--config.distill.curriculum=ct` with `target=ema` is the original CT
(Song et al. 2023, App. C: N ~ sqrt(k), adaptive mu(k)), whose target theta- is kept in the
train state's method state (`{"target": ...}`), not in an EMA.
"""
import ml_collections

from configs import default, toy_gmm


def get_config(arg: str = ""):
    args = arg.split(",")
    toy = "toy" in args
    config = (toy_gmm if toy else default).get_config("smoke" if "smoke" in args else "")
    config.precond.name = "consistency"

    d = config.distill = ml_collections.ConfigDict()
    d.kind = "ct"  # no teacher
    d.curriculum = "ict"  # ict | ct | fixed
    d.curriculum_kwargs = ml_collections.ConfigDict(dict(s0=10, s1=1280))
    d.level_sampling = "lognormal"
    d.level_sampling_kwargs = ml_collections.ConfigDict(dict(p_mean=-1.1, p_std=2.0))
    d.weighting = "inverse_gap"
    d.distance = "pseudo_huber"  # c = 0.00054 sqrt(d) by default
    d.distance_kwargs = ml_collections.ConfigDict()
    d.target = "online"  # mu = 0
    d.target_decay = 0.95  # mu of target='ema' with a curriculum that has no mu(k) ('fixed')

    config.optim.warmup_steps = 0
    config.sampling.sampler = "consistency"
    config.sampling.grid = "nested_karras"
    config.sampling.num_steps = 1
    return config

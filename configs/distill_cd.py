"""Consistency distillation (Song et al. 2023, Alg. 2) of a trained teacher into a 1-step student.

    python experiments/train.py --config configs/distill_cd.py --workdir runs/cd \
        --config.distill.teacher_workdir=runs/default
    python experiments/sample.py --workdir runs/cd --sampler consistency --grid nested_karras --nfe 1
    python experiments/train.py --config configs/distill_cd.py:toy --workdir runs/cd_toy   # 2-D mixture

The student shares the teacher's process, data and network (it starts from the teacher's EMA
weights) and swaps the parameterisation for 'consistency' (f(x, sigma_min) = x exactly). The
teacher's config is read from its workdir; a teacher with another process or data is rejected.
`:toy` distils the 2-D mixture (teacher runs/toy_gmm; `--config.distill.exact_teacher=True` uses
the mixture's exact denoiser instead); `:smoke` shrinks everything for CPU tests.
"""
import ml_collections

from configs import default, toy_gmm


def get_config(arg: str = ""):
    args = arg.split(",")
    toy = "toy" in args
    config = (toy_gmm if toy else default).get_config("smoke" if "smoke" in args else "")
    config.precond.name = "consistency"  # c_skip, c_out with the boundary at the process's sigma_min

    d = config.distill = ml_collections.ConfigDict()
    d.kind = "cd"  # cd | ct | progressive
    d.teacher_workdir = "runs/toy_gmm" if toy else "runs/default"  # a training workdir (config.json + checkpoints/)
    d.teacher_ema = 0  # which of the teacher's EMAs teaches (-1: raw weights)
    d.exact_teacher = False  # toy data only: the closed-form denoiser of the mixture is the teacher
    d.init_from_teacher = True  # start from the teacher's weights (needs the same config.model)
    d.teacher_sampler = "heun"  # any registered deterministic sampler: one step between adjacent levels
    d.curriculum = "fixed"  # fixed | ct | ict (diffjax.distillation.schedules)
    d.curriculum_kwargs = ml_collections.ConfigDict(dict(num_scales=18))  # N (CIFAR-10 CD: 18)
    d.level_sampling = "uniform"  # uniform | lognormal: which adjacent pair (sigma_n, sigma_n+1)
    d.level_sampling_kwargs = ml_collections.ConfigDict()
    d.weighting = "uniform"  # uniform | inverse_gap
    d.distance = "l2"  # l2 | l1 | pseudo_huber | mrstft (multi-resolution STFT, waveforms)
    d.distance_kwargs = ml_collections.ConfigDict()
    d.target = "ema"  # ema: theta- trails theta (TrainState.method_state) | online: theta- = stop_gradient(theta)
    d.target_decay = 0.95  # mu per step of theta- <- mu theta- + (1 - mu) theta (paper); 'ct' curriculum: mu(k)

    # training.ema_halflife_examples are real EMAs only (the first samples); theta- is not one of them.
    config.optim.learning_rate = 4e-4  # the paper's CD rate (Adam)
    config.optim.warmup_steps = 0
    config.sampling.sampler = "consistency"
    config.sampling.grid = "nested_karras"  # levels of the multistep schedule; 1 step = [sigma_max, 0]
    config.sampling.num_steps = 1
    return config

"""Progressive distillation (Salimans & Ho 2022): 32 teacher DDIM steps -> 2 student steps in 4 rounds.

    python experiments/train.py --config configs/distill_progressive.py --workdir runs/pd \
        --config.distill.teacher_workdir=runs/default
    python experiments/sample.py --workdir runs/pd --sampler ddim --grid nested_karras --nfe 2

Round r (training.num_steps / rounds steps each) distils 32 / 2^r teacher steps into half as many;
the round's teacher is the student at the end of the previous round (kept in the train state's
method state, `{"round_teacher": ...}`, not in an EMA). All
rounds use the 'nested_karras' grid, whose N/2-step version keeps every other level of the N-step
one, so the final student samples on exactly the levels it learnt. The student keeps the teacher's
parameterisation and starts from its weights.
"""
import ml_collections

from configs import default, toy_gmm


def get_config(arg: str = ""):
    args = arg.split(",")
    toy = "toy" in args
    config = (toy_gmm if toy else default).get_config("smoke" if "smoke" in args else "")

    d = config.distill = ml_collections.ConfigDict()
    d.kind = "progressive"
    d.teacher_workdir = "runs/toy_gmm" if toy else "runs/default"
    d.teacher_ema = 0
    d.exact_teacher = False
    d.init_from_teacher = True
    d.teacher_sampler = "ddim"  # DDIM (= Euler in the VE view), as in the paper
    d.teacher_steps = 32  # the round-0 teacher's steps
    d.rounds = 4  # 32 -> 16 -> 8 -> 4 -> 2

    config.training.num_steps = 4 * 1000
    config.optim.decay_steps = config.training.num_steps
    config.optim.warmup_steps = 0
    config.sampling.sampler = "ddim"
    config.sampling.grid = "nested_karras"
    config.sampling.num_steps = d.teacher_steps // 2**d.rounds
    if "smoke" in args:
        d.teacher_steps, d.rounds = 4, 2
        config.training.num_steps = 4
        config.sampling.num_steps = 1
    return config

"""The jobs layer (DESIGN.md, "Layers", 6): the only code that reads a workdir, a config file or
user files. Each main in `experiments/` calls one function here.

    from diffjax import jobs
    jobs.train_and_evaluate(config, workdir)        # experiments/train.py
    loaded = jobs.load(workdir, step=None, ema=0)   # the one path from a checkpoint to a model object
    jobs.run_sample_request(SampleRequest(...))     # experiments/sample.py
"""
from diffjax.jobs.workdir import Loaded, load, load_config  # noqa: F401
from diffjax.jobs.generation import AutoGuide, Generated, generate  # noqa: F401
from diffjax.jobs.sample import SampleRequest, run_sample_request  # noqa: F401
from diffjax.jobs.train import train_and_evaluate  # noqa: F401

"""Likelihood of a trained checkpoint (experiments/likelihood.py, diffjax.jobs.likelihood).

    python experiments/likelihood.py --config configs/likelihood.py --workdir runs/toy_gmm
    python experiments/likelihood.py --config configs/likelihood.py --workdir runs/music \
        --config.quantiser.name=pcm16 --config.likelihood.divergence=hutchinson \
        --config.likelihood.stepsize=fixed --config.likelihood.num_steps=32 --config.elbo_samples=16

Every key is defined here with a comment; an unknown key or a key the chosen component does not
take is an error. The checkpoint step is a flag (--step), as it names a file of the workdir.
"""
import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.name = "likelihood"  # result files <workdir>/likelihood/<name>.json and .host<i>of<n>.jsonl
    config.split = "eval"  # dataset split: 'eval' or 'train'
    config.num_examples = 256  # global; rounded down to whole batches
    config.batch_size = 64  # global batch, divisible by the process count
    config.elbo_samples = 0  # > 0: also the ELBO with this many (sigma, eps) draws per example
    config.seed = 0  # probes, dequantisation noise and ELBO draws
    config.ema = 0  # which EMA of the checkpoint (config.training.ema_halflife_examples order); -1: raw weights

    # Discrete data: `name` in diffjax.likelihood.QUANTISERS (pcm16 | pcm8 | mulaw8 | uniform), other
    # keys its kwargs (uniform: levels, low, high); bits are then per code (per audio sample).
    # '' scores continuous data (bits per dimension, which can be negative).
    config.quantiser = ml_collections.ConfigDict()
    config.quantiser.name = ""

    # The PF-ODE solver: the fields of diffjax.likelihood.LikelihoodOptions (docs/likelihood.md).
    config.likelihood = ml_collections.ConfigDict()
    config.likelihood.divergence = "exact"  # 'exact' (small dimension) or 'hutchinson'
    config.likelihood.num_probes = 1  # Hutchinson probes per example, fixed along the trajectory
    config.likelihood.probe = "rademacher"  # 'rademacher' or 'gaussian'
    config.likelihood.max_exact_dim = 256  # the exact trace costs N JVPs per evaluation
    config.likelihood.solver = "tsit5"  # diffjax.likelihood.SOLVERS
    config.likelihood.stepsize = "adaptive"  # 'adaptive' (PID on rtol/atol) or 'fixed' (num_steps, fixed NFE)
    config.likelihood.rtol = 1e-5  # adaptive only
    config.likelihood.atol = 1e-5  # adaptive only
    config.likelihood.num_steps = 32  # fixed: steps; adaptive: initial step = range / num_steps
    config.likelihood.max_steps = 4096  # adaptive only; exceeding it is a reported failure
    config.likelihood.time = "log_sigma"  # ODE time variable: 'log_sigma' or 'sigma'

    if "smoke" in arg.split(","):
        config.num_examples = 8
        config.batch_size = 8
        config.likelihood.stepsize = "fixed"
        config.likelihood.num_steps = 4
    return config

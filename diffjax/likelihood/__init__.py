"""Likelihoods of diffusion models: PF-ODE log-density, the continuous-time ELBO, and their units.

    result = log_likelihood(denoiser, x, sigma_min=0.002, sigma_max=80.0)       # VE view, nats
    result.logp, result.nfe                                                       # [B], []
    result = process_log_likelihood(process, denoiser, x, divergence="hutchinson", key=key)
    bits = bits_per_dim(result.logp, dim)                                         # continuous data
    codes = get_quantiser("pcm16").encode(waveform)                               # [B, L, C] ints
    result = dequantised_log_likelihood(partial(process_log_likelihood, process, denoiser),
                                        codes, quantiser=get_quantiser("pcm16"), key=key)
    bits_per_dim(result.logp, L * C)                                              # bits per audio sample
    bound = process_elbo(process, denoiser, x, key)                               # .elbo, .stderr

`docs/likelihood.md` states what each number is and when it can be negative. Scoring a trained
checkpoint on a dataset split reads a workdir, so it is a job: `diffjax.jobs.likelihood`.
"""
from diffjax.likelihood.divergence import DIVERGENCES, PROBES, exact_trace, hutchinson_trace  # noqa: F401
from diffjax.likelihood.elbo import (ElboResult, elbo, gaussian_diffusion_integral,  # noqa: F401
                                    gaussian_elbo, process_elbo)
from diffjax.likelihood.ode import (SOLVERS, TIME_VARIABLES, LikelihoodOptions,  # noqa: F401
                                    LikelihoodResult, LikelihoodSolverError, check_result,
                                    log_likelihood, process_log_likelihood, solve_log_likelihood,
                                    ve_prior_logp)
from diffjax.likelihood.units import (QUANTISERS, MuLawQuantiser, UniformQuantiser,  # noqa: F401
                                      bits_per_dim, dequantised_log_likelihood, get_quantiser)

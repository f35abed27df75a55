"""Restoration with a trained waveform model (experiments/restore.py, diffjax.jobs.restore).

    # restore a clipped file (clipping threshold read off its peak):
    python experiments/restore.py --config configs/restore.py --workdir W --input clipped.wav --out out.wav
    # simulate clipping of a clean file at 3 dB SDR, then restore it with DPS and 49 Heun NFE:
    python experiments/restore.py --config configs/restore.py --workdir W --input in.wav --out out.wav \
        --config.task.name=declip --config.task.declip.clip_sdr=3 --config.method.name=dps --config.nfe=49
    python experiments/restore.py --config configs/restore.py --workdir W --input in.wav --out out.wav \
        --config.task.name=inpaint --config.task.simulate=True --config.method.name=repaint
    # the evaluation table (task x method) on clean clips, degraded by the job itself:
    python experiments/restore.py --config configs/restore.py --workdir W --reference_dir clean/ \
        --config.evaluation.methods=dps,pigdm,ddnm --table results.md

Every key is defined here with a comment. Each task and method has its keys in a sub-section named
after it (`task.<name>.<key>`, `method.<name>.<key>`); only the chosen one's are used, and a key it
does not take is an error naming the keys it takes. Paths (workdir, input, output, references,
table) and the checkpoint step are flags, not config keys.
"""
import ml_collections
from ml_collections.config_dict import placeholder


def _section(**values) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(values)


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    del arg
    config = ml_collections.ConfigDict()
    config.sampler = "heun"  # sampler under the method: diffjax.sampling.SAMPLERS
    config.nfe = 49  # denoiser calls of the base grid; must be one the sampler can spend (heun: odd)
    config.grid = "karras"  # noise-level grid: diffjax.sampling.GRIDS
    config.seed = 0  # sampling seed (and the simulated degradation's noise: seed + 1)
    config.ema = 0  # which EMA of the checkpoint (config.training.ema_halflife_examples order); -1: raw weights
    config.stereo = "refuse"  # multi-channel input for a mono model: refuse | mixdown | per_channel
    # Long inputs under reverb (windowed mode): denoise this many chunks at a time, rematerialised in
    # the backward pass (less memory, ~1.5x slower); None: all at once.
    config.chunks_per_call = placeholder(int)
    config.overlap_seconds = 0.1  # chunks of long inputs share this: the first half anchored, the second crossfaded
    # A file at a higher rate than the model's: the model restores its band, and above it the output
    # takes the input's band: 'auto' (where the task allows: declip, bwe, upsample; not denoise,
    # dereverb, inpaint) | 'input' | 'none'. Samples the degradation left intact are kept either way.
    config.high_band = "auto"

    # The degradation: `name` in diffjax.restoration.TASKS, its keys in task.<name>.
    config.task = ml_collections.ConfigDict()
    config.task.name = "declip"  # inpaint | declip | softclip | bwe | upsample | denoise | dereverb
    # Degrade --input with the task's operator first (implied by snr and calibrated keys such as
    # declip.clip_sdr, which need the clean signal); the degraded input is written beside --out.
    config.task.simulate = False
    config.task.snr = placeholder(float)  # any task: measurement noise at this SNR (dB) of the clean input
    config.task.noise_sigma = placeholder(float)  # any task: known measurement-noise std
    config.task.inpaint = _section(
        gap_seconds=0.2,  # gap length
        start_seconds=placeholder(float),  # start of the (single) gap; None: centred
        num_gaps=1,  # > 1: that many gaps, evenly spread
        period_seconds=placeholder(float),  # periodic packet loss: one gap per period
    )
    config.task.declip = _section(
        clip_sdr=placeholder(float),  # clip to this SDR in dB of the clean input (simulates)
        clip_threshold=placeholder(float),  # the clipping threshold; None: the input's peak
    )
    config.task.softclip = _section(clip_sdr=placeholder(float), clip_threshold=placeholder(float))  # as declip
    config.task.bwe = _section(
        cutoff=4000.0,  # low-pass cutoff in Hz (blind_bwe fits its own; used only to simulate)
        filter="butterworth",  # butterworth | chebyshev | fir | brickwall | stft_brickwall
    )
    config.task.upsample = _section(factor=2)  # decimation factor (simulation only)
    config.task.denoise = _section()  # the noise level is task.snr or task.noise_sigma
    config.task.dereverb = _section(
        rt60=0.5,  # RT60 of the synthetic RIR (s)
        drr_db=0.0,  # its direct-to-reverberant ratio (dB)
        seed=0,  # its noise tail
        rir_path=placeholder(str),  # a RIR wav file instead of a synthetic one
    )

    # The posterior sampler: `name` in diffjax.restoration.METHODS, its options in method.<name>.
    # None means the method's default; pigdm and ddnm default data_std to the model's sigma_data.
    config.method = ml_collections.ConfigDict()
    config.method.name = "dps"  # replacement | projection | ddrm | dps | pigdm | ddnm | repaint | sdedit | blind_bwe
    config.method.replacement = _section()
    config.method.projection = _section()
    config.method.ddrm = _section()  # needs an operator with an SVD
    config.method.dps = _section(
        zeta=0.3,  # guidance strength (x0_hat moves by zeta sigma per coordinate, RMS)
        normalize="gradient",  # 'gradient' (CQTdiff) or 'residual' (DPS, Chung et al. 2023)
        consistency=False,  # also project x0_hat onto A x = y (noise-free tasks only)
    )
    config.method.pigdm = _section(
        data_std=placeholder(float),  # prior std in r^2; None: the model's precond.sigma_data
        scale=1.0,  # guidance scale
        gaussian_bound=True,  # cap the step at the Gaussian prior's
    )
    config.method.ddnm = _section(data_std=placeholder(float))  # as pigdm
    config.method.repaint = _section(
        jump_length=placeholder(int),  # levels per jump; None: the largest divisor <= 10 of the levels
        resamples=5,  # passes over each block (1: plain replacement); multiplies the NFE
    )
    config.method.sdedit = _section(
        strength=0.5,  # fraction of the grid that is run (1: from scratch)
        consistency="none",  # 'none' (editing) or 'replacement' (restoration)
    )
    config.method.blind_bwe = _section(
        zeta=0.3,  # guidance strength
        normalize="gradient",  # as dps
    )

    # Evaluation mode (--reference_dir): degrade clean clips by each task, restore, score.
    config.evaluation = ml_collections.ConfigDict()
    config.evaluation.tasks = ""  # comma-separated names of diffjax.restoration.tasks.EVAL_TASKS; '': all
    config.evaluation.methods = ""  # comma-separated methods (options from method.<name>); '': method.name
    config.evaluation.max_clips = 8  # clean clips used (sorted by file name)
    return config

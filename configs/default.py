"""Every config key, with a comment. Experiment files import this and override a few keys.

    python experiments/train.py --config configs/default.py --workdir runs/default
    python experiments/train.py --config configs/default.py:smoke --workdir /tmp/smoke   # tiny, for CI

Each concept reads its own section: `name` picks the registered implementation and the other keys
are its constructor kwargs (paper defaults when omitted), so `--config.sde.name=vp` is a one-line
ablation.
"""
import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0  # data order, init and per-step keys all derive from it

    # Data: `name` in diffjax.data.DATASETS (synth_music | folder; gaussian | gmm in toy_gmm.py).
    # The keys at the top are taken by every audio dataset; a sub-section named after a dataset
    # holds its own keys and is used only when that dataset is chosen, so
    # `--config.data.name=folder --config.data.folder.root=DIR` switches datasets. A key the chosen
    # dataset does not take is an error that lists the keys it takes.
    config.data = ml_collections.ConfigDict()
    config.data.name = "synth_music"
    config.data.sample_rate = 16000  # Hz; explicit, never inferred
    config.data.crop_seconds = 1.0  # training crops (here whole clips); 0.25 s for waveforms
    config.data.channels = 1
    # Rendered clips (synth_music), the manifest (folder); None: $XDG_CACHE_HOME/diffjax, else
    # ~/.cache/diffjax.
    config.data.cache_dir = ml_collections.config_dict.placeholder(str)
    # The embedded dataset: synthesised music (notes of 6 instrument families, chords, arpeggios,
    # drums), rendered deterministically on first use and cached.
    config.data.synth_music = ml_collections.ConfigDict()
    config.data.synth_music.clip_seconds = 1.0  # length of the rendered clips
    config.data.synth_music.num_train = 512
    config.data.synth_music.num_eval = 64
    config.data.synth_music.seed = 0  # the synthesis seed (the data order comes from `config.seed`)
    # A subset of synth.INSTRUMENTS, e.g. ("flute", "clarinet", "brass", "pluck", "bell", "epiano")
    # for pitched music only; None: all nine.
    config.data.synth_music.instruments = ml_collections.config_dict.placeholder(tuple)
    # Variable-length training (Stable Audio's padded clips): each example keeps its first u ~
    # U[min_seconds, crop] seconds, then silence (mask 0); seconds_total = u. None: full clips.
    config.data.synth_music.min_seconds = ml_collections.config_dict.placeholder(float)
    # A folder of wav/flac/ogg/mp3 files (diffjax.audio.datasets.AudioFolder), searched recursively.
    # Crops are drawn in proportion to duration; the split and channel conversions are logged.
    config.data.folder = ml_collections.ConfigDict()
    config.data.folder.root = ml_collections.config_dict.placeholder(str)  # required for 'folder'
    config.data.folder.labels_from_dirs = False  # label = top-level sub-folder
    # Share of the total duration in the eval split, in (0, 1); one file is split in time.
    config.data.folder.eval_fraction = 0.05
    config.data.folder.normalize = False  # peak-normalise each file to 0.95
    # Decode each file once, at data.sample_rate and data.channels, into a memory-mapped cache
    # under <data.cache_dir>/audio/ (4 bytes a sample: 1.27 GB per hour of 44.1 kHz stereo);
    # False reads crops from the files (OGG and MP3 are then ~30x slower; benchmarks/data.py).
    config.data.folder.cache = True
    # Drop silent stretches: 50 ms windows with RMS below silence_db (dBFS, e.g. -60) for at least
    # silence_min_seconds. None keeps everything; needs cache=True.
    config.data.folder.silence_db = ml_collections.config_dict.placeholder(float)
    config.data.folder.silence_min_seconds = 1.0
    config.data.folder.follow_symlinks = False  # read links inside root (they may point outside it)
    # Captions for text conditioning: a CSV (header path,caption,...) or JSON-lines file of
    # {"path", "caption", ...}; paths relative to root. None: no captions.
    config.data.folder.metadata = ml_collections.config_dict.placeholder(str)

    # Representation the model works in (diffjax.audio.codecs): mel | waveform | complex_stft | latent.
    # The quick start diffuses log-mel frames (Riffusion-style magnitude diffusion) and decodes
    # them by NNLS + Griffin-Lim: on 2 CPU cores its samples are pitched within 10 minutes, which
    # no waveform or complex-STFT variant we measured was (README, "What the quick start gives").
    # Each codec's keys are in a sub-section named after it ('waveform' takes none), so
    # `--config.codec.name=complex_stft` switches codecs; the sample rate comes from `data`.
    config.codec = ml_collections.ConfigDict()
    config.codec.name = "mel"
    config.codec.mel = ml_collections.ConfigDict()
    config.codec.mel.n_mels = 128  # 80 bands lose pitch in the Griffin-Lim round trip (pYIN 0.16 vs 0.28)
    config.codec.mel.n_fft = 1024
    config.codec.mel.hop = 256  # 1 s -> 63 frames
    config.codec.mel.offset = -7.0  # z = (log mel - offset) / scale: mean ~0 and RMS 1.02 on synth_music
    config.codec.mel.scale = 4.5
    config.codec.mel.layout = "frames"  # [B, T, n_mels]: mel bands as channels of a UNet1D over time
    config.codec.mel.griffin_lim_iters = 32
    # Amplitude-compressed complex STFT (SGMSE; configs/spectrogram.py): F = n_fft // 2 + 1 = 256.
    config.codec.complex_stft = ml_collections.ConfigDict()
    config.codec.complex_stft.n_fft = 510
    config.codec.complex_stft.hop = 128
    config.codec.complex_stft.alpha = 0.5  # |c|^alpha compression
    config.codec.complex_stft.beta = 1.0
    config.codec.complex_stft.layout = "tf"  # tf: [B, T, F, 2C] (UNet2D) | frames: [B, T, F * 2C]
    # The latent space of an autoencoder trained by the project (configs/autoencoder.py,
    # configs/latent.py): z [B, ceil(L / hop), D]; the training data is encoded once into a cache
    # keyed by the autoencoder's weights (training.pre_encode_passes crops per clip).
    config.codec.latent = ml_collections.ConfigDict()
    config.codec.latent.workdir = ""  # the autoencoder's workdir (required for 'latent')

    # Forward process: ve | vp | subvp | edm | cosine | flow (diffjax.sde.SDES), with paper defaults.
    config.sde = ml_collections.ConfigDict()
    config.sde.name = "edm"

    # Parameterisation: eps | x0 | v | score | flow | edm (diffjax.precond.PRECONDS).
    config.precond = ml_collections.ConfigDict()
    config.precond.name = "edm"
    config.precond.sigma_data = 1.0  # RMS of z: experiments/estimate_sigma_data.py (1.02 for the mel codec)
    config.precond.input_scaling = "unit"  # unit (EDM c_in) | process (x_t, as DDPM)
    config.precond.noise_conditioning = "log_sigma"  # log_sigma (EDM) | time (score_sde)

    # Objective: noise-level distribution x weighting (diffjax.losses).
    config.loss = ml_collections.ConfigDict()
    config.loss.noise_levels = "log_normal"  # uniform_t | log_normal | log_uniform | likelihood_importance
    config.loss.noise_levels_kwargs = ml_collections.ConfigDict()  # e.g. p_mean, p_std for log_normal
    config.loss.weighting = "edm"  # eps_mse | snr | v_mse | min_snr | likelihood | edm | sigmoid | native | learned (EDM2 u(sigma))
    config.loss.weighting_kwargs = ml_collections.ConfigDict()  # e.g. gamma (min_snr), bias (sigmoid)
    config.loss.reduction = "mean"  # mean over dimensions | sum (nats-compatible)

    # Conditioning as data (diffjax.conditioners.CONDITIONERS): {name: kwargs}; empty = unconditional.
    # E.g. label = dict(dropout=0.1): the batch's 'label' through a class embedding whose size comes
    # from the data; dropped to the null class with probability `dropout` for classifier-free guidance.
    # The others (configs/text_to_audio.py, notes_to_audio.py, inpaint.py; diffjax/conditioners):
    #   text = dict(max_tokens=24, encoder="transformer", width=128, depth=2, num_heads=4, dropout=0.1)
    #       captions (batch 'caption') through a vocabulary trained on the training captions
    #       (<workdir>/tokenizer.json) and a jointly trained encoder: cross-attention tokens + pooled vector;
    #   timing = dict(width=64, dropout=0.1): seconds_start / seconds_total number embeddings;
    #   notes = dict(low_pitch=24, high_pitch=96, dropout=0.1): note events as a frame-aligned piano roll;
    #   inpaint = dict(segment=0.4, causal=0.4, full=0.2, max_gap_fraction=0.5): known frames + mask,
    #       masks drawn in training (gaps, known prefixes for continuation, nothing known).
    # All but label need model.name = "dit".
    config.conditioning = ml_collections.ConfigDict()

    # Network: `name` in diffjax.models.MODELS; other keys are its kwargs (a conditioner supplies
    # what it needs, e.g. label's num_classes).
    config.model = ml_collections.ConfigDict()
    # The quick start: a DiT over the 63 mel frames (128 bands in, width 256, 6 blocks, 4 heads;
    # 7.4M parameters). In the same 7-minute budget on 2 CPU cores it scored FD 69 on the project
    # classifier against the UNet1D's 217 (benchmarks/quickstart.py, README). The previous quick
    # start's UNet1D: name="unet1d", size="small", channels=128, channel_mults=(1, 2, 2),
    # strides=(2, 2), num_res_blocks=2, attn_levels=(2,) (13.9M parameters).
    config.model.name = "dit"  # dit | unet1d | diffwave | unet2d | mlp
    config.model.size = "small"  # tiny (tests) | small (CPU quick start) | base (papers) | large
    config.model.dtype = "float32"  # compute dtype; bfloat16 keeps float32 parameters
    # Optional model keys (any field of the network; see diffjax/models): magnitude_preserving=True
    # gives EDM2's magnitude-preserving DiT/UNet (configs/edm2.py); remat=True recomputes each block
    # in the backward pass (or parallel.remat below, which sets it for training only);
    # scan_layers=True (dit, diffwave) runs the blocks as one nn.scan, parameters stacked [depth, ...]
    # (diffjax/models/scan.py): compile time no longer grows with depth (benchmarks/compile.py).

    # Optimiser (diffjax.training.state.build_optimizer).
    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"  # adam | adamw | radam | lamb | sgd
    config.optim.learning_rate = 1e-3
    config.optim.warmup_steps = 100
    config.optim.decay = "cosine"  # constant | cosine | linear | inverse_sqrt (after warmup)
    # Steps of the decay; None: training.num_steps - warmup_steps, the rest of the run
    # (diffjax.jobs.defaults.resolve_decay_steps; the resolved number is saved in config.json).
    config.optim.decay_steps = ml_collections.config_dict.placeholder(int)
    config.optim.end_factor = 0.05  # final learning rate / peak
    config.optim.grad_clip = 1.0  # global-norm clipping; 0 disables
    config.optim.weight_decay = 0.0
    config.optim.accumulate_steps = 1  # gradient accumulation (optax.MultiSteps)

    # Training loop.
    config.training = ml_collections.ConfigDict()
    config.training.batch_size = 16  # global batch, divisible by the number of devices
    config.training.num_steps = 1000  # the quick start: ~6.5 min of training at 2.6 steps/s on 2 CPU cores
    # Wall-clock budget: training stops (saves, then evaluates) once this many minutes have passed
    # since the job started, compile included, so the quick start ends in time on a slower machine;
    # 0: off. Rerunning with a larger budget resumes from the checkpoint.
    config.training.max_minutes = 7.5  # the quick start's promise: <= 10 min end to end on any 2-core machine
    config.training.steps_per_dispatch = 1  # > 1 runs several steps in one lax.scan on device
    config.training.num_devices = 0  # 0: every device of every host
    # Fine-tuning: start from this workdir's (EMA) weights instead of a fresh init, when the run's own
    # workdir has no checkpoint yet; the model section must match. The process, parameterisation
    # and loss may differ: that is the point of an explicit fine-tune.
    config.training.init_from = ""
    # Batches on which sigma_data is measured at the start of training, in model space; a
    # precond.sigma_data more than 25 % off is logged as a warning with the measured value. 0: off.
    config.training.sigma_data_batches = 2
    config.training.pre_encode_passes = 1  # 'latent' codec: encoded crops of each training example
    config.training.ema_halflife_examples = (2_000.0,)  # one EMA per half-life (EDM); the first samples
    # Post-hoc EMA (EDM2, Karras et al. 2024, sec. 3.1): power-function EMAs tracked during training
    # with these relative standard deviations, snapshotted every `snapshot_every` steps to
    # <workdir>/phema_snapshots; experiments/reconstruct_ema.py then makes any sigma_rel after
    # training. Empty / 0: off (each snapshot holds len(sigma_rels) copies of the weights).
    config.training.phema = ml_collections.ConfigDict()
    config.training.phema.sigma_rels = ()  # e.g. (0.05, 0.10), EDM2's pair
    config.training.phema.snapshot_every = 0
    config.training.log_every = 100
    config.training.checkpoint_every = 500
    config.training.keep_last = 3  # checkpoints kept for preemption
    config.training.keep_every = 0  # also keep every N steps (0: off)
    config.training.sample_every = 0  # periodic audio samples to TensorBoard every N steps (0: off)
    config.training.progress_bar = True

    # Parallelism (diffjax.training.parallel): a data x fsdp x tensor mesh over every device; data
    # takes what fsdp and tensor leave. The batch is sharded over data x fsdp; weights and optimiser
    # state by the networks' logical-axis annotations (fsdp: rows, tensor: hidden columns).
    config.parallel = ml_collections.ConfigDict()
    config.parallel.fsdp = 1
    config.parallel.tensor = 1
    config.parallel.remat = "none"  # none | block (each network block recomputed) | full (whole forward)

    # Sampling (diffjax.sampling): used for evaluation and by experiments/sample.py.
    config.sampling = ml_collections.ConfigDict()
    # EDM's churn sampler: on the quick-start model its samples have pYIN confidence 0.21, the
    # deterministic Heun's 0.08 (the fresh noise corrects the short training's errors).
    config.sampling.sampler = "edm_stochastic"
    config.sampling.grid = "karras"
    config.sampling.grid_options = ml_collections.ConfigDict()  # e.g. rho, sigma_min (see docs/samplers.md)
    config.sampling.num_steps = 25  # noise levels; edm_stochastic and heun cost 2 * 25 - 1 = 49 NFE
    config.sampling.cfg_scale = 1.0  # classifier-free guidance for conditional models (1: off)

    # Evaluation at the end of training.
    config.evaluation = ml_collections.ConfigDict()
    config.evaluation.num_samples = 16  # 0 skips the end-of-training evaluation

    if "smoke" in arg.split(","):
        apply_smoke(config)
    return config


MODEL_OVERRIDES = ("channels", "channel_mults", "strides", "num_res_blocks", "attn_levels")


def apply_smoke(config: ml_collections.ConfigDict) -> None:
    """Tiny shapes and few steps for CPU tests."""
    if config.data.name == "synth_music":
        config.data.synth_music.clip_seconds = 0.25
        config.data.crop_seconds = 0.125  # 2000 samples
        config.data.synth_music.num_train = 16
        config.data.synth_music.num_eval = 8
    if "size" in config.model:
        config.model.size = "tiny"
        for key in MODEL_OVERRIDES:
            if key in config.model:
                del config.model[key]
    if "width" in config.model:
        config.model.width = 32
        config.model.depth = 1
    apply_smoke_training(config)
    config.sampling.sampler = "euler"  # one denoiser call per step: the cheapest sampler to compile
    config.sampling.num_steps = 3
    config.evaluation.num_samples = 8


def apply_smoke_training(config: ml_collections.ConfigDict) -> None:
    """The smoke training loop every config shares: batch 8, 4 steps, logs and checkpoints every 2."""
    config.training.batch_size = 8
    config.training.num_steps = 4
    config.training.log_every = 2
    config.training.checkpoint_every = 2
    config.training.sample_every = 0
    config.training.progress_bar = False

"""Generation metrics of a diffusion checkpoint (experiments/evaluate.py, diffjax.jobs.evaluate).

    python experiments/evaluate.py --config configs/evaluate.py --workdir runs/music \
        --classifier runs/classifier --config.sampling.sampler=heun --config.sampling.nfe=35
    # while training runs: evaluate each new checkpoint as it appears, until the last one
    python experiments/evaluate.py --config configs/evaluate.py --workdir runs/music \
        --classifier runs/classifier --config.watch.enabled=True
    # a local embedding model (e.g. VGGish/CLAP weights you have): fn(audio [B, L, C]) -> [B, D]
    python experiments/evaluate.py --config configs/evaluate.py --workdir runs/music \
        --config.embedders=mel_stats,callable --config.embedder.callable.fn=mypkg.vggish:embed \
        --config.embedder.callable.name=vggish-local
    # two folders of audio, no model: FD and KAD (with bootstrap intervals) of --samples vs --reference
    python experiments/evaluate.py --config configs/evaluate.py --samples generated/ \
        --reference my_music/ --out eval_vs_my_music/ [--classifier runs/classifier]

Every key is defined here with a comment; an unknown key, or a key an embedder or the metrics do
not take, is an error. Paths (--workdir or --samples/--reference, --classifier, --out) and the
checkpoint --step are flags.
"""
import ml_collections

placeholder = ml_collections.config_dict.placeholder


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.num = 1000  # samples to generate
    config.chunk_size = 100  # samples per saved chunk (and per sampling batch); a killed run resumes
    config.ema = 0  # which EMA of the checkpoint; -1: the raw weights
    # Post-hoc EMA sweep (EDM2): evaluate each reconstructed length instead of `ema`, e.g. (0.05, 0.1);
    # make them first with experiments/reconstruct_ema.py. Empty: the checkpoint's EMA `ema`.
    config.sigma_rels = ()
    # Autoguidance (EDM2): guide every sample with a weaker model of the same data; an empty workdir: off.
    config.guide = ml_collections.ConfigDict()
    config.guide.workdir = ""
    config.guide.step = placeholder(int)  # the guide's checkpoint (default: its latest)
    config.guide.ema = 0  # the guide's EMA; -1: raw weights
    config.guide.weight = 2.0  # w in D_bad + w (D_good - D_bad)
    config.conditional = True  # generate with balanced labels (seed mod K) if the model has a 'label' condition

    # Sampling; None takes the workdir's own config.sampling value.
    config.sampling = ml_collections.ConfigDict()
    config.sampling.sampler = placeholder(str)  # a registered sampler (diffjax.sampling.SAMPLERS)
    config.sampling.grid = placeholder(str)  # a registered grid (diffjax.sampling.GRIDS)
    config.sampling.nfe = placeholder(int)  # denoiser calls per sample (or give num_steps)
    config.sampling.num_steps = placeholder(int)  # noise levels (None with nfe None: the workdir's)
    config.sampling.cfg_scale = placeholder(float)  # classifier-free guidance of conditional models (1: off)

    # Embedders (diffjax.evaluation.EMBEDDERS), comma-separated: classifier, mel_stats, mfcc_stats,
    # callable. 'classifier' needs --classifier (a workdir of experiments/train_classifier.py).
    config.embedders = "classifier,mel_stats,mfcc_stats"
    # Each embedder's own keys (the sample rate comes from the data, the classifier from --classifier).
    config.embedder = ml_collections.ConfigDict()
    config.embedder.classifier = ml_collections.ConfigDict()
    config.embedder.classifier.batch_size = 64  # clips per classifier call
    for name in ("mel_stats", "mfcc_stats"):
        section = ml_collections.ConfigDict()
        section.n_fft = 1024  # STFT size
        section.hop = 256  # STFT hop
        section.n_mels = 64  # mel bands
        section.fmin = 20.0  # lowest mel frequency (Hz)
        section.fmax = placeholder(float)  # highest mel frequency (Hz); None: sample_rate / 2
        config.embedder[name] = section
    config.embedder.mfcc_stats.n_mfcc = 20  # cepstral coefficients
    config.embedder.callable = ml_collections.ConfigDict()
    config.embedder.callable.fn = placeholder(str)  # 'package.module:function', fn(audio [B, L, C]) -> [B, D]
    config.embedder.callable.name = placeholder(str)  # names it in the reference cache: change it with the weights

    # Reference data: the workdir's dataset.
    config.reference = ml_collections.ConfigDict()
    config.reference.split = "train"  # 'train' (as FID) or 'eval'
    config.reference.num = placeholder(int)  # reference draws; None: crops_per_file passes over the split
    # Random crops drawn per file (passes over the split; repeated crops dropped, so a dataset of whole
    # clips gives each once): a few long files, or a one-file eval split, still give many points.
    config.reference.crops_per_file = 8

    # Folder mode (--samples DIR --reference DIR): both cut into non-overlapping crops.
    config.folder = ml_collections.ConfigDict()
    config.folder.crop_seconds = placeholder(float)  # None: the classifier's training clip length, else 2 s
    config.folder.sample_rate = placeholder(int)  # Hz of mel/MFCC stats; None: the reference's most common rate
    config.folder.channels = 1  # 1: mono down-mix, 2: stereo (the embedders average channels)
    config.folder.max_crops_per_file = 32  # crops spread evenly over a longer file
    config.folder.max_crops = 2048  # per folder; every file keeps at least one

    # The metrics: the fields of diffjax.evaluation.MetricOptions.
    config.metrics = ml_collections.ConfigDict()
    config.metrics.kid_subsets = 100  # KID subsets (Binkowski et al. 2018)
    config.metrics.kid_subset_size = 1000  # capped at the set sizes
    config.metrics.ndb_bins = 20  # K of NDB/K
    config.metrics.ndb_alpha = 0.05  # NDB's significance level
    config.metrics.is_splits = 1  # Inception-score splits
    config.metrics.kid_standardize = True  # z-score features by the reference before KID
    config.metrics.kad_scale = 100.0  # KAD = scale * MMD^2 (Chung et al. 2025; their toolkit's 100)
    config.metrics.bootstrap = 100  # resamples of FD and KAD for an interval; 0: none
    config.metrics.interval = (5.0, 95.0)  # bootstrap percentiles reported as fd_*_low/high, kad_*_low/high
    config.metrics.seed = 0  # KID subsets and NDB clustering

    # Evaluate each new checkpoint as training writes it.
    config.watch = ml_collections.ConfigDict()
    config.watch.enabled = False  # poll the workdir instead of evaluating one checkpoint
    config.watch.poll_seconds = 60.0  # seconds between checks
    config.watch.timeout_seconds = 3600.0  # stop after this long without a new checkpoint

    if "smoke" in arg.split(","):
        config.num = 20
        config.chunk_size = 20
        config.sampling.nfe = 3
        config.metrics.ndb_bins = 5
        config.metrics.kid_subset_size = 20
        config.metrics.bootstrap = 10
        config.folder.max_crops = 64
    return config

"""The evaluation classifier (diffjax.evaluation.classifier): instrument labels of 'synth_music'.

    python experiments/train_classifier.py --config configs/classifier.py --workdir runs/classifier
    python experiments/train_classifier.py --config configs/classifier.py:smoke --workdir /tmp/clf
    # any labelled folder (labels = top-level sub-folder names):
    python experiments/train_classifier.py --config configs/classifier.py --workdir runs/clf_folder \
        --config.data.name=folder --config.data.folder.root=/data/sounds \
        --config.data.cache_dir=runs/clf_folder --config.data.folder.labels_from_dirs=True

The data section must match the generated audio's sample rate (the classifier refuses other
rates); clip length may differ (the network pools over time). See docs/evaluation.md.
"""
import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0  # initialisation, data order and augmentation

    # Labelled data (diffjax.data.build_dataset): `name` in diffjax.data.DATASETS, the keys every
    # dataset takes here, and each dataset's own keys in its sub-section (only the chosen one's are
    # used; any other key is an error). 'label' is the class.
    config.data = ml_collections.ConfigDict()
    config.data.name = "synth_music"
    config.data.sample_rate = 16000  # Hz; must equal the generated audio's (the classifier refuses others)
    config.data.cache_dir = ml_collections.config_dict.placeholder(str)  # rendered clips / folder manifest
    config.data.synth_music = ml_collections.ConfigDict()
    config.data.synth_music.clip_seconds = 1.0
    config.data.synth_music.num_train = 4096  # renders in ~20 s once, then cached; more clips = less overfit
    config.data.synth_music.num_eval = 512    # held-out clips for the reported accuracy
    # name = "folder" (diffjax.audio.datasets.AudioFolder): the audio directory, and labels from its
    # top-level sub-folders.
    config.data.folder = ml_collections.ConfigDict()
    config.data.folder.root = ml_collections.config_dict.placeholder(str)
    config.data.folder.labels_from_dirs = True

    # Network (AudioClassifier fields; num_classes and sample_rate come from the data; an unknown
    # key is an error).
    config.classifier = ml_collections.ConfigDict()
    config.classifier.n_fft = 512
    config.classifier.hop = 128  # 8 ms at 16 kHz: 126 frames per second
    config.classifier.n_mels = 64
    config.classifier.channels = (16, 32, 64, 128)  # one conv stage (and 2x2 pooling) each
    config.classifier.convs_per_stage = 1  # 2 doubles the cost of a step
    config.classifier.embed_dim = 128  # penultimate features used for FD / KID / NDB

    # Optimiser (diffjax.training.state.build_optimizer).
    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adamw"
    config.optim.learning_rate = 2e-3
    config.optim.warmup_steps = 100
    config.optim.decay = "cosine"
    config.optim.decay_steps = 600
    config.optim.end_factor = 0.05
    config.optim.weight_decay = 1e-4
    config.optim.grad_clip = 1.0

    config.training = ml_collections.ConfigDict()
    config.training.batch_size = 64
    config.training.num_steps = 600  # ~9 epochs of 4096 clips; train accuracy ~97% by step 100
    config.training.ema_halflife_examples = 2000.0  # ~31 steps of 64
    config.training.augment_gain_db = 6.0  # random gain in +-6 dB
    config.training.augment_shift_seconds = 0.1  # random circular shift up to 100 ms
    config.training.augment_noise_snr_db = (15.0, 45.0)  # half the clips get white noise at this SNR
    config.training.log_every = 50
    config.training.checkpoint_every = 200

    if "smoke" in arg.split(","):
        apply_smoke(config)
    return config


def apply_smoke(config: ml_collections.ConfigDict) -> None:
    """Tiny shapes and few steps for CPU tests: 8 kHz, half-second clips."""
    config.data.sample_rate = 8000
    config.data.synth_music.clip_seconds = 0.5
    config.data.crop_seconds = 0.5
    config.data.synth_music.num_train = 256
    config.data.synth_music.num_eval = 64
    config.classifier.n_fft = 256
    config.classifier.hop = 64
    config.classifier.n_mels = 32
    config.classifier.channels = (8, 16, 32)
    config.classifier.convs_per_stage = 1
    config.classifier.embed_dim = 32
    config.optim.warmup_steps = 10
    config.optim.decay_steps = 60
    config.training.batch_size = 32
    config.training.num_steps = 60
    config.training.log_every = 20
    config.training.checkpoint_every = 30
    config.training.ema_halflife_examples = 300.0

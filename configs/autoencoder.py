"""The audio autoencoder (diffjax.autoencoder): the latent space of latent diffusion
(configs/latent.py). Oobleck/DAC-style convolutional encoder and decoder with Snake activations and
weight normalisation, a VAE bottleneck, multi-resolution STFT + KL losses, and an optional
multi-scale STFT discriminator (EnCodec) with feature matching.

    python experiments/train.py --config configs/autoencoder.py --workdir runs/autoencoder
    python experiments/train.py --config configs/autoencoder.py:smoke --workdir /tmp/ae     # tiny, for CI
    # Stable Audio Open's shape (44.1 kHz stereo, 156M parameters; a GPU/TPU job):
    python experiments/train.py --config configs/autoencoder.py --workdir runs/ae_large \
        --config.autoencoder.size=large --config.data.sample_rate=44100 --config.data.channels=2 ...

Held-out reconstruction metrics (SI-SDR, MR-STFT distance, log-mel L1, LSD, pitch confidence) go
to the workdir's eval.json; benchmarks/autoencoder.py compares them with the mel + Griffin-Lim codec.
"""
import ml_collections

from configs import default


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    base = default.get_config()
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = base.data  # any audio dataset: synth_music (embedded), folder
    # Random 0.25 s crops: the network is convolutional (any length encodes), and a step costs in
    # proportion to the samples it sees (the small preset: 0.57 steps/s on 1 s clips, 2 CPU cores).
    config.data.crop_seconds = 0.25

    # Network (diffjax.autoencoder.AUTOENCODERS): size presets tiny (tests) | small (CPU) | large
    # (Stable Audio Open's); any field overrides the preset (channels, c_mults, strides, latent_dim,
    # bottleneck vae | none). io_channels comes from the data.
    config.autoencoder = ml_collections.ConfigDict()
    config.autoencoder.name = "oobleck"
    config.autoencoder.size = "small"
    config.autoencoder.dtype = "float32"  # compute dtype; bfloat16 keeps float32 parameters

    # Losses (diffjax.autoencoder.objective.ReconstructionObjective).
    config.reconstruction = ml_collections.ConfigDict()
    config.reconstruction.stft_weight = 1.0  # multi-resolution STFT: log-magnitude L1 + spectral convergence
    config.reconstruction.l1_weight = 0.0  # waveform L1
    config.reconstruction.kl_weight = 2e-4  # VAE KL; Stable Audio Open's 1e-4 on a KL without the 1/2
    # Adversarial terms (0 and 0: no discriminator); from `adversarial_start` on.
    config.reconstruction.adversarial_weight = 0.0  # hinge generator loss (EnCodec: 3 with lambda_f 3)
    config.reconstruction.feature_matching_weight = 0.0
    config.reconstruction.adversarial_start = 0
    config.reconstruction.discriminator_learning_rate = 1e-4
    config.reconstruction.discriminator = ml_collections.ConfigDict()  # MultiScaleSTFTDiscriminator kwargs

    config.optim = base.optim
    config.optim.learning_rate = 1e-3
    config.optim.decay_steps = 1500
    config.training = base.training
    config.training.num_steps = 1500
    config.training.checkpoint_every = 500
    config.training.sample_every = 500
    config.training.ema_halflife_examples = (2_000.0,)
    config.parallel = base.parallel  # data x fsdp x tensor mesh; the convolutions shard their channels

    config.evaluation = ml_collections.ConfigDict()
    config.evaluation.num_samples = 64  # held-out clips for the reconstruction metrics

    if "smoke" in arg.split(","):
        apply_smoke(config)
    return config


def apply_smoke(config: ml_collections.ConfigDict) -> None:
    """Tiny shapes and few steps for CPU tests."""
    config.data.synth_music.clip_seconds = 0.25
    config.data.crop_seconds = 0.125
    config.data.synth_music.num_train = 16
    config.data.synth_music.num_eval = 8
    config.autoencoder.size = "tiny"
    default.apply_smoke_training(config)
    config.evaluation.num_samples = 8

"""Music as users bring it: a folder of 44.1 kHz stereo tracks (configs/music48k.py: 48 kHz).

    python experiments/train.py --config configs/music44k.py --workdir runs/music44k \
        --config.data.folder.root=/data/my_music
    python experiments/train.py --config configs/music44k.py:waveform --workdir runs/music44k_wave \
        --config.data.folder.root=/data/my_music        # a waveform prior, for full-length restoration
    python experiments/train.py --config configs/music44k.py:smoke --workdir /tmp/m44   # CPU CI

Default: a UNet2D on the amplitude-compressed complex STFT (configs/spectrogram.py at full band).
The STFT is the 16 kHz setting (n_fft 510, hop 128: 32 ms and 8 ms) scaled by 3, n_fft 1534 (F =
768 bins) and hop 384: exactly 32 / 8 ms at 48 kHz, 35 / 8.7 ms at 44.1 kHz. Crops of 1 s are
1 + 44100 // 384 = 115 frames. ':waveform' trains the UNet1D on 0.5 s of raw audio (22050
samples): restoration (experiments/restore.py) restores inputs of any length with a waveform prior.

sigma_data is the RMS of the data in the model's space: training measures it on its first batches
and warns, with the value to set, when the config's is more than 25 % off (your music is not ours).
The codec and the network take the rate from `data.sample_rate`; no key here names it twice.
"""
import ml_collections

from configs import default

SAMPLE_RATE = 44100


def music_config(sample_rate: int, arg: str = "") -> ml_collections.ConfigDict:
    """The music config at `sample_rate` (Hz); `arg`: comma-separated 'waveform', 'smoke'."""
    flags = arg.split(",")
    config = default.get_config()
    config.data.name = "folder"  # --config.data.folder.root=DIR (searched recursively)
    config.data.sample_rate = sample_rate
    config.data.channels = 2  # stereo; a mono file is played on both channels
    config.data.crop_seconds = 1.0
    if "waveform" in flags:
        config.data.crop_seconds = 0.5
        config.codec.name = "waveform"
        config.model = ml_collections.ConfigDict(dict(name="unet1d", size="small", dtype="float32"))
        config.precond.sigma_data = 0.156  # waveform RMS of the issue-21 music (synth_music: 0.29); measured at start
        config.sampling.sampler = "heun"
    else:
        config.codec.name = "complex_stft"
        config.codec.complex_stft.n_fft = 1534  # F = 768 bins
        config.codec.complex_stft.hop = 384
        config.model = ml_collections.ConfigDict(dict(name="unet2d", size="small", dtype="float32"))
        config.precond.sigma_data = 0.17  # compressed STFT RMS (configs/spectrogram.py); measured at start
    config.training.num_steps = 100_000  # optim.decay_steps follows: num_steps - warmup_steps
    config.training.checkpoint_every = 5000
    config.training.max_minutes = 0.0  # a real run: no quick-start budget
    if "smoke" in flags:  # the embedded music at this rate and in stereo: no folder needed
        config.data.name = "synth_music"
        default.apply_smoke(config)
    return config


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    return music_config(SAMPLE_RATE, arg)

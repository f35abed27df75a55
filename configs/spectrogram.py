"""Time-frequency model: a UNet2D on the amplitude-compressed complex STFT (SGMSE-style codec),
decoded back to waveforms exactly by the inverse STFT.

    python experiments/train.py --config configs/spectrogram.py --workdir runs/spectrogram
"""
from configs import default, waveform


def get_config(arg: str = ""):
    config = waveform.get_config()
    config.codec.name = "complex_stft"
    config.codec.complex_stft.n_fft = 510  # F = 256
    config.codec.complex_stft.hop = 128
    config.model.name = "unet2d"
    config.model.size = "small"
    config.precond.sigma_data = 0.17  # compressed STFT RMS (0.165): experiments/estimate_sigma_data.py
    if "smoke" in arg.split(","):
        default.apply_smoke(config)
    return config

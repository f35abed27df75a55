"""Notes-to-audio (MIDI-to-audio, as Magenta's music-spectrogram-diffusion but frame-aligned): the
synthesiser's note events of every clip as a piano roll on the model's mel frames (onset and
velocity channels, MIDI 24..96), concatenated to the DiT's input.

    python experiments/train.py --config configs/notes_to_audio.py --workdir runs/notes
    python experiments/sample.py --workdir runs/notes --notes tune.mid --cfg 2
"""
import ml_collections

from configs import default


def get_config(arg: str = ""):
    config = default.get_config()
    config.conditioning.notes = ml_collections.ConfigDict(dict(low_pitch=24, high_pitch=96, dropout=0.1))
    config.sampling.cfg_scale = 2.0
    if "smoke" in arg.split(","):
        default.apply_smoke(config)
    return config

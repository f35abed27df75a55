"""Music as users bring it: a folder of 48 kHz stereo tracks; configs/music44k.py explains the choices.

    python experiments/train.py --config configs/music48k.py --workdir runs/music48k \
        --config.data.folder.root=/data/my_music
    python experiments/train.py --config configs/music48k.py:waveform,smoke --workdir /tmp/m48   # CPU CI
"""
import ml_collections

from configs.music44k import music_config

SAMPLE_RATE = 48000


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    return music_config(SAMPLE_RATE, arg)

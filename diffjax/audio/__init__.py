"""Audio: file I/O, the embedded synthesised dataset, folder datasets and codecs.

Importing this package registers the datasets ('synth_music', 'folder') in
`diffjax.data.DATASETS` and the codecs ('waveform', 'complex_stft', 'mel') in `CODECS`.
"""
from diffjax.audio import codecs, datasets, io, synth  # noqa: F401
from diffjax.audio.codecs import CODECS, get_codec  # noqa: F401

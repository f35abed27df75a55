"""pYIN's fmin fits every sample rate: no librosa warning at 16, 44.1 or 48 kHz."""
import warnings

import numpy as np
import pytest

from diffjax.evaluation.adherence import f0_track
from diffjax.evaluation.musicality import pitch_confidence, pyin_frame_length


@pytest.mark.parametrize("rate, frame", [(16000, 1024), (44100, 2048), (48000, 2048)])
def test_pitch_confidence_warns_at_no_rate(rate, frame):
    assert pyin_frame_length(rate, 65.0) == frame and rate / 65.0 < frame // 2  # two periods of C2 fit
    t = np.arange(int(0.3 * rate)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 220.0 * t))[None, :, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        confidence = pitch_confidence(tone, rate)
        _, f0 = f0_track(tone[0], rate)
    assert confidence > 0.5 and np.nanmedian(f0) == pytest.approx(220.0, rel=0.01)


def test_a_frame_too_short_for_fmin_is_an_error_naming_the_fix():
    with pytest.raises(ValueError, match="frame_length >= 1358"):
        pitch_confidence(np.zeros((1, 4096, 1)), 44100, frame_length=1024)

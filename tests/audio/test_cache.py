"""Tests for diffjax.audio.cache and the folder dataset built on it (issue 21, item 3): the decode
cache, stale and corrupt files, dropped silence, duration-weighted crops, the split by duration."""
import logging
import os

import numpy as np
import pytest
import soundfile as sf
from scipy import stats

from diffjax.audio import cache, datasets, io, scan
from diffjax.data import get_dataset

SR = 8000  # the dataset's rate: small, so files are tiny


def tone(freq, sr, seconds, amp=0.5):
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def folder_ds(root, cache_dir, **kw):
    kw = {"sample_rate": SR, "crop_seconds": 0.25, "eval_fraction": 0.2, **kw}
    return get_dataset("folder", root=str(root), cache_dir=str(cache_dir), **kw)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Five short files in four formats, at 16 and 22.05 kHz, mono and stereo."""
    root = tmp_path_factory.mktemp("mixed")
    sf.write(str(root / "a.wav"), tone(300, 16000, 0.3), 16000)
    sf.write(str(root / "b.flac"), np.stack([tone(400, 22050, 0.4), tone(600, 22050, 0.4, 0.2)], 1), 22050)
    sf.write(str(root / "c.ogg"), tone(500, 16000, 0.5), 16000)
    sf.write(str(root / "d.wav"), np.stack([tone(250, 16000, 0.2, 0.9), tone(350, 16000, 0.2)], 1), 16000)
    if "MP3" in sf.available_formats():  # libsndfile >= 1.1
        sf.write(str(root / "e.mp3"), tone(700, 22050, 0.6), 22050)
    return root


@pytest.mark.parametrize("channels,normalize", [(1, False), (2, True)])
def test_cached_audio_equals_a_direct_decode(mixed, tmp_path, channels, normalize):
    ds = folder_ds(mixed, tmp_path, channels=channels, normalize=normalize)
    folder = ds._manifest["folder"]
    assert folder.startswith(str(tmp_path / "audio")) and os.path.exists(os.path.join(folder, "manifest.json"))
    for rel, e in ds._manifest["files"].items():
        direct = io.read_audio(str(mixed / rel), sample_rate=SR, channels=channels, normalize=normalize)
        np.testing.assert_array_equal(np.asarray(cache.load(folder, e)), direct)  # float32: bitwise
        assert e["frames"] == len(direct) and e["source"] == str(mixed / rel)
        x, m = ds.read(rel, 100, 1000)  # a crop slices the memmap
        np.testing.assert_array_equal(x[:int(m.sum())], np.clip(direct[100:1100], -1, 1))
    assert not [f for f in os.listdir(folder) if ".tmp" in f]  # every write was renamed into place


def test_stale_files_are_decoded_again_and_others_are_not(tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    for name, f in [("a.wav", 300), ("b.wav", 400)]:
        sf.write(str(root / name), tone(f, SR, 0.3), SR)
    decoded = []
    real = cache._decode
    monkeypatch.setattr(cache, "_decode", lambda full, npy, **kw: decoded.append(full) or real(full, npy, **kw))
    folder_ds(root, tmp_path / "c")
    assert len(decoded) == 2
    folder_ds(root, tmp_path / "c")  # nothing changed: nothing decoded
    assert len(decoded) == 2
    sf.write(str(root / "b.wav"), tone(900, SR, 0.7), SR)  # new size and mtime
    ds = folder_ds(root, tmp_path / "c")
    assert decoded[2:] == [str(root / "b.wav")]
    e = ds._manifest["files"]["b.wav"]
    assert e["frames"] == round(0.7 * SR)
    np.testing.assert_allclose(cache.load(ds._manifest["folder"], e)[:, 0], tone(900, SR, 0.7),
                               atol=2.0 ** -15)  # the new content, to half a 16-bit step


def test_corrupt_files_are_skipped_reported_and_retried_only_when_changed(tmp_path, caplog, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    for name, f in [("a.wav", 300), ("b.ogg", 400)]:
        sf.write(str(root / name), tone(f, SR, 0.3), SR)
    (root / "broken.mp3").write_text("not audio")
    (root / "empty.flac").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="diffjax"):
        ds = folder_ds(root, tmp_path / "c")
    assert ds.num_skipped == 2 and set(ds._manifest["skipped"]) == {"broken.mp3", "empty.flac"}
    assert "broken.mp3: unreadable" in caplog.text and "2 skipped as unreadable/corrupt" in caplog.text
    decoded = []
    monkeypatch.setattr(cache, "_decode", lambda *a, **k: decoded.append(a) or {})
    assert folder_ds(root, tmp_path / "c").num_skipped == 2 and not decoded  # known bad, unchanged


def test_kept_segments_drop_long_silences_only():
    # 0.5 s tone, 1.5 s silence (dropped), 0.5 s tone, 0.3 s pause (kept), 0.2 s tone; 400-frame windows.
    x = np.concatenate([tone(300, SR, 0.5), np.zeros(12000, np.float32), tone(300, SR, 0.5),
                        np.zeros(2400, np.float32), tone(300, SR, 0.2)])[:, None]
    assert cache.kept_segments(x, SR, silence_db=-60.0, min_seconds=1.0) == [[0, 4000], [16000, 24000]]
    assert cache.kept_segments(x, SR, silence_db=-60.0, min_seconds=0.25) == [
        [0, 4000], [16000, 20000], [22400, 24000]]
    assert cache.kept_segments(x, SR, silence_db=None) == [[0, 24000]]
    assert cache.kept_segments(np.zeros((SR, 2), np.float32), SR, silence_db=-60.0) == []
    # A -20 dBFS-RMS noise floor is silence at -10 dB and music at -30 dB.
    floor = np.full((2 * SR, 1), 0.1, np.float32)
    assert cache.kept_segments(floor, SR, silence_db=-10.0) == []
    assert cache.kept_segments(floor, SR, silence_db=-30.0) == [[0, 2 * SR]]


def test_crops_come_only_from_kept_audio(tmp_path, caplog):
    root = tmp_path / "data"
    root.mkdir()
    x = np.concatenate([tone(300, SR, 0.5), np.zeros(12000, np.float32), tone(300, SR, 0.5)])
    sf.write(str(root / "gap.wav"), x, SR)
    sf.write(str(root / "other.wav"), tone(500, SR, 1.0), SR)
    sf.write(str(root / "silent.wav"), np.zeros(SR, np.float32), SR)
    with caplog.at_level(logging.INFO, logger="diffjax"):
        ds = folder_ds(root, tmp_path / "c", silence_db=-60.0, eval_fraction=0.4)
    assert "1 skipped as silent" in caplog.text and "silent.wav" not in ds.files + ds.eval.files
    assert ds._manifest["files"]["gap.wav"]["segments"] == [[0, 4000], [16000, 20000]]
    split = ds if "gap.wav" in ds.files else ds.eval
    assert split.files == ("gap.wav",) and split.seconds == 1.0
    b = split.batch(0, 64, seed=0)
    start = np.round(b["seconds_start"] * SR).astype(int)
    end = start + np.round(b["seconds_total"] * SR).astype(int)
    assert np.all(((start >= 0) & (end <= 4000)) | ((start >= 16000) & (end <= 20000)))
    assert np.all(np.abs(b["x"]).max(axis=(1, 2)) > 0.4)  # never a crop of the gap
    # The same cache under other silence settings: segments recomputed, nothing decoded.
    assert folder_ds(root, tmp_path / "c")._manifest["files"]["gap.wav"]["segments"] == [[0, 20000]]
    with pytest.raises(ValueError, match="data.folder.cache=True"):
        folder_ds(root, tmp_path / "c", silence_db=-60.0, cache=False)


@pytest.mark.parametrize("cached", [True, False])
def test_crops_are_weighted_by_duration(tmp_path, cached):
    """A file's share of crops is its share of the audio: chi-square over 6 files whose lengths span
    10x (uniform-per-file draws, the old behaviour, would give chi2 = 1.6e4 here), plus a 5-sigma binomial bound
    per file. Files shorter than a crop (0.1 s, 0.2 s) gives masked crops of its whole length."""
    root = tmp_path / "data"
    root.mkdir()
    seconds = [0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 0.05]
    for i, s in enumerate(seconds):
        sf.write(str(root / f"f{i}.wav"), tone(200 + 50 * i, SR, s), SR)
    ds = folder_ds(root, tmp_path / "c", eval_fraction=0.01, cache=cached)
    assert ds.eval.files == ("f6.wav",) and len(ds) == 6  # the shortest is the whole eval split
    n = 20000
    drawn = [ds.draw(datasets.crop_rng(0, 0, p)) for p in range(n)]
    counts = np.bincount([d[0] for d in drawn], minlength=len(ds))
    durations = np.asarray([ds._manifest["files"][r]["frames"] for r in ds.files], float)
    p = durations / durations.sum()
    chi2 = float(np.sum((counts - n * p) ** 2 / (n * p)))
    assert chi2 < stats.chi2.ppf(0.999, len(ds) - 1), (counts, n * p)
    assert np.all(np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p)))
    for f, start, frames in drawn[:200]:
        assert 0 <= start and start + frames <= durations[f] and frames == min(2000, durations[f])
    b = ds.batch(0, 32, seed=0)
    assert np.any(b["index"] == ds.files.index("f0.wav"))
    np.testing.assert_array_equal(b["seconds_total"],
                                  np.minimum(durations[b["index"]] / SR, 0.25).astype(np.float32))


def test_split_by_duration_bounds():
    rng = np.random.default_rng(0)
    for trial in range(50):
        d = {f"{trial}/{i}.wav": float(v) for i, v in enumerate(rng.uniform(1, 300, rng.integers(2, 40)))}
        for fraction in (0.01, 0.05, 0.3, 0.9):
            evals = scan.split_by_duration(d, fraction)
            assert 1 <= len(evals) <= len(d) - 1
            got, target = sum(d[r] for r in evals), fraction * sum(d.values())
            if 1 < len(evals) < len(d) - 1:  # not at a clamp: within half the longest file
                assert abs(got - target) <= max(d.values()) / 2
    assert scan.split_by_duration({"a": 1.0, "b": 1.0}, 1e-6) in {("a",), ("b",)}
    assert scan.cut_segments([[0, 10], [20, 30]], 15) == ([[0, 10], [20, 25]], [[25, 30]])


def test_one_file_is_split_in_time_and_the_split_is_logged(tmp_path, caplog):
    root = tmp_path / "data"
    root.mkdir()
    sf.write(str(root / "song.wav"), np.stack([tone(300, 16000, 1.0), tone(500, 16000, 1.0)], 1), 16000)
    with caplog.at_level(logging.INFO, logger="diffjax"):
        ds = folder_ds(root, tmp_path / "c", eval_fraction=0.25)
    assert "1 stereo files down-mixed to mono" in caplog.text
    assert "train 1 files 0.8 s, eval 1 files 0.2 s" in caplog.text
    assert ds.files == ds.eval.files == ("song.wav",)
    assert ds.seconds == 0.75 and ds.eval.seconds == 0.25
    train, ev = ds.batch(0, 32, seed=0), ds.eval.batch(0, 32, seed=0)
    assert np.all(train["seconds_start"] + train["seconds_total"] <= 0.75 + 1e-6)
    assert np.all(ev["seconds_start"] == 0.75) and np.all(ev["seconds_total"] == 0.25)


def test_write_audio_writes_a_long_ogg(tmp_path):
    """Regression (found by benchmarks/data.py): one 60 s 44.1 kHz stereo OGG write segfaulted
    libsndfile 1.2.2; io.write_audio now writes in blocks."""
    path = io.write_audio(str(tmp_path / "long.ogg"), np.zeros((60 * 44100, 2), np.float32), sample_rate=44100)
    assert sf.info(path).frames == 60 * 44100 and sf.info(path).channels == 2

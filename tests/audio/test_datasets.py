"""Tests for diffjax.audio.datasets: folder and synth datasets, sampling, hosts, bad files."""
import logging
import os

import numpy as np
import pytest
import soundfile as sf

from configs import default
from diffjax.audio import captions
from diffjax.audio import datasets  # noqa: F401  (registers the datasets)
from diffjax.data import DATASETS, AbstractDataset, build_dataset, get_dataset
from diffjax.jobs.workdir import data_section_for_reading
from diffjax.registry import UnknownNameError

SR = 16000


def tone(freq, sr, seconds, amp=0.5):
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """12 good files (16/22.05/44.1 kHz, stereo, one short; two sub-folders), 3 broken, 1 silent."""
    root = tmp_path_factory.mktemp("audio")
    for i in range(12):
        sub = root / ("drums" if i % 2 else "keys")
        sub.mkdir(exist_ok=True)
        sr = (SR, 22050, 44100)[i % 3]
        x = tone(200 + 50 * i, sr, 0.25 if i == 0 else 1.0 + 0.1 * i)
        if i % 4 == 3:
            x = np.stack([x, 0.5 * x], 1)
        sf.write(str(sub / f"f{i:02d}.{'flac' if i % 5 == 4 else 'wav'}"), x, sr)
    (root / "keys" / "zero.wav").write_bytes(b"")
    (root / "drums" / "notes.wav").write_text("not a wav file\n")
    bad = tone(300, SR, 0.5)
    bad[10:20] = np.nan
    sf.write(str(root / "nan.wav"), bad, SR, subtype="FLOAT")
    sf.write(str(root / "keys" / "silent.wav"), np.zeros(SR, np.float32), SR)
    (root / "readme.txt").write_text("ignored: not an audio extension")
    return str(root)


def make(folder, cache_dir, **kw):
    kw = {"crop_seconds": 0.5, "eval_fraction": 0.2, **kw}
    return get_dataset("folder", root=folder, cache_dir=str(cache_dir), **kw)


def test_corrupt_files_skipped_warned_and_counted(folder, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="diffjax"):
        ds = make(folder, tmp_path)
        len(ds)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name, reason in [("zero.wav", "unreadable"), ("notes.wav", "unreadable"),
                         ("nan.wav", "non-finite")]:
        assert any(name in w and reason in w for w in warnings), (name, warnings)
    assert ds.num_skipped == 3
    assert any("3 skipped as unreadable/corrupt" in w for w in warnings)
    assert len(ds) + len(ds.eval) == 13  # 12 tones + the silent file (no silence filter)


def test_silence_filter(folder, tmp_path):
    ds = make(folder, tmp_path, silence_db=-60.0)
    assert len(ds) + len(ds.eval) == 12
    assert "keys/silent.wav" not in ds.files + ds.eval.files


def test_no_usable_audio_is_an_error(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "a.wav").write_bytes(b"")
    (root / "b.flac").write_text("text")
    with pytest.raises(ValueError, match="no usable audio.*2 audio files found, 2 unreadable"):
        len(make(str(root), tmp_path / "cache"))


def test_batch_shapes_labels_and_short_clip_mask(folder, tmp_path):
    ds = make(folder, tmp_path, labels_from_dirs=True, channels=2)
    assert ds.class_names == ("drums", "keys") and ds.num_classes == 2 and ds.sample_rate == SR
    b = ds.batch(0, 2 * len(ds), seed=0)  # covers every file: epoch 0 and 1
    assert b["x"].shape == (2 * len(ds), 8000, 2) and b["x"].dtype == np.float32
    assert b["mask"].shape == (2 * len(ds), 8000, 1)
    assert set(b["label"]) <= {-1, 0, 1} and b["label"].dtype == np.int32
    assert np.abs(b["x"]).max() <= 1.0
    x, m = ds.read("keys/f00.wav", 0, 8000)  # 0.25 s: shorter than a crop (drawn ~2 % of the time)
    assert m.sum() == 4000 and np.all(x[4000:] == 0) and np.abs(x[:4000]).max() > 0.4
    full = [i for i, j in enumerate(b["index"]) if ds.files[j] != "keys/f00.wav"]
    assert np.all(b["mask"][full] == 1)


def test_determinism_across_restarts(folder, tmp_path):
    b1 = make(folder, tmp_path).batch(7, 4, seed=3)
    b2 = make(folder, tmp_path).batch(7, 4, seed=3)  # new object, manifest from the cache
    b3 = make(folder, tmp_path / "fresh").batch(7, 4, seed=3)  # new object, fresh scan
    for b in (b2, b3):
        for k in b1:
            np.testing.assert_array_equal(b1[k], b[k])
    assert not np.array_equal(make(folder, tmp_path).batch(8, 4, seed=3)["x"], b1["x"])


def test_hosts_read_disjoint_slices_of_the_global_batch(folder, tmp_path):
    ds = make(folder, tmp_path)
    whole = ds.batch(1, 4, seed=0)
    parts = [ds.batch(1, 4, seed=0, process_index=i, process_count=2) for i in range(2)]
    assert all(p["x"].shape[0] == 2 for p in parts)
    # Disjoint stream positions (crops are drawn independently, so two hosts may share a file).
    np.testing.assert_array_equal(np.concatenate([p["seconds_start"] for p in parts]),
                                  whole["seconds_start"])
    np.testing.assert_array_equal(np.concatenate([p["x"] for p in parts]), whole["x"])
    with pytest.raises(ValueError, match="divisible"):
        ds.batch(0, 3, seed=0, process_count=2)


def test_every_file_is_drawn(folder, tmp_path):
    """Issue 21: crops are drawn by duration (tests/audio/test_cache.py checks the shares), so over
    enough positions every file of the split appears, the 0.25 s one included."""
    ds = make(folder, tmp_path)
    idx = {ds.draw(datasets.crop_rng(5, 0, p))[0] for p in range(2000)}
    assert idx == set(range(len(ds)))


def test_split_is_by_duration_and_stable(folder, tmp_path):
    ds = make(folder, tmp_path)
    assert not set(ds.files) & set(ds.eval.files)
    longest = max(e["duration"] for e in ds._manifest["files"].values())
    assert abs(ds.eval.seconds - 0.2 * (ds.seconds + ds.eval.seconds)) <= longest / 2
    assert make(folder, tmp_path / "again").eval.files == ds.eval.files


def test_resampled_crops_keep_their_frequency(folder, tmp_path):
    ds = make(folder, tmp_path, cache=False)  # read() reads any usable file, whatever its split
    rel = "keys/f02.wav"  # 44.1 kHz, 300 Hz, 1.2 s
    x, m = ds.read(rel, 1000, 8000)
    assert x.shape == (8000, 1) and m.sum() == 8000
    spec = np.abs(np.fft.rfft(x[:, 0] * np.hanning(8000), 8 * 8000))
    assert abs(np.fft.rfftfreq(8 * 8000, 1 / SR)[np.argmax(spec)] - 300) < 1.0
    assert np.std(x) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_synth_music_dataset(tmp_path):
    ds = get_dataset("synth_music", num_train=16, num_eval=4, clip_seconds=0.5,
                     crop_seconds=0.25, cache_dir=str(tmp_path))
    b = ds.batch(2, 8, seed=1)
    assert b["x"].shape == (8, 4000, 1) and b["mask"].shape == (8, 4000, 1)
    assert b["label"].dtype == np.int32 and b["label"].max() < ds.num_classes == 9
    assert ds.class_names[0] == "flute" and len(ds) == 16 and len(ds.eval) == 4
    again = get_dataset("synth_music", num_train=16, num_eval=4, clip_seconds=0.5,
                        crop_seconds=0.25, cache_dir=str(tmp_path)).batch(2, 8, seed=1)
    for k in b:
        np.testing.assert_array_equal(b[k], again[k])
    ev = ds.eval.batch(0, 4, seed=0)
    assert sorted(ev["index"]) == [0, 1, 2, 3]
    train_audio = ds._data["audio"]
    assert not any(np.array_equal(e, t) for e in ds.eval._data["audio"] for t in train_audio)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError, match="folder.*synth_music"):
        get_dataset("synth_musik")
    assert {"folder", "synth_music"} <= set(DATASETS.names())


def test_synth_music_instrument_subset_from_a_json_list(tmp_path):
    ds = get_dataset("synth_music", num_train=8, num_eval=2, clip_seconds=0.25,
                     cache_dir=str(tmp_path), instruments=["bell", "epiano"])  # as restored from JSON
    assert ds.instruments == ("bell", "epiano")
    labels = ds.batch(0, 8, seed=0)["label"]
    assert set(labels) <= {ds.class_names.index("bell"), ds.class_names.index("epiano")}


def test_default_config_switches_to_a_folder_by_two_flags(folder, tmp_path):
    config = default.get_config()
    config.data.name = "folder"  # as --config.data.name=folder --config.data.folder.root=DIR
    config.data.folder.root = folder
    config.data.cache_dir = str(tmp_path)
    config.data.folder.labels_from_dirs = True
    ds = build_dataset(config.data)  # synth_music's keys (num_train, ...) are not passed on
    assert ds.class_names == ("drums", "keys") and ds.crop_seconds == config.data.crop_seconds
    crop = int(round(config.data.crop_seconds * config.data.sample_rate))
    assert ds.batch(0, 4, seed=0)["x"].shape == (4, crop, 1)


def test_folder_without_cache_dir_uses_the_default_cache(folder, tmp_path, monkeypatch):
    """Regression: `--config.data.name=folder --config.data.folder.root=DIR` with the default
    `cache_dir=None` crashed ("expected str ... not NoneType"); it now caches like synth_music."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    config = default.get_config()
    config.data.name = "folder"
    config.data.folder.root = folder
    assert config.data.cache_dir is None
    ds = build_dataset(config.data)
    assert len(ds) > 0 and ds.batch(0, 2, seed=0)["x"].shape == (2, 16000, 1)
    assert os.listdir(tmp_path / "xdg" / "diffjax" / "audio")  # the decode cache


@pytest.mark.parametrize("eval_fraction,split", [(1e-9, "eval"), (1.0 - 1e-9, "train")])
def test_folder_split_is_never_empty_and_bad_keys_fail(folder, tmp_path, eval_fraction, split):
    ds = make(folder, tmp_path, eval_fraction=eval_fraction)  # issue 21: one file, not an error
    assert len(ds if split == "train" else ds.eval) == 1 and len(ds) + len(ds.eval) == 13
    with pytest.raises(ValueError, match="data.folder.eval_fraction must be in"):
        make(folder, tmp_path, eval_fraction=0.0)
    with pytest.raises(ValueError, match="data.folder.root"):
        get_dataset("folder", cache_dir=str(tmp_path))


@pytest.mark.parametrize("key", ["num_train", "num_eval"])
def test_synth_music_empty_split_fails_at_construction_naming_the_key(tmp_path, key):
    with pytest.raises(ValueError, match=f"set data.synth_music.{key} >= 1"):
        get_dataset("synth_music", cache_dir=str(tmp_path), **{key: 0})
    with pytest.raises(ValueError, match="longer than the clips"):
        get_dataset("synth_music", cache_dir=str(tmp_path), clip_seconds=0.5, crop_seconds=1.0)


def test_unknown_key_names_the_dataset_and_the_keys_it_takes(tmp_path):
    section = {"name": "synth_music", "cache_dir": str(tmp_path), "root": "/data"}
    with pytest.raises(TypeError, match="dataset 'synth_music' does not take \\['root'\\].*num_train"):
        build_dataset(section)
    # The other dataset's sub-section is ignored; the chosen one's keys are used.
    ds = build_dataset({"name": "synth_music", "cache_dir": str(tmp_path), "crop_seconds": 0.25,
                        "synth_music": {"num_train": 4, "num_eval": 2, "clip_seconds": 0.5},
                        "folder": {"root": "/nowhere"}})
    assert len(ds) == 4 and len(ds.eval) == 2 and ds.example_shape == (4000, 1)


def test_audio_datasets_implement_the_interface(folder, tmp_path):
    synth = get_dataset("synth_music", num_train=8, num_eval=2, clip_seconds=0.5, crop_seconds=0.25,
                        cache_dir=str(tmp_path), channels=2)
    files = make(folder, tmp_path, labels_from_dirs=True)
    for ds in (synth, files):
        assert isinstance(ds, AbstractDataset) and isinstance(ds.eval, AbstractDataset)
        assert ds.closed_form is None and ds.sample_rate == SR
        assert len(ds.class_names) == ds.num_classes > 0
        b = ds.batch(3, 4, seed=0)
        assert b["x"].shape == (4,) + ds.example_shape and b["x"].dtype == np.float32
        assert b["mask"].shape == b["x"].shape[:-1] + (1,) and b["mask"].dtype == np.float32
        assert b["label"].shape == (4,) and b["label"].dtype == np.int32
    assert synth.example_shape == (4000, 2) and files.example_shape == (8000, 1)


def test_file_links_out_of_the_root_are_not_followed_by_default(folder, tmp_path, caplog):
    """Issue 20, item 8: a link inside the root to a file outside it is skipped (and said so)
    unless `follow_symlinks`."""
    import shutil

    root = tmp_path / "linked"
    shutil.copytree(folder, root)
    outside = tmp_path / "outside.wav"
    sf.write(str(outside), 0.5 * np.sin(np.arange(SR) / 5.0).astype(np.float32), SR)
    os.symlink(outside, root / "keys" / "link.wav")
    with caplog.at_level("WARNING", logger="diffjax"):
        plain = build_dataset({"name": "folder", "root": str(root), "cache_dir": str(tmp_path / "c1")})
    assert "link.wav: a symbolic link" in caplog.text
    assert not any("link.wav" in f for f in plain._manifest["files"])
    followed = build_dataset({"name": "folder", "root": str(root), "cache_dir": str(tmp_path / "c2"),
                              "follow_symlinks": True})
    assert "keys/link.wav" in followed._manifest["files"]


def test_a_loaded_workdir_never_chooses_where_caches_are_written():
    """Issue 20, item 8: a `data.cache_dir` in an untrusted config.json is dropped when a job
    rebuilds the workdir's data."""
    config = default.get_config()
    config.data.cache_dir = "/somewhere/else"
    assert "cache_dir" not in data_section_for_reading(config)
    assert data_section_for_reading(config)["name"] == config.data.name


# ---------------------------------------------------------------------------------------------
# Captions and timing (diffjax.audio.captions, diffjax.audio.metadata)
# ---------------------------------------------------------------------------------------------

LABEL_KEYS = ("label", "pitch", "kind", "quality", "velocity")


def tiny_synth(tmp_path, **kw):
    kw = {"num_train": 8, "num_eval": 2, "clip_seconds": 0.5, "cache_dir": str(tmp_path), **kw}
    return get_dataset("synth_music", **kw)


def templates_of(ds, i):
    labels = {k: ds._data[k][i] for k in LABEL_KEYS}
    return {captions.caption(labels, t) for t in range(captions.num_templates(labels["kind"]))}


def test_synth_batches_carry_captions_and_seconds(tmp_path):
    ds = tiny_synth(tmp_path, crop_seconds=0.25)
    b = ds.batch(0, 8, seed=1)
    assert b["caption"].shape == (8,) and b["caption"].dtype == object
    assert all(c in templates_of(ds, i) for c, i in zip(b["caption"], b["index"]))
    assert b["seconds_start"].dtype == b["seconds_total"].dtype == np.float32
    assert np.all((b["seconds_start"] >= 0) & (b["seconds_start"] <= 0.25))
    assert len(set(b["seconds_start"])) > 1 and np.all(b["seconds_total"] == 0.25)
    for j, i in enumerate(b["index"]):  # x is the clip from seconds_start on
        s = int(round(b["seconds_start"][j] * SR))
        np.testing.assert_array_equal(b["x"][j, :, 0], ds._data["audio"][i, s:s + 4000])
    whole = tiny_synth(tmp_path).batch(0, 4, seed=1)
    assert np.all(whole["seconds_start"] == 0) and np.all(whole["seconds_total"] == 0.5)
    assert len(ds.caption_corpus()) == 8 * 8 and b["caption"][0] in ds.caption_corpus()


def test_synth_captions_are_a_function_of_seed_step_and_position(tmp_path):
    ds = tiny_synth(tmp_path)
    b = ds.batch(3, 4, seed=2)
    again = tiny_synth(tmp_path).batch(3, 4, seed=2)
    np.testing.assert_array_equal(b["caption"], again["caption"])
    halves = [ds.batch(3, 4, seed=2, process_index=i, process_count=2)["caption"] for i in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves), b["caption"])
    # Epochs see each clip with different templates: clip -> captions over 6 epochs of 8.
    seen = {}
    for step in range(6):
        e = ds.batch(step, 8, seed=2)
        for i, c in zip(e["index"], e["caption"]):
            seen.setdefault(int(i), set()).add(c)
    assert all(len(s) >= 2 for s in seen.values())


def test_synth_events_follow_the_crop(tmp_path):
    ds = tiny_synth(tmp_path, crop_seconds=0.25)
    events = np.tile(np.array([[60, 0.0, 0.3, 0.5], [62, 0.2, 0.2, 0.5], [64, 0.4, 0.05, 0.5],
                               [-1, 0, 0, 0]], np.float32), (8, 1, 1))
    ds.__dict__["_data"] = {**ds._data, "events": events}  # as from synth with events
    b = ds.batch(1, 8, seed=0)
    ev = b["events"]
    assert ev.shape == (8, 4, 4) and ev.dtype == np.float32
    for j in range(8):
        s, real = b["seconds_start"][j], ev[j][ev[j, :, 0] >= 0]
        kept = [r for r in events[0] if r[0] >= 0 and s <= r[1] < s + 0.25]
        np.testing.assert_allclose(real[:, 0], [r[0] for r in kept])
        np.testing.assert_allclose(real[:, 1], [r[1] - s for r in kept], atol=1e-6)
        assert np.all(real[:, 1] + real[:, 2] <= 0.25 + 1e-6)
        assert np.all(ev[j, len(real):, 0] == -1)  # padding after the kept events


def test_synth_min_seconds_gives_masked_variable_lengths(tmp_path):
    ds = tiny_synth(tmp_path, crop_seconds=0.4, min_seconds=0.1)
    full = tiny_synth(tmp_path, crop_seconds=0.4).batch(2, 8, seed=0)
    b = ds.batch(2, 8, seed=0)
    total = b["seconds_total"]
    assert np.all((total >= 0.1) & (total <= 0.4)) and len(set(total)) == 8
    np.testing.assert_array_equal(b["seconds_start"], full["seconds_start"])  # same crops
    for j, t in enumerate(total):
        n = int(round(t * SR))
        assert b["mask"][j].sum() == n and np.all(b["mask"][j, :n] == 1)
        assert np.all(b["x"][j, n:] == 0)
        np.testing.assert_array_equal(b["x"][j, :n - 160], full["x"][j, :n - 160])  # 10 ms fade
        assert np.all(np.abs(b["x"][j, n - 160:n]) <= np.abs(full["x"][j, n - 160:n]))
    if "events" in b:
        real = b["events"][..., 0] >= 0
        assert np.all(b["events"][..., 1][real] < total[:, None].repeat(real.shape[1], 1)[real])
    for bad in (0.0, 0.5):
        with pytest.raises(ValueError, match="data.synth_music.min_seconds"):
            tiny_synth(tmp_path, crop_seconds=0.4, min_seconds=bad)


def test_folder_batches_carry_seconds(folder, tmp_path):
    ds = make(folder, tmp_path)
    b = ds.batch(0, 2 * len(ds), seed=0)
    assert "caption" not in b
    assert b["seconds_start"].dtype == b["seconds_total"].dtype == np.float32
    for j, i in enumerate(b["index"]):
        rel = ds.files[i]
        duration = ds._manifest["files"][rel]["duration"]
        assert b["seconds_total"][j] == pytest.approx(b["mask"][j].sum() / SR)
        if rel == "keys/f00.wav":  # 0.25 s: shorter than a crop
            assert b["seconds_start"][j] == 0 and b["seconds_total"][j] == 0.25
        else:
            assert b["seconds_total"][j] == 0.5
            assert 0 <= b["seconds_start"][j] <= duration - 0.5 + 1e-4
    whole = tone(500, SR, 1.6)  # keys/f06.wav: 16 kHz, 1.6 s, 500 Hz
    for cached in (True, False):
        x, m = make(folder, tmp_path, cache=cached).read("keys/f06.wav", 3000, 8000)
        np.testing.assert_allclose(x[:, 0], whole[3000:11000], atol=1e-4)


def write_metadata(path, rows, kind):
    import csv
    import json
    with open(path, "w", newline="") as f:
        if kind == "csv":
            w = csv.writer(f)
            w.writerow(["path", "caption", "bpm"])
            w.writerows([[p, c, "120"] for p, c in rows])
        else:
            f.writelines(json.dumps({"path": p, "caption": c, "bpm": 120}) + "\n" for p, c in rows)


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_folder_metadata_gives_captions(folder, tmp_path, kind, caplog):
    files = make(folder, tmp_path).files
    rows = [(rel, f"a tone, file {rel}") for rel in files[1:]]  # files[0]: no row
    rows += [("missing.wav", "no such file"), (files[1], "a second caption")]
    if kind == "jsonl":  # absolute paths under root also name the file
        rows = [(os.path.join(folder, r), c) if r == files[2] else (r, c) for r, c in rows]
    meta = tmp_path / f"meta.{kind}"
    write_metadata(meta, rows, kind)
    # A path relative to root (csv) or absolute (jsonl).
    path = os.path.relpath(meta, folder) if kind == "csv" else str(meta)
    with caplog.at_level(logging.WARNING, logger="diffjax"):
        ds = make(folder, tmp_path, metadata=path)
    assert "1 row(s)" in caplog.text and "missing.wav" in caplog.text
    b = ds.batch(0, 2 * len(ds), seed=0)
    assert b["caption"].dtype == object and b["caption"].shape == (2 * len(ds),)
    for c, i in zip(b["caption"], b["index"]):
        rel = ds.files[i]
        expected = {""} if i == 0 else {f"a tone, file {rel}"}
        if i == 1:
            expected.add("a second caption")
        assert c in expected, (rel, c)
    corpus = ds.caption_corpus()
    assert len(corpus) == len(files) and "a second caption" in corpus
    np.testing.assert_array_equal(make(folder, tmp_path, metadata=path).batch(0, 4, seed=0)["caption"],
                                  b["caption"][:4])


@pytest.mark.parametrize("name,text", [("bad.csv", "file,text\na.wav,hello\n"),
                                       ("bad.jsonl", '{"path": "a.wav", "caption": "x"}\nnot json\n'),
                                       ("bad.jsonl", '{"path": "a.wav"}\n'),
                                       ("bad.txt", "path,caption\n")])
def test_folder_malformed_metadata_is_an_error_naming_the_file(folder, tmp_path, name, text):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=f"{name}.*'path' and 'caption'"):
        make(folder, tmp_path, metadata=str(tmp_path / name))


def test_folder_missing_metadata_is_an_error(folder, tmp_path):
    with pytest.raises(ValueError, match="nowhere.csv.*'path' and 'caption'"):
        make(folder, tmp_path, metadata=str(tmp_path / "nowhere.csv"))
    with pytest.raises(ValueError, match="data.folder.metadata"):
        make(folder, tmp_path).caption_corpus()

"""Evaluation against your own folder (issue 21, item 4): crops of every file, FD and KAD between
two folders, the eval-split reference of a one-file split, and experiments/evaluate.py's folder mode."""
import json
import os
import re

import numpy as np
import pytest
import soundfile as sf

from configs import evaluate as evaluate_config
from diffjax import data
from diffjax.audio import crops
from diffjax.evaluation import get_embedder, reference
from diffjax.jobs.evaluate_folders import evaluate_folders

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SR = 16000


def write_folder(path, seed, *, low, high, num=4, seconds=1.0, noise=0.05, channels=1):
    """`num` files of a sine with a random frequency in [low, high] Hz plus white noise."""
    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    for i in range(num):
        x = 0.5 * np.sin(2 * np.pi * rng.uniform(low, high) * t) + noise * rng.standard_normal(len(t))
        sf.write(os.path.join(path, f"clip{i}.wav"), np.repeat(x[:, None], channels, 1).astype(np.float32), SR)
    return str(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    return {"reference": write_folder(root / "reference", 0, low=200, high=400),
            "same": write_folder(root / "same", 1, low=200, high=400),
            "shifted": write_folder(root / "shifted", 2, low=2000, high=4000, noise=0.2)}


def folder_config(**folder):
    config = evaluate_config.get_config("smoke")
    config.embedders = "classifier,mel_stats,mfcc_stats"  # no --classifier: classifier is left out
    config.folder.crop_seconds = 0.25
    config.metrics.bootstrap = 8
    for key, value in folder.items():
        config.folder[key] = value
    return config


def test_crop_plan():
    plan = crops.crop_plan([10, 35, 3], 10)
    assert [p.tolist() for p in plan] == [[0], [0, 10, 20], [0]]  # a short file: one (padded) crop
    assert [p.tolist() for p in crops.crop_plan([10, 35, 3], 10, max_per_file=2)] == [[0], [0, 20], [0]]
    assert [len(p) for p in crops.crop_plan([100, 100, 20], 10, max_total=9)] == [4, 3, 2]
    with pytest.raises(ValueError, match="fewer than the 3 files"):
        crops.crop_plan([10, 35, 3], 10, max_total=2)


def test_folder_crops_are_the_files_cut_up(tmp_path):
    path = write_folder(tmp_path / "stereo", 3, low=300, high=300, num=2, seconds=1.0, channels=2)
    got = list(crops.folder_crops(path, sample_rate=SR, crop_seconds=0.25, channels=2))
    assert [rel for rel, _ in got] == ["clip0.wav", "clip1.wav"]
    x = sf.read(os.path.join(path, "clip1.wav"), dtype="float32")[0]
    assert got[1][1].shape == (4, 4000, 2)
    np.testing.assert_array_equal(got[1][1].reshape(-1, 2), x)  # non-overlapping, in order
    capped = list(crops.folder_crops(path, sample_rate=SR, crop_seconds=0.25, max_per_file=3, max_total=4))
    assert [c.shape for _, c in capped] == [(2, 4000, 1), (2, 4000, 1)]
    assert crops.folder_sample_rate(path) == SR


def test_two_folders_fd_and_kad(folders):
    config = folder_config()
    same = evaluate_folders(folders["same"], folders["reference"], config)
    shifted = evaluate_folders(folders["shifted"], folders["reference"], config)
    assert same["embedders"] == ["mel_stats", "mfcc_stats"]
    assert same["num"] == same["reference_num"] == 16 and same["reference_files"] == 4  # 4 crops per file
    for name in ("mel", "mfcc"):
        for metric in ("fd", "kad"):
            key = f"{metric}_{name}"
            assert shifted[f"{key}_low"] <= shifted[key] <= shifted[f"{key}_high"], key
            assert shifted[f"{key}_low"] > same[f"{key}_high"], key  # the shifted pair is clearly farther
    assert abs(same["kad_mel"]) < 0.1 * shifted["kad_mel"]


def test_many_crops_per_file_for_the_reference(folders):
    emb = get_embedder("mel_stats", sample_rate=SR)
    ref = reference.folder_features(emb, folders["reference"], sample_rate=SR, crop_seconds=0.125,
                                    max_per_file=5)
    assert ref["embedding"].shape == (20, 128) and ref["cov"].shape == (128, 128)
    assert sorted(set(ref["file"])) == [f"clip{i}.wav" for i in range(4)]


def test_eval_split_reference_with_one_file(folders, tmp_path):
    """The crash `features must be [N >= 2, D]; got shape (1, 128)`: a one-file eval split now gives
    several random crops of its file."""

    for fraction in np.linspace(0.05, 0.95, 19):
        ds = data.get_dataset("folder", root=folders["reference"], cache_dir=str(tmp_path),
                              sample_rate=SR, crop_seconds=0.25, eval_fraction=float(fraction))
        if len(ds.eval) == 1:
            break
    assert len(ds.eval) == 1
    emb = get_embedder("mel_stats", sample_rate=SR)
    assert len(reference.reference_features(emb, ds.eval)["embedding"]) == 2  # the floor
    ref = reference.reference_features(emb, ds.eval, crops_per_clip=6)
    assert ref["embedding"].shape == (6, 128) and np.all(np.isfinite(ref["cov"]))


def test_whole_clips_are_not_repeated(smoke_dataset):
    emb = get_embedder("mel_stats", sample_rate=smoke_dataset.sample_rate)
    ref = reference.reference_features(emb, smoke_dataset.eval, crops_per_clip=3)
    assert len(ref["embedding"]) == len(smoke_dataset.eval)  # whole clips: each once, not 3 times


def test_cli_folder_mode(folders, tmp_path, capsys, evaluate_main):
    out = tmp_path / "out"
    base = ["evaluate.py", f"--config={os.path.join(REPO, 'configs', 'evaluate.py')}:smoke",
            "--config.embedders=mel_stats", "--config.folder.crop_seconds=0.25"]
    argv = base + [f"--samples={folders['shifted']}", f"--reference={folders['reference']}", f"--out={out}"]
    evaluate_main(argv)
    printed = capsys.readouterr().out
    assert "KAD mel" in printed and "| shifted |" in printed
    saved = json.loads((out / "results.json").read_text())
    assert saved["kad_mel"] > 0 and saved["fd_mel_low"] <= saved["fd_mel"] <= saved["fd_mel_high"]
    before = (out / "results.md").read_text()
    assert "FD mel" in before and " [" in before  # the interval beside the value
    page = (out / "index.html").read_text()  # players of both folders' first crops, metrics, command
    players = re.findall(r'<audio[^>]* src="([^"]+)"', page)
    assert len(players) == min(4, len(os.listdir(folders["shifted"]))) + min(4, len(os.listdir(folders["reference"])))
    assert all((out / p).is_file() and (out / p).with_suffix(".png").is_file() for p in players)
    assert "kad_mel" in page and "--samples=" in page
    with pytest.raises(FileExistsError, match="never overwritten"):
        evaluate_main(argv)
    assert (out / "results.md").read_text() == before
    with pytest.raises(FileNotFoundError, match="--samples: .*missing is not a directory"):
        evaluate_main(base + [f"--samples={tmp_path / 'missing'}", f"--reference={folders['reference']}"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="--reference: .*holds no audio files"):
        evaluate_main(base + [f"--samples={folders['same']}", f"--reference={tmp_path / 'empty'}"])

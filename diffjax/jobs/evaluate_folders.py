"""FD and KAD (with bootstrap intervals) between two folders of audio: no model, no workdir.

    python experiments/evaluate.py --config configs/evaluate.py --samples generated/ \
        --reference my_music/ --out eval_vs_my_music/

    results = evaluate_folders("generated", "my_music", configs.evaluate.get_config(),
                               classifier_workdir=None, out_dir="eval_vs_my_music")

Both folders are cut into non-overlapping crops (`config.folder`: crop length, rate, channels, caps
per file and in total; `diffjax.audio.crops`), so a folder of a few long tracks gives many points.
Each embedder of `config.embedders` embeds the crops at its rate (mel/MFCC statistics at
`folder.sample_rate`, the classifier at its own); 'classifier' is used only with a classifier
workdir. The metrics are `evaluation.generation_metrics` (FD, KAD, KID, NDB, and IS with the
classifier) with `config.metrics`, whose `bootstrap` gives FD's and KAD's 5-95 % intervals.
`<out>/results.json` and `results.md` are written only if neither exists.
"""
from __future__ import annotations

import itertools
import logging
import os
from typing import Optional

from diffjax.audio import crops
from diffjax.evaluation.reference import folder_features
from diffjax.evaluation.report import write_results
from diffjax.evaluation.suite import MetricOptions, generation_metrics
from diffjax.jobs import classifier as classifier_job
from diffjax.jobs import page
from diffjax.jobs import workdir as workdir_lib
from diffjax.jobs.evaluate import build_embedders, embedder_names
from diffjax.jobs.files import same_file

log = logging.getLogger("diffjax")
DEFAULT_CROP_SECONDS = 2.0  # without a classifier (whose training clips set the length)
OUTPUTS = ("results.json", "results.md", page.PAGE_NAME)
EXAMPLES_PER_FOLDER = 4  # clips of each folder on the listening page


def check_folders(samples_dir: str, reference_dir: str) -> None:
    """Both are folders holding audio (`crops.audio_files` raises naming the problem)."""
    for path, flag in ((samples_dir, "--samples"), (reference_dir, "--reference")):
        if not path:
            raise ValueError(f"{flag} is required: a folder of audio files")
        try:
            crops.audio_files(path)
        except (FileNotFoundError, ValueError) as error:
            raise type(error)(f"{flag}: {error}") from None


def output_paths(out_dir: Optional[str], inputs: tuple[str, ...]) -> list[str]:
    """The files the job will write, refused before any work if one exists or is inside an input."""
    if not out_dir:
        return []
    for folder in inputs:
        if same_file(out_dir, folder):
            raise ValueError(f"--out {out_dir} is an input folder; choose another output folder")
    paths = [os.path.join(out_dir, name) for name in OUTPUTS]
    for path in paths:
        if os.path.lexists(path):
            raise FileExistsError(f"{path} exists and results are never overwritten; choose another --out")
    return paths


def crop_seconds_of(config, classifier_workdir: Optional[str]) -> float:
    """`config.folder.crop_seconds`, else the classifier's training clip length, else 2 s."""
    if config.folder.crop_seconds is not None:
        return float(config.folder.crop_seconds)
    if classifier_workdir:
        spec = workdir_lib.load_spec(classifier_workdir)
        return spec.shape[0] / spec.sample_rate
    return DEFAULT_CROP_SECONDS


def write_page(out_dir: str, results: dict, *, folders: dict[str, str], sample_rate: int, crop_seconds: float,
               channels: int, command: Optional[str]) -> str:
    """`out_dir/index.html`: the first crop of a few files of each folder (players and spectrograms),
    the metrics table and the command."""
    clips = []
    for label, folder in folders.items():
        examples = list(itertools.islice(crops.folder_crops(folder, sample_rate=sample_rate, crop_seconds=crop_seconds,
                                                            channels=channels, max_per_file=1), EXAMPLES_PER_FOLDER))
        written = page.write_example_clips(out_dir, [(f"{label}_{i}", x[0]) for i, (_, x) in enumerate(examples)],
                                           sample_rate)
        clips += [clip._replace(caption=f"{label}: {rel}") for clip, (rel, _) in zip(written, examples)]
    return page.write_listening_page(out_dir, clips, title="evaluation: samples against reference",
                                     metrics=page.metric_rows(results), command=command)


def evaluate_folders(samples_dir: str, reference_dir: str, config, *,
                     classifier_workdir: Optional[str] = None, out_dir: Optional[str] = None,
                     command: Optional[str] = None) -> dict:
    """Every metric of `config.metrics` of the crops of `samples_dir` against those of
    `reference_dir`, per embedder; writes `out_dir`/results.{json,md} and a listening page
    (`index.html`, with `command`) if `out_dir` is given."""
    check_folders(samples_dir, reference_dir)
    paths = output_paths(out_dir, (samples_dir, reference_dir))
    names = embedder_names(config.embedders)
    if "classifier" in names and not classifier_workdir:
        log.info("no --classifier workdir: evaluating without the 'classifier' embedder")
        names = [n for n in names if n != "classifier"]
    if not names:
        raise ValueError(f"no embedder left to evaluate with (--config.embedders={config.embedders!r}); "
                         "add mel_stats or mfcc_stats, or pass --classifier")
    classifier = classifier_job.load_classifier(classifier_workdir) if "classifier" in names else None
    rate = int(config.folder.sample_rate or crops.folder_sample_rate(reference_dir))
    crop_seconds = crop_seconds_of(config, classifier_workdir if classifier else None)
    embedders = build_embedders(names, config.embedder, sample_rate=rate, classifier=classifier)
    cut = dict(crop_seconds=crop_seconds, channels=int(config.folder.channels),
               max_per_file=config.folder.max_crops_per_file, max_total=config.folder.max_crops)
    features, reference = {}, {}
    for name, embedder in embedders.items():
        at = int(embedder.sample_rate or rate)
        features[name] = folder_features(embedder, samples_dir, sample_rate=at, **cut)
        reference[name] = folder_features(embedder, reference_dir, sample_rate=at, **cut)
    results = generation_metrics(features, reference, options=MetricOptions(**config.metrics))
    first = next(iter(embedders))
    results.update(samples=os.path.abspath(samples_dir), reference=os.path.abspath(reference_dir),
                   num=int(len(features[first]["embedding"])), reference_num=int(len(reference[first]["embedding"])),
                   num_files=int(len(set(features[first]["file"]))),
                   reference_files=int(len(set(reference[first]["file"]))), sample_rate=rate,
                   crop_seconds=crop_seconds, embedders=sorted(names))
    if paths:
        write_results(out_dir, results, row={"setting": os.path.basename(os.path.normpath(samples_dir))})
        write_page(out_dir, results, folders={"samples": samples_dir, "reference": reference_dir}, sample_rate=rate,
                   crop_seconds=crop_seconds, channels=int(config.folder.channels), command=command)
    return results

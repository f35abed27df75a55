"""Evaluating the checkpoints of a diffusion workdir: the job behind experiments/evaluate.py.

    config = configs.evaluate.get_config()
    results = evaluate_checkpoint("runs/music", config, classifier_workdir="runs/classifier")
    watch_checkpoints("runs/music", lambda step: evaluate_checkpoint(..., step=step))

The model comes from `workdir.load` (the only loader) and samples through `jobs.generate`; the
classifier embedder gets a loaded `Classifier` (`jobs.classifier.load_classifier`). Results go to
`<out>/<tag>/` (results.json, results.md, chunks/ for resuming), one line per evaluation is appended
to `<out>/results.jsonl`, and reference features are cached in `<out>/reference/`; `<out>` defaults
to `<workdir>/eval`.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from diffjax import audio, toy  # noqa: F401  (register their datasets)
from diffjax import data
from diffjax.evaluation.features import EMBEDDERS, AbstractEmbedder
from diffjax.evaluation.reference import reference_features
from diffjax.evaluation.report import write_results
from diffjax.evaluation.suite import MetricOptions, evaluate_generator
from diffjax.jobs import classifier as classifier_job
from diffjax.jobs import page
from diffjax.jobs.generation import generate, load_autoguide
from diffjax.jobs import phema as phema_job
from diffjax.jobs import workdir as workdir_lib

log = logging.getLogger("diffjax")
EXAMPLES = 4  # generated examples on the evaluation's listening page
SHORT_NAMES = {"classifier": "classifier", "mel_stats": "mel", "mfcc_stats": "mfcc"}
MISSING_CLASSIFIER = ("the 'classifier' embedder needs a trained classifier workdir (--classifier): run "
                      "experiments/train_classifier.py, or leave 'classifier' out of --config.embedders")


def embedder_names(value: str) -> list[str]:
    """`config.embedders` ('classifier,mel_stats,...') -> registered names, in order."""
    return [n.strip() for n in value.split(",") if n.strip()]


def build_embedders(names: Sequence[str], options: Mapping[str, Mapping], *, sample_rate: int,
                    classifier=None) -> dict[str, AbstractEmbedder]:
    """Registered embedder names -> {short name: embedder} ('classifier', 'mel', 'mfcc', or the
    callable's own `name`). `options[name]` are each embedder's keys (`config.embedder`), checked by
    `EMBEDDERS.build`; the data's `sample_rate` and the loaded `classifier` are passed where taken."""
    out = {}
    for name in names:
        own = dict(options.get(name) or {})
        if name == "classifier" and classifier is None:
            raise FileNotFoundError(MISSING_CLASSIFIER)
        if name == "callable":  # its own `name` key would shadow the registry's `name`
            if not own.get("fn") or not own.get("name"):
                raise ValueError("the 'callable' embedder needs --config.embedder.callable.fn "
                                 "('module:function') and --config.embedder.callable.name (identifies it "
                                 "in the reference cache)")
            out[own["name"]] = EMBEDDERS.get("callable")(**{"sample_rate": sample_rate, **own})
            continue
        out[SHORT_NAMES.get(name, name)] = EMBEDDERS.build({"name": name, **own}, sample_rate=sample_rate,
                                                           classifier=classifier)
    return out


def make_generate_fn(loaded, *, batch_size: int = 100, **generate_kwargs) -> tuple[Callable, dict]:
    """`generate_fn(seeds, labels=None) -> waveforms` over `jobs.generation.generate`, in batches
    (labels become the condition `{'label': ...}`); the returned dict collects the 'nfe' and
    'num_steps' actually used."""
    info: dict = {}

    def generate_fn(seeds, labels=None):
        parts = []
        for i in range(0, len(seeds), batch_size):
            cond = None if labels is None else {"label": np.asarray(labels[i:i + batch_size], np.int32)}
            out = generate(loaded.model, loaded.params, sampling_config=loaded.config.sampling,
                           seeds=seeds[i:i + batch_size], cond=cond, **generate_kwargs)
            info.update(nfe=int(out.nfe), num_steps=int(out.num_steps))
            parts.append(np.asarray(out.audio))
        return np.concatenate(parts)

    return generate_fn, info


def run_tag(step: int, *, sampler: str, nfe: Optional[int], num_steps: Optional[int], num: int,
            cfg_scale: Optional[float], reference_split: str, sigma_rel: Optional[float] = None,
            guide: Optional[str] = None) -> str:
    budget = f"nfe{nfe}" if nfe is not None else f"steps{num_steps}"
    cfg = "" if cfg_scale is None or cfg_scale == 1.0 else f"_cfg{cfg_scale:g}"  # 1: no guidance
    phema = "" if sigma_rel is None else f"_phema{sigma_rel:.3f}"
    return f"step{step}{phema}_{sampler}_{budget}{cfg}{guide or ''}_n{num}_{reference_split}"


def label_classes(model, conditional: bool) -> int:
    """Classes of the model's 'label' condition when generating conditionally, else 0."""
    if not conditional or "label" not in model.conditioners:
        return 0
    return int(model.conditioners["label"].num_classes)


def keep_examples(generate_fn: Callable) -> tuple[Callable, list]:
    """`generate_fn` that also keeps the first `EXAMPLES` examples it generates (for the page)."""
    kept: list = []

    def generate_and_keep(seeds, labels=None):
        audio = generate_fn(seeds, labels)
        if not kept:
            kept.extend((f"seed{int(s):06d}", a) for s, a in zip(seeds[:EXAMPLES], audio[:EXAMPLES]))
        return audio

    return generate_and_keep, kept


def write_page(run_dir: str, results: dict, examples: list, *, sample_rate: int, command: Optional[str]) -> str:
    """`run_dir/index.html`: players and spectrograms of the kept examples (none when every chunk
    was resumed from disk), the metrics table and the command."""
    clips = page.write_example_clips(run_dir, examples, sample_rate) if examples else []
    return page.write_listening_page(run_dir, clips, title=f"evaluation {os.path.basename(run_dir)}",
                                     metrics=page.metric_rows(results), command=command)


def evaluate_checkpoint(workdir: str, config, *, step: Optional[int] = None,
                        classifier_workdir: Optional[str] = None, out_dir: Optional[str] = None,
                        progress: bool = True, sigma_rel: Optional[float] = None,
                        command: Optional[str] = None) -> dict:
    """Samples `config.num` examples from checkpoint `step` (default the latest), or from the post-hoc
    EMA of `sigma_rel` (reconstructed beforehand), and computes every generation metric against the
    reference split; resumes from saved chunks and returns saved results if already complete.
    `config`: configs/evaluate.py."""
    names = embedder_names(config.embedders)
    options = MetricOptions(**config.metrics)
    if config.reference.split not in ("train", "eval"):
        raise ValueError(f"reference.split must be 'train' or 'eval'; got {config.reference.split!r}")
    classifier = None
    if "classifier" in names:
        if not classifier_workdir or not os.path.isdir(classifier_workdir):
            raise FileNotFoundError(f"{MISSING_CLASSIFIER} (got {classifier_workdir!r})")
        classifier = classifier_job.load_classifier(classifier_workdir)
    if sigma_rel is not None and step is not None:
        raise ValueError("a post-hoc EMA is reconstructed at one step (experiments/reconstruct_ema.py --step); "
                         "give sigma_rels or step, not both")
    loaded = (workdir_lib.load(workdir, step=step, ema=config.ema) if sigma_rel is None
              else phema_job.load_phema(workdir, sigma_rel))
    sampling = loaded.config.sampling
    sampler = config.sampling.sampler or sampling.sampler
    grid = config.sampling.grid or sampling.grid
    nfe, num_steps = config.sampling.nfe, config.sampling.num_steps
    num_classes = label_classes(loaded.model, config.conditional)
    cfg_scale = config.sampling.cfg_scale
    if cfg_scale is None and num_classes:
        cfg_scale = sampling.get("cfg_scale")  # the workdir's guidance, if any
    cfg_scale = cfg_scale if num_classes else None
    autoguide, guide_tag, guide_info = None, None, {}
    if (config.get("guide") or {}).get("workdir"):
        autoguide, guide_step = load_autoguide(loaded, workdir, config.guide.workdir, step=config.guide.step,
                                               ema=config.guide.ema, weight=config.guide.weight)
        guide_tag = f"_auto{config.guide.weight:g}-{os.path.basename(os.path.normpath(config.guide.workdir))}{guide_step}"
        guide_info = {"guide": {"workdir": config.guide.workdir, "step": guide_step, "weight": config.guide.weight}}
    out_dir = out_dir or os.path.join(workdir, "eval")
    tag = run_tag(loaded.step, sampler=sampler, nfe=nfe, num_steps=num_steps, num=config.num,
                  cfg_scale=cfg_scale, reference_split=config.reference.split, sigma_rel=sigma_rel, guide=guide_tag)
    run_dir = os.path.join(out_dir, tag)
    if os.path.exists(os.path.join(run_dir, "results.json")):
        with open(os.path.join(run_dir, "results.json")) as f:
            done = json.load(f)
        if done.get("embedders") != sorted(names):
            raise ValueError(f"{run_dir} was evaluated with embedders {done.get('embedders')}, not "
                             f"{sorted(names)}: pass another --out to evaluate again")
        return done
    dataset = data.build_dataset(workdir_lib.data_section_for_reading(loaded.config))
    if dataset.sample_rate is None:
        raise ValueError(f"generation metrics are defined on audio; {workdir!r} models vector data "
                         "(its dataset has no sample rate)")
    ref_data = dataset if config.reference.split == "train" else dataset.eval
    embs = build_embedders(names, config.embedder, sample_rate=dataset.sample_rate, classifier=classifier)
    reference = {k: reference_features(e, ref_data, num=config.reference.num,
                                       crops_per_clip=config.reference.crops_per_file, cache_dir=out_dir)
                 for k, e in embs.items()}
    if num_classes and classifier is not None and classifier.model.num_classes != num_classes:
        log.warning("model has %d classes but the classifier %d: class accuracy is meaningless",
                    num_classes, classifier.model.num_classes)
    generate_fn, info = make_generate_fn(loaded, batch_size=config.chunk_size, cfg_scale=cfg_scale,
                                         sampler=sampler, nfe=nfe, num_steps=num_steps, grid=grid, autoguide=autoguide)
    generate_fn, examples = keep_examples(generate_fn)
    results = evaluate_generator(generate_fn, embedders=embs, reference=reference, num=config.num,
                                 sample_rate=dataset.sample_rate, chunk_size=config.chunk_size,
                                 state_dir=os.path.join(run_dir, "chunks"),
                                 num_classes=num_classes, options=options, progress=progress)
    results.update(step=int(loaded.step), sampler=sampler, embedders=sorted(names), grid=grid,
                   cfg_scale=cfg_scale, reference_split=config.reference.split, sigma_rel=sigma_rel, **guide_info,
                   reference_num=int(len(next(iter(reference.values()))["embedding"])), **info)
    write_results(run_dir, results, row={"setting": tag})
    write_page(run_dir, results, examples, sample_rate=dataset.sample_rate, command=command)
    with open(os.path.join(out_dir, "results.jsonl"), "a") as f:
        f.write(json.dumps({"tag": tag, **results}) + "\n")
    return results


def checkpoint_steps(workdir: str) -> list[int]:
    """Finished checkpoint steps in `<workdir>/checkpoints` (orbax renames a save into place)."""
    path = workdir_lib.checkpoint_dir(workdir)
    if not os.path.isdir(path):
        return []
    return sorted(int(n) for n in os.listdir(path) if n.isdigit())


def watch_checkpoints(workdir: str, evaluate_step: Callable[[int], dict], *,
                      poll_seconds: float = 60.0, timeout_seconds: float = 3600.0,
                      last_step: Optional[int] = None,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> dict[int, dict]:
    """Evaluates each new checkpoint as it appears, while training runs (as score_sde's
    evaluation loop). Stops after `last_step` is evaluated, or when no new checkpoint appeared
    for `timeout_seconds`. Returns {step: results}."""
    done: dict[int, dict] = {}
    missed: list[int] = []
    deadline = clock() + timeout_seconds
    while True:
        new = [s for s in checkpoint_steps(workdir) if s not in done]
        for step in new:
            try:
                done[step] = evaluate_step(step)
            except Exception as error:  # noqa: BLE001  (a checkpoint deleted mid-read fails in many ways)
                if step in checkpoint_steps(workdir):
                    raise
                missed.append(step)
                log.warning("checkpoint %d was deleted (keep-last) while it was being evaluated: %s; missed so "
                            "far: %s (raise training.keep_last or evaluate more often)", step, error, missed)
                done[step] = {}
            deadline = clock() + timeout_seconds
        if last_step is not None and any(s >= last_step for s in done):
            return done
        if not new and clock() >= deadline:
            log.info("no new checkpoint in %s for %.0f s; stopping", workdir, timeout_seconds)
            return done
        if not new:
            sleep(poll_seconds)


def run_evaluation(workdir: str, config, *, step: Optional[int] = None, classifier_workdir: Optional[str] = None,
             out_dir: Optional[str] = None, report: Callable[[dict], None] = lambda results: None,
             command: Optional[str] = None) -> dict:
    """One checkpoint (`step`, default the latest), or with `config.watch.enabled` every new one until
    the workdir's last training step: {step: results}; with `config.sigma_rels`, each post-hoc EMA
    length: {sigma_rel: results}. `report(results)` is called after each; each run's folder gets a
    listening page naming `command`."""

    def evaluate_step(s, sigma_rel=None):
        results = evaluate_checkpoint(workdir, config, step=s, classifier_workdir=classifier_workdir,
                                      out_dir=out_dir, sigma_rel=sigma_rel, command=command)
        report(results)
        return results

    sigma_rels = tuple(float(s) for s in config.get("sigma_rels", ()))
    if sigma_rels:
        if config.watch.enabled:
            raise ValueError("sigma_rels sweeps post-hoc EMAs of a finished run; turn watch.enabled off")
        return {sigma_rel: evaluate_step(step, sigma_rel) for sigma_rel in sigma_rels}

    if not config.watch.enabled:
        results = evaluate_step(step)
        return {results["step"]: results}
    last = int(workdir_lib.load_config(workdir).training.num_steps)
    return watch_checkpoints(workdir, evaluate_step, poll_seconds=config.watch.poll_seconds,
                             timeout_seconds=config.watch.timeout_seconds, last_step=last)

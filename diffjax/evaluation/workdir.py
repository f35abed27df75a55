"""Evaluating the checkpoints of a diffusion workdir: the library behind experiments/evaluate.py.

    results = evaluate_checkpoint("runs/music", sampler="heun", nfe=35, num=1000,
                                  classifier_workdir="runs/classifier")
    watch_checkpoints("runs/music", lambda step: evaluate_checkpoint(..., step=step))

Results go to `<workdir>/eval/<tag>/` (results.json, results.md, chunks/ for resuming), one line per
evaluation is appended to `<workdir>/eval/results.jsonl`, and reference features are cached in
`<workdir>/eval/reference/`.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Callable, Optional, Sequence

import numpy as np

from diffjax import factory
from diffjax.evaluation.features import AbstractEmbedder, get_embedder
from diffjax.evaluation.reference import reference_features
from diffjax.evaluation.report import write_results
from diffjax.evaluation.suite import MetricOptions, evaluate_generator
from diffjax.training import checkpoint

log = logging.getLogger("diffjax")
DEFAULT_EMBEDDERS = ("classifier", "mel_stats", "mfcc_stats")
SHORT_NAMES = {"classifier": "classifier", "mel_stats": "mel", "mfcc_stats": "mfcc"}


def build_embedders(names: Sequence[str], *, sample_rate: int,
                    classifier_workdir: Optional[str] = None,
                    embedder_fn: Optional[str | Callable] = None,
                    embedder_name: Optional[str] = None) -> dict[str, AbstractEmbedder]:
    """Registered embedder names -> {short name: embedder} ('classifier', 'mel', 'mfcc', or the
    user's `embedder_name` for 'callable', which wraps `embedder_fn`)."""
    out = {}
    for name in names:
        if name == "classifier":
            if not classifier_workdir or not os.path.isdir(classifier_workdir):
                raise FileNotFoundError(
                        f"the 'classifier' embedder needs a trained classifier workdir (got "
                        f"{classifier_workdir!r}): run experiments/train_classifier.py, or leave "
                        "'classifier' out of the embedders")
            out["classifier"] = get_embedder("classifier", workdir=classifier_workdir)
        elif name == "callable":
            if embedder_fn is None or not embedder_name:
                raise ValueError("the 'callable' embedder needs embedder_fn ('module:function') "
                                 "and embedder_name (identifies it in the reference cache)")
            out[embedder_name] = get_embedder("callable", fn=embedder_fn, name=embedder_name,
                                              sample_rate=sample_rate)
        else:
            out[SHORT_NAMES.get(name, name)] = get_embedder(name, sample_rate=sample_rate)
    return out


def make_generate_fn(config, params, *, batch_size: int = 100, cfg_scale: Optional[float] = None,
                     **generate_kwargs) -> tuple[Callable, dict]:
    """`generate_fn(seeds, labels=None) -> waveforms` over `diffjax.generation.generate`, in
    batches; the returned dict collects the 'nfe' and 'num_steps' actually used."""
    from diffjax import generation

    info: dict = {}

    def generate_fn(seeds, labels=None):
        parts = []
        for i in range(0, len(seeds), batch_size):
            out = generation.generate(
                    config, params, seeds=seeds[i:i + batch_size],
                    labels=None if labels is None else labels[i:i + batch_size],
                    cfg_scale=cfg_scale, **generate_kwargs)
            info.update(nfe=int(out.nfe), num_steps=int(out.num_steps))
            parts.append(np.asarray(out.audio))
        return np.concatenate(parts)

    return generate_fn, info


def run_tag(step: int, *, sampler: str, nfe: Optional[int], num_steps: Optional[int], num: int,
            cfg_scale: Optional[float], reference_split: str) -> str:
    budget = f"nfe{nfe}" if nfe is not None else f"steps{num_steps}"
    cfg = "" if cfg_scale is None or cfg_scale == 1.0 else f"_cfg{cfg_scale:g}"  # 1: no guidance
    return f"step{step}_{sampler}_{budget}{cfg}_n{num}_{reference_split}"


def evaluate_checkpoint(workdir: str, *,
                        step: Optional[int] = None,      # default: the latest checkpoint
                        sampler: Optional[str] = None,   # default: config.sampling.sampler
                        nfe: Optional[int] = None,       # or num_steps; default config.sampling
                        num_steps: Optional[int] = None,
                        grid: Optional[str] = None,
                        cfg_scale: Optional[float] = None,  # default: config.sampling.cfg_scale
                        conditional: bool = True,        # use labels if the model has classes
                        num: int = 1000,
                        chunk_size: int = 100,
                        embedders: Sequence[str] = DEFAULT_EMBEDDERS,
                        classifier_workdir: Optional[str] = None,
                        embedder_fn: Optional[str | Callable] = None,
                        embedder_name: Optional[str] = None,
                        reference_split: str = "train",  # 'train' (as FID) or 'eval'
                        reference_num: Optional[int] = None,
                        out_dir: Optional[str] = None,   # default <workdir>/eval
                        options: MetricOptions = MetricOptions(),
                        progress: bool = True) -> dict:
    """Samples `num` examples from a checkpoint and computes every generation metric against the
    reference split; resumes from saved chunks and returns saved results if already complete."""
    config, params, step = checkpoint.load_for_sampling(workdir, step=step)
    sampler = sampler or config.sampling.sampler
    num_classes = int(config.model.get("num_classes", 0)) if conditional else 0
    if cfg_scale is None and num_classes:
        cfg_scale = config.sampling.get("cfg_scale")  # the config's guidance, if any
    cfg_scale = cfg_scale if num_classes else None
    out_dir = out_dir or os.path.join(workdir, "eval")
    tag = run_tag(step, sampler=sampler, nfe=nfe, num_steps=num_steps, num=num,
                  cfg_scale=cfg_scale, reference_split=reference_split)
    run_dir = os.path.join(out_dir, tag)
    if os.path.exists(os.path.join(run_dir, "results.json")):
        with open(os.path.join(run_dir, "results.json")) as f:
            done = json.load(f)
        if done.get("embedders") != sorted(embedders):
            raise ValueError(f"{run_dir} was evaluated with embedders {done.get('embedders')}, not "
                             f"{sorted(embedders)}: pass another out_dir to evaluate again")
        return done
    dataset = factory.build_dataset(config)
    if reference_split not in ("train", "eval"):
        raise ValueError(f"reference_split must be 'train' or 'eval'; got {reference_split!r}")
    ref_data = dataset if reference_split == "train" else dataset.eval
    embs = build_embedders(embedders, sample_rate=dataset.sample_rate,
                           classifier_workdir=classifier_workdir, embedder_fn=embedder_fn,
                           embedder_name=embedder_name)
    reference = {k: reference_features(e, ref_data, num=reference_num,
                                       cache_dir=out_dir) for k, e in embs.items()}
    clf = embs.get("classifier")
    if num_classes and clf is not None and clf.num_classes != num_classes:
        log.warning("model has %d classes but the classifier %d: class accuracy is meaningless",
                    num_classes, clf.num_classes)
    generate_fn, info = make_generate_fn(config, params, batch_size=chunk_size,
                                         cfg_scale=cfg_scale,
                                         sampler=sampler, nfe=nfe, num_steps=num_steps, grid=grid)
    results = evaluate_generator(generate_fn, embedders=embs, reference=reference, num=num,
                                 sample_rate=dataset.sample_rate, chunk_size=chunk_size,
                                 state_dir=os.path.join(run_dir, "chunks"),
                                 num_classes=num_classes, options=options, progress=progress)
    results.update(step=int(step), sampler=sampler, embedders=sorted(embedders), grid=grid or config.sampling.grid,
                   cfg_scale=cfg_scale, reference_split=reference_split,
                   reference_num=int(len(next(iter(reference.values()))["embedding"])), **info)
    write_results(run_dir, results, row={"setting": tag})
    with open(os.path.join(out_dir, "results.jsonl"), "a") as f:
        f.write(json.dumps({"tag": tag, **results}) + "\n")
    return results


def checkpoint_steps(workdir: str) -> list[int]:
    """Finished checkpoint steps in `<workdir>/checkpoints` (orbax renames a save into place)."""
    path = checkpoint.checkpoint_dir(workdir)
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
    deadline = clock() + timeout_seconds
    while True:
        new = [s for s in checkpoint_steps(workdir) if s not in done]
        for step in new:
            try:
                done[step] = evaluate_step(step)
            except FileNotFoundError as e:
                if step in checkpoint_steps(workdir):
                    raise
                log.warning("checkpoint %d was deleted (keep-last) before evaluation: %s", step, e)
                done[step] = {}
            deadline = clock() + timeout_seconds
        if last_step is not None and any(s >= last_step for s in done):
            return done
        if not new and clock() >= deadline:
            log.info("no new checkpoint in %s for %.0f s; stopping", workdir, timeout_seconds)
            return done
        if not new:
            sleep(poll_seconds)

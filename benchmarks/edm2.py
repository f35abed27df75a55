"""Does EDM2's toolbox help the quick start? `configs/default.py` against `configs/edm2.py`
(magnitude-preserving DiT, learned weighting, post-hoc EMA snapshots), the same number of steps
on the same data; then the EDM2 run's post-hoc EMA lengths and autoguidance by its own earlier
checkpoint, all scored by FD on the project classifier and FD on mel statistics (N = --num).

    python experiments/train_classifier.py --config configs/classifier.py --workdir runs/classifier
    python benchmarks/edm2.py --classifier runs/classifier --steps 1000 --num 128 --update_readme

Workdirs (`--root`, default runs/edm2_bench) are reused when already trained. One JSON line per
row; `--update_readme` refreshes the `edm2-table` block of README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.tables import machine, replace_block  # noqa: E402
from configs import default as default_config  # noqa: E402
from configs import edm2 as edm2_config  # noqa: E402
from configs import evaluate as evaluate_config  # noqa: E402
from diffjax.jobs import phema as phema_job  # noqa: E402
from diffjax.jobs import train_and_evaluate  # noqa: E402
from diffjax.jobs.evaluate import evaluate_checkpoint  # noqa: E402
from diffjax.logs import setup_logging  # noqa: E402

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
RECIPES = {"default": default_config, "edm2": edm2_config}


def train(recipe: str, workdir: str, steps: int) -> float:
    """Trains `recipe` for exactly `steps` steps (no time budget) unless done; returns wall seconds."""
    config = RECIPES[recipe].get_config()
    config.training.num_steps = steps
    config.training.max_minutes = 0
    config.training.checkpoint_every = config.training.keep_every = steps // 4  # keeps the guide's checkpoint
    config.optim.decay_steps = steps
    config.evaluation.num_samples = 0
    if recipe == "edm2":
        config.training.phema.snapshot_every = steps // 10
    tic = time.time()
    train_and_evaluate(config, workdir)
    return time.time() - tic


def score(workdir: str, args, *, sigma_rel=None, guide_step=None, guide_weight=None) -> dict:
    config = evaluate_config.get_config()
    config.num, config.chunk_size = args.num, min(args.num, 64)
    config.embedders = "classifier,mel_stats"
    if guide_step is not None:
        config.guide.workdir, config.guide.step, config.guide.weight = workdir, guide_step, guide_weight
    results = evaluate_checkpoint(workdir, config, classifier_workdir=args.classifier, progress=False,
                                  out_dir=os.path.join(workdir, "eval"), sigma_rel=sigma_rel)
    return {"fd_classifier": results["fd_classifier"], "fd_mel": results["fd_mel"], "is": results["is"],
            "nfe": results.get("nfe")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--root", default="runs/edm2_bench")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--num", type=int, default=128)
    parser.add_argument("--sigma_rels", default="0.05,0.1,0.15,0.2")
    parser.add_argument("--guide_weights", default="1.5,2.5")
    parser.add_argument("--update_readme", action="store_true")
    args = parser.parse_args()
    setup_logging()
    rows = []

    def emit(row):
        print(json.dumps(row), flush=True)
        rows.append(row)

    workdirs = {r: os.path.join(args.root, r) for r in RECIPES}
    for recipe, workdir in workdirs.items():
        seconds = train(recipe, workdir, args.steps)
        emit({"recipe": recipe, "weights": "EMA (half-life 2000 examples)", "train_s": round(seconds, 1),
              **score(workdir, args)})
    edm2 = workdirs["edm2"]
    sigma_rels = [float(s) for s in args.sigma_rels.split(",")]
    todo = [s for s in sigma_rels if s not in phema_job.available_reconstructions(edm2)]
    if todo:
        phema_job.reconstruct_main(edm2, todo)
    for sigma_rel in sigma_rels:
        emit({"recipe": "edm2", "weights": f"post-hoc EMA sigma_rel {sigma_rel:g}", **score(edm2, args, sigma_rel=sigma_rel)})
    guide_step = args.steps // 4
    for weight in (float(w) for w in args.guide_weights.split(",")):
        emit({"recipe": "edm2", "weights": f"EMA, autoguided by step {guide_step} (w {weight:g})",
              **score(edm2, args, guide_step=guide_step, guide_weight=weight)})
    if args.update_readme:
        lines = [f"`python benchmarks/edm2.py --classifier runs/classifier --steps {args.steps} --num {args.num}` on "
                 f"{machine()}: both recipes train {args.steps} steps of batch 16 on the embedded music (mel frames, "
                 f"DiT small); FD on the project classifier and on mel statistics, N = {args.num} (lower is better).", "",
                 "| recipe | weights | FD classifier | FD mel | IS |", "|---|---|---:|---:|---:|"]
        lines += [f"| {r['recipe']} | {r['weights']} | {r['fd_classifier']:.1f} | {r['fd_mel']:.0f} | {r['is']:.2f} |"
                  for r in rows]
        replace_block(README, "edm2-table", "\n".join(lines))


if __name__ == "__main__":
    main()

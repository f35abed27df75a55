"""Few-step students against their teacher: real-time factor and quality on the quick-start data.

One JSON line per row, and a markdown table refreshed in docs/distillation.md (`--update_doc`):

- the teacher (`--teacher` workdir) with `--teacher_sampler` at `--teacher_nfes` (10, 20, 50 NFE);
- each student (`--students` workdirs: CD / CT with the 'consistency' sampler on 'nested_karras',
  progressive with 'ddim') at `--student_steps` (1, 2, 4) where its kind allows.

Real-time factor = seconds of audio generated per wall-clock second for a batch of `--num` clips,
sampling only (compiled once beforehand, best of `--repeats`: the run least disturbed by other
processes); decoding to audio is timed apart ('decode s': identity for waveforms, NNLS + Griffin-Lim
on the host for the mel codec). Quality: Fréchet distance between
Gaussian fits of 'mel_stats' embeddings (`diffjax.evaluation`) of the samples and of `--num` clips of
the teacher's training data, and the mean spectral flatness (~0.56 for white noise, near 0 for
tones) and pYIN pitch confidence (`diffjax.evaluation.musicality`; 0.01 for noise, ~0.3 for the
data).

    python benchmarks/distillation.py --teacher runs/default --students runs/cd,runs/pd \
        --update_doc docs/distillation.md
    python benchmarks/distillation.py --quick 300 --workroot runs/bench_distill   # trains its own
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import default, distill_cd  # noqa: E402
from diffjax import audio, sampling  # noqa: E402,F401  (audio: registers the datasets)
from diffjax.data import build_dataset  # noqa: E402
from diffjax.evaluation import embed_all, frechet_distance_features, get_embedder, report  # noqa: E402
from diffjax.jobs.train import train_and_evaluate  # noqa: E402
from diffjax.jobs.workdir import load, load_config  # noqa: E402
from diffjax.evaluation.musicality import pitch_confidence, spectral_flatness  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("teacher", "runs/default", "teacher workdir")
flags.DEFINE_list("students", [], "student workdirs (configs/distill_*.py)")
flags.DEFINE_string("teacher_sampler", "dpmpp_2m", "the teacher's sampler")
flags.DEFINE_list("teacher_nfes", ["10", "20", "50"], "the teacher's NFE budgets")
flags.DEFINE_list("student_steps", ["1", "2", "4"], "the students' steps (= NFE)")
flags.DEFINE_integer("num", 32, "clips per row")
flags.DEFINE_integer("repeats", 3, "timed runs per row (the fastest counts)")
flags.DEFINE_integer("quick", 0, "> 0: train a teacher for this many steps, then a CD student "
                     "(--quick_student steps) under --workroot, and benchmark those")
flags.DEFINE_integer("quick_student", 0, "CD steps in --quick mode (default: quick // 2)")
flags.DEFINE_string("workroot", "runs/bench_distill", "where --quick trains")
flags.DEFINE_string("update_doc", None, "markdown file whose table is refreshed")

DOC_START, DOC_END = "<!-- benchmark:distillation:start -->", "<!-- benchmark:distillation:end -->"


def train_quick(steps: int, student_steps: int, root: str) -> tuple[str, list[str]]:
    """A short quick-start teacher and a CD student from it (skipped where a checkpoint exists)."""
    teacher_dir, student_dir = os.path.join(root, "teacher"), os.path.join(root, "cd")
    config = default.get_config()
    config.training.num_steps = config.optim.decay_steps = steps
    config.training.checkpoint_every = config.training.log_every = steps
    config.training.sample_every = 0
    config.evaluation.num_samples = 8
    train_and_evaluate(config, teacher_dir)
    student = distill_cd.get_config()
    student.distill.teacher_workdir = teacher_dir
    student.training.num_steps = student.optim.decay_steps = student_steps
    student.training.checkpoint_every = student.training.log_every = student_steps
    student.training.sample_every = 0
    student.evaluation.num_samples = 8
    train_and_evaluate(student, student_dir)
    return teacher_dir, [student_dir]


def _timed_sampler(loaded, sampler: str, steps: int, grid: str, num: int):
    """A compiled `() -> latents` for fixed seeds, the codec's `decode(latents) -> audio [num, L, C]`
    and the NFE, for a loaded model (`jobs.workdir.load`)."""
    model = loaded.model
    sigmas = sampling.grid_for_process(model.process, grid, steps)
    denoiser = model.denoiser(loaded.params)
    seeds = np.arange(num)
    x_init = sampling.initial_noise(seeds, model.latent_shape, float(sigmas[0]))
    keys = sampling.seed_keys(seeds)
    fn = jax.jit(lambda x, k: sampling.get_sampler(sampler)(denoiser, x, sigmas, key=k))
    jax.block_until_ready(fn(x_init, keys))  # compile
    return (lambda: jax.block_until_ready(fn(x_init, keys))), \
        (lambda z: np.asarray(model.codec.decode(z, model.spec.shape[0]))), sampling.nfe(sampler, steps)


def measure(name: str, workdir: str, sampler: str, steps: int, grid: str, reference, embedder) -> dict:
    loaded = load(workdir)
    run, decode, nfe = _timed_sampler(loaded, sampler, steps, grid, FLAGS.num)
    walls = []
    for _ in range(FLAGS.repeats):
        tic = time.perf_counter()
        latents = run()
        walls.append(time.perf_counter() - tic)
    wall = float(np.min(walls))
    tic = time.perf_counter()
    audio = decode(latents)
    decode_s = time.perf_counter() - tic
    spec = loaded.model.spec
    seconds = FLAGS.num * spec.shape[0] / spec.sample_rate
    features = embed_all(embedder, audio)["embedding"]
    return {"model": name, "workdir": workdir, "train_steps": int(loaded.step), "sampler": sampler, "grid": grid,
            "nfe": nfe, "num": FLAGS.num, "audio_s": round(seconds, 3), "wall_s": round(wall, 4),
            "decode_s": round(decode_s, 3),
            "rtf": round(seconds / wall, 2), "fd_mel": round(frechet_distance_features(features, reference), 3),
            "flatness": round(spectral_flatness(audio), 4),
            "pitch": round(pitch_confidence(audio, spec.sample_rate), 3), "backend": jax.default_backend()}


def rows(teacher: str, students: list[str], embedder) -> list[dict]:
    config = load_config(teacher)
    dataset = build_dataset(config.data)
    real = np.asarray(dataset.batch(0, FLAGS.num, seed=123)["x"])
    reference = embed_all(embedder, real)["embedding"]
    grid = config.sampling.grid
    out = [{"model": "data (training clips)", "nfe": 0, "fd_mel": round(frechet_distance_features(
        embed_all(embedder, np.asarray(dataset.batch(1, FLAGS.num, seed=7)["x"]))["embedding"], reference), 3),
        "flatness": round(spectral_flatness(real), 4),
        "pitch": round(pitch_confidence(real, dataset.sample_rate), 3)}]
    for budget in FLAGS.teacher_nfes:
        steps = sampling.steps_for_nfe(FLAGS.teacher_sampler, int(budget))
        out.append(measure("teacher", teacher, FLAGS.teacher_sampler, steps, grid, reference, embedder))
    for workdir in students:
        student = load_config(workdir)
        kind = student.distill.kind
        sampler = "ddim" if kind == "progressive" else "consistency"
        for steps in FLAGS.student_steps:
            out.append(measure(f"student ({kind})", workdir, sampler, int(steps), "nested_karras",
                               reference, embedder))
    return out


COLUMNS = [("model", "model"), ("sampler", "sampler"), ("nfe", "NFE"), ("rtf", "real-time factor"),
           ("wall_s", "wall s"), ("decode_s", "decode s"), ("fd_mel", "FD (mel stats)"), ("flatness", "spectral flatness"),
           ("pitch", "pitch confidence"),
           ("train_steps", "train steps")]


def main(argv):
    del argv
    teacher, students = FLAGS.teacher, list(FLAGS.students)
    if FLAGS.quick:
        teacher, students = train_quick(FLAGS.quick, FLAGS.quick_student or FLAGS.quick // 2, FLAGS.workroot)
    embedder = get_embedder("mel_stats", sample_rate=16000)
    table_rows = rows(teacher, students, embedder)
    for row in table_rows:
        print(json.dumps(row), flush=True)
    if FLAGS.update_doc:
        header = "| " + " | ".join(title for _, title in COLUMNS) + " |"
        lines = [header, "|" + "---|" * len(COLUMNS)]
        for row in table_rows:
            lines.append("| " + " | ".join(str(row.get(key, "")) for key, _ in COLUMNS) + " |")
        note = (f"{FLAGS.num} clips per row on {jax.default_backend()} ({jax.device_count()} device(s)); "
                f"teacher `{teacher}`.")
        report.replace_between(FLAGS.update_doc, DOC_START, DOC_END, note + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    app.run(main)

"""How well do the offline generation metrics separate good audio from bad? Floors, noise, models.

One JSON line per row, and a markdown table refreshed in docs/evaluation.md (`--update_doc`):

- 'data (held-out)': N fresh synth_music clips (synthesis seed 1, disjoint from the reference and
  from the classifier's training clips), conditioned on their true labels: the floor of every
  metric at this N, and the classifier's accuracy on unseen data (the ceiling of class accuracy);
- 'data, one class': the held-out flute clips only: mode collapse (IS -> 1, NDB and FD up);
- 'data + noise 10 dB': held-out clips with white noise at 10 dB SNR: degraded quality;
- 'white noise': Gaussian noise of std 0.1: the ceiling;
- one row per (--models workdir, --samplers, --nfes): samples from a checkpoint
  (`diffjax.jobs.evaluate.evaluate_checkpoint`, against that model's own training split).

    python benchmarks/evaluation.py --classifier workdirs/eval_classifier --update_doc docs/evaluation.md
    python benchmarks/evaluation.py --classifier workdirs/eval_classifier \
        --models workdirs/music --samplers heun,dpmpp_2m --nfes 10,20,40 [--cfg_scales 1,2,4]
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

from diffjax.audio.datasets import SynthMusic  # noqa: E402
from configs import evaluate as evaluate_config  # noqa: E402
from diffjax.evaluation import report  # noqa: E402
from diffjax.evaluation.reference import reference_features  # noqa: E402
from diffjax.evaluation.suite import MetricOptions, evaluate_generator  # noqa: E402
from diffjax.jobs import evaluate as evaluate_job  # noqa: E402
from diffjax.jobs.classifier import load_classifier  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("classifier", "workdirs/eval_classifier", "trained classifier workdir")
flags.DEFINE_integer("num", 1000, "examples per row")
flags.DEFINE_integer("reference_num", 512, "reference clips (synth_music train split, seed 0)")
flags.DEFINE_list("models", [], "diffusion workdirs to sample from")
flags.DEFINE_list("samplers", ["heun"], "samplers for the model rows")
flags.DEFINE_list("nfes", ["10", "20", "40"], "NFE budgets for the model rows")
flags.DEFINE_list("cfg_scales", [], "classifier-free guidance scales (conditional models; empty: "
                  "plain conditional)")
flags.DEFINE_string("cache_dir", "workdirs/eval_benchmark", "reference cache and chunk folders")
flags.DEFINE_string("update_doc", None, "markdown file whose table is refreshed")

DOC_START, DOC_END = "<!-- benchmark:evaluation:start -->", "<!-- benchmark:evaluation:end -->"
SR = 16000
OPTIONS = MetricOptions(kid_subsets=50, kid_subset_size=1000, ndb_bins=20)


def held_out(num: int) -> dict:
    """`num` synth_music clips of synthesis seed 1 (an independent draw), with labels."""
    return SynthMusic(sample_rate=SR, num_train=num, num_eval=1, seed=1).batch(0, num, seed=0)


def fake_generators(data: dict) -> dict:
    """name -> generate_fn(seeds, labels) over held-out data (seed i uses example i)."""
    audio, label = data["x"], data["label"]
    by_class = {c: np.flatnonzero(label == c) for c in np.unique(label)}

    def of_class(seeds, labels):
        return audio[[by_class[c][s % len(by_class[c])] for s, c in zip(seeds, labels)]]

    def one_class(seeds, labels):
        return audio[by_class[0][np.asarray(seeds) % len(by_class[0])]]

    def noisy(seeds, labels):
        x = of_class(seeds, labels)
        rms = np.sqrt(np.mean(x ** 2, axis=(1, 2), keepdims=True))
        rng = np.random.default_rng(int(seeds[0]))
        return np.clip(x + rms * 10 ** (-10 / 20) * rng.standard_normal(x.shape), -1, 1)

    def noise(seeds, labels):
        return np.stack([0.1 * np.random.default_rng(s).standard_normal(audio.shape[1:])
                         for s in seeds]).astype(np.float32)

    return {"data (held-out)": of_class, "data, one class": one_class,
            "data + noise 10 dB": noisy, "white noise": noise}


def reference_rows(embedders: dict, num: int) -> list[dict]:
    reference_data = SynthMusic(sample_rate=SR, num_train=FLAGS.reference_num, num_eval=1)
    reference = {k: reference_features(e, reference_data, cache_dir=FLAGS.cache_dir)
                 for k, e in embedders.items()}
    data = held_out(num)
    # labels = seed mod K in evaluate_generator: balanced classes, each drawn from its own clips
    rows = []
    for name, generate in fake_generators(data).items():
        tic = time.time()
        results = evaluate_generator(generate, embedders=embedders, reference=reference, num=num,
                                     sample_rate=SR, chunk_size=250, num_classes=9,
                                     options=OPTIONS)
        rows.append({"setting": name, **results, "seconds": time.time() - tic})
    return rows


def model_rows(num: int) -> list[dict]:
    rows = []
    scales = [float(w) for w in FLAGS.cfg_scales] or [None]
    for workdir in FLAGS.models:
        for sampler in FLAGS.samplers:
            for nfe in FLAGS.nfes:
                for scale in scales:
                    tic = time.time()
                    config = evaluate_config.get_config()
                    config.sampling.sampler, config.sampling.nfe = sampler, int(nfe)
                    config.sampling.cfg_scale, config.num = scale, num
                    config.metrics.update(kid_subsets=OPTIONS.kid_subsets,
                                          kid_subset_size=OPTIONS.kid_subset_size, ndb_bins=OPTIONS.ndb_bins)
                    results = evaluate_job.evaluate_checkpoint(workdir, config, classifier_workdir=FLAGS.classifier,
                                                               progress=True)
                    name = f"{os.path.basename(os.path.normpath(workdir))} step {results['step']}"
                    name += "" if scale is None else f" cfg {scale:g}"
                    rows.append({"setting": name, **results, "seconds": time.time() - tic})
    return rows


def main(argv):
    del argv
    config = evaluate_config.get_config()
    embedders = evaluate_job.build_embedders(evaluate_job.embedder_names(config.embedders), config.embedder,
                                             sample_rate=SR, classifier=load_classifier(FLAGS.classifier))
    rows = reference_rows(embedders, FLAGS.num) + model_rows(FLAGS.num)
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "per_class_accuracy"}), flush=True)
    table = report.markdown_table(rows)
    print(table)
    if FLAGS.update_doc:
        clf = embedders["classifier"].classifier
        note = (f"N = {FLAGS.num} per row; reference: {FLAGS.reference_num} synth_music train clips "
                f"(16 kHz, 1 s); classifier: `{FLAGS.classifier}` step {clf.step}; class accuracy "
                "with balanced labels (chance 0.111). Produced by `benchmarks/evaluation.py`.")
        report.replace_between(FLAGS.update_doc, DOC_START, DOC_END, f"{note}\n\n{table}")


if __name__ == "__main__":
    app.run(main)

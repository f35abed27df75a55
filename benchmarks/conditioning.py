"""How well conditional models follow their conditions (issue 18's evaluation), with the project's
own offline tools, beside the same numbers for the data and for the unconditional quick start.

    python experiments/train.py --config configs/text_to_audio.py --workdir runs/text_to_audio
    python experiments/train.py --config configs/inpaint.py --workdir runs/inpaint
    python experiments/train.py --config configs/notes_to_audio.py --workdir runs/notes_to_audio
    python benchmarks/conditioning.py --update_readme

Rows (JSON lines on stdout, tables in README.md and docs/conditioning.md):
- prompt adherence: instrument accuracy of the project classifier on samples prompted with the
  held-out clips' own captions; pitch (median pYIN f0 against the prompted note, cents) on single
  notes; chord quality by chroma templates on chords; the unconditional model scored against the
  same targets (its chance level);
- timing: energy after `seconds_total` (dB below the signal) when asking for shorter pieces;
- notes: onset+pitch F1 (mir_eval) of the transcription against the MIDI events conditioned on;
- inpainting: SI-SDR and LSD on gaps of 50 / 200 / 500 ms, trained inpainting against replacement,
  DDNM and PiGDM (zero-shot, on the unconditional model, with the gap as a mask of model frames).
"""
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.tables import machine, replace_block  # noqa: E402
from diffjax import restoration, sampling  # noqa: E402
from diffjax.audio import captions, synth  # noqa: E402
from diffjax.conditioners import host_condition  # noqa: E402
from diffjax.data import build_dataset  # noqa: E402
from diffjax.evaluation import adherence  # noqa: E402
from diffjax.evaluation.frechet import frechet_distance_features  # noqa: E402
from diffjax.jobs.classifier import load_classifier  # noqa: E402
from diffjax.jobs.generation import generate  # noqa: E402
from diffjax.jobs.workdir import load  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("text", "runs/text_to_audio", "text-to-audio workdir")
flags.DEFINE_string("unconditional", "runs/default", "the unconditional quick start's workdir")
flags.DEFINE_string("inpaint", "runs/inpaint", "trained inpainting workdir")
flags.DEFINE_string("notes", "runs/notes_to_audio", "notes-to-audio workdir")
flags.DEFINE_string("classifier", "runs/classifier", "the project's classifier workdir")
flags.DEFINE_integer("num", 64, "held-out clips for prompt adherence")
flags.DEFINE_integer("small_num", 32, "clips for pitch, chords, timing, notes and each inpainting row")
flags.DEFINE_list("sections", ["prompt", "timing", "notes", "inpaint"], "which sections to run")
flags.DEFINE_list("cfg_sweep", ["1", "6"], "extra guidance scales for the text model's instrument accuracy")
flags.DEFINE_list("tables_from", [], "JSON-lines files of earlier runs: write the tables from them, measure nothing")
flags.DEFINE_list("inpaint_methods", ["trained", "replacement", "ddnm", "pigdm"], "inpainting rows to run")
flags.DEFINE_bool("update_readme", False, "refresh README.md's and docs/conditioning.md's tables")

log = logging.getLogger("diffjax")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GAPS_MS = (50, 200, 500)


def emit(row: dict) -> dict:
    print(json.dumps(row), flush=True)
    return row


def eval_clips(config, num: int) -> dict:
    """`num` held-out clips of the training data (crops as in training, full length; labels, events)."""
    data = build_dataset({**config.data.to_dict(), "synth_music": {
        **config.data.synth_music.to_dict(), "min_seconds": None}}).eval
    return data.batch(0, num, seed=0)


def sample(loaded, seeds, cond=None, cfg_scale=None, **kwargs) -> np.ndarray:
    return generate(loaded.model, loaded.params, sampling_config=loaded.config.sampling, seeds=seeds, cond=cond,
                    cfg_scale=cfg_scale if cond is not None else None, **kwargs).audio


def instrument_accuracy(classifier, audio: np.ndarray, labels: np.ndarray) -> float:
    probs, _ = classifier.predict(audio)
    return float(np.mean(np.argmax(probs, -1) == labels))


def prompts_of(clips: dict, kind_filter=None) -> tuple[list, np.ndarray]:
    """Captions of the clips (template = clip index), restricted to one kind if given."""
    rows = [i for i in range(len(clips["label"])) if kind_filter is None or clips["kind"][i] == kind_filter]
    labels = [{k: clips[k][i] for k in ("label", "pitch", "kind", "quality", "velocity")} for i in rows]
    return [captions.caption(lab, i) for i, lab in zip(rows, labels)], np.asarray(rows)


def prompt_section(text, uncond, classifier, clips) -> list[dict]:
    rate = text.model.spec.sample_rate
    n = len(clips["label"])
    seeds = list(range(n))
    prompts, _ = prompts_of(clips)
    cond = host_condition(text.model.conditioners, {"caption": np.array(prompts, object)})
    generated = {"data": clips["x"], "text": sample(text, seeds, cond, text.config.sampling.cfg_scale),
                 "unconditional": sample(uncond, seeds)}
    rows = [emit({"section": "prompt", "source": name, "instrument_accuracy": instrument_accuracy(
        classifier, audio, clips["label"]), "num": n, "cfg": text.config.sampling.cfg_scale if name == "text" else None})
            for name, audio in generated.items()]
    for scale in FLAGS.cfg_sweep:
        audio = sample(text, seeds, cond, float(scale))
        rows.append(emit({"section": "cfg_sweep", "source": "text", "cfg": float(scale),
                          "instrument_accuracy": instrument_accuracy(classifier, audio, clips["label"]), "num": n}))
    for kind, metric in ((synth.KINDS.index("note"), "pitch"), (synth.KINDS.index("chord"), "chord")):
        prompts, rows_of_kind = prompts_of(clips, kind)
        rows_of_kind = rows_of_kind[:FLAGS.small_num]
        if metric == "pitch":  # the prompt names the note
            prompts = [captions.prompt_for(synth.INSTRUMENTS[clips["label"][i]], "note", pitch=int(clips["pitch"][i]))
                       for i in rows_of_kind]
        else:
            prompts = [captions.prompt_for(synth.INSTRUMENTS[clips["label"][i]], "chord", pitch=int(clips["pitch"][i]),
                                           quality=synth.QUALITY_NAMES[clips["quality"][i]]) for i in rows_of_kind]
        cond = host_condition(text.model.conditioners, {"caption": np.array(prompts, object)})
        audio = {"data": clips["x"][rows_of_kind],
                 "text": sample(text, seeds[:len(prompts)], cond, text.config.sampling.cfg_scale),
                 "unconditional": generated["unconditional"][:len(prompts)]}
        for name, waves in audio.items():
            if metric == "pitch":
                got = adherence.pitch_accuracy(waves, rate, clips["pitch"][rows_of_kind])
                rows.append(emit({"section": "pitch", "source": name, "median_abs_cents": got["median_abs_cents"],
                                  "within_50_cents": got["within_tolerance"], "num": len(prompts)}))
            else:
                got = adherence.chord_accuracy(waves, rate, clips["pitch"][rows_of_kind], clips["quality"][rows_of_kind])
                rows.append(emit({"section": "chord", "source": name, "quality_accuracy": got["quality_accuracy"],
                                  "root_accuracy": got["root_accuracy"], "num": len(prompts)}))
    return rows


def timing_section(text, uncond, clips) -> list[dict]:
    rate, n = text.model.spec.sample_rate, FLAGS.small_num
    prompts, _ = prompts_of({k: v[:n] for k, v in clips.items()})
    rows = []
    for seconds in (0.5, 0.75):
        totals = np.full(n, seconds, np.float32)
        raw = {"caption": np.array(prompts, object), "seconds_start": np.zeros(n, np.float32), "seconds_total": totals}
        cond = host_condition(text.model.conditioners, raw)
        for name, audio in (("text + timing", sample(text, list(range(n)), cond, text.config.sampling.cfg_scale)),
                            ("unconditional", sample(uncond, list(range(n))))):
            got = adherence.timing_report(audio, rate, totals)
            rows.append(emit({"section": "timing", "source": name, "seconds_total": seconds,
                              "median_db_after": got["median_db_after"], "quiet_fraction": got["quiet_fraction"],
                              "num": n}))
    return rows


def notes_section(notes, uncond, clips) -> list[dict]:
    n = FLAGS.small_num
    rate = notes.model.spec.sample_rate
    events = clips["events"][:n]
    cond = host_condition(notes.model.conditioners, {"events": events})
    rows = []
    for name, audio in (("data", clips["x"][:n]),
                        ("notes", sample(notes, list(range(n)), cond, notes.config.sampling.cfg_scale)),
                        ("unconditional", sample(uncond, list(range(n))))):
        got = adherence.notes_f1_batch(audio, rate, events)
        rows.append(emit({"section": "notes", "source": name, **{k: v for k, v in got.items()
                                                                 if isinstance(v, float)}, "num": n}))
    return rows


def gap_masks(model, n: int, gap_ms: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(known-frame masks [n, T], sample-level gap masks [n, L, 1]) of one gap of `gap_ms` at a
    random place (the same for the n clips, so zero-shot operators are one per row)."""
    length, rate = model.spec.shape[0], model.spec.sample_rate
    frames = model.latent_shape[0]
    hop = length / (frames - 1)
    gap = gap_ms / 1000.0 * rate
    start = np.random.default_rng(seed).uniform(0.1 * length, 0.9 * length - gap)
    centres = np.arange(frames) * hop
    known = (~((centres >= start) & (centres < start + gap))).astype(np.float32)
    samples = np.arange(length)
    in_gap = ((samples >= start) & (samples < start + gap)).astype(np.float32)[:, None]
    return np.repeat(known[None], n, axis=0), np.repeat(in_gap[None], n, axis=0)


def zero_shot(loaded, method: str, audio: np.ndarray, known: np.ndarray, seeds) -> np.ndarray:
    """A zero-shot method on the unconditional model, the gap a mask over model frames (one
    jitted call for the batch, with the model's configured sampler and grid)."""
    model, config = loaded.model, loaded.config
    z = jnp.asarray(model.codec.encode(jnp.asarray(audio)))
    sigmas = sampling.grid_for_process(model.process, config.sampling.grid, config.sampling.num_steps)
    operator = restoration.get_operator("mask", mask=jnp.asarray(known[0].reshape((-1,) + (1,) * (z.ndim - 2))))
    options = restoration.method_options(method, precond=model.precond)
    run = restoration.get_method(method)

    @jax.jit
    def restore(params, z, x_init, keys):
        return run(model.denoiser(params), operator, operator.apply(z), x_init, sigmas, key=keys,
                   sampler=config.sampling.sampler, **options)

    x_init = sampling.initial_noise(np.asarray(seeds), model.latent_shape, float(sigmas[0]))
    out = restore(loaded.params, z, jnp.asarray(x_init), sampling.seed_keys(np.asarray(seeds)))
    return np.asarray(model.codec.decode(out, model.spec.shape[0]))


def inpaint_section(inpaint, uncond, classifier, clips) -> list[dict]:
    n = FLAGS.small_num
    audio = clips["x"][:n]
    _, reference = classifier.predict(clips["x"])
    rate = inpaint.model.spec.sample_rate
    rows = []
    for gap_ms in GAPS_MS:
        known, in_gap = gap_masks(inpaint.model, n, gap_ms, seed=gap_ms)
        z = np.asarray(inpaint.model.codec.encode(jnp.asarray(audio)))
        cond = {"inpaint": {"known": z * known.reshape(known.shape + (1,) * (z.ndim - 2)), "mask": known}}
        filled = {"trained inpainting": sample(inpaint, list(range(n)), cond)} if "trained" in FLAGS.inpaint_methods else {}
        for method in [m for m in FLAGS.inpaint_methods if m != "trained"]:
            filled[f"{method} (zero-shot)"] = zero_shot(uncond, method, audio, known, list(range(n)))
        for name, estimate in filled.items():
            got = adherence.gap_metrics(audio, estimate, in_gap, rate)
            _, features = classifier.predict(estimate)
            rows.append(emit({"section": "inpaint", "source": name, "gap_ms": gap_ms, "si_sdr": got["si_sdr"],
                              "lsd": got["lsd"], "fd_classifier": frechet_distance_features(features, reference),
                              "num": n}))
    return rows


def fmt(value, digits=2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def tables(rows: list[dict], steps: dict) -> str:
    """The markdown tables of all sections."""
    def pick(section, **where):
        return [r for r in rows if r["section"] == section and all(r.get(k) == v for k, v in where.items())]

    lines = [f"Measured by `python benchmarks/conditioning.py` on {machine()}; models trained by the three configs "
             f"({', '.join(f'{k}: {v} steps' for k, v in steps.items())}); the unconditional row is the quick start "
             "(`runs/default`), scored against the same targets.", "",
             "| source | instrument acc. | pitch: median abs. cents | pitch: within 50 cents | chord quality acc. | "
             "chord root acc. |", "|---|---:|---:|---:|---:|---:|"]
    for source in ("data", "text", "unconditional"):
        p, c, q = pick("prompt", source=source), pick("pitch", source=source), pick("chord", source=source)
        label = f"text (cfg {p[0]['cfg']:g})" if source == "text" and p and p[0].get("cfg") else source
        lines.append(f"| {label} | {fmt(p[0]['instrument_accuracy']) if p else 'n/a'} | "
                     f"{fmt(c[0]['median_abs_cents'], 0) if c else 'n/a'} | {fmt(c[0]['within_50_cents']) if c else 'n/a'} | "
                     f"{fmt(q[0]['quality_accuracy']) if q else 'n/a'} | {fmt(q[0]['root_accuracy']) if q else 'n/a'} |")
    sweep = sorted(pick("cfg_sweep") + [r for r in pick("prompt", source="text") if r.get("cfg")], key=lambda r: r["cfg"])
    if sweep:
        lines += ["", "Instrument accuracy of the text model against its guidance scale: " + ", ".join(
            f"cfg {r['cfg']:g}: {r['instrument_accuracy']:.2f}" for r in sweep) + f" (N = {sweep[0]['num']})."]
    if pick("timing"):
        lines += ["", "| timing: source | seconds_total | energy after it, dB (median) | tails below -30 dB |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['source']} | {r['seconds_total']} | {fmt(r['median_db_after'], 1)} | {fmt(r['quiet_fraction'])} |"
                  for r in pick("timing")]
    if pick("notes"):
        keys = [k for k in pick("notes")[0] if k not in ("section", "source", "num")]
        lines += ["", "| notes: source | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
        lines += [f"| {r['source']} | " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in pick("notes")]
    if pick("inpaint"):
        lines += ["", f"Inpainting: {pick('inpaint')[0]['num']} held-out clips per gap, one gap per row at a random place; "
                  "SI-SDR (dB) and LSD (log10 power, `diffjax.audio.metrics.lsd`) on the gap; FD of the filled clips on "
                  "the classifier's features against the held-out clips.", "",
                  "| method | " + " | ".join(f"SI-SDR {g} ms | LSD {g} ms | FD {g} ms" for g in GAPS_MS) + " |",
                  "|---|" + "---:|---:|---:|" * len(GAPS_MS)]
        for source in dict.fromkeys(r["source"] for r in pick("inpaint")):
            cells = []
            for gap in GAPS_MS:
                r = pick("inpaint", source=source, gap_ms=gap)
                cells += [fmt(r[0]["si_sdr"], 1), fmt(r[0]["lsd"]), fmt(r[0]["fd_classifier"], 1)] if r else ["n/a"] * 3
            lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    del argv
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("absl").setLevel(logging.WARNING)
    if FLAGS.tables_from:
        rows = [json.loads(line) for path in FLAGS.tables_from for line in open(path) if line.startswith("{")]
        steps = {name: load(workdir).step for name, workdir in (("text_to_audio", FLAGS.text), ("inpaint", FLAGS.inpaint),
                                                                  ("notes_to_audio", FLAGS.notes))}
        body = tables(rows, steps)
        print(body)
        if FLAGS.update_readme:
            for path in ("README.md", "docs/conditioning.md"):
                replace_block(os.path.join(ROOT, path), "conditioning-table", body)
        return
    tic = time.time()
    uncond = load(FLAGS.unconditional)
    rows, steps = [], {}
    text = load(FLAGS.text) if {"prompt", "timing"} & set(FLAGS.sections) else None
    clips = eval_clips((text or uncond).config, FLAGS.num)
    if text is not None:
        steps["text_to_audio"] = text.step
    if "prompt" in FLAGS.sections:
        rows += prompt_section(text, uncond, load_classifier(FLAGS.classifier), clips)
    if "timing" in FLAGS.sections:
        rows += timing_section(text, uncond, clips)
    if "notes" in FLAGS.sections:
        notes = load(FLAGS.notes)
        steps["notes_to_audio"] = notes.step
        rows += notes_section(notes, uncond, clips)
    if "inpaint" in FLAGS.sections:
        inpaint = load(FLAGS.inpaint)
        steps["inpaint"] = inpaint.step
        rows += inpaint_section(inpaint, uncond, load_classifier(FLAGS.classifier), clips)
    emit({"section": "total", "wall_seconds": time.time() - tic, "machine": machine()})
    if FLAGS.update_readme:
        body = tables(rows, steps)
        for path in ("README.md", "docs/conditioning.md"):
            replace_block(os.path.join(ROOT, path), "conditioning-table", body)


if __name__ == "__main__":
    app.run(main)

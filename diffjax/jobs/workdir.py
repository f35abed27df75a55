"""A workdir on disk: `config.json` (the resolved config), `model.json` (what one data example is),
`tokenizer.json` (a text-conditioned model's caption vocabulary) and `checkpoints/` (orbax). `load(workdir)` is the only path from a checkpoint to a model object.

    loaded = load("runs/default", step=None, ema=0)     # ema=-1: the raw weights
    D = loaded.model.denoiser(loaded.params)
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from typing import Any, Callable, Optional

import jax
import ml_collections

from diffjax.conditioners.text import train_tokenizer, vocabulary_size
from diffjax.model import AutoencoderModel, DataSpec, DiffusionModel, build_autoencoder_model, build_model
from diffjax.training import checkpoint

log = logging.getLogger("diffjax")
CONFIG_FILE = "config.json"
MODEL_FILE = "model.json"
TOKENIZER_FILE = "tokenizer.json"
FORMAT_VERSION = 2  # 2: the model object (data spec in model.json, conditioning section, method_state)


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def write_json_atomically(path: str, value: Any) -> None:
    """Writes JSON to a temporary file beside `path`, then renames it over `path` (never half-written)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".tmp", delete=False) as f:
        json.dump(value, f, indent=2, sort_keys=True)
        temporary = f.name
    os.replace(temporary, path)


def _read_json(path: str, what: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {os.path.dirname(path)!r} a diffjax training workdir? "
                                f"({what}; train first with experiments/train.py --workdir ...)")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore the file from the run that wrote it "
                         "or retrain into a new workdir") from None


def _tuples(value):
    """JSON arrays back to the tuples configs hold, so a loaded config equals the one saved."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    write_json_atomically(os.path.join(workdir, CONFIG_FILE), config.to_dict())


DIFFUSION_SECTIONS = ("sde", "precond", "model", "data", "training", "sampling")  # a diffusion model's
AUTOENCODER_SECTIONS = ("autoencoder", "reconstruction", "data", "training")  # an audio autoencoder's


def is_autoencoder(config) -> bool:
    """A config (or workdir config) that trains an audio autoencoder rather than a diffusion model."""
    return "autoencoder" in config


def load_config(workdir: str, *, required: Optional[tuple[str, ...]] = None) -> ml_collections.ConfigDict:
    """The config saved by `save_config` (lists restored as tuples); a hand-edited file that lost
    one of the `required` sections (default: a diffusion model's or an autoencoder's) is an error
    naming the file and the section."""
    path = os.path.join(workdir, CONFIG_FILE)
    values = _tuples(_read_json(path, "the resolved config"))
    if required is None:
        required = AUTOENCODER_SECTIONS if is_autoencoder(values) else DIFFUSION_SECTIONS
    missing = [s for s in required if s not in values]
    if missing:
        raise ValueError(f"{path} has no {missing} section(s): the file was edited or damaged. Restore it "
                         "from the run that wrote it (it is the config the checkpoints were trained with).")
    return ml_collections.ConfigDict(values)


def save_spec(workdir: str, spec: DataSpec) -> None:
    write_json_atomically(os.path.join(workdir, MODEL_FILE), {"format_version": FORMAT_VERSION, "data": spec.to_json()})


def load_spec(workdir: str) -> DataSpec:
    """The `DataSpec` of a workdir; a workdir written before the model object fails by name."""
    path = os.path.join(workdir, MODEL_FILE)
    if not os.path.exists(path) and os.path.exists(os.path.join(workdir, CONFIG_FILE)):
        raise ValueError(
            f"{workdir!r} was written by diffjax before the model-object change (issue 16: one model "
            f"object and loader, conditioning as data): it has no {MODEL_FILE} and its config predates the "
            "'conditioning' section and per-component data/codec sub-sections. Retrain it with the current "
            "configs (python experiments/train.py --config configs/<x>.py --workdir NEW_DIR).")
    values = _read_json(path, "what one data example is")
    version = values.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} has format_version {version!r}; this diffjax reads {FORMAT_VERSION}. "
                         "Retrain the workdir with this version.")
    return DataSpec.from_json(values["data"])


def data_section_for_reading(config) -> dict:
    """A loaded workdir's data section without its `cache_dir`: caches go where the user's
    environment puts them ($XDG_CACHE_HOME/diffjax), never where a workdir's config.json says."""
    section = config.data.to_dict()
    section.pop("cache_dir", None)
    return section


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A trained model: the model object, its parameters, the checkpoint step and the config."""

    model: DiffusionModel | AutoencoderModel
    params: Any
    step: int
    config: ml_collections.ConfigDict


def codec_context(config) -> dict:
    """What `config.codec` needs beyond its keys: for the 'latent' codec, the autoencoder of
    `codec.latent.workdir` (its first EMA) as `autoencoder` and `autoencoder_params`."""
    codec = config.get("codec") or {}
    if codec.get("name") != "latent":
        return {}
    workdir = (codec.get("latent") or {}).get("workdir") or ""
    if not workdir or not os.path.isdir(workdir):
        raise FileNotFoundError(
            f"codec.latent.workdir={workdir!r} is not a directory: train the autoencoder first (python "
            "experiments/train.py --config configs/autoencoder.py --workdir runs/autoencoder) and set "
            "--config.codec.latent.workdir=runs/autoencoder")
    loaded = load(workdir, kind="autoencoder")
    # Host arrays: uncommitted, so jitted encode/decode run wherever their input lives (one device,
    # or a batch sharded over all of them).
    return {"autoencoder": loaded.model, "autoencoder_params": jax.device_get(loaded.params)}


def conditioning_context(config, *, workdir: Optional[str] = None, dataset=None) -> dict:
    """What `config.conditioning` needs beyond its keys: the text conditioner's `tokenizer`, read
    from `<workdir>/tokenizer.json`, or trained on `dataset.caption_corpus()` (the training job's
    first run) and written there."""
    if "text" not in (config.get("conditioning") or {}):
        return {}
    path = os.path.join(workdir, TOKENIZER_FILE) if workdir else None
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return {"tokenizer": f.read()}
    if dataset is None:
        raise FileNotFoundError(f"{path or 'no workdir given'}: a text-conditioned model needs the caption "
                                f"vocabulary its training run wrote ({TOKENIZER_FILE}); restore the file or retrain")
    tokenizer = train_tokenizer(dataset.caption_corpus())
    if path and jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(tokenizer)
        os.replace(tmp, path)
        log.info("trained a caption vocabulary of %d words; saved as %s", vocabulary_size(tokenizer), path)
    return {"tokenizer": tokenizer}


def model_for(config, spec: DataSpec, *, workdir: Optional[str] = None,
              dataset=None) -> DiffusionModel | AutoencoderModel:
    """The model object of a config: an autoencoder (`autoencoder` section) or a diffusion model,
    whose 'latent' codec gets its autoencoder from `codec_context` and whose conditioners get what
    they need from `conditioning_context` (`workdir`, `dataset`: where to find or train it)."""
    if is_autoencoder(config):
        return build_autoencoder_model(config, spec)
    return build_model(config, spec, codec_context=codec_context(config),
                       conditioning_context=conditioning_context(config, workdir=workdir, dataset=dataset))


def abstract_weights(model: DiffusionModel | AutoencoderModel, num_emas: int) -> dict:
    """Shapes and dtypes of a checkpoint's weights (raw and EMAs), on this host's first device;
    no allocation."""
    params = model.abstract_params()
    return checkpoint.on_first_local_device({"params": params, "ema_params": tuple(params for _ in range(num_emas))})


def require_identity_codec(config, model: DiffusionModel, task: str, *, audio: bool) -> None:
    """Raises unless the model works on the data itself (the identity codec; with `audio`, on
    waveforms `[L, C]`): `task` (restoration operators, exact likelihoods) is defined there."""
    if model.codec.is_identity and (not audio or (model.spec.is_audio and len(model.spec.shape) == 2)):
        return
    codec = config.get("codec", {}).get("name", "waveform")
    raise ValueError(f"{task} needs a waveform model (the identity codec on the data), but this one works in "
                     f"the {codec!r} codec on data of shape {model.spec.shape}. Train one with configs/waveform.py: "
                     "python experiments/train.py --config configs/waveform.py --workdir runs/waveform")


def load(workdir: str, *, step: Optional[int] = None, ema: int = 0,
         check: Optional[Callable[[ml_collections.ConfigDict, DiffusionModel], None]] = None,
         kind: str = "diffusion") -> Loaded:
    """The model object of `workdir` and the weights of checkpoint `step` (default the latest):
    EMA number `ema` (`config.training.ema_halflife_examples` order), or the raw weights (-1).
    `check(config, model)` runs before any weight is read (e.g. `require_identity_codec`).
    `kind`: the model the caller needs, 'diffusion' or 'autoencoder' (another is an error naming it)."""
    config = load_config(workdir)
    found = "autoencoder" if is_autoencoder(config) else "diffusion"
    if found != kind:
        raise ValueError(f"{workdir!r} holds {'an' if found == 'autoencoder' else 'a'} {found} model, but this needs "
                         f"{'an' if kind == 'autoencoder' else 'a'} {kind} model: "
                         + ("pass a diffusion workdir (one trained with configs/default.py or configs/latent.py)"
                            if kind == "diffusion" else "pass a workdir trained with configs/autoencoder.py"))
    model = model_for(config, load_spec(workdir), workdir=workdir)
    if check is not None:
        check(config, model)
    num_emas = len(config.training.ema_halflife_examples)
    if not -1 <= ema < num_emas:
        raise ValueError(f"ema={ema}: this workdir has {num_emas} EMAs (0..{num_emas - 1}); -1 for the raw weights")
    manager = checkpoint.make_manager(checkpoint_dir(workdir))
    steps = manager.all_steps()
    if not steps:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(workdir)}: train first "
                                "(experiments/train.py --workdir ...)")
    if step is not None and int(step) not in steps:
        raise ValueError(f"no checkpoint at step {step} in {checkpoint_dir(workdir)}; steps: {sorted(steps)}")
    target = abstract_weights(model, num_emas)
    target = {"params": target["params"]} if ema < 0 else {"ema_params": target["ema_params"]}
    candidates = [int(step)] if step is not None else sorted(steps, reverse=True)
    problems = []
    for candidate in candidates:
        try:
            items = checkpoint.restore_partial(manager, candidate, target)
        except Exception as error:  # noqa: BLE001  (orbax raises many types for a damaged checkpoint)
            problems.append(f"step {candidate}: {checkpoint.describe_error(error)}")
            log.warning("checkpoint %s is unreadable", problems[-1])
            continue
        if problems:
            log.warning("loaded checkpoint %d instead of the newer, unreadable %s", candidate, "; ".join(problems))
        params = items["params"] if ema < 0 else items["ema_params"][ema]
        return Loaded(model=model, params=params, step=candidate, config=config)
    raise ValueError(f"cannot read the checkpoint(s) of {workdir}: {'; '.join(problems)}. If the weights' shapes "
                     f"changed, {CONFIG_FILE} no longer matches them (restore the file); otherwise the checkpoint "
                     f"is damaged: pass --step with another of {sorted(steps)}.")

"""Shared fixtures of the conditioner tests: one tiny DiT model with every conditioner, built once
per session, and its jitted denoisers (each compiled once, at one batch size and one condition
structure, and reused by every test that needs a network).

Compile time dominates on CPU, so:
- the model works on a 32-sample waveform (the identity codec: T = 32 frames, 1 channel), with a
  DiT of patch size 1 and the smallest widths each conditioner takes;
- the parameters are drawn on the host from the shapes of `model.abstract_params()` (no compile;
  `model.init` costs ~10 s of XLA compile on 2 cores). They are random everywhere, which is what
  the tests need anyway: DiT's adaLN gates and output layer are zero at initialisation, so at init
  every output is 0 and equality tests would pass vacuously;
- every network call goes through `denoise(params, x, sigma, cond)` with `cond` a complete
  condition (every name given) at batch `NET_BATCH`, so it compiles once; guidance tests use
  batches of `NET_BATCH // 2` (two CFG branches stacked).
"""
import types

import jax
import ml_collections
import numpy as np
import pytest

from configs import default
from diffjax.conditioners import train_tokenizer
from diffjax.model import DataSpec, build_model

NET_BATCH = 4       # every compiled network call runs on this batch
LENGTH = 32         # waveform samples = model frames (identity codec)
NUM_CLASSES = 3
LOW_PITCH, HIGH_PITCH = 60, 62
CAPTIONS = ("a soft flute note", "kick drum pattern", "bright bell chord")


def tiny_config(conditioning: dict) -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.size = "tiny"
    config.model.patch_size = 1
    config.codec = ml_collections.ConfigDict({"name": "waveform"})
    config.conditioning = ml_collections.ConfigDict(conditioning)
    return config


ALL_CONDITIONING = dict(
        label=dict(dropout=0.1),
        text=dict(width=8, depth=1, num_heads=2, max_tokens=4),  # the transformer encoder
        timing=dict(width=4),
        notes=dict(low_pitch=LOW_PITCH, high_pitch=HIGH_PITCH),
        inpaint=dict())


def random_params(abstract, seed: int = 0):
    """Host-drawn parameters of the shapes in `abstract`: kernels and embeddings N(0, 1/fan_in),
    biases N(0, 0.1^2), LayerNorm scales 1 + N(0, 0.1^2), other vectors N(0, 0.5^2) (e.g. the
    timing embedding's null vector and frequencies)."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        z = rng.standard_normal(leaf.shape)
        if name.endswith("['scale']"):
            value = 1.0 + 0.1 * z
        elif name.endswith("['bias']"):
            value = 0.1 * z
        elif len(leaf.shape) >= 2:
            value = z / np.sqrt(np.prod(leaf.shape[:-1]))
        else:
            value = 0.5 * z
        return value.astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def condition_values(model, batch: int, seed: int = 0) -> dict:
    """A non-null value of every condition of `model` (host numpy, as `host_batch` makes them)."""
    rng = np.random.default_rng(seed)
    c = model.conditioners
    frames = model.latent_shape[0]
    events = np.full((batch, 2, 4), -1.0, np.float32)
    events[:, 0] = [LOW_PITCH + 1, 0.0, 8 / 16000, 0.8]  # pitch, onset s, duration s, velocity
    batch_dict = {"label": rng.integers(0, NUM_CLASSES, batch),
                  "caption": np.array([CAPTIONS[i % len(CAPTIONS)] for i in range(batch)], object),
                  "seconds_start": np.full(batch, 0.0, np.float32),
                  "seconds_total": np.full(batch, 0.001, np.float32),
                  "events": events}
    values = {name: c[name].host_value(batch_dict) for name in ("label", "text", "timing", "notes")}
    mask = np.zeros((batch, frames), np.float32)
    mask[:, :8] = 1.0
    known = rng.standard_normal((batch,) + model.latent_shape).astype(np.float32) * mask[..., None]
    values["inpaint"] = {"known": known, "mask": mask}
    return values


@pytest.fixture(scope="session")
def tiny():
    """The every-conditioner model (and `make_model(conditioning)` for others on the same data),
    random parameters, inputs at `NET_BATCH`, and the two jitted
    denoisers: `denoise(params, x, sigma, cond)` (the model's conditional denoiser; `cond` complete)
    and `unconditional(params, x, sigma)` (`model.denoiser(params, None)`)."""
    tokenizer = train_tokenizer(list(CAPTIONS))
    spec = DataSpec(shape=(LENGTH, 1), sample_rate=16000, num_classes=NUM_CLASSES, class_names=("a", "b", "c"))

    def make_model(conditioning):  # building compiles nothing
        return build_model(tiny_config(conditioning), spec, conditioning_context={"tokenizer": tokenizer})

    model = make_model(ALL_CONDITIONING)
    params = random_params(model.abstract_params())
    rng = np.random.default_rng(1)
    x = rng.standard_normal((NET_BATCH,) + model.latent_shape).astype(np.float32)
    sigma = np.array([0.05, 0.5, 2.0, 20.0], np.float32)
    denoise = jax.jit(lambda p, x, s, cond: model.conditional_denoiser(p)(x, s, cond))
    unconditional = jax.jit(lambda p, x, s: model.denoiser(p, None)(x, s))
    # A stand-in for the model in `jobs.generation.guided_denoiser`: the same conditioners, and
    # its network calls through the one compiled `denoise`.
    jitted_model = types.SimpleNamespace(
            conditioners=model.conditioners,
            conditional_denoiser=lambda p: (lambda x, s, cond: denoise(p, x, s, cond)),
            denoiser=lambda p, cond: (lambda x, s: denoise(p, x, s, cond)))
    return types.SimpleNamespace(model=model, make_model=make_model, params=params, x=x, sigma=sigma,
                                 tokenizer=tokenizer,
                                 denoise=denoise, unconditional=unconditional, jitted_model=jitted_model,
                                 values=condition_values(model, NET_BATCH))

"""The project's own audio classifier: Inception's role for FD, IS, NDB and class accuracy.

    python experiments/train_classifier.py --config configs/classifier.py --workdir runs/classifier
    clf = load_classifier("runs/classifier")
    clf.embed(audio)    # {'embedding': [B, D] penultimate features, 'probs': [B, K]}

A small CNN over log-mel spectrograms (in the spirit of the SC09 classifiers of Donahue et al.
2019 and the VGGish/PANNs family, Hershey et al. 2017; Kong et al. 2020), trained on a labelled
dataset ('synth_music' instrument labels, or a 'folder' with `labels_from_dirs=True`). Training
reuses `diffjax.training` (TrainState with an EMA, `build_optimizer`, orbax checkpoints with the
config as JSON), so a classifier workdir is self-describing like a diffusion workdir.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from diffjax import factory
from diffjax.audio.codecs import LogMel
from diffjax.evaluation.features import EMBEDDERS, AbstractEmbedder
from diffjax.evaluation.reference import dataset_clips
from diffjax.training import checkpoint
from diffjax.training.state import TrainState, build_optimizer, ema_decay, num_params, update_emas

log = logging.getLogger("diffjax")
EVAL_FILE = "classifier_eval.json"


class AudioClassifier(nn.Module):
    """Log-mel -> [(conv3x3-GN-SiLU) x convs_per_stage -> avgpool 2x2] per stage -> mean/max pooling -> embedding.

    audio [B, L, C] (channels averaged to mono) -> (logits [B, K], embedding [B, embed_dim]).
    The embedding is the penultimate layer, as Inception's pool3 features for FID.
    """

    num_classes: int
    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 128
    n_mels: int = 64
    channels: Sequence[int] = (16, 32, 64, 128)
    convs_per_stage: int = 2
    embed_dim: int = 128

    def log_mel(self, audio: jax.Array) -> jax.Array:
        """[B, L, C] -> [B, T, n_mels, 1], roughly centred and scaled (log power + 4) / 4."""
        codec = LogMel(sample_rate=self.sample_rate, n_fft=self.n_fft, hop=self.hop,
                       n_mels=self.n_mels, fmin=20.0, fmax=None)
        return (codec.encode(jnp.mean(audio, axis=-1, keepdims=True)) + 4.0) / 4.0

    @nn.compact
    def __call__(self, audio: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = self.log_mel(audio)
        for i, ch in enumerate(self.channels):
            for j in range(self.convs_per_stage):
                h = nn.Conv(ch, (3, 3), name=f"conv_{i}_{j}")(h)
                h = nn.silu(nn.GroupNorm(min(8, ch), name=f"norm_{i}_{j}")(h))
            h = nn.avg_pool(h, (2, 2), (2, 2), padding="SAME")
        h = jnp.mean(h, axis=2)  # over frequency: [B, T', ch]
        h = jnp.concatenate([jnp.mean(h, axis=1), jnp.max(h, axis=1)], axis=-1)
        embedding = nn.silu(nn.Dense(self.embed_dim, name="embed")(h))
        return nn.Dense(self.num_classes, name="logits")(embedding), embedding


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def augment(audio: jax.Array, key: jax.Array, *, gain_db: float, max_shift: int,
            noise_snr_db: tuple[float, float] | None = None, noise_prob: float = 0.5) -> jax.Array:
    """Random gain in +-`gain_db`, a random circular shift up to `max_shift` samples and, with
    probability `noise_prob`, white noise at an SNR uniform in `noise_snr_db` (so faint residual
    noise of a sampler does not flip the predicted class)."""
    k_gain, k_shift, k_noise, k_snr, k_use = jax.random.split(key, 5)
    b = audio.shape[0]
    gain = 10.0 ** (jax.random.uniform(k_gain, (b, 1, 1), minval=-gain_db, maxval=gain_db) / 20)
    shifts = jax.random.randint(k_shift, (b,), -max_shift, max_shift + 1)
    out = jax.vmap(lambda a, s: jnp.roll(a, s, axis=0))(audio, shifts)
    if noise_snr_db is not None:
        snr = jax.random.uniform(k_snr, (b, 1, 1), minval=noise_snr_db[0], maxval=noise_snr_db[1])
        rms = jnp.sqrt(jnp.mean(out ** 2, axis=(1, 2), keepdims=True))
        use = jax.random.bernoulli(k_use, noise_prob, (b, 1, 1))
        noise = jax.random.normal(k_noise, out.shape) * rms * 10.0 ** (-snr / 20)
        out = out + jnp.where(use, noise, 0.0)
    return jnp.clip(gain * out, -1.0, 1.0)


def make_classifier_step(model: AudioClassifier, decays: Sequence[float], **augment_kwargs):
    """`step(state, batch, key) -> (state, metrics)`: cross-entropy, optimiser update, EMA."""
    decays = tuple(float(d) for d in decays)

    def step(state: TrainState, batch: dict, key: jax.Array):
        audio = augment(jnp.asarray(batch["x"]), key, **augment_kwargs)
        labels = jnp.asarray(batch["label"], jnp.int32)
        valid = (labels >= 0).astype(jnp.float32)  # 'folder' files outside a class folder: -1
        count = jnp.maximum(jnp.sum(valid), 1.0)

        def loss_fn(params):
            logits, _ = model.apply({"params": params}, audio)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
            correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
            return jnp.sum(valid * ce) / count, jnp.sum(valid * correct) / count

        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              ema_params=update_emas(state.ema_params, params, decays))
        return state, {"loss": loss, "train_accuracy": acc}

    return step


def build_classifier(config, dataset) -> AudioClassifier:
    """The network of `config.classifier` for `dataset`'s classes and sample rate."""
    if dataset.num_classes <= 0:
        raise ValueError(f"dataset {config.data.name!r} has no class labels (num_classes = 0); "
                         "for a 'folder' dataset set data.labels_from_dirs=True")
    kwargs = {k: tuple(v) if isinstance(v, list) else v  # JSON configs hold lists
              for k, v in factory.kwargs_of(config.classifier).items()}
    return AudioClassifier(num_classes=int(dataset.num_classes),
                           sample_rate=int(dataset.sample_rate), **kwargs)


def make_predict_fn(model: AudioClassifier):
    """A jitted `(params, audio [B, L, C]) -> (probs [B, K], embedding [B, D])`."""

    def apply(params, audio):
        logits, emb = model.apply({"params": params}, audio)
        return jax.nn.softmax(logits), emb

    return jax.jit(apply)


def predict(predict_fn, params, audio: np.ndarray, *, batch_size: int = 64):
    """(probs [N, K], embedding [N, D]) of `audio` [N, L, C], in batches of `batch_size`."""
    outs = [predict_fn(params, jnp.asarray(audio[i:i + batch_size], jnp.float32))
            for i in range(0, len(audio), batch_size)]
    return (np.concatenate([np.asarray(p) for p, _ in outs]),
            np.concatenate([np.asarray(e) for _, e in outs]))


def accuracy_on(model, params, dataset, *, batch_size: int = 64) -> dict:
    """Overall and per-class accuracy on every clip of `dataset` (e.g. the eval split)."""
    from diffjax.evaluation.scores import class_accuracy

    fn, probs, labels = make_predict_fn(model), [], []
    for batch in dataset_clips(dataset, batch_size=batch_size):
        keep = batch["label"] >= 0  # unlabelled files of a 'folder' dataset
        if not keep.any():
            continue
        probs.append(predict(fn, params, batch["x"][keep], batch_size=batch_size)[0])
        labels.append(batch["label"][keep])
    return class_accuracy(np.concatenate(probs), np.concatenate(labels), model.num_classes)


def train_classifier(config, workdir: str) -> dict:
    """Trains (resuming from the workdir) and returns the eval-split accuracy, also written to
    `<workdir>/classifier_eval.json`."""
    os.makedirs(workdir, exist_ok=True)
    checkpoint.save_config(workdir, config)
    dataset = factory.build_dataset(config)
    model = build_classifier(config, dataset)
    train = config.training
    example = jnp.asarray(dataset.batch(0, train.batch_size, seed=config.seed)["x"])
    params = jax.jit(model.init)(jax.random.PRNGKey(config.seed), example)["params"]
    tx = build_optimizer(name=config.optim.name, **factory.kwargs_of(config.optim))
    state = TrainState.create(params, tx, 1)
    manager = checkpoint.make_manager(workdir, max_to_keep=2)
    restored = checkpoint.restore_latest(manager, state.checkpoint_items())
    if restored is not None:
        state = state.replace_items(restored)
    log.info("classifier: %d parameters, %d classes; starting at step %d", num_params(params),
             model.num_classes, int(state.step))
    decays = [ema_decay(train.ema_halflife_examples, train.batch_size)]
    noise = train.get("augment_noise_snr_db")
    step_fn = jax.jit(make_classifier_step(
            model, decays, gain_db=train.augment_gain_db,
            max_shift=int(train.augment_shift_seconds * dataset.sample_rate),
            noise_snr_db=None if noise is None else tuple(noise)), donate_argnums=0)
    base_key = jax.random.PRNGKey(config.seed)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    for step in range(int(state.step), train.num_steps):
        batch = dataset.batch(step, train.batch_size, seed=config.seed)
        batch = {"x": batch["x"], "label": batch["label"]}  # one jit signature for all datasets
        state, metrics = step_fn(state, batch, jax.random.fold_in(base_key, step))
        if (step + 1) % train.log_every == 0 or step + 1 == train.num_steps:
            scalars = {k: float(v) for k, v in metrics.items()}
            if not np.isfinite(scalars["loss"]):
                raise FloatingPointError(f"classifier loss is {scalars['loss']} at step {step + 1}")
            with open(metrics_path, "a") as f:
                f.write(json.dumps({"step": step + 1, **scalars}) + "\n")
        if (step + 1) % train.checkpoint_every == 0 or step + 1 == train.num_steps:
            checkpoint.save(manager, step + 1, state.checkpoint_items())
    results = accuracy_on(model, state.ema_params[0], dataset.eval)
    results["step"] = int(state.step)
    with open(os.path.join(workdir, EVAL_FILE), "w") as f:
        json.dump(results, f, indent=2)
    return results


# ---------------------------------------------------------------------------------------------
# A trained classifier as an embedder
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Classifier:
    """A trained classifier: the network, its EMA parameters and where they came from."""

    model: AudioClassifier
    params: Any
    workdir: str
    step: int
    class_names: tuple[str, ...] = ()

    @functools.cached_property
    def _predict_fn(self):
        return make_predict_fn(self.model)

    def predict(self, audio: np.ndarray, *, batch_size: int = 64):
        """(probs [N, K], embedding [N, D])."""
        return predict(self._predict_fn, self.params, audio, batch_size=batch_size)


def load_classifier(workdir: str, *, step: Optional[int] = None) -> Classifier:
    """Restores the EMA weights of a classifier workdir (latest checkpoint unless `step`)."""
    config = checkpoint.load_config(workdir)
    dataset = factory.build_dataset(config)
    model = build_classifier(config, dataset)
    manager = checkpoint.make_manager(workdir)
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no classifier checkpoint in {checkpoint.checkpoint_dir(workdir)}; "
                                "train one with experiments/train_classifier.py")
    items = manager.restore(step, args=ocp.args.StandardRestore())
    return Classifier(model=model, params=items["ema_params"][0], workdir=os.path.abspath(workdir),
                      step=int(step), class_names=tuple(getattr(dataset, "class_names", ())))


@EMBEDDERS.register("classifier")
@dataclasses.dataclass(frozen=True)
class ClassifierEmbedder(AbstractEmbedder):
    """Penultimate features and class probabilities of a trained classifier workdir."""

    workdir: str
    step: Optional[int] = None
    batch_size: int = 64

    @functools.cached_property
    def classifier(self) -> Classifier:
        return load_classifier(self.workdir, step=self.step)

    @property
    def sample_rate(self) -> int:
        return self.classifier.model.sample_rate

    @property
    def num_classes(self) -> int:
        return self.classifier.model.num_classes

    @property
    def cache_key(self) -> str:
        return f"classifier:{self.classifier.workdir}:step{self.classifier.step}"

    def embed(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        probs, emb = self.classifier.predict(audio, batch_size=self.batch_size)
        return {"embedding": emb, "probs": probs}

"""The project's own audio classifier: Inception's role for FD, IS, NDB and class accuracy.

    python experiments/train_classifier.py --config configs/classifier.py --workdir runs/classifier
    clf = jobs.classifier.load_classifier("runs/classifier")     # a `Classifier` (network + params)
    emb = get_embedder("classifier", classifier=clf)
    emb.embed(audio)    # {'embedding': [B, D] penultimate features, 'probs': [B, K]}

A small CNN over log-mel spectrograms (in the spirit of the SC09 classifiers of Donahue et al.
2019 and the VGGish/PANNs family, Hershey et al. 2017; Kong et al. 2020), trained on a labelled
dataset ('synth_music' instrument labels, or a 'folder' with `labels_from_dirs=True`). It trains
with the generic `training.step.make_train_step` on `classifier_loss_fn` (per-example cross-entropy)
and the training checkpoint manager; the loop that reads data and writes the workdir is the job
`diffjax.jobs.classifier`. This module reads no files.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffjax.audio.codecs import LogMel
from diffjax.evaluation.features import EMBEDDERS, AbstractEmbedder
from diffjax.evaluation.reference import dataset_clips
from diffjax.evaluation.scores import class_accuracy


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


def classifier_loss_fn(model: AudioClassifier, **augment_kwargs):
    """`loss_fn(params, batch, key, extra) -> (cross-entropy [B], {'train_accuracy': []})` for
    `training.step.make_train_step`: augmented audio `batch['x']`, integer `batch['label']`.

    Examples labelled -1 ('folder' files outside a class folder) count zero, and the labelled ones
    are scaled by B / (number labelled), so the step's mean is the mean over labelled examples.
    """

    def loss_fn(params, batch: dict, key: jax.Array, extra: dict):
        del extra
        audio = augment(jnp.asarray(batch["x"]), key, **augment_kwargs)
        labels = jnp.asarray(batch["label"], jnp.int32)
        valid = (labels >= 0).astype(jnp.float32)
        count = jnp.maximum(jnp.sum(valid), 1.0)
        logits, _ = model.apply({"params": params}, audio)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        scale = valid * labels.shape[0] / count
        return scale * ce, {"train_accuracy": jnp.sum(valid * correct) / count}

    return loss_fn


def augment_options(training, sample_rate: int) -> dict:
    """`augment` keyword arguments from `config.training` (shift given in seconds)."""
    noise = training.get("augment_noise_snr_db")
    return {"gain_db": float(training.augment_gain_db),
            "max_shift": int(training.augment_shift_seconds * sample_rate),
            "noise_snr_db": None if noise is None else tuple(noise)}


def build_classifier(config, spec) -> AudioClassifier:
    """The network of `config.classifier` (AudioClassifier fields; an unknown key is an error) for
    data `spec` (a dataset or a `model.DataSpec`: its `num_classes` and `sample_rate`)."""
    if spec.num_classes <= 0:
        raise ValueError(f"dataset {config.data.get('name')!r} has no class labels (num_classes = 0); "
                         "for a 'folder' dataset set labels_from_dirs=True in its data section")
    kwargs = {k: tuple(v) if isinstance(v, (list, tuple)) else v  # JSON configs hold lists
              for k, v in config.classifier.items()}
    return AudioClassifier(num_classes=int(spec.num_classes), sample_rate=int(spec.sample_rate), **kwargs)


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
    fn, probs, labels = make_predict_fn(model), [], []
    for batch in dataset_clips(dataset, batch_size=batch_size):
        keep = batch["label"] >= 0  # unlabelled files of a 'folder' dataset
        if not keep.any():
            continue
        probs.append(predict(fn, params, batch["x"][keep], batch_size=batch_size)[0])
        labels.append(batch["label"][keep])
    return class_accuracy(np.concatenate(probs), np.concatenate(labels), model.num_classes)


# ---------------------------------------------------------------------------------------------
# A trained classifier as an embedder
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Classifier:
    """A trained classifier: the network, its (EMA) parameters, and where they came from.

    The jobs layer loads one from a workdir (`diffjax.jobs.classifier.load_classifier`); `source`
    and `step` identify the weights in the reference-feature cache.
    """

    model: AudioClassifier
    params: Any
    source: str
    step: int
    class_names: tuple[str, ...] = ()

    @functools.cached_property
    def _predict_fn(self):
        return make_predict_fn(self.model)

    def predict(self, audio: np.ndarray, *, batch_size: int = 64):
        """(probs [N, K], embedding [N, D])."""
        return predict(self._predict_fn, self.params, audio, batch_size=batch_size)


@EMBEDDERS.register("classifier")
@dataclasses.dataclass(frozen=True)
class ClassifierEmbedder(AbstractEmbedder):
    """Penultimate features and class probabilities of a trained `Classifier`."""

    classifier: Classifier
    batch_size: int = 64

    @property
    def sample_rate(self) -> int:
        return self.classifier.model.sample_rate

    @property
    def num_classes(self) -> int:
        return self.classifier.model.num_classes

    @property
    def cache_key(self) -> str:
        return f"classifier:{self.classifier.source}:step{self.classifier.step}"

    def embed(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        probs, emb = self.classifier.predict(audio, batch_size=self.batch_size)
        return {"embedding": emb, "probs": probs}

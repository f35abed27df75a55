"""The diffusion-model object (DESIGN.md, "The model object"): process + parameterisation +
network + codec + conditioners, built from a config.

    model = build_model(config, spec)              # spec: what one example of the data is
    params = model.init(key)                        # or: loaded = jobs.load(workdir)
    D = model.denoiser(params, cond)                # D(x, sigma) in the VE view; cond None: null
    D_cfg = guidance.classifier_free(model.conditional_denoiser(params), cond,
                                     model.null_condition(batch), scale=3.0)
    audio = model.codec.decode(sampler(D, x_init, sigmas), model.spec.shape[0])

Everything that trains, samples, restores, measures likelihoods or distils starts from this
object; `diffjax.jobs.load(workdir)` is the only code that turns a checkpoint into one.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import autoencoder
from diffjax import conditioners as conditioners_lib
from diffjax import losses, models, precond, sde
from diffjax.models.log_variance import WithLogVariance
from diffjax.models.magnitude import force_weight_norm
from diffjax.audio.codecs import CODECS, AbstractCodec
from diffjax.distillation import parameterisation  # noqa: F401  (registers the 'consistency' parameterisation)

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What one example of the training data is, stored with every workdir (`model.json`).

    Attributes:
      shape: one data example: `(L, C)` for audio, `(D,)` for vectors.
      sample_rate: Hz for audio, None for vector data.
      num_classes: classes of the data's 'label' attribute (0: none).
      class_names: their names, index order.
    """

    shape: tuple[int, ...]
    sample_rate: Optional[int] = None
    num_classes: int = 0
    class_names: tuple[str, ...] = ()

    @property
    def is_audio(self) -> bool:
        return self.sample_rate is not None

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "sample_rate": self.sample_rate, "num_classes": self.num_classes,
                "class_names": list(self.class_names)}

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> "DataSpec":
        return cls(shape=tuple(int(n) for n in values["shape"]), sample_rate=values.get("sample_rate"),
                   num_classes=int(values.get("num_classes", 0)), class_names=tuple(values.get("class_names", ())))


def data_spec(dataset) -> DataSpec:
    """The `DataSpec` of a dataset (`diffjax.data.AbstractDataset`)."""
    rate = dataset.sample_rate
    return DataSpec(shape=tuple(int(n) for n in dataset.example_shape), sample_rate=None if rate is None else int(rate),
                    num_classes=int(dataset.num_classes), class_names=tuple(dataset.class_names or ()))


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: a key for compiled functions
class DiffusionModel:
    """A trained or trainable diffusion model, whatever its parts. Immutable; holds no weights.

    Attributes:
      process: the forward process (`diffjax.sde`).
      precond: the parameterisation that turns the network into a denoiser (`diffjax.precond`).
      network: the flax module `F(x_in, c_noise, cond)` (`diffjax.models`).
      codec: the representation the network works in (`diffjax.audio.codecs`).
      conditioners: `{name: AbstractConditioner}`; empty for an unconditional model.
      spec: what one data example is (`DataSpec`).
    """

    process: sde.AbstractProcess
    precond: precond.AbstractPrecond
    network: Any
    codec: AbstractCodec
    conditioners: Mapping[str, conditioners_lib.AbstractConditioner]
    spec: DataSpec

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """One example in model space (after the codec's `encode`)."""
        return model_space_shape(self.codec, self.spec)

    def _boxed_init(self, key: Array) -> Any:
        example = jnp.zeros((1,) + self.latent_shape, jnp.float32)
        return self.network.init(key, example, jnp.zeros((1,)), self.network_condition(None, 1))["params"]

    def init(self, key: Array) -> Any:
        """Fresh network parameters (one compile)."""
        return models.unbox(jax.jit(self._boxed_init)(key))

    def logical_axes(self) -> Any:
        """Each parameter's logical axis names (a `PartitionSpec` per leaf; `parallel` maps them
        onto the mesh), from the networks' sharding annotations; allocates nothing."""
        return models.logical_axes(jax.eval_shape(self._boxed_init, jax.random.PRNGKey(0)))

    def abstract_params(self) -> Any:
        """Shapes and dtypes of the parameters (`jax.eval_shape`; allocates nothing)."""
        return jax.eval_shape(self.init, jax.random.PRNGKey(0))

    def network_condition(self, cond: Optional[Mapping], batch_size: int) -> Optional[dict]:
        """A condition pytree (None or missing names: null) -> the network's `cond` dict."""
        return conditioners_lib.network_condition(self.conditioners, cond, batch_size)

    def null_condition(self, batch_size: int) -> dict:
        """Every condition's null value for a batch (CFG's unconditional branch)."""
        return conditioners_lib.null_condition(self.conditioners, batch_size)

    def encode_batch(self, batch: Mapping[str, Any]) -> tuple[Array, Optional[Array]]:
        """A dataset batch -> `(x0 [B, ...] in model space, mask or None)`. The padding mask applies
        only where the codec is the identity (a mask over samples means nothing over STFT frames)
        and no conditioner `learns_padding` (timing: the model learns the silence after
        `seconds_total` from the padded clips, as Stable Audio)."""
        if "z" in batch:  # pre-encoded (a codec with `encode_once`: the latent cache)
            return jnp.asarray(batch["z"]), None
        mask = batch.get("mask")
        use_mask = self.codec.is_identity and not any(c.learns_padding for c in self.conditioners.values())
        return self.codec.encode(jnp.asarray(batch["x"])), (mask if use_mask else None)

    def host_batch(self, batch: Mapping[str, Any]) -> dict:
        """A dataset batch (numpy, possibly with strings) -> what the train step reads: the data
        ('x' or pre-encoded 'z', 'mask') and each condition's host value (captions tokenised,
        note events rendered as a piano roll)."""
        out = {k: np.asarray(batch[k]) for k in ("x", "z", "mask") if k in batch}
        out.update(conditioners_lib.host_condition(self.conditioners, batch))
        return out

    def training_condition(self, batch: Mapping[str, Any], x0: Array, key: Array) -> dict:
        """The conditions of a (host-prepared) batch as the network sees them in training; the
        inpainting conditioner draws its masks from `x0` here."""
        cond = {name: batch.get(name) for name in self.conditioners}
        return conditioners_lib.training_condition(self.conditioners, cond, x0, key)

    def conditional_denoiser(self, params: Any):
        """`D(x~ [B, ...], sigma~ [B] or scalar, cond) -> x0_hat`, the input of every guidance wrapper."""

        def denoiser(x: Array, sigma: Array, cond: Optional[Mapping]) -> Array:
            net_fn = precond.flax_net_fn(self.network, params)
            return self.precond.denoise(net_fn, x, sigma, self.network_condition(cond, x.shape[0]))

        return denoiser

    def project_params(self, params: Any) -> Any:
        """The projection after each optimiser step: EDM2's forced weight normalisation (sec. 2.3,
        eq. 66) of the magnitude-preserving weights; the identity for other networks."""
        return force_weight_norm(params)

    @property
    def learns_weighting(self) -> bool:
        """Whether the network carries EDM2's log-variance head (loss weighting 'learned')."""
        return isinstance(self.network, WithLogVariance)

    def log_variance(self, params: Any, sigma: Array) -> Array:
        """EDM2's learned `u(sigma~ [B]) -> [B]` (only with the 'learned' loss weighting)."""
        if not self.learns_weighting:
            raise ValueError("this model has no learned loss weighting: train with loss.weighting='learned'")
        return self.network.apply({"params": params}, sigma, method="log_variance")

    def denoiser(self, params: Any, cond: Optional[Mapping] = None):
        """`D(x~, sigma~)` with `cond` bound (None: every condition null, i.e. unconditional)."""
        conditional = self.conditional_denoiser(params)
        return lambda x, sigma: conditional(x, sigma, cond)


def build_codec(section: Optional[Mapping], sample_rate: Optional[int], **context: Any) -> AbstractCodec:
    """`config.codec` (absent: the identity 'waveform' codec); the data's rate where a codec takes
    one, and `context` (the 'latent' codec's loaded autoencoder, supplied by the jobs layer)."""
    if section is None:
        return CODECS.build({"name": "waveform"})
    if sample_rate is not None:
        context["sample_rate"] = int(sample_rate)
    return CODECS.build(section, **context)


def model_space_shape(codec: AbstractCodec, spec: DataSpec) -> tuple[int, ...]:
    """One example in model space (after the codec's `encode`)."""
    example = jax.ShapeDtypeStruct((1,) + spec.shape, jnp.float32)
    return tuple(jax.eval_shape(codec.encode, example).shape[1:])


def conditioner_context(codec: AbstractCodec, spec: DataSpec) -> dict:
    """What conditioners may take from the data and the model space: `num_classes`; for audio, the
    model-space `latent_shape`, its `frames_per_second` and the window `max_seconds`."""
    context: dict[str, Any] = {"num_classes": spec.num_classes}
    if spec.is_audio:
        shape = model_space_shape(codec, spec)
        seconds = spec.shape[0] / spec.sample_rate
        context.update(latent_shape=shape, frames_per_second=shape[0] / seconds, max_seconds=seconds)
    return context


def build_network(model_section, conditioners: Mapping[str, conditioners_lib.AbstractConditioner]):
    """The backbone of `config.model`, built with what the conditioners need, wrapped with their
    embedders (`diffjax.conditioners.network`)."""
    network_kwargs = conditioners_lib.merge_network_kwargs(conditioners)
    try:
        backbone = models.MODELS.build(model_section, **network_kwargs)
    except TypeError as error:
        if not any(repr(key) in str(error) for key in network_kwargs):
            raise  # a key of the model section itself: the registry's message names it
        raise ValueError(f"model {model_section.get('name')!r} cannot take the conditioning "
                         f"{sorted(conditioners)} (it needs {sorted(network_kwargs)}); use model.name='dit', "
                         f"which takes cross-attention tokens, global vectors and frame-aligned inputs") from error
    return conditioners_lib.conditioned_network(backbone, dict(conditioners))


def learns_weighting(config) -> bool:
    """Whether `config.loss.weighting` is learned (EDM2's u(sigma)): the network then carries the
    log-variance head, so its parameter tree depends on it."""
    name = (config.get("loss") or {}).get("weighting", "edm")
    return bool(losses.WEIGHTINGS.meta(name).get("learned", False))


def build_model(config, spec: DataSpec, *, codec_context: Optional[Mapping] = None,
                conditioning_context: Optional[Mapping] = None) -> DiffusionModel:
    """The model of `config` (sections sde, precond, model, codec, conditioning) for data `spec`.
    `codec_context`: what a codec needs beyond its config (the 'latent' codec: `autoencoder` and
    `autoencoder_params`, loaded by `diffjax.jobs.workdir.codec_context`); `conditioning_context`:
    what conditioners need beyond their config (the text conditioner's trained `tokenizer`)."""
    process = sde.SDES.build(config.sde)
    pc = precond.PRECONDS.build(config.precond, process=process)
    codec = build_codec(config.get("codec"), spec.sample_rate, **dict(codec_context or {}))
    context = {**conditioner_context(codec, spec), **dict(conditioning_context or {})}
    conditioners = conditioners_lib.build_conditioners(config.get("conditioning"), **context)
    network = build_network(config.model, conditioners)
    if learns_weighting(config):
        network = WithLogVariance(network)
    return DiffusionModel(process=process, precond=pc, network=network, codec=codec,
                          conditioners=conditioners, spec=spec)


@dataclasses.dataclass(frozen=True, eq=False)
class AutoencoderModel:
    """An audio autoencoder (`diffjax.autoencoder`): the latent space a latent diffusion model works
    in. Immutable; holds no weights.

    Attributes:
      network: the flax `AudioAutoencoder` (encoder, bottleneck, decoder).
      spec: what one data example is (`DataSpec`): its sample rate and channels must match the
        diffusion data it later encodes.
    """

    network: Any
    spec: DataSpec

    @property
    def hop(self) -> int:
        """Audio samples per latent frame."""
        return int(self.network.hop)

    def _boxed_init(self, key: Array) -> Any:
        example = jnp.zeros((1,) + self.spec.shape, jnp.float32)
        return self.network.init(key, example, key)["params"]

    def init(self, key: Array) -> Any:
        return models.unbox(jax.jit(self._boxed_init)(key))

    def logical_axes(self) -> Any:
        return models.logical_axes(jax.eval_shape(self._boxed_init, jax.random.PRNGKey(0)))

    def abstract_params(self) -> Any:
        return jax.eval_shape(self.init, jax.random.PRNGKey(0))

    def encode(self, params: Any, audio: Array) -> Array:
        """audio [B, L, C] -> latents [B, ceil(L / hop), D]: the posterior mean (Rombach et al. 2022
        encode once and diffuse the mean's neighbourhood; the VAE's std is small after training)."""
        mean, _ = self.network.apply({"params": params}, audio, method="encode_moments")
        return mean

    def decode(self, params: Any, z: Array, length: Optional[int] = None) -> Array:
        """latents [B, T, D] -> audio [B, length, C] (default T * hop)."""
        audio = self.network.apply({"params": params}, z, method="decode")
        return audio if length is None else audio[:, :length]


def build_autoencoder_model(config, spec: DataSpec) -> AutoencoderModel:
    """The autoencoder of `config.autoencoder` (name, size preset, overrides) for data `spec`."""
    if not spec.is_audio or len(spec.shape) != 2:
        raise ValueError(f"an audio autoencoder needs audio data [L, C]; this dataset's examples are {spec.shape}")
    network = autoencoder.AUTOENCODERS.build(config.autoencoder, io_channels=int(spec.shape[1]))
    return AutoencoderModel(network=network, spec=spec)

"""Restoration with a model in a codec's space (latent diffusion): the operator is applied to
`decode(z)` (`in_model_space`), DPS and noise-free PiGDM guide through the decoder, every method
that needs a projection, pseudo-inverse or SVD in the model's space is refused naming the methods
that work, and a codec whose decode is not differentiable (log-mel) is refused.

The fast tests use a fixed random linear decoder as the codec and the closed-form denoiser of a
`N(0, I)` prior on z; one test runs the project's tiny `AudioAutoencoder` as a `LatentCodec`."""
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import soundfile as sf

from configs import restore as restore_config
from diffjax.audio.codecs import AbstractCodec, get_codec
from diffjax.autoencoder.codec import LatentCodec
from diffjax.autoencoder.networks import AUTOENCODERS
from diffjax.jobs import likelihood as likelihood_job
from diffjax.jobs import restore as restore_job
from diffjax.jobs import workdir as workdir_lib
from diffjax.model import AutoencoderModel, DataSpec, DiffusionModel
from diffjax.precond import get_precond
from diffjax.restoration import (METHODS, DecodedOperator, applicable_methods, get_method, get_operator,
                                 in_model_space, unmet_requirements)
from diffjax.restoration.methods import noise_free_direction, pigdm_denoiser
from diffjax.restoration.tasks import restore_audio
from diffjax.sde import get_sde

SR, HOP, FRAMES, DIM = 1000, 8, 32, 4
LENGTH = FRAMES * HOP  # 256 samples of audio, z [32, 4]
WORKING = ["dps", "pigdm"]  # the methods that need only A(decode(z)) and its derivatives


@dataclasses.dataclass(frozen=True, eq=False)
class LinearCodec(AbstractCodec):
    """z [B, T, D] -> audio [B, T hop, 1]: each latent frame times a fixed random `matrix` [D, hop]."""

    matrix: np.ndarray

    is_identity: ClassVar[bool] = False
    decode_is_differentiable: ClassVar[bool] = True

    def encode(self, audio):
        frames = -(-audio.shape[1] // HOP)
        audio = jnp.pad(audio, ((0, 0), (0, frames * HOP - audio.shape[1]), (0, 0)))
        return audio.reshape(audio.shape[0], frames, HOP) @ jnp.asarray(np.linalg.pinv(self.matrix))

    def decode(self, z, length=None):
        audio = (z @ jnp.asarray(self.matrix, z.dtype)).reshape(z.shape[0], -1, 1)
        return audio if length is None else audio[:, :length]


def gaussian_denoiser(z, sigma):
    """The exact denoiser of z ~ N(0, I): E[z0 | z] = z / (1 + sigma^2)."""
    return z / (1.0 + sigma**2)


def _latent_model(codec, length=LENGTH):
    """A model object in `codec`'s space (no network: the tests pass their own denoiser)."""
    return DiffusionModel(process=get_sde("ve", sigma_min=0.002, sigma_max=20.0),
                          precond=get_precond("edm", sigma_data=1.0), network=None, codec=codec, conditioners={},
                          spec=DataSpec(shape=(length, 1), sample_rate=SR))


@pytest.fixture(scope="module")
def linear_model():
    matrix = 0.1 * np.random.default_rng(0).standard_normal((DIM, HOP)).astype(np.float32)
    return _latent_model(LinearCodec(matrix))


def _measurement(model, op, seed=3, batch=4):
    """y = A(decode(z_true)) for latents drawn from the prior (a consistent solution exists)."""
    z_true = jax.random.normal(jax.random.PRNGKey(seed), (batch,) + tuple(model.latent_shape))
    return op.measure(model.codec.decode(z_true, LENGTH), jax.random.PRNGKey(seed + 1))


def _residual(op, y, audio):
    r = op.support(y - op.apply(audio))
    return np.asarray(jnp.sqrt(jnp.sum(r**2, axis=(1, 2))))


def _restore(model, denoiser, op, y, method, **options):
    return restore_audio(model, denoiser, op, y, method=method, sampler="euler", nfe=16, **options)


# --------------------------------------------------------------------------------------
# The operator seen through the decoder
# --------------------------------------------------------------------------------------


def test_in_model_space_keeps_waveform_operators_and_wraps_the_rest(linear_model):
    gap = get_operator("gap", sample_rate=SR, gap_seconds=0.064)
    assert in_model_space(gap, get_codec("waveform"), LENGTH) is gap
    decoded = in_model_space(gap, linear_model.codec, LENGTH)
    assert isinstance(decoded, DecodedOperator) and "model_space" not in decoded.capabilities()
    assert "model_space" in gap.capabilities()
    z = jax.random.normal(jax.random.PRNGKey(0), (2,) + tuple(linear_model.latent_shape))
    np.testing.assert_allclose(decoded.apply(z), gap.apply(linear_model.codec.decode(z, LENGTH)))
    assert decoded.longest_gap(LENGTH) == gap.longest_gap(LENGTH) == 64
    with pytest.raises(ValueError, match="no projection.*applicable_methods"):
        decoded.project(z, gap.apply(linear_model.codec.decode(z, LENGTH)))


def test_only_dps_and_noise_free_pigdm_apply_through_a_decoder(linear_model):
    """Applicability is read off each method's registered requirements: every method that needs a
    projection, pseudo-inverse, SVD or replacement in the model's space declares 'model_space'."""
    clean = in_model_space(get_operator("gap", sample_rate=SR, gap_seconds=0.064), linear_model.codec, LENGTH)
    noisy = in_model_space(get_operator("identity", noise_sigma=0.1), linear_model.codec, LENGTH)
    assert applicable_methods(clean) == WORKING
    assert applicable_methods(noisy) == ["dps"]  # noisy PiGDM needs the SVD
    for method in METHODS.names():
        if method not in WORKING:
            assert "model_space" in METHODS.meta(method)["requires"], method
            assert "model_space" in unmet_requirements(method, clean), method
    assert unmet_requirements("dps", clean, {"consistency": True}) == ["model_space"]
    lowpass = in_model_space(get_operator("butterworth", cutoff=100.0, sample_rate=SR), linear_model.codec, LENGTH)
    assert "model_space" in unmet_requirements("blind_bwe", lowpass)


# --------------------------------------------------------------------------------------
# (a) Guidance through the decoder reduces the measurement residual
# --------------------------------------------------------------------------------------


def test_latent_dps_and_pigdm_fit_the_measurement(linear_model):
    """From the same seeds (16 Euler NFE), unguided sampling (DPS with zeta = 0) leaves
    ||y - A(decode(z))|| at 3.0-3.2 per example; DPS (zeta = 1) and PiGDM through the decoder
    reduce it by a factor > 20 (measured: DPS 0.012-0.022, PiGDM 0.053-0.068)."""
    op = get_operator("gap", sample_rate=SR, gap_seconds=0.064)
    y = _measurement(linear_model, op)
    free, info = _restore(linear_model, gaussian_denoiser, op, y, "dps", zeta=0.0)
    assert info["mode"] == "decoded" and free.shape == y.shape and np.all(np.isfinite(free))
    dps, _ = _restore(linear_model, gaussian_denoiser, op, y, "dps", zeta=1.0)
    pigdm, _ = _restore(linear_model, gaussian_denoiser, op, y, "pigdm", data_std=1.0)
    unguided = _residual(op, y, free)
    assert np.all(unguided > 2.0), unguided
    assert np.all(_residual(op, y, dps) < unguided / 20), (_residual(op, y, dps), unguided)
    assert np.all(_residual(op, y, pigdm) < unguided / 20), (_residual(op, y, pigdm), unguided)


def test_latent_dps_through_the_tiny_autoencoder():
    """The same with the project's tiny AudioAutoencoder (random weights) as a LatentCodec: the
    residual of DPS (zeta = 1) is below half the unguided one (measured: 0.32-0.37 against 1.31-1.51,
    0.21-0.28x; PiGDM 0.36-0.43)."""
    network = AUTOENCODERS.build({"name": "oobleck", "size": "tiny"}, io_channels=1)
    autoencoder = AutoencoderModel(network=network, spec=DataSpec(shape=(LENGTH, 1), sample_rate=SR))
    codec = LatentCodec(autoencoder=autoencoder, autoencoder_params=autoencoder.init(jax.random.PRNGKey(0)),
                        sample_rate=SR)
    model = _latent_model(codec)
    assert tuple(model.latent_shape) == (FRAMES, DIM)
    op = get_operator("gap", sample_rate=SR, gap_seconds=0.064)
    y = _measurement(model, op, batch=2)
    free, info = _restore(model, gaussian_denoiser, op, y, "dps", zeta=0.0)
    guided, _ = _restore(model, gaussian_denoiser, op, y, "dps", zeta=1.0)
    assert info["mode"] == "decoded" and guided.shape == y.shape and np.all(np.isfinite(guided))
    assert np.all(_residual(op, y, guided) < 0.5 * _residual(op, y, free))


# --------------------------------------------------------------------------------------
# (b) Methods that need the model's space are refused, naming those that work
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["projection", "ddnm", "replacement", "repaint", "sdedit", "ddrm"])
def test_projection_methods_are_refused_naming_dps_and_pigdm(linear_model, method):
    op = get_operator("gap", sample_rate=SR, gap_seconds=0.064)
    y = jnp.zeros((1, LENGTH, 1))
    with pytest.raises(ValueError, match=rf"{method!r} needs.*model_space.*methods that work with it: dps, pigdm$"):
        _restore(linear_model, gaussian_denoiser, op, y, method)


def test_noisy_pigdm_through_a_decoder_is_refused_naming_dps(linear_model):
    op = in_model_space(get_operator("identity", noise_sigma=0.1), linear_model.codec, LENGTH)
    x_init = jnp.zeros((1,) + tuple(linear_model.latent_shape))
    with pytest.raises(ValueError, match="SVD of the operator in the model's space.*methods that work with it: dps$"):
        get_method("pigdm")(gaussian_denoiser, op, jnp.zeros((1, LENGTH, 1)), x_init, jnp.asarray([1.0, 0.0]),
                            key=jax.random.PRNGKey(0))


def test_the_restore_job_refuses_before_writing_anything(linear_model, tmp_path):
    """A latent model is accepted by the job (its codec decodes differentiably); DDNM is refused
    before any output is written, with the methods that work."""
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    t = np.arange(LENGTH) / SR
    sf.write(str(src), (0.3 * np.sin(2 * np.pi * 50 * t)).astype(np.float32), SR)
    config = restore_config.get_config()
    config.task.name, config.method.name, config.sampler, config.nfe = "inpaint", "ddnm", "euler", 2
    config.task.inpaint.gap_seconds = 0.05
    loaded = workdir_lib.Loaded(model=linear_model, params=None, step=0,
                                config=ml_collections.ConfigDict({"codec": {"name": "latent"}}))
    with pytest.raises(ValueError, match="'ddnm' needs.*model_space.*methods that work with it: dps, pigdm$"):
        restore_job.restore_file_with(loaded, config, input=str(src), out=str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


# --------------------------------------------------------------------------------------
# (c) PiGDM's adjoint form is its projection form where A has orthonormal rows
# --------------------------------------------------------------------------------------


def _nonlinear_denoiser(x, sigma):
    """A denoiser with a non-diagonal, state-dependent Jacobian."""
    return jnp.tanh(x) / (1.0 + sigma**2) + 0.3 * jnp.roll(x, 1, axis=1)


@pytest.mark.parametrize("name", ["gap", "brickwall"])
def test_pigdm_adjoint_form_equals_the_projection_form_on_the_identity_codec(name):
    """Through the identity codec's decode, a mask (and a brickwall, an orthogonal projection) has
    A^+ = A^T: the least-squares step along the adjoint is `project(x0, y) - x0`, so PiGDM is the
    same with and without the operator's own projection."""
    params = {"gap": dict(gap_seconds=0.064), "brickwall": dict(cutoff=200.0)}[name]
    op = get_operator(name, sample_rate=SR, **params)
    decoded = DecodedOperator(inner=op, codec=get_codec("waveform"), length=LENGTH)
    assert op.acts_in_model_space and not decoded.acts_in_model_space
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    y = op.apply(0.3 * jax.random.normal(keys[0], (3, LENGTH, 1)))
    x = jax.random.normal(keys[1], (3, LENGTH, 1))

    @jax.jit
    def both_forms(x, sigma):
        """(projection form, adjoint form) of the direction and of PiGDM with and without the bound."""
        pairs = [(op.project(x, y) - x, noise_free_direction(decoded, x, y))]
        for bound in (True, False):
            pairs.append(tuple(pigdm_denoiser(_nonlinear_denoiser, o, y, x.shape, data_std=0.3,
                                              gaussian_bound=bound)(x, sigma) for o in (op, decoded)))
        return pairs

    for sigma in (0.05, 0.5, 5.0):
        pairs = both_forms(x, sigma)
        assert float(jnp.max(jnp.abs(pairs[0][0]))) > 0.1
        for expected, adjoint in pairs:
            np.testing.assert_allclose(adjoint, expected, rtol=1e-5, atol=2e-6)


# --------------------------------------------------------------------------------------
# (d) A codec whose decode is not differentiable; the likelihood of a latent model
# --------------------------------------------------------------------------------------


def test_a_codec_without_a_differentiable_decode_is_refused():
    mel = get_codec("mel")
    op = get_operator("gap", sample_rate=16000, gap_seconds=0.05)
    with pytest.raises(ValueError, match="LogMel codec's decode is not differentiable.*codecs that work: .*waveform"):
        in_model_space(op, mel, 16000)
    model = _latent_model(mel, length=16000)
    config = ml_collections.ConfigDict({"codec": {"name": "mel"}})
    with pytest.raises(ValueError, match="restoration needs a waveform model, or one whose codec decodes "
                                         r"differentiably to audio \(codecs: .*latent.*waveform\).*'mel' codec and "
                                         "its decode is not differentiable.*configs/waveform.py"):
        restore_job.require_restorable_model(config, model)


def test_the_likelihood_of_a_latent_model_is_refused_with_its_unit(linear_model):
    config = ml_collections.ConfigDict({"codec": {"name": "latent"}})
    with pytest.raises(ValueError, match=r"exact likelihood of the audio needs a waveform model.*'latent' codec's "
                                         r"space: one example is z of shape \(32, 4\).*nats per latent dimension"):
        likelihood_job.require_data_model(config, linear_model)

"""Operators: exact adjoints, pseudo-inverses and SVDs; filter cutoffs; clipping SDR; RIR decay."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.restoration import OPERATORS, get_method, get_operator
from diffjax.restoration.clipping import signal_to_distortion_db
from diffjax.restoration.filters import synthetic_rir
from diffjax.restoration.operators import svd_operator_names
from diffjax.restoration.tasks import TASKS, register_task, task_operator

pytestmark = pytest.mark.usefixtures("x64")
SR = 8000


def _audio_ops():
    return {
        "gap": get_operator("gap", sample_rate=SR, gap_seconds=0.004),
        "gaps": get_operator("gaps", sample_rate=SR, gap_seconds=0.002, num_gaps=3),
        "packet_loss": get_operator("packet_loss", sample_rate=SR, gap_seconds=0.001, period_seconds=0.005),
        "identity": get_operator("identity"),
        "butterworth": get_operator("butterworth", cutoff=1000, sample_rate=SR),
        "chebyshev": get_operator("chebyshev", cutoff=1000, sample_rate=SR),
        "fir": get_operator("fir", cutoff=1000, sample_rate=SR, numtaps=63),
        "brickwall": get_operator("brickwall", cutoff=1000, sample_rate=SR),
        "reverb": get_operator("reverb", sample_rate=SR, rt60=0.02, drr_db=3.0),
        "decimate": get_operator("decimate", factor=4),
        "stft_brickwall": get_operator("stft_brickwall", cutoff=1000, sample_rate=SR, n_fft=64, hop=16),
    }


def _toy_ops():
    return {"mask": get_operator("mask", observed=[0, 2], dim=5),
            "linear": get_operator("linear", matrix=np.random.default_rng(0).normal(size=(3, 5)))}


def _pairs():
    audio = [(name, op, (2, 256, 2)) for name, op in _audio_ops().items()]
    return audio + [(name, op, (4, 5)) for name, op in _toy_ops().items()]


PAIRS = _pairs()
IDS = [p[0] for p in PAIRS]


def test_every_linear_operator_is_tested():
    linear = {n for n in OPERATORS.names() if n not in ("hard_clip", "soft_clip")}
    assert linear == set(IDS)


@pytest.mark.parametrize("name,op,shape", PAIRS, ids=IDS)
def test_adjoint(name, op, shape):
    kx, ky = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(kx, shape)
    y = jax.random.normal(ky, op.apply(x).shape)
    assert jnp.vdot(op.apply(x), y) == pytest.approx(float(jnp.vdot(x, op.adjoint(y))), rel=1e-9, abs=1e-9)


EXACT_PINV = {"gap", "gaps", "packet_loss", "identity", "brickwall", "decimate", "mask", "linear",
              "butterworth", "chebyshev", "fir", "reverb"}


@pytest.mark.parametrize("name,op,shape", PAIRS, ids=IDS)
def test_pseudo_inverse(name, op, shape):
    """Penrose conditions A A+ A = A and A+ A A+ = A+ (filters: up to the singular values below
    rcond, which are dropped); the STFT brick-wall's A+ ~ A is approximate by design."""
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    ax = op.apply(x)
    tol = 1e-9 if name in ("gap", "gaps", "packet_loss", "identity", "brickwall", "decimate", "mask") \
        else 1e-6 if name == "linear" else 2e-3 if name != "stft_brickwall" else 0.2
    err = jnp.linalg.norm(op.apply(op.pinv(ax)) - ax) / jnp.linalg.norm(ax)
    assert err < tol
    if name in EXACT_PINV:
        p = op.pinv(ax)
        assert jnp.linalg.norm(op.pinv(op.apply(p)) - p) / jnp.linalg.norm(p) < max(tol, 1e-9)
        # project() lands on the measurement
        assert jnp.max(jnp.abs(op.apply(op.project(jnp.zeros(shape), ax)) - ax)) < 10 * tol * jnp.max(jnp.abs(ax)) + 1e-12


@pytest.mark.parametrize("name,op,shape", [p for p in PAIRS if p[1].has_svd], ids=[p[0] for p in PAIRS if p[1].has_svd])
def test_svd(name, op, shape):
    x = jax.random.normal(jax.random.PRNGKey(2), shape)
    svd = op.svd(shape)
    assert jnp.allclose(svd.v(svd.vt(x)), x, atol=1e-5)  # float32 parameters (RIR, matrix)
    assert jnp.allclose(svd.u(svd.s * svd.vt(x)), op.apply(x), atol=1e-5)  # float32 parameters (RIR, matrix)
    assert jnp.all(svd.s >= 0)


def _gain_db(op, freq, length=SR * 2):
    t = np.arange(length) / SR
    x = jnp.asarray(np.sin(2 * np.pi * freq * t))[None, :, None]
    return 20 * np.log10(float(jnp.std(op.apply(x)[0, length // 4:-length // 4]) / jnp.std(x[0, length // 4:-length // 4])) + 1e-300)


@pytest.mark.parametrize("kind,at_cutoff", [("butterworth", -3.01), ("chebyshev", -1.0), ("fir", -6.02)])
def test_lowpass_cutoff(kind, at_cutoff):
    """The applied gain at the cutoff is the design's (-3 dB Butterworth, -ripple Chebyshev I,
    -6 dB windowed sinc); the passband is flat to within the ripple and 1.5 x cutoff is > 25 dB down."""
    op = get_operator(kind, cutoff=1000.0, sample_rate=SR)
    assert _gain_db(op, 1000.0) == pytest.approx(at_cutoff, abs=0.1)
    assert abs(_gain_db(op, 300.0)) < 1.01
    assert _gain_db(op, 1500.0) < -25


def test_brickwall_cutoffs():
    fft_op = get_operator("brickwall", cutoff=1000.0, sample_rate=SR)
    assert _gain_db(fft_op, 999.5) == pytest.approx(0.0, abs=1e-6) and _gain_db(fft_op, 1000.0) < -200
    stft_op = get_operator("stft_brickwall", cutoff=1000.0, sample_rate=SR, n_fft=256, hop=64)
    assert abs(_gain_db(stft_op, 500.0)) < 0.1 and _gain_db(stft_op, 1500.0) < -40


@pytest.mark.parametrize("name", ["butterworth", "chebyshev", "fir", "brickwall", "stft_brickwall"])
def test_cutoff_at_or_above_nyquist_is_a_clear_error(name):
    with pytest.raises(ValueError, match="Nyquist"):
        get_operator(name, cutoff=4000.0, sample_rate=SR)


def test_decimate_pinv_is_band_limited_upsampling():
    t = np.arange(512) / SR
    x = jnp.asarray(np.sin(2 * np.pi * 250 * t) + 0.5 * np.cos(2 * np.pi * 625 * t))[None, :, None]
    op = get_operator("decimate", factor=4)
    y = op.apply(x)
    assert y.shape == (1, 128, 1)
    assert jnp.allclose(y[0, :, 0], x[0, ::4, 0], atol=1e-9)  # in-band: decimation is subsampling
    assert jnp.allclose(op.pinv(y), x, atol=1e-9)


@pytest.mark.parametrize("name", ["hard_clip", "soft_clip"])
@pytest.mark.parametrize("sdr", [3.0, 10.0])
def test_clipping_sdr_matches_target(name, sdr):
    x = jax.random.normal(jax.random.PRNGKey(3), (3, 4000, 1)) * jnp.asarray([0.1, 0.3, 1.0])[:, None, None]
    op = get_operator(name, sdr_db=sdr, reference=x)
    assert op.threshold.shape == (3,)
    np.testing.assert_allclose(signal_to_distortion_db(x, op.apply(x)), sdr, atol=1e-3)
    y = op.apply(x)
    assert jnp.max(jnp.abs(op.apply(op.project(jnp.zeros_like(x), y)) - y)) < 1e-5  # consistent
    if name == "hard_clip":
        assert jnp.allclose(op.project(x, y), x)  # x itself is consistent: the projection keeps it


def test_clipping_needs_one_parameter():
    with pytest.raises(ValueError, match="exactly one"):
        get_operator("hard_clip")
    with pytest.raises(ValueError, match="reference"):
        get_operator("hard_clip", sdr_db=3.0)


def test_synthetic_rir_has_the_stated_rt60_and_drr():
    """Schroeder backward integration; the -5..-25 dB decay extrapolated to 60 dB (T20 method)."""
    sr, rt60, drr = 16000, 0.5, 3.0
    h = synthetic_rir(sr, rt60, drr, 0).astype(np.float64)
    tail = h.copy()
    tail[0] = 0.0
    assert 10 * np.log10(1.0 / np.sum(tail**2)) == pytest.approx(drr, abs=1e-6)
    edc = 10 * np.log10(np.cumsum(tail[::-1] ** 2)[::-1] / np.sum(tail**2))
    i5, i25 = np.argmax(edc < -5), np.argmax(edc < -25)
    assert 3 * (i25 - i5) / sr == pytest.approx(rt60, rel=0.1)
    assert np.array_equal(h, synthetic_rir(sr, rt60, drr, 0))  # deterministic


def test_gap_layouts():
    op = get_operator("gaps", sample_rate=1000, gap_seconds=0.01, num_gaps=4)
    m = op.mask_for((1, 1000, 1))[:, 0]
    assert m.sum() == 1000 - 40
    assert get_operator("gap", sample_rate=1000, gap_seconds=0.2).total_gap_seconds(1000) == pytest.approx(0.2)
    assert get_operator("packet_loss", sample_rate=1000).total_gap_seconds(1000) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="period_seconds"):
        get_operator("packet_loss", sample_rate=1000, gap_seconds=0.1, period_seconds=0.05)


def test_unknown_names_and_svd_errors_list_the_valid_ones():
    with pytest.raises(KeyError, match="valid names: .*butterworth"):
        get_operator("butterwort")
    op = get_operator("hard_clip", threshold=0.5)
    x = jnp.zeros((1, 16, 1))
    with pytest.raises(ValueError, match="known SVD.*decimate.*mask"):
        get_method("ddrm")(lambda x, s: x, op, x, x + 1.0, jnp.asarray([1.0, 0.0]), key=jax.random.PRNGKey(0))


def test_task_snr_adds_measurement_noise_to_any_task():
    x = 0.2 * jax.random.normal(jax.random.PRNGKey(0), (2, 1000, 1))
    rms = float(jnp.sqrt(jnp.mean(x**2)))
    op = task_operator("dereverb", 1000, reference=np.asarray(x), rt60=0.3, snr=20.0)
    assert op.noise_sigma == pytest.approx(rms / 10, rel=1e-5)
    assert task_operator("dereverb", 1000, reference=np.asarray(x), rt60=0.3).noise_sigma == 0.0
    assert task_operator("denoise", 1000, reference=np.asarray(x), snr=10.0).noise_sigma == pytest.approx(
        rms / 10 ** 0.5, rel=1e-5)


def test_reverb_reads_a_rir_file_at_any_rate_with_the_direct_path_first(tmp_path):
    """A measured RIR (8 kHz, 10 ms of silence before the direct path) for a 16 kHz model: resampled,
    cut at its peak and scaled to a unit direct path; apply equals circular convolution with it."""
    import soundfile as sf

    sr_file, rng = 8000, np.random.default_rng(0)
    rir = np.concatenate([np.zeros(80), [0.5], 0.1 * rng.normal(size=800) * np.exp(-np.arange(800) / 200)])
    path = str(tmp_path / "rir.wav")
    sf.write(path, rir.astype(np.float32), sr_file)
    op = get_operator("reverb", sample_rate=16000, rir_path=path)
    assert float(op.rir[0]) == pytest.approx(1.0) and abs(op.rir.shape[0] - 2 * 801) <= 4
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 4000, 1))
    h = np.pad(np.asarray(op.rir), (0, 4000 - op.rir.shape[0]))
    expected = np.real(np.fft.ifft(np.fft.fft(np.asarray(x[0, :, 0])) * np.fft.fft(h)))
    np.testing.assert_allclose(op.apply(x)[0, :, 0], expected, atol=1e-4)


def test_what_an_operator_offers_is_read_off_its_class_before_it_is_built():
    """`svd_operator_names` and the methods' requirements read one place: the operator's class
    (registered as `builds`), which every built operator is an instance of."""
    for name, op in {**_audio_ops(), **_toy_ops()}.items():
        assert type(op) is OPERATORS.meta(name)["builds"], name
        assert (name in svd_operator_names()) == op.has_svd == ("svd" in op.capabilities()), name
    assert "stft_brickwall" not in svd_operator_names() and "decimate" in svd_operator_names()
    assert get_operator("gap", sample_rate=1000, gap_seconds=0.05).longest_gap(700) == 50
    assert get_operator("butterworth", cutoff=100.0, sample_rate=1000).longest_gap(700) == 0


def test_a_task_is_one_registration_and_its_keys_are_checked():
    @register_task("quiet_gap_test", operator="gap")
    def quiet_gap(*, sample_rate, noise_sigma=0.0, reference=None, degraded=None, gap_seconds: float = 0.1):
        return get_operator("gap", sample_rate=sample_rate, gap_seconds=gap_seconds, noise_sigma=noise_sigma)

    try:
        x = 0.2 * jax.random.normal(jax.random.PRNGKey(0), (2, 1000, 1))
        op = task_operator("quiet_gap_test", 1000, reference=np.asarray(x), snr=20.0, gap_seconds=0.02)
        assert op.longest_gap(1000) == 20 and op.noise_sigma == pytest.approx(float(jnp.sqrt(jnp.mean(x**2))) / 10)
        with pytest.raises(TypeError, match=r"does not take \['gap_second'\].*gap_seconds"):
            task_operator("quiet_gap_test", 1000, gap_second=0.02)
    finally:
        TASKS.unregister("quiet_gap_test")

"""Tests of EDM2's magnitude-preserving layers (`diffjax/models/magnitude.py`,
`magnitude_blocks.py`) and the `magnitude_preserving=True` DiT and UNet: unit magnitude of every
MP operation and of the networks' internal streams at initialisation, forced weight normalisation
(also after Adam steps), the DiT's mask contract, and overfitting one batch.

Compile time dominates on CPU: every function is compiled once with XLA's backend optimisation
level 0 (as in test_dit.py), and the networks' functions are shared through module fixtures.
"""
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffjax.models import dit as dit_lib
from diffjax.models import magnitude as mp
from diffjax.models import magnitude_blocks as mpb
from diffjax.models import unet as unet_lib

INIT_KEY = jax.random.key(0, impl="rbg")
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
B, T, C = 2, 16, 5        # the DiT's inputs (tiny: patch_size 2, so 8 patches + 2 prepended)
S, DC, G, K = 5, 6, 3, 4  # conditioning tokens, their width, the global vector's width, classes
DIT = dict(size="tiny", magnitude_preserving=True, cross_attention_dim=DC, global_dim=G,
           num_global_tokens=2, num_classes=K)
EPS = 1e-4                # normalize's eps


def normal(seed, shape):
    """float32 Gaussian data from numpy (eager jax.random would compile a kernel per call)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def unboxed_params(variables):
    """numpy parameters without their logical-axis annotations."""
    return jax.tree.map(np.asarray, nn.meta.unbox(variables)["params"])


def rms_and_tolerance(y, units_axis=0):
    """`(RMS of y, its 5-sigma tolerance)` where the slices of y along `units_axis` are iid.

    With r_u the mean square of unit u (iid, any correlation inside a unit), the mean square
    m = mean(r_u) has standard deviation std(r) / sqrt(U) (central limit theorem), and
    RMS = sqrt(m) has sqrt(m)'s delta-method deviation std(r) / (2 sqrt(U)) at m = 1. For iid
    elements, n per unit, of kurtosis kappa this is the familiar sqrt((kappa - 1) / (4 n U)).
    """
    y = np.moveaxis(np.asarray(y, np.float64), units_axis, 0)
    r = np.mean(np.square(y.reshape(y.shape[0], -1)), axis=1)
    return math.sqrt(np.mean(r)), 5 * np.std(r) / (2 * math.sqrt(len(r)))


def max_abs_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


# ---------------------------------------------------------------------------------------------
# 1. Every MP operation has unit expected magnitude
# ---------------------------------------------------------------------------------------------

def test_normalize_gives_unit_rms_slices_and_zero_stays_zero():
    w = 3.0 * normal(0, (3, 5, 7))
    n = mp.normalize(w)  # default: all but the last axis (one output channel of a flax kernel)
    rms = np.sqrt(np.mean(np.square(n), axis=(0, 1)))
    np.testing.assert_allclose(rms, 1.0, atol=2 * EPS)  # r / (eps + r) with r ~ 3: 1 - eps / 3
    n = mp.pixel_norm(w)
    np.testing.assert_allclose(np.sqrt(np.mean(np.square(n), axis=-1)), 1.0, atol=2 * EPS)
    np.testing.assert_array_equal(mp.pixel_norm(np.zeros((2, 4), np.float32)), 0.0)


def test_every_mp_operation_keeps_unit_magnitude():
    """For x ~ N(0, I): RMS of each output within 5 sigma (`rms_and_tolerance`) of its expectation.

    Expectations: 1 for mp_sum and mp_cat (exact); `sqrt(E silu(x)^2) / 0.596 = 1.00079` for
    mp_silu (EDM2 rounds the constant; computed here by Gauss-Hermite quadrature); for MPDense
    and MPConv, given the weights, each output channel has variance `|w_hat_j|^2 =
    (r_j / (eps + r_j))^2`, r_j the weight's RMS, so 1 within eps (added to the tolerance). MPConv
    is measured away from the borders, where 'SAME' zero padding lowers the variance. MPFourier's
    randomness is its frequencies and phases: the channels are the iid units, each of mean
    square 1 (uniform phases) over the c_noise sample.
    """
    a, b = normal(1, (64, 4096)), normal(2, (64, 4096))
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    silu = nodes / (1 + np.exp(-nodes))
    silu_rms = math.sqrt(np.sum(weights * silu ** 2) / np.sum(weights)) / mp.SILU_RMS

    x_dense, x_conv = normal(3, (4096, 64)), normal(4, (64, 32, 16, 8))
    dense, conv = mp.MPDense(48), mp.MPConv(24, (3, 3))
    dense_p = dense.init(INIT_KEY, x_dense)
    conv_p = conv.init(INIT_KEY, x_conv)
    fourier = mp.MPFourier(2048)
    c_noise = (1.2 * normal(5, (512,)) - 1.2) / 4  # EDM's ln(sigma) / 4, ln(sigma) ~ N(-1.2, 1.2^2)

    @jit
    def outputs():
        return {"mp_silu": mp.mp_silu(a), "mp_sum": mp.mp_sum(a, b), "mp_sum_0.3": mp.mp_sum(a, b, 0.3),
                "mp_cat": mp.mp_cat(a[:, :512], b[:, :1536], t=0.3),
                "MPDense": dense.apply(dense_p, x_dense),
                "MPConv": conv.apply(conv_p, x_conv)[:, 1:-1, 1:-1],
                "MPFourier": fourier.apply({}, c_noise).T}

    expected = {"mp_silu": silu_rms, "MPDense": 1.0 - EPS, "MPConv": 1.0 - EPS}
    for name, y in outputs().items():
        rms, tol = rms_and_tolerance(y)
        allowance = EPS if name.startswith("MP") else 1e-6
        assert abs(rms - expected.get(name, 1.0)) < tol + allowance, (name, rms, tol)
        assert tol < 0.02, (name, tol)  # the samples are large enough to mean something
    # mp_cat: the following layer sees a and b in the ratio (1 - t) : t whatever their widths.
    cat = np.asarray(outputs()["mp_cat"])
    ratio = np.sqrt(np.mean(cat[:, :512] ** 2) * 512) / np.sqrt(np.mean(cat[:, 512:] ** 2) * 1536)
    assert abs(ratio - 0.7 / 0.3) < 0.05
    # The learned gain scales the output; a zero gain gives exactly zero.
    np.testing.assert_array_equal(dense.apply(dense_p, x_dense, 0.0), 0.0)


# ---------------------------------------------------------------------------------------------
# 2. The MP networks keep unit magnitude inside at initialisation
# ---------------------------------------------------------------------------------------------

def capture(net, params, *args, classes, **kwargs):
    """`(output, {name: output of every module of `classes`})` via flax's capture_intermediates."""
    y, state = net.apply({"params": params}, *args, **kwargs, mutable=["intermediates"],
                         capture_intermediates=lambda m, method: isinstance(m, classes)
                         and method == "__call__")
    return y, {"/".join(k.key for k in path if isinstance(k, jax.tree_util.DictKey)
                        and k.key != "__call__"): v
               for path, v in jax.tree_util.tree_leaves_with_path(state["intermediates"])}


@pytest.fixture(scope="module")
def dit_net():
    """The tiny MP DiT with every conditioning option: init, one jitted run, and inputs."""
    net = dit_lib.dit(**DIT)
    x = normal(0, (B, T, C))
    c_noise = np.array([-0.5, 0.7], np.float32)
    cond = {"tokens": normal(1, (B, S, DC)), "tokens_mask": np.ones((B, S), bool),
            "global": normal(2, (B, G)), "label": np.array([1, K], np.int32),
            "sequence_mask": np.ones((B, T), bool)}
    params0 = unboxed_params(jit(net.init)(INIT_KEY, x, c_noise, cond))
    compiled = jit(lambda p, x, c_noise, cond: capture(
            net, p, x, c_noise, cond, classes=(mpb.MPDiTBlock, mp.MPDense)))

    def run(*args):
        return jax.tree.map(np.asarray, compiled(*args))

    # Trained-looking parameters: non-zero gains, so the output and the modulation are not trivial.
    params = {**params0, "out_gain": np.float32(1.0)}
    for i in range(net.depth):
        params[f"block_{i}"] = {**params0[f"block_{i}"], "emb_gain": np.float32(0.5)}
    return dict(net=net, x=x, c_noise=c_noise, cond=cond, params0=params0, params=params, run=run)


def test_mp_dit_residual_stream_has_unit_magnitude_at_init(dit_net):
    """Each block output is `mp_sum(x, y, 0.3)` of the pixel-normed stream x (RMS 1) and
    uncorrelated branches of RMS r <= 1 (attention averages unit values, so r <= 1; the MLP branch
    has r ~ 1): RMS^2 = (0.49 + 0.09 r^2) / 0.58 >= 0.845 after attention, so each block output has
    RMS in [0.92, 1] after attention, and in [0.89, 1] after the MLP branch if that has RMS
    >= 0.7 (it is 1 in expectation). We allow [0.8, 1.2] (measured 0.86..0.94 over 6
    initialisations). The output itself is exactly 0 (EDM2's output gain starts at 0)."""
    y, found = dit_net["run"](dit_net["params0"], dit_net["x"], dit_net["c_noise"], dit_net["cond"])
    np.testing.assert_array_equal(y, 0.0)
    blocks = {name: v for name, v in found.items() if name.startswith("block_") and "/" not in name}
    assert sorted(blocks) == ["block_0", "block_1"]
    for name, h in blocks.items():
        rms = float(np.sqrt(np.mean(np.square(h))))
        assert 0.8 <= rms <= 1.2, (name, rms)
    # The blocks' MPDense layers whose inputs have unit magnitude (q, k, v of normalised tokens
    # or of the N(0, 1) conditioning tokens, the MLP's of mp_silu outputs) output RMS 1 in
    # expectation; at these widths (6 to 128 inputs, 20 tokens) we allow [0.6, 1.4] (measured
    # 0.72..1.05 over 6 initialisations). An attention output projection sees a softmax average
    # of unit values (RMS <= 1); the modulation is exactly 0 (its gain starts at 0).
    layers = {name: float(np.sqrt(np.mean(np.square(h)))) for name, h in found.items() if "/" in name}
    assert len(layers) == 2 * 11
    for name, rms in layers.items():
        leaf = name.rsplit("/", 1)[1]
        bounds = {"out": (0.05, 1.1), "modulation": (0.0, 0.0)}.get(leaf, (0.6, 1.4))
        assert bounds[0] <= rms <= bounds[1], (name, rms)
    y, _ = dit_net["run"](dit_net["params"], dit_net["x"], dit_net["c_noise"], dit_net["cond"])
    assert 0.3 < np.sqrt(np.mean(y ** 2)) < 3  # with a unit output gain: magnitude of order 1


def test_mp_dit_masks_padding_and_tokens(dit_net):
    """The cond contract of dit.py holds for the MP path: padded frames never reach valid outputs
    and give 0; masked token values never matter; no valid token = no tokens."""
    run, params, x, c_noise = dit_net["run"], dit_net["params"], dit_net["x"], dit_net["c_noise"]
    valid = np.arange(T)[None, :] < np.array([[11], [T]])
    cond = {**dit_net["cond"], "sequence_mask": valid}
    y, _ = run(params, x, c_noise, cond)
    junk = np.where(valid[..., None], x, 100.0 * normal(5, x.shape))
    y_junk, _ = run(params, junk, c_noise, cond)
    assert max_abs_diff(y_junk[valid], y[valid]) < 1e-5
    np.testing.assert_array_equal(y[~valid], 0.0)
    y_unmasked, _ = run(params, junk, c_noise, {**cond, "sequence_mask": np.ones((B, T), bool)})
    assert np.max(np.abs(y_unmasked[0, :10] - y[0, :10])) > 1e-2

    tokens_mask = np.ones((B, S), bool)
    tokens_mask[0, 3:] = False
    cond = {**dit_net["cond"], "tokens_mask": tokens_mask}
    y, _ = run(params, x, c_noise, cond)
    tokens = np.where(tokens_mask[..., None], cond["tokens"], 100.0 * normal(6, (B, S, DC)))
    y_junk, _ = run(params, x, c_noise, {**cond, "tokens": tokens})
    assert max_abs_diff(y_junk, y) < 1e-5
    tokens = cond["tokens"].copy()
    tokens[0, 0] += 1.0
    y_changed, _ = run(params, x, c_noise, {**cond, "tokens": tokens})
    assert np.max(np.abs(y_changed[0] - y[0])) > 1e-3
    # Every token masked: the cross-attention branch is skipped, so junk tokens change nothing.
    none = np.zeros((B, S), bool)
    y_none, _ = run(params, x, c_noise, {**cond, "tokens_mask": none})
    y_none_junk, _ = run(params, x, c_noise, {**cond, "tokens_mask": none, "tokens": 50 * cond["tokens"]})
    assert max_abs_diff(y_none, y_none_junk) < 1e-5
    # The label and the global vector matter.
    y_label, _ = run(params, x, c_noise, {**cond, "label": np.array([2, K], np.int32)})
    assert np.max(np.abs(y_label[0] - y[0])) > 1e-3 and max_abs_diff(y_label[1], y[1]) < 1e-6


def test_mp_unet_blocks_have_unit_magnitude_at_init():
    """The MP UNet (1-D, 'tiny' levels at 32 channels, attention at level 1 and in the middle) on
    x ~ N(0, I), with a length divisible by the total stride (no padding). Every block output is
    mp_sum(x, y, 0.3) of an RMS-1 main path (pixel-normed in the encoder; mp_cat of RMS-1 inputs
    or nearest upsampling in the decoder) and branches of RMS <= 1, uncorrelated in expectation:
    RMS in [0.92, 1] in expectation (as in the DiT test). The decoder has no pixel norm, so at 32
    to 64 channels each random projection's deviation from its expectation (relative std about
    sqrt(2 / channels) in the mean square) compounds along it: measured 0.74..1.14 over 4
    initialisations. We allow [0.7, 1.4] for every block and the input convolution (a factor of
    sqrt(2) either way of EDM2's unit magnitude); the output is exactly 0."""
    net = unet_lib.unet1d("tiny", channels=32, magnitude_preserving=True, num_classes=3,
                          attn_levels=(1,))
    x = normal(7, (4, 128, 1))
    c_noise = np.array([-1.0, 0.5, 0.0, 1.0], np.float32)
    cond = {"label": np.array([0, 3, 1, 2], np.int32)}
    params = unboxed_params(jit(net.init)(INIT_KEY, x, c_noise, cond))
    y, found = jax.tree.map(np.asarray, jit(lambda p: capture(
            net, p, x, c_noise, cond, classes=(mpb.MPResBlock, mp.MPConv)))(params))
    np.testing.assert_array_equal(y, 0.0)
    streams = {n: h for n, h in found.items() if "/" not in n and n != "conv_out"}
    assert len(streams) == 1 + 3 + 2 + 2 + 6 + 2  # conv_in, enc, pools, mid, dec, upsamples
    for name, h in streams.items():
        rms = float(np.sqrt(np.mean(np.square(h))))
        assert 0.7 <= rms <= 1.4, (name, rms)


def test_mp_unet2d_runs_and_outputs_zero_at_init():
    net = unet_lib.unet2d("tiny", magnitude_preserving=True)
    x = normal(8, (1, 6, 8, 2))  # padded to 8 x 8 inside
    c_noise = np.zeros((1,), np.float32)
    y = jit(lambda x: net.apply(net.init(INIT_KEY, x, c_noise), x, c_noise))(x)
    assert y.shape == x.shape
    np.testing.assert_array_equal(y, 0.0)


# ---------------------------------------------------------------------------------------------
# 3. Forced weight normalisation; training
# ---------------------------------------------------------------------------------------------

def mp_row_norms(params):
    """{path: row norms / sqrt(fan_in)} of every `mp_kernel` leaf."""
    return {jax.tree_util.keystr(p): np.linalg.norm(np.reshape(v, (-1, v.shape[-1])), axis=0)
            / math.sqrt(math.prod(v.shape[:-1]))
            for p, v in jax.tree_util.tree_leaves_with_path(params) if mp._leaf_name(p) == mp.MP_KERNEL}


def test_force_weight_norm_projects_only_mp_kernels_and_is_idempotent(dit_net):
    """With r a row's RMS (over fan_in), one projection maps r to r / (eps + r) (for a fresh
    N(0, 1) kernel, within eps / r of 1); a second one reaches the fixed point 1 - eps within
    eps^2 |r - 1| / r (below float32's resolution), and from then on the projection is the
    identity to float32 precision. Every other leaf is
    returned as it was; annotated (boxed) parameters are projected the same."""
    params = dit_net["params"]
    project = jit(mp.force_weight_norm)
    once = jax.tree.map(np.asarray, project(params))
    twice = jax.tree.map(np.asarray, project(once))
    thrice = jax.tree.map(np.asarray, project(twice))
    assert len(mp_row_norms(once)) == 2 * 11 + 6  # 11 per block (2 x 4 attention, MLP, modulation)
    before = mp_row_norms(params)
    for path, n in mp_row_norms(once).items():
        np.testing.assert_allclose(n, before[path] / (EPS + before[path]), rtol=1e-6, err_msg=path)
    for path, n in mp_row_norms(twice).items():
        np.testing.assert_allclose(n, 1.0 - EPS, rtol=1e-6, err_msg=path)
    for a, b in zip(jax.tree.leaves(twice), jax.tree.leaves(thrice)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=0)
    for (p, a), b in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(once)):
        if mp._leaf_name(p) != mp.MP_KERNEL:
            np.testing.assert_array_equal(b, a)
    boxed = nn.LogicallyPartitioned(params["patch_embed"]["mp_kernel"], ("x", "embed"))
    projected = mp.force_weight_norm({"patch_embed": {"mp_kernel": boxed}})["patch_embed"]["mp_kernel"]
    np.testing.assert_allclose(projected.value, once["patch_embed"]["mp_kernel"], rtol=1e-6)


def test_mp_dit_overfits_one_batch_with_norms_fixed(dit_net):
    """30 Adam steps (lr 1e-2, EDM2's reference rate for its MP networks), each followed by
    `force_weight_norm`, on one fixed batch with a fixed random target of unit variance. At init
    the output is 0, so the loss is mean(target^2) ~ 1; the 46k parameters can fit the 160
    targets, and we require a 4x decrease (measured: 1.02 -> 0.091, 11x). The kernels' row norms stay at
    sqrt(fan_in) (1 - eps) (within eps |r - 1|, r the RMS an update leaves): the training-step
    wiring."""
    net, x, c_noise, cond = dit_net["net"], dit_net["x"], dit_net["c_noise"], dit_net["cond"]
    target = normal(9, x.shape)
    tx = optax.adam(1e-2)

    def loss_fn(params):
        return jnp.mean(jnp.square(net.apply({"params": params}, x, c_noise, cond) - target))

    @jit
    def train(params):
        def step(carry, _):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = mp.force_weight_norm(optax.apply_updates(params, updates))
            return (params, opt_state), loss
        params = mp.force_weight_norm(params)
        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=30)
        return params, losses, loss_fn(params)

    params, losses, final = jax.tree.map(np.asarray, train(dit_net["params0"]))
    assert np.all(np.isfinite(losses))
    assert final < losses[0] / 4, (losses[0], final)
    for path, n in mp_row_norms(params).items():  # within eps |r - 1| <= 1e-5 of 1 - eps
        np.testing.assert_allclose(n, 1.0 - EPS, atol=1e-5, err_msg=path)
    assert float(params["out_gain"]) != 0.0  # the output gain learned (it is not projected)

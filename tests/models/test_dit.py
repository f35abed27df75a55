"""Tests of the DiT backbone (`diffjax/models/dit.py`): adaLN-Zero blocks are the identity at
initialisation, RoPE logits depend only on relative positions, padded frames and masked tokens
never reach valid outputs, preset parameter counts (closed forms against `jax.eval_shape`, and
Stable Audio Open's), overfitting one batch, bfloat16 compute, and building from a config.

Compile time dominates on CPU, so one tiny network with every option is compiled once (module
fixture) and reused; `init` runs with an 'rbg' key, whose generator compiles faster than
threefry's on CPU; and every function is compiled with XLA's backend optimisation level 0, which
halves the CPU compile time of these tiny programs (they run in milliseconds either way).
"""
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import default
from diffjax import model as model_lib
from diffjax.models import MODELS
from diffjax.models import dit as dit_lib
from diffjax.models import unbox

INIT_KEY = jax.random.key(0, impl="rbg")
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
B, T, C = 2, 16, 5      # tiny: patch_size 2, so 8 patches (+ 2 prepended tokens)
S, DC, G, K = 5, 6, 3, 4  # conditioning tokens, their width, the global vector's width, classes
FULL = dict(size="tiny", cross_attention_dim=DC, global_dim=G, num_global_tokens=2,
            num_classes=K, qk_norm=True)


def normal(seed, shape):
    """float32 Gaussian data from numpy (eager jax.random would compile a kernel per call)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def perturbed(params, seed=1, scale=0.3):
    """Every parameter plus Gaussian noise (numpy): the zero-initialised ones become random, so
    masks and gates are exercised by a network that is not the identity."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda v: (np.asarray(v) + scale * rng.standard_normal(v.shape)
                                   ).astype(np.float32), params)


def run_recording_blocks(net, params, x, c_noise, cond):
    """`(output, [(block input, block output)] for every DiTBlock)` (flax method interception)."""
    records = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, dit_lib.DiTBlock) and context.method_name == "__call__":
            records.append((args[0], out))
        return out

    with nn.intercept_methods(interceptor):
        y = net.apply({"params": params}, x, c_noise, cond)
    return y, records


@pytest.fixture(scope="module")
def full():
    """The tiny DiT with every option, its init and perturbed parameters, inputs, and one jitted
    `run(params, x, c_noise, cond) -> (y, block records)` (one compile per cond structure)."""
    net = dit_lib.dit(**FULL)
    x = normal(0, (B, T, C))
    c_noise = np.array([-0.5, 0.7], np.float32)
    cond = {"tokens": normal(1, (B, S, DC)), "tokens_mask": np.ones((B, S), bool),
            "global": normal(2, (B, G)), "label": np.array([1, K], np.int32),
            "sequence_mask": np.ones((B, T), bool)}
    params0 = jax.tree.map(np.asarray, unbox(jit(net.init)(INIT_KEY, x, c_noise, cond)["params"]))
    compiled = jit(lambda p, x, c_noise, cond: run_recording_blocks(net, p, x, c_noise, cond))

    def run(*args):  # numpy results, so the checks below compile nothing
        return jax.tree.map(np.asarray, compiled(*args))

    return dict(net=net, x=x, c_noise=c_noise, cond=cond, params0=params0,
                params=perturbed(params0), run=run)


# ---------------------------------------------------------------------------------------------
# 1. adaLN-Zero: identity blocks and zero output at initialisation
# ---------------------------------------------------------------------------------------------

def test_every_block_is_the_identity_at_init_and_the_output_is_zero(full):
    y, records = full["run"](full["params0"], full["x"], full["c_noise"], full["cond"])
    assert len(records) == full["net"].depth
    for h_in, h_out in records:  # exact: the gates are exactly 0 and the branches finite
        assert np.std(h_in) > 0.1
        np.testing.assert_array_equal(h_out, h_in)
    np.testing.assert_array_equal(y, 0.0)
    # The test can fail: with the zero-initialised parameters made random, no block is the identity.
    y, records = full["run"](full["params"], full["x"], full["c_noise"], full["cond"])
    for h_in, h_out in records:
        assert np.max(np.abs(h_out - h_in)) > 0.1
    assert np.std(y) > 0.1


def test_the_zero_initialised_parameters_are_exactly_the_gates_and_output_layers(full):
    zero = sorted(jax.tree_util.keystr(path) for path, v in
                  jax.tree_util.tree_leaves_with_path(full["params0"]) if not np.any(v))
    # Zero at init: the adaLN modulations, the cross-attention output projections, the final
    # projection, and (flax's default) every bias.
    assert all(any(s in p for s in ("modulation", "cross_attn']['out", "final_proj", "bias"))
               for p in zero), zero
    for i in range(full["net"].depth):
        assert f"['block_{i}']['modulation']['kernel']" in zero
        assert f"['block_{i}']['cross_attn']['out']['kernel']" in zero
    assert "['final_modulation']['kernel']" in zero and "['final_proj']['kernel']" in zero


# ---------------------------------------------------------------------------------------------
# 2. RoPE: relative positions only
# ---------------------------------------------------------------------------------------------

def test_rope_logits_depend_only_on_the_relative_position():
    n, heads, dh, shift = 16, 3, 8, 17
    q, k = normal(3, (1, n, heads, dh)), normal(4, (1, n, heads, dh))

    @jit
    def logits_and_partial(q, k):
        pos = jnp.arange(n)

        def logits(pos_q, pos_k, rope_dim=dh):
            rq = dit_lib.apply_rope(q, pos_q, rope_dim=rope_dim)
            rk = dit_lib.apply_rope(k, pos_k, rope_dim=rope_dim)
            return jnp.einsum("bnhd,bmhd->bhnm", rq, rk)

        full = {"base": logits(pos, pos), "common": logits(pos + shift, pos + shift),
                "keys_only": logits(pos, pos + 3), "partial": logits(pos, pos, 4),
                "partial_common": logits(pos + shift, pos + shift, 4)}
        rotated = {"partial": dit_lib.apply_rope(q, pos + 5, rope_dim=4),
                   "at_zero": dit_lib.apply_rope(q, jnp.zeros(n), rope_dim=dh)}
        return full, rotated

    logits, rotated = jax.tree.map(np.asarray, logits_and_partial(q, k))
    # Tolerance. In float32 (u = 2^-24) an angle m theta_i (theta_i <= 1, m <= m_max) is off by
    # at most 3 u m_max (theta_i's own rounding, the product's), cos and sin by a few u more; each
    # pair's contribution <R q_p, R k_p> moves by |q_p||k_p| times the error of the angle
    # difference, and the dot product itself rounds by ~dh u |q||k|. So
    # |logit(p) - logit(p + 17)| <= u (2 * 3 m_max + dh + 8) |q_n||k_m| with m_max = n - 1 + 17.
    u, m_max = 2.0 ** -24, n - 1 + shift
    norms = (np.linalg.norm(q, axis=-1).transpose(0, 2, 1)[..., :, None]
             * np.linalg.norm(k, axis=-1).transpose(0, 2, 1)[..., None, :])  # [1, H, n, n]
    tol = u * (6 * m_max + dh + 8) * norms
    error = np.abs(logits["common"] - logits["base"])
    assert np.all(error <= tol) and np.max(error / norms) < 2e-5
    assert np.max(np.abs(logits["partial_common"] - logits["partial"]) / norms) < 2e-5
    # A shift of the keys alone changes the logits by far more than the tolerance (every head).
    assert np.min(np.max(np.abs(logits["keys_only"] - logits["base"]) / norms, axis=(2, 3))) > 0.05
    # Rotations keep norms; position 0 is the identity; partial RoPE leaves the rest untouched.
    r = rotated["partial"]
    np.testing.assert_allclose(np.linalg.norm(r, axis=-1), np.linalg.norm(q, axis=-1), rtol=1e-5)
    np.testing.assert_array_equal(r[..., 4:], q[..., 4:])
    assert np.max(np.abs(r[..., :4] - q[..., :4])) > 0.1
    np.testing.assert_array_equal(rotated["at_zero"], q)
    assert dit_lib.dit("large").rope_dim == 32  # Stable Audio Open: 32 of 64 features per head


# ---------------------------------------------------------------------------------------------
# 3. Padding and token masks
# ---------------------------------------------------------------------------------------------

def test_valid_outputs_do_not_depend_on_padded_frames(full):
    run, params, x, c_noise = full["run"], full["params"], full["x"], full["c_noise"]
    valid = np.arange(T)[None, :] < np.array([[11], [T]])  # example 0: 11 frames, half of patch 5
    cond = {**full["cond"], "sequence_mask": valid}
    y, _ = run(params, x, c_noise, cond)
    junk = np.where(valid[..., None], x, 100.0 * normal(5, x.shape))
    y_junk, _ = run(params, junk, c_noise, cond)
    np.testing.assert_allclose(y_junk[valid], y[valid], atol=1e-6)
    np.testing.assert_array_equal(y[~valid], 0.0)
    # Padding itself changes nothing: the padded example equals the unpadded sequence (masked
    # keys get exactly zero weight, and RoPE sees the same relative positions).
    short = {k: v[:1] for k, v in full["cond"].items() if k != "sequence_mask"}
    y_short, _ = run(params, x[:1, :11], c_noise[:1], short)
    np.testing.assert_allclose(y[0, :11], y_short[0], atol=1e-5, rtol=1e-5)
    # The mask matters: without it the padded content changes the valid outputs.
    y_unmasked, _ = run(params, junk, c_noise, {**cond, "sequence_mask": np.ones((B, T), bool)})
    assert np.max(np.abs(y_unmasked[0, :10] - y[0, :10])) > 1e-2


def test_masked_tokens_do_not_change_the_output(full):
    run, params, x, c_noise = full["run"], full["params"], full["x"], full["c_noise"]
    tokens_mask = np.ones((B, S), bool)
    tokens_mask[0, 3:] = False
    cond = {**full["cond"], "tokens_mask": tokens_mask}
    y, _ = run(params, x, c_noise, cond)
    tokens = np.where(tokens_mask[..., None], cond["tokens"], 100.0 * normal(6, (B, S, DC)))
    y_junk, _ = run(params, x, c_noise, {**cond, "tokens": tokens})
    np.testing.assert_allclose(y_junk, y, atol=1e-6)
    tokens = cond["tokens"].copy()
    tokens[0, 0] += 1.0  # a valid token
    y_valid_changed, _ = run(params, x, c_noise, {**cond, "tokens": tokens})
    assert np.max(np.abs(y_valid_changed[0] - y[0])) > 1e-3
    # Every token masked is the null condition: the same as giving no tokens.
    y_all_masked, _ = run(params, x, c_noise, {**cond, "tokens_mask": np.zeros((B, S), bool)})
    no_tokens = {k: v for k, v in cond.items() if k not in ("tokens", "tokens_mask")}
    y_none, _ = run(params, x, c_noise, no_tokens)
    np.testing.assert_allclose(y_all_masked, y_none, atol=1e-6)
    assert np.max(np.abs(y_none - y)) > 1e-3


# ---------------------------------------------------------------------------------------------
# 4. Presets and parameter counts
# ---------------------------------------------------------------------------------------------

def dit_parameters(io, *, width, depth, num_heads, patch_size=1, mlp_ratio=4.0, mlp="gelu",
                   modulation="block", qk_norm=False, cross_attention_dim=0, global_dim=0,
                   num_global_tokens=0, num_classes=0, **_):
    """Our DiT's parameter count in closed form (flax Dense = kernel + bias)."""
    d, dh, f = width, width // num_heads, int(mlp_ratio * width)
    dense = lambda n_in, n_out: n_in * n_out + n_out  # noqa: E731
    n = dense(patch_size * io, d) + dense(128, d) + dense(d, d)  # patch embedding, noise embedding
    n += dense(global_dim, d) if global_dim else 0
    n += (num_classes + 1) * d if num_classes else 0
    n += dense(d, num_global_tokens * d) if num_global_tokens else 0
    n += dense(d, 6 * d) if modulation == "single" else 0  # adaLN-single's shared Dense
    block = 6 * d if modulation == "single" else dense(d, 6 * d)
    block += 4 * dense(d, d) + (2 * dh if qk_norm else 0)  # q, k, v, out
    if cross_attention_dim:
        block += 2 * d + 2 * dense(d, d) + 2 * dense(cross_attention_dim, d)  # LN, q, out, k, v
        block += 2 * dh if qk_norm else 0
    block += dense(d, 2 * f if mlp == "swiglu" else f) + dense(f, d)
    return n + depth * block + dense(d, 2 * d) + dense(d, patch_size * io)  # + final layer


def stable_audio_open_parameters(d=1536, depth=24, io=64, dc=768, g=1536, ff_mult=4, t_feat=256):
    """stable-audio-tools' DiffusionTransformer with Stable Audio Open 1.0's model_config.json
    (continuous_transformer, project_cond_tokens false, global_cond_type 'prepend', so no adaLN).

    Per block: self-attention to_qkv + to_out (no biases) 4 d^2; cross-attention to_q, to_out d^2
    each and to_kv dc -> 2 dc (context kept at dc = 768, 12 key/value heads); SwiGLU feed-forward
    d -> 2 * 4d and 4d -> d with biases; three bias-free LayerNorms. Outside: Fourier timestep
    features (t_feat / 2 weights) and their MLP t_feat -> d -> d with biases; 2-layer bias-free
    MLPs on the tokens (dc -> dc -> dc) and the global condition (g -> d -> d); 1x1 pre/post convs
    io -> io; project_in and project_out io <-> d.
    """
    f = ff_mult * d
    block = 4 * d * d + 2 * d * d + dc * 2 * dc + (d * 2 * f + 2 * f) + (f * d + d) + 3 * d
    other = (t_feat // 2 + t_feat * d + d + d * d + d + 2 * dc * dc + g * d + d * d
             + 2 * io * io + 2 * io * d)
    return depth * block + other


IO = {"tiny": 8, "small": 128, "base": 128, "large": 64}  # large: Stable Audio Open's 64 latents
COUNTS = {"tiny": 46_192, "small": 7_397_248, "base": 129_608_576, "large": 1_103_126_080}


@pytest.mark.parametrize("size", sorted(dit_lib.DIT_SIZES))
def test_preset_shapes_and_parameter_counts(size):
    fields = dit_lib.DIT_SIZES[size]
    net = dit_lib.dit(size)
    shapes = unbox(jax.eval_shape(net.init, INIT_KEY,
                                  jax.ShapeDtypeStruct((1, net.patch_size, IO[size]), jnp.float32),
                                  jax.ShapeDtypeStruct((1,), jnp.float32))["params"])
    n = sum(math.prod(v.shape) for v in jax.tree.leaves(shapes))
    assert n == dit_parameters(IO[size], **fields) == COUNTS[size]  # the module docstring's table
    if size == "tiny":  # the same count (one more trace; the large one takes seconds)
        assert dit_lib.parameter_count(size, IO[size]) == n
    heads, dh = net.num_heads, net.width // net.num_heads
    assert shapes["block_0"]["attn"]["query"]["kernel"].shape == (net.width, heads, dh)
    assert shapes["final_proj"]["kernel"].shape == (net.width, net.patch_size * IO[size])
    assert f"block_{net.depth - 1}" in shapes and f"block_{net.depth}" not in shapes
    if size == "small":
        assert 5e6 < n < 15e6
    if size == "base":  # DiT-B/2 (Peebles & Xie 2023): 130M parameters
        assert abs(n - 130e6) / 130e6 < 0.01
    if size == "large":
        assert shapes["block_0"]["cross_attn"]["key"]["kernel"].shape == (768, 24, 64)
        assert shapes["global_embedding"]["kernel"].shape == (1536, 1536)
        sao = stable_audio_open_parameters()
        assert sao == 1_056_828_544  # rounds to the published 1.06B
        # The difference is itemised in dit.py's docstring: +46.3M (+4.4%), of which adaLN is
        # 19.1M and the 768 -> 1536 key/value projections 28.4M; so 5% is the bound.
        assert abs(n - 1.06e9) / 1.06e9 < 0.05 and abs(n - sao) / sao < 0.05
        assert dit_parameters(64, **{**fields, "modulation": "block"}) == 1_428_699_712


def test_unknown_size_and_option_errors():
    with pytest.raises(ValueError, match="valid sizes: tiny, small, base, large"):
        dit_lib.dit("huge")
    x, c_noise = np.zeros((1, 4, 2), np.float32), np.zeros(1, np.float32)
    for kwargs, match in [({"mlp": "relu"}, "valid: gelu, swiglu"),
                          ({"modulation": "film"}, "valid: block, single"),
                          ({"num_heads": 3}, "not a multiple")]:
        with pytest.raises(ValueError, match=match):
            jax.eval_shape(dit_lib.dit("tiny", **kwargs).init, INIT_KEY, x, c_noise)


# ---------------------------------------------------------------------------------------------
# 5. Training: a tiny DiT overfits one batch
# ---------------------------------------------------------------------------------------------

def test_a_tiny_dit_overfits_one_batch():
    # The large preset's options (adaLN-single, SwiGLU, half-head RoPE) and remat, on a fixed
    # batch: predict x0 from x0 + 0.5 noise. At init the output is 0, so the first loss is
    # exactly mean(x0^2); 100 Adam steps must cut it 100-fold (measured: 2e5-fold).
    net = dit_lib.dit("tiny", modulation="single", mlp="swiglu", rope_fraction=0.5, remat=True)
    x0 = normal(7, (4, T, 4))
    x_in = x0 + 0.5 * normal(8, x0.shape)
    c_noise = np.full((4,), math.log(0.5) / 4, np.float32)
    tx = optax.adam(3e-3)

    def loss_fn(p):
        return jnp.mean((net.apply({"params": p}, x_in, c_noise) - x0) ** 2)

    @jit
    def train():
        params = unbox(net.init(INIT_KEY, x_in, c_noise)["params"])

        def step(carry, _):
            p, opt = carry
            loss, grads = jax.value_and_grad(loss_fn)(p)
            updates, opt = tx.update(grads, opt, p)
            return (optax.apply_updates(p, updates), opt), loss

        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=100)
        return losses, loss_fn(params)

    losses, final = jax.tree.map(np.asarray, train())
    np.testing.assert_allclose(losses[0], np.mean(x0 ** 2), rtol=1e-5)
    assert final < losses[0] / 100, (losses[::10], final)


# ---------------------------------------------------------------------------------------------
# 6. bfloat16 compute
# ---------------------------------------------------------------------------------------------

def test_bfloat16_compute_keeps_float32_params_and_output(full):
    params, x, c_noise, cond = full["params"], full["x"], full["c_noise"], full["cond"]
    net16 = dit_lib.dit(**FULL, dtype="bfloat16")
    shapes = unbox(jax.eval_shape(net16.init, INIT_KEY, x, c_noise, cond)["params"])
    assert all(v.dtype == np.float32 for v in jax.tree.leaves(shapes))
    assert jax.tree.structure(shapes) == jax.tree.structure(params)
    y16 = np.asarray(jit(lambda p: net16.apply({"params": p}, x, c_noise, cond))(params))
    y32, _ = full["run"](params, x, c_noise, cond)
    assert y16.dtype == np.float32 and y16.shape == x.shape
    # bfloat16 keeps 8 significand bits (unit roundoff 2^-9 = 0.002); the inputs, the 4 linear
    # layers and a residual add per branch each round once or twice, over 2 blocks with 3
    # branches: ~20 roundings of relative size 0.002 that add like a random walk, ~0.01 in RMS.
    # 0.03 leaves a factor 3.
    rel = np.linalg.norm(y16 - y32) / np.linalg.norm(y32)
    assert rel < 0.03, rel


# ---------------------------------------------------------------------------------------------
# 7. From a config
# ---------------------------------------------------------------------------------------------

def test_the_registry_builds_a_dit_and_rejects_unknown_keys():
    net = MODELS.build({"name": "dit", "size": "tiny", "dtype": "bfloat16", "num_classes": 3})
    assert isinstance(net, dit_lib.DiT) and net.width == 32 and net.num_classes == 3
    assert net.dtype == jnp.bfloat16
    with pytest.raises(TypeError, match="does not take"):
        MODELS.build({"name": "dit", "size": "tiny", "channels": 64})


@pytest.mark.parametrize("label", [False, True])
def test_a_config_builds_a_model_whose_denoiser_keeps_shapes(label):
    config = default.get_config("smoke")
    config.model = ml_collections.ConfigDict(dict(name="dit", size="tiny"))
    if label:
        config.conditioning.label = dict(dropout=0.1)
    spec = model_lib.DataSpec(shape=(2000, 1), sample_rate=16000, num_classes=9 if label else 0)
    model = model_lib.build_model(config, spec)
    assert isinstance(model.network, dit_lib.DiT)
    assert model.network.num_classes == (9 if label else 0)
    latent = model.latent_shape  # mel codec, frames layout: [T, n_mels]
    assert len(latent) == 2 and latent[1] == config.codec.mel.n_mels
    params = perturbed(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), model.abstract_params()))
    x = normal(9, (2,) + latent)
    cond = {"label": np.array([1, 9], np.int32)} if label else None  # 9: the null class
    out = np.asarray(jit(model.denoiser(params, cond))(x, np.float32(2.0)))
    assert out.shape == x.shape and np.all(np.isfinite(out))

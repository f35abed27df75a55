"""Classifier-free guidance over conditions (`guidance.classifier_free`,
`guidance.multi_condition_free`, `jobs.generation.guidance_reference` / `guided_denoiser`).

Closed form first (x64). The data is a mixture of 6 Gaussians indexed by two attributes
(a, b) in {0, 1} x {0, 1, 2}, uniform weights, shared isotropic std c, means on the sheared
lattice mu(a, b) = a u + b v + m0 with u = (3, 0), v = (1, 2): u.v != 0 couples a and b, so
p(a, b | x) != p(a | x) p(b | x) and composable guidance differs from joint guidance. Under VE
noise every conditional marginal is a mixture of N(mu_k, (c^2 + sigma^2) I) over the components
that match the condition (`diffjax.toy.GaussianMixture` with the other weights zero), and its exact
denoiser is Tweedie's D(x | cond) = x + sigma^2 grad log p_sigma(x | cond). The conditional
denoiser under test comes from `GaussianMixture.denoiser` (posterior means); the targets come
from `jax.grad` of `GaussianMixture.log_prob`: two independent routes to the same number.

Attribute values are those of `LabelConditioner`s: a in {0, 1} with null 2, b in {0, 1, 2}
with null 3.

Tolerance (x64): every quantity is O(10) (|x| <= ~10, |mu| <= 4.5, sigma^2 grad log p = D - x),
computed in O(100) float64 operations from exact inputs, then combined with |w| <= 3: the error is
below ~100 * 2.2e-16 * 10 * (1 + sum |w|) ~ 2e-12. We allow 1e-10 (relative to max(1, |target|)).
"""
import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax import guidance
from diffjax.conditioners import LabelConditioner
from diffjax.jobs.generation import guidance_reference, guided_denoiser
from diffjax.toy import GaussianMixture

NA, NB = 2, 3          # attribute sizes = their null values
COMP_A = np.repeat(np.arange(NA), NB)  # component k = NB a + b
COMP_B = np.tile(np.arange(NB), NA)
MEANS = (COMP_A[:, None] * np.array([3.0, 0.0]) + COMP_B[:, None] * np.array([1.0, 2.0])
         - np.array([2.5, 2.0]))
STD = 0.6
SIGMAS = (0.1, 1.0, 5.0)
TOL = 1e-10


def mixture(a, b) -> GaussianMixture:
    """p_0(x | a, b) with a == NA or b == NB meaning 'not conditioned on it'."""
    keep = (jnp.logical_or(a == NA, COMP_A == a) & jnp.logical_or(b == NB, COMP_B == b)).astype(jnp.float64)
    return GaussianMixture(weights=keep / jnp.sum(keep), means=jnp.asarray(MEANS),
                           stds=jnp.full(MEANS.shape, STD))


@jax.jit
def conditional_denoiser(x, sigma, cond):
    """Exact E[x0 | x, cond] `[B, 2]`; `cond = {"a": [B], "b": [B]}` (null: NA, NB). Jitted (one
    compile per batch size), as the oracle's op-by-op dispatch costs seconds."""
    sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])

    def one(x, s, a, b):
        return mixture(a, b).denoiser(x[None], s)[0]

    return jax.vmap(one)(x, sigma, jnp.asarray(cond["a"]), jnp.asarray(cond["b"]))


def log_p(x, s, a, b):
    """log p_sigma(x | a, b) of one example `x [2]` (a scalar)."""
    return mixture(a, b).log_prob(x[None], s)[0]


def tweedie(potential):
    """`x + sigma^2 grad_x potential(x, s, *args)`, vectorised over examples (`x [B, 2]`, the
    other arguments `[B]` or scalars), jitted."""

    def one(x, s, *args):
        return x + s**2 * jax.grad(potential)(x, s, *args)

    @jax.jit
    def batched(x, s, *args):
        args = [jnp.broadcast_to(jnp.asarray(a), x.shape[:1]) for a in args]
        return jax.vmap(one)(x, s, *args)

    return batched


@tweedie
def composable_target(x, s, a0, b0, wa, wb):
    """log p(x) + wa log p(a0 | x) + wb log p(b0 | x), with p(a | x) = p(x | a) p(a) / p(x)."""
    log_px = log_p(x, s, NA, NB)
    log_post_a = log_p(x, s, a0, NB) + math.log(1 / NA) - log_px
    log_post_b = log_p(x, s, NA, b0) + math.log(1 / NB) - log_px
    return log_px + wa * log_post_a + wb * log_post_b


@tweedie
def joint_target(x, s, a0, b0, w):
    """log p(x) + w log p(a0, b0 | x) (plain CFG on both attributes together)."""
    log_px = log_p(x, s, NA, NB)
    return log_px + w * (log_p(x, s, a0, b0) + math.log(1 / (NA * NB)) - log_px)


@tweedie
def negative_target(x, s, a0, a_neg, b_ref, w):
    """log p(x | a_neg, b_ref) + w (log p(x | a0, b_ref) - log p(x | a_neg, b_ref))."""
    reference = log_p(x, s, a_neg, b_ref)
    return reference + w * (log_p(x, s, a0, b_ref) - reference)


def assert_close(actual, target):
    actual, target = np.asarray(actual), np.asarray(target)
    assert np.all(np.isfinite(actual)) and np.all(np.isfinite(target))
    np.testing.assert_allclose(actual, target, rtol=0, atol=TOL * max(1.0, np.max(np.abs(target))))


@pytest.fixture
def toy(x64):
    """Random x and attributes; each sigma of SIGMAS on a third of the batch."""
    rng = np.random.default_rng(0)
    n = 12
    return types.SimpleNamespace(
            x=jnp.asarray(3.0 * rng.standard_normal((n, 2))),
            sigma=jnp.asarray(np.resize(np.array(SIGMAS), n)),
            a0=jnp.asarray(rng.integers(0, NA, n), jnp.int32),
            b0=jnp.asarray(rng.integers(0, NB, n), jnp.int32),
            null_a=jnp.full((n,), NA, jnp.int32), null_b=jnp.full((n,), NB, jnp.int32))


# ---------------------------------------------------------------------------------------------
# Closed form (x64)
# ---------------------------------------------------------------------------------------------

def test_the_toy_denoiser_is_tweedies_formula(toy):
    """The oracle's two routes agree (posterior means vs the gradient of the log-density)."""
    for a, b in ((toy.null_a, toy.null_b), (toy.a0, toy.null_b), (toy.a0, toy.b0)):
        expected = tweedie(lambda x, s, a, b: log_p(x, s, a, b))(toy.x, toy.sigma, a, b)
        assert_close(conditional_denoiser(toy.x, toy.sigma, {"a": a, "b": b}), expected)


def test_scale_one_is_the_conditional_and_scale_zero_the_unconditional_denoiser(toy):
    cond, null = {"a": toy.a0, "b": toy.b0}, {"a": toy.null_a, "b": toy.null_b}
    conditional = conditional_denoiser(toy.x, toy.sigma, cond)
    unconditional = conditional_denoiser(toy.x, toy.sigma, null)
    assert np.max(np.abs(conditional - unconditional)) > 0.1
    for wrapper in (lambda w: guidance.classifier_free(conditional_denoiser, cond, null, scale=w),
                    lambda w: guidance.multi_condition_free(conditional_denoiser, cond, null, scales=w),
                    lambda w: guidance.multi_condition_free(conditional_denoiser, {"a": toy.a0, "b": toy.null_b},
                                                            null, scales={"a": w})):
        assert_close(wrapper(0.0)(toy.x, toy.sigma), unconditional)
    for wrapper in (lambda w: guidance.classifier_free(conditional_denoiser, cond, null, scale=w),
                    lambda w: guidance.multi_condition_free(conditional_denoiser, cond, null, scales=w)):
        assert_close(wrapper(1.0)(toy.x, toy.sigma), conditional)
    # One named scale of 1 with the other attribute in every branch is the conditional too.
    one = guidance.multi_condition_free(conditional_denoiser, cond, {"a": toy.null_a, "b": toy.b0}, scales={"a": 1.0})
    assert_close(one(toy.x, toy.sigma), conditional)


@pytest.mark.parametrize("wa, wb", [(1.0, 1.0), (3.0, 0.5), (0.0, 2.0), (-1.0, 2.5)])
def test_per_condition_scales_raise_each_likelihood_to_its_own_power(toy, wa, wb):
    """Branches {a0, null} and {null, b0} against the null reference (Liu et al. 2022, eq. 10)."""
    cond, reference = {"a": toy.a0, "b": toy.b0}, {"a": toy.null_a, "b": toy.null_b}
    guided = guidance.multi_condition_free(conditional_denoiser, cond, reference, scales={"a": wa, "b": wb})
    target = composable_target(toy.x, toy.sigma, toy.a0, toy.b0, wa, wb)
    assert_close(guided(toy.x, toy.sigma), target)
    # The check has power: swapping the scales, or guiding jointly, is far off.
    if wa != wb:
        swapped = composable_target(toy.x, toy.sigma, toy.a0, toy.b0, wb, wa)
        assert np.max(np.abs(swapped - target)) > 1e-3
    else:  # composable != joint: the attributes are coupled through u.v != 0
        assert np.max(np.abs(joint_target(toy.x, toy.sigma, toy.a0, toy.b0, wa) - target)) > 1e-3


def test_one_number_guides_the_conditions_jointly(toy):
    cond, reference = {"a": toy.a0, "b": toy.b0}, {"a": toy.null_a, "b": toy.null_b}
    for w in (2.0, -0.5):
        guided = guidance.multi_condition_free(conditional_denoiser, cond, reference, scales=w)
        assert_close(guided(toy.x, toy.sigma), joint_target(toy.x, toy.sigma, toy.a0, toy.b0, w))


def test_a_negative_condition_replaces_the_null_reference(toy):
    a_neg = 1 - toy.a0
    for w in (1.0, 2.5):
        for scales in (w, {"a": w}):
            guided = guidance.multi_condition_free(conditional_denoiser, {"a": toy.a0, "b": toy.null_b},
                                                   {"a": a_neg, "b": toy.null_b}, scales=scales)
            assert_close(guided(toy.x, toy.sigma), negative_target(toy.x, toy.sigma, toy.a0, a_neg, toy.null_b, w))


def test_guidance_reference_gives_the_composable_joint_and_negative_forms(toy):
    """`jobs.generation.guidance_reference` with the attributes as label conditioners, then
    `multi_condition_free` as `guided_denoiser` calls it."""
    model = types.SimpleNamespace(conditioners={"a": LabelConditioner(num_classes=NA),
                                                "b": LabelConditioner(num_classes=NB)})
    cond = {"a": toy.a0, "b": toy.b0}

    def guide(scales, negative=None):
        reference = guidance_reference(model, cond, scales, negative)
        return guidance.multi_condition_free(conditional_denoiser, cond, reference, scales=scales)(toy.x, toy.sigma)

    # One scale per condition: composable guidance.
    assert_close(guide({"a": 3.0, "b": 0.5}), composable_target(toy.x, toy.sigma, toy.a0, toy.b0, 3.0, 0.5))
    # One number: plain CFG on both conditions jointly.
    assert_close(guide(2.0), joint_target(toy.x, toy.sigma, toy.a0, toy.b0, 2.0))
    # A scale for 'a' only, with a negative 'a': b stays as given in every branch.
    a_neg = 1 - toy.a0
    assert_close(guide({"a": 2.5}, negative={"a": a_neg}),
                 negative_target(toy.x, toy.sigma, toy.a0, a_neg, toy.b0, 2.5))


def test_guidance_errors_name_what_is_wrong():
    model = types.SimpleNamespace(conditioners={"a": LabelConditioner(num_classes=NA)})
    cond = {"a": np.zeros(2, np.int32)}
    with pytest.raises(ValueError, match=r"scales for \['b'\].*\['a'\]"):
        guidance.multi_condition_free(conditional_denoiser, cond, cond, scales={"b": 2.0})
    with pytest.raises(ValueError, match=r"negative conditions \['b'\] without a positive one"):
        guidance_reference(model, cond, 2.0, negative={"b": np.zeros(2, np.int32)})


# ---------------------------------------------------------------------------------------------
# The tiny model (float32), through jobs.generation.guided_denoiser
# ---------------------------------------------------------------------------------------------
# All network calls run on batch 4 (conftest: one compile): guided calls stack two branches of
# 2 examples; references run the same 2 examples twice. The guided combination rounds at
# (1 + 2|w|) eps32 |D| (~1e-6 |D| for w <= 2.5); a batch's examples are computed independently,
# but we also allow XLA a different reduction order per example: Higham's gamma_n = n eps32 for
# dot products of n <= 4 width = 128 terms is 1.5e-5, its typical sqrt(n) eps32 1.4e-6. So 1e-5.
MODEL_RTOL = 1e-5


def half(tree):
    return jax.tree.map(lambda v: np.asarray(v)[:2], tree)


def twice(tree):
    return jax.tree.map(lambda v: np.concatenate([np.asarray(v)] * 2), tree)


def assert_close_f32(actual, expected):
    actual, expected = np.asarray(actual), np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=MODEL_RTOL * np.max(np.abs(expected)))


@pytest.fixture(scope="module")
def guided_setup(tiny):
    x, s, cond = half(tiny.x), half(tiny.sigma), half(tiny.values)
    null = half(tiny.model.null_condition(4))

    def reference(c):  # D(x | c) for the 2 examples, on the compiled batch of 4
        return np.asarray(tiny.denoise(tiny.params, twice(x), twice(s), twice(c)))[:2]

    def guided(c, scale, negative=None):
        return np.asarray(guided_denoiser(tiny.jitted_model, tiny.params, c, scale, negative)(x, s))

    return types.SimpleNamespace(cond=cond, null=null, reference=reference, guided=guided)


def test_guided_denoiser_at_scale_one_is_the_conditional_denoiser(tiny, guided_setup):
    g = guided_setup
    conditional = g.reference(g.cond)
    assert np.max(np.abs(conditional - g.reference({**g.cond, "text": g.null["text"]}))) > 1e-3
    # Through the guidance branches (a per-condition scale, or scale 1 against a negative label).
    assert_close_f32(g.guided(g.cond, {"text": 1.0}), conditional)
    negative = {"label": (np.asarray(g.cond["label"]) + 1) % 3}
    assert_close_f32(g.guided(g.cond, 1.0, negative), conditional)
    # Scale 1 without a negative is the plain conditional denoiser (no second branch).
    plain = guided_denoiser(tiny.jitted_model, tiny.params, tiny.values, 1.0)(tiny.x, tiny.sigma)
    np.testing.assert_array_equal(plain, tiny.denoise(tiny.params, tiny.x, tiny.sigma, tiny.values))


def test_guided_denoiser_at_scale_zero_is_the_unconditional_denoiser_keeping_the_known_audio(tiny, guided_setup):
    g = guided_setup
    # The inpainting mask is not guided: scale 0 keeps it and drops every other condition.
    only_inpaint = {**g.null, "inpaint": g.cond["inpaint"]}
    assert_close_f32(g.guided(g.cond, 0.0), g.reference(only_inpaint))
    # With the null inpainting value too, scale 0 is `model.denoiser(params, None)`.
    cond = {**g.cond, "inpaint": g.null["inpaint"]}
    unconditional = np.asarray(tiny.unconditional(tiny.params, twice(half(tiny.x)), twice(half(tiny.sigma))))[:2]
    assert np.max(np.abs(unconditional - g.reference(cond))) > 1e-3
    assert_close_f32(g.guided(cond, 0.0), unconditional)


def test_guided_denoiser_with_a_negative_label_extrapolates_from_it(tiny, guided_setup):
    g = guided_setup
    negative = {"label": (np.asarray(g.cond["label"]) + 1) % 3}
    reference = g.reference({**g.cond, **negative})
    conditional = g.reference(g.cond)
    # The other guided conditions keep their values in the reference: only the label differs.
    assert_close_f32(g.guided(g.cond, {"label": 2.5}, negative), reference + 2.5 * (conditional - reference))
    # A single number guides every guided condition: the reference nulls text, timing and notes.
    reference_all = g.reference({**g.null, **negative, "inpaint": g.cond["inpaint"]})
    assert_close_f32(g.guided(g.cond, 2.5, negative), reference_all + 2.5 * (conditional - reference_all))

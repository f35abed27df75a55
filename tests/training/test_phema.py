"""Post-hoc EMA math (EDM2 sec. 3.1, appendix C): sigma_rel <-> gamma, the discrete profile of the
power-EMA recursion, and reconstruction of an EMA that was also tracked directly."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffjax.training import phema

U32 = np.finfo(np.float32).eps / 2  # unit roundoff 2^-24
T = 400  # optimiser updates in the simulated runs
EVERY = 20  # snapshot interval
TRACKED = (0.05, 0.10)


def _run_emas(thetas: np.ndarray, sigma_rels) -> np.ndarray:
    """[T, len(sigma_rels), ...]: every EMA after every update of `update_phema`, for the parameter
    trajectory `thetas` [T, ...] (thetas[tau - 1] = the parameters after update tau), in its dtype."""
    gammas = tuple(phema.sigma_rel_to_gamma(s) for s in sigma_rels)

    @jax.jit
    def run(thetas):
        def body(emas, inputs):
            step, theta = inputs
            emas = phema.update_phema(emas, theta, step, gammas)
            return emas, jnp.stack(emas)
        initial = tuple(jnp.zeros_like(thetas[0]) for _ in gammas)
        return jax.lax.scan(body, initial, (jnp.arange(1, thetas.shape[0] + 1, dtype=jnp.int32), thetas))[1]

    return np.asarray(run(jnp.asarray(thetas)))


# ----------------------------------------------------------------------------------------------
# sigma_rel <-> gamma, beta
# ----------------------------------------------------------------------------------------------

def test_sigma_rel_gamma_round_trip_and_published_pairs():
    # EDM2 eq. 3 evaluated here (np.roots of the cubic, checked by substitution below):
    # sigma_rel 0.05 -> gamma 16.972, 0.10 -> 6.937 (the paper's 16.97 and 6.94).
    assert phema.sigma_rel_to_gamma(0.05) == pytest.approx(16.9722, abs=1e-4)
    assert phema.sigma_rel_to_gamma(0.10) == pytest.approx(6.9372, abs=1e-4)
    for s in (1e-3, 0.01, 0.05, 0.07, 0.1, 0.2, 0.28, phema.SIGMA_REL_MAX):
        assert phema.gamma_to_sigma_rel(phema.sigma_rel_to_gamma(s)) == pytest.approx(s, rel=1e-10)
    for g in (0.0, 0.5, 6.94, 16.97, 300.0):
        assert phema.sigma_rel_to_gamma(phema.gamma_to_sigma_rel(g)) == pytest.approx(g, rel=1e-8, abs=1e-8)
    assert phema.sigma_rel_to_gamma(phema.SIGMA_REL_MAX) == 0.0


@pytest.mark.parametrize("bad", [0.0, -0.1, 0.29, 1.0, float("nan")])
def test_sigma_rel_outside_range_names_the_range(bad):
    with pytest.raises(ValueError, match=r"\(0, 0\.2887\]"):
        phema.sigma_rel_to_gamma(bad)
    with pytest.raises(ValueError, match="gamma"):
        phema.gamma_to_sigma_rel(-0.5)


def test_power_beta_first_update_copies_and_jits():
    gamma = 6.94
    betas = jax.jit(lambda s: phema.power_beta(s, gamma))(jnp.arange(1, 6, dtype=jnp.int32))
    t = np.arange(1, 6)
    np.testing.assert_allclose(betas, (1 - 1 / t) ** (gamma + 1), rtol=1e-6, atol=0)
    assert float(betas[0]) == 0.0


# ----------------------------------------------------------------------------------------------
# Discrete profile
# ----------------------------------------------------------------------------------------------

def test_discrete_profile_closed_form_and_sum():
    for t, g in ((1, 3.0), (7, 0.0), (50, 6.94), (T, 16.97)):
        w = phema.discrete_profile(t, g)
        tau = np.arange(1, t + 1, dtype=np.float64)
        assert w.dtype == np.float64 and w.shape == (t,)
        np.testing.assert_allclose(w, (tau ** (g + 1) - (tau - 1) ** (g + 1)) / t ** (g + 1), rtol=1e-9, atol=1e-300)
        assert w.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(phema.discrete_profile(5, 0.0), np.full(5, 0.2), rtol=1e-15)  # gamma 0: uniform


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_discrete_profile_is_what_update_phema_computes(dtype):
    """One-hot trajectory theta_tau = e_tau: EMA component tau after T updates is the weight w_tau.

    Rounding bound (u = unit roundoff of `dtype`): the weight of tau is made at update tau as
    1 - beta_tau (<= 7u relative: log1p, the product, expm1, whose condition |x| e^x/(1 - e^x) is
    <= 1) and then multiplied at each later update s by 1 - (1 - beta_s), rounded twice (2u) with
    the 7u error of 1 - beta_s amplified by (1 - beta_s)/beta_s <= 2 (g+1)/(s-1) once s > 2(g+1).
    So |e_tau - w_tau| <= u (2T + 14 (g+1) ln T + 7) w_tau + u max(w), the last term covering the
    first ~2(g+1) weights (where beta_s is far from 1; they are below 1e-20) and flushed denormals.
    An off-by-one step (the profile after T - 1 updates) misses by ~(g+1)/T relative: it must fail.
    """
    sigma_rels = TRACKED
    with jax.enable_x64(dtype == np.float64):
        emas = _run_emas(np.eye(T, dtype=dtype), sigma_rels)[-1].astype(np.float64)  # [2, T]
    u = np.finfo(dtype).eps / 2
    for ema, s in zip(emas, sigma_rels):
        g = phema.sigma_rel_to_gamma(s)
        w = phema.discrete_profile(T, g)
        tolerance = u * (2 * T + 14 * (g + 1) * np.log(T) + 7) * w + u * w.max()
        assert np.all(np.abs(ema - w) <= tolerance)
        shifted = np.concatenate([phema.discrete_profile(T - 1, g), [0.0]])
        assert not np.all(np.abs(ema - shifted) <= tolerance)


# ----------------------------------------------------------------------------------------------
# Solving and reconstructing
# ----------------------------------------------------------------------------------------------

def _columns():
    steps = [s for s in range(EVERY, T + 1, EVERY) for _ in TRACKED]
    gammas = [phema.sigma_rel_to_gamma(r) for _ in range(EVERY, T + 1, EVERY) for r in TRACKED]
    return steps, gammas


def test_tracked_target_is_recovered_exactly_and_later_snapshots_are_excluded():
    steps, gammas = _columns()
    c, residual = phema.solve_coefficients(steps, gammas, 200, gammas[1], method="discrete")  # (200, 0.10) is column 19
    expected = np.zeros(len(steps))
    expected[steps.index(200) + 1] = 1.0
    np.testing.assert_allclose(c, expected, atol=1e-8)
    assert residual < 1e-8
    assert np.all(c[np.asarray(steps) > 200] == 0.0)
    with pytest.raises(ValueError, match="no snapshot at or before"):
        phema.solve_coefficients(steps, gammas, EVERY - 1, gammas[0])
    with pytest.raises(ValueError, match="'auto', 'discrete' or 'continuous'"):
        phema.solve_coefficients(steps, gammas, T, gammas[0], method="exact")
    assert phema.resolve_method("auto", 10 ** 6, 64) == "continuous"
    assert phema.resolve_method("auto", T, 40) == "discrete"


def test_discrete_least_squares_beats_continuous_in_its_own_norm():
    """'discrete' minimises the L2 distance of the discrete profiles exactly, so 'continuous' is
    never better there. (In the reported L1 residual either may win by a hair: here they agree
    to 1e-4 relative.)"""
    steps, gammas = _columns()
    target = phema.discrete_profile(T, phema.sigma_rel_to_gamma(0.07))
    design = np.stack([np.pad(phema.discrete_profile(s, g), (0, T - s)) for s, g in zip(steps, gammas)], axis=1)
    results = {m: phema.solve_coefficients(steps, gammas, T, phema.sigma_rel_to_gamma(0.07), method=m)
               for m in ("discrete", "continuous")}
    l2 = {m: np.linalg.norm(design @ c - target) for m, (c, _) in results.items()}
    assert l2["discrete"] <= l2["continuous"] * (1 + 1e-9)
    assert results["continuous"][1] == pytest.approx(results["discrete"][1], rel=1e-3)
    assert results["discrete"][1] == pytest.approx(np.abs(design @ results["discrete"][0] - target).sum(), rel=1e-9)


def test_reconstructs_a_directly_tracked_ema():
    """A random-walk run tracks sigma_rel 0.05 and 0.10 (snapshots every 20 of 400 updates) and,
    directly, 0.07; the 0.07 EMA reconstructed from the snapshots at step 400 must match it.

    Exactly, theta_rec - theta_direct = sum_tau (sum_i c_i w^(i)_tau - w_tau) theta_tau, so
    |.| <= residual * M elementwise (M = max_tau |theta_tau|, per element). Float32 rounding:
    each update ema + (1-beta)(p - ema) errs by <= u|ema| + 18 u (1-beta) M (|p - ema| <= 2M;
    three roundings and the 7u of 1 - beta); the recursion is a contraction, so an EMA after T
    updates errs by E_g <= u M (T + 18 (g+1)(1 + ln T)) (sum_s (1 - beta_s) <= (g+1)(1 + ln T)).
    The reconstruction sums in float64 and rounds once to float32: bound
    residual M + (sum_i |c_i| + 1) E_gmax + u |rec|. A wrong target (sigma_rel 0.2) must miss it.
    """
    rng = np.random.default_rng(0)
    thetas = np.cumsum(rng.normal(size=(T, 64)), axis=0).astype(np.float32) / np.sqrt(T)
    emas = _run_emas(thetas, TRACKED + (0.07,))  # [T, 3, 64]
    steps, gammas = _columns()
    snapshots = [emas[s - 1, k] for s in range(EVERY, T + 1, EVERY) for k in range(len(TRACKED))]
    direct = emas[-1, 2].astype(np.float64)
    m = np.abs(thetas).max(axis=0).astype(np.float64)
    g_max = max(gammas)
    ema_error = U32 * m * (T + 18 * (g_max + 1) * (1 + np.log(T)))

    c, residual = phema.solve_coefficients(steps, gammas, T, phema.sigma_rel_to_gamma(0.07), method="discrete")
    rec = phema.reconstruct(snapshots, c)
    assert rec.dtype == np.float32 and residual < 1e-2
    bound = residual * m + (np.abs(c).sum() + 1) * ema_error + U32 * np.abs(rec)
    assert np.all(np.abs(rec - direct) <= bound)

    c_wrong, _ = phema.solve_coefficients(steps, gammas, T, phema.sigma_rel_to_gamma(0.2))
    assert np.abs(phema.reconstruct(snapshots, c_wrong) - direct).max() > 10 * bound.max()


def test_add_weighted_streams_the_same_sum():
    tree = [{"a": np.arange(3, dtype=np.float32)}, {"a": np.ones(3, np.float32)}]
    total = phema.add_weighted(phema.add_weighted(None, tree[0], 0.5), tree[1], -2.0)
    np.testing.assert_array_equal(total["a"], 0.5 * np.arange(3) - 2.0)
    assert phema.reconstruct(tree, [0.5, -2.0])["a"].dtype == np.float32

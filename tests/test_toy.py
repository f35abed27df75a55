"""Tests for diffjax.toy as a dataset: the batch layout, splits, hosts and the closed form."""
import jax
import numpy as np
import pytest

from configs import toy_gmm
from diffjax import toy
from diffjax.data import AbstractDataset, build_dataset


def test_mixture_batch_layout_and_interface():
    ds = toy.gmm(dim=3, num_modes=4)
    assert isinstance(ds, AbstractDataset) and ds.closed_form is ds
    assert ds.example_shape == (3,) and ds.sample_rate is None
    assert ds.num_classes == 4 == len(ds.class_names)
    b = ds.batch(5, 8, seed=1)
    assert b["x"].shape == (8, 3) and b["mask"].shape == (8, 1) and np.all(np.asarray(b["mask"]) == 1)
    assert b["label"].shape == (8,) and b["label"].dtype == np.int32 and int(b["label"].max()) < 4
    # Unchanged by the interface: the global batch of `step` comes from fold_in(PRNGKey(seed), step).
    x, labels = ds.sample_with_labels(jax.random.fold_in(jax.random.PRNGKey(1), 5), 8)
    np.testing.assert_allclose(b["x"], x, rtol=1e-5, atol=1e-6)  # jit vs eager rounding
    np.testing.assert_array_equal(b["label"], labels)


def test_eval_split_is_another_stream_with_the_same_closed_form():
    ds = toy.gaussian(dim=2, std=0.5)
    ev = ds.eval
    assert ev.closed_form is ev and ev.eval.split == "eval"
    ones = np.ones((1, 2), np.float32)
    np.testing.assert_array_equal(ev.denoiser(ones, 0.3), ds.denoiser(ones, 0.3))
    assert not np.array_equal(ev.batch(0, 4, seed=0)["x"], ds.batch(0, 4, seed=0)["x"])
    np.testing.assert_array_equal(ev.batch(0, 4, seed=0)["x"], ds.eval.batch(0, 4, seed=0)["x"])
    with pytest.raises(ValueError, match="split"):
        toy.GaussianMixture(ds.weights, ds.means, ds.stds, split="test")


def test_hosts_take_disjoint_rows_of_the_global_batch():
    ds = toy.gmm()
    whole = ds.batch(2, 8, seed=0)
    parts = [ds.batch(2, 8, seed=0, process_index=i, process_count=2) for i in range(2)]
    assert all(p["mask"].shape == (4, 1) for p in parts)
    np.testing.assert_array_equal(np.concatenate([p["x"] for p in parts]), whole["x"])
    with pytest.raises(ValueError, match="divisible"):
        ds.batch(0, 3, seed=0, process_count=2)
    with pytest.raises(ValueError, match="process_index"):
        ds.batch(0, 4, seed=0, process_index=2, process_count=2)


def test_toy_config_builds_strictly_and_switches_by_name():
    data = toy_gmm.get_config().data
    ds = build_dataset(data)
    assert ds.num_classes == 8 and ds.example_shape == (2,)
    data.name = "gaussian"  # as --config.data.name=gaussian: gmm's sub-section is ignored
    single = build_dataset(data)
    assert single.num_classes == 1 and float(single.stds[0, 0]) == pytest.approx(0.1)
    with pytest.raises(TypeError, match="dataset 'gaussian' does not take \\['radius'\\]"):
        build_dataset({"name": "gaussian", "radius": 1.0})

"""Splits and standardisation: training statistics only, float64 arithmetic, clear errors."""
import numpy as np
import pytest

from data_helpers import isolated_home  # noqa: F401 (fixture)
from fastmlp.data import DataError, download, feature_stats, from_arrays, load_dataset, make_splits, standardize
from fastmlp.data import splits as splits_module

rng = np.random.default_rng(1)


def raw_data(n=50, d=6, m=10):
    x = rng.integers(0, 256, (n, d), dtype=np.uint8)
    x[:, 2] = 7  # a constant feature
    return from_arrays(x, np.arange(n) % 4, rng.integers(0, 256, (m, d), dtype=np.uint8), np.arange(m) % 4)


@pytest.mark.parametrize("chunk_values", [1 << 22, 7])  # one chunk, and many chunks of one row
def test_feature_stats_match_float64_numpy(monkeypatch, chunk_values):
    monkeypatch.setattr(splits_module, "CHUNK_VALUES", chunk_values)
    x = rng.normal(1e4, 1.0, (301, 5)).astype(np.float32)  # far from zero: a one-pass formula would cancel
    mean, std = feature_stats(x)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(std, x.astype(np.float64).std(axis=0), rtol=1e-10)
    assert mean.dtype == std.dtype == np.float64


def test_constant_features_get_std_one_and_standardise_to_zero():
    raw = raw_data()
    s = make_splits(raw, n_val=10)
    assert s.std[2] == 1.0 and np.all(s.X_train[:, 2] == 0) and np.isfinite(s.X_test).all()


@pytest.mark.parametrize("chunk_values", [1 << 18, 20])     # one chunk, and chunks of 2 rows
@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32"])
def test_standardize_rounds_the_float64_result_once(monkeypatch, dtype, chunk_values):
    monkeypatch.setattr(splits_module, "STANDARDIZE_VALUES", chunk_values)
    x = rng.integers(0, 256, (41, 9), dtype=np.uint8)
    mean, std = feature_stats(x)
    out = standardize(x, mean, std, dtype)
    assert out.dtype == np.dtype(dtype) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, ((x - mean) / std).astype(dtype))


def test_a3_uses_the_last_n_val_rows_and_training_statistics_only():
    raw = raw_data(n=50)
    raw.x_train[40:] = 255  # validation rows unlike the rest: they must not move the statistics
    s = make_splits(raw, "a3", n_val=10, dtype=np.float64)
    train = raw.x_train[:40].astype(np.float64)
    np.testing.assert_allclose(s.mean, train.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(s.X_val, (raw.x_train[40:] - s.mean) / s.std, rtol=1e-13)
    np.testing.assert_allclose(s.X_test, (raw.x_test - s.mean) / s.std, rtol=1e-13)
    np.testing.assert_array_equal(s.y_val, raw.y_train[40:])
    assert s.y_train.dtype == np.int64 and s.X_val.flags.c_contiguous and s.n_classes == 4


@pytest.mark.parametrize("n_val", [0, 50, -1, 2.5, True, "10", None])
def test_n_val_must_leave_training_and_validation_rows(n_val):
    with pytest.raises(DataError, match=r"n_val must be an integer in \[1, 49\] .*got"):
        make_splits(raw_data(n=50), "a3", n_val=n_val)


def test_n_val_extremes_are_allowed():
    assert make_splits(raw_data(n=50), n_val=np.int64(49)).X_train.shape[0] == 1
    assert make_splits(raw_data(n=50), n_val=1).X_val.shape[0] == 1


def test_a2_needs_cifar10_batches():
    with pytest.raises(DataError, match="split 'a2' .* has one training set: use split 'a3'"):
        make_splits(raw_data(), "a2")


@pytest.mark.usefixtures("isolated_home")
@pytest.mark.parametrize("kwargs, expected", [
    (dict(split="a1"), "split must be 'a2' or 'a3'; got 'a1'"),
    (dict(dtype=np.float16), "dtype must be float32 or float64; got"),
    (dict(dtype="nonsense"), "dtype must be float32 or float64; got 'nonsense'"),
    (dict(dtype=None), "dtype must be float32 or float64; got None"),
])
def test_bad_arguments_fail_before_loading(kwargs, expected):
    with pytest.raises(DataError, match=expected):
        load_dataset("cifar10", **kwargs)  # CIFAR-10 is absent here: the argument check must come first


@pytest.mark.usefixtures("isolated_home")
def test_unknown_names():
    expected = "dataset must be one of cifar10, fashion-mnist, sample or a path ending in .npz; got 'mnist'"
    with pytest.raises(DataError, match=expected):
        load_dataset("mnist")
    with pytest.raises(DataError, match="download takes cifar10 or fashion-mnist; got 'sample'"):
        download("sample")


@pytest.mark.parametrize("mean, std, expected", [
    (np.zeros(3), np.ones(3), r"mean, std of shape \(D,\); got X \(4, 5\)"),
    (np.zeros(5), np.zeros(5), "std > 0"),
    (np.full(5, np.nan), np.ones(5), "finite mean"),
])
def test_standardize_checks_its_statistics(mean, std, expected):
    with pytest.raises(DataError, match=expected):
        standardize(np.zeros((4, 5)), mean, std)

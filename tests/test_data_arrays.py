"""Any arrays: (X, y) in memory and .npz files, with their checks."""
import numpy as np
import pytest

from data_helpers import shared_file
from fastmlp.data import DataError, from_arrays, load_dataset, load_npz, make_splits

rng = np.random.default_rng(0)


def arrays(n=20, m=6, d=12, classes=3):
    return dict(x_train=rng.random((n, d)), y_train=np.arange(n) % classes,
                x_test=rng.random((m, d)), y_test=np.arange(m) % classes)


def test_rows_in_memory():
    a = arrays()
    raw = from_arrays(**a)
    np.testing.assert_array_equal(raw.x_train, a["x_train"])
    assert raw.y_train.dtype == np.int64 and raw.label_names == ["0", "1", "2"] and raw.image_shape == (12,)


def test_without_a_test_set_the_test_arrays_are_empty():
    raw = from_arrays(np.ones((5, 4)), [0, 1, 0, 1, 1])
    assert raw.x_test.shape == (0, 4) and raw.y_test.shape == (0,)
    s = make_splits(raw, n_val=1)
    assert s.X_test.shape == (0, 4) and s.X_test.dtype == np.float32


@pytest.mark.parametrize("shape, image_shape", [
    ((4, 28, 28), (1, 28, 28)), ((4, 3, 8, 8), (3, 8, 8)), ((4, 3072), (3, 32, 32)), ((4, 784), (1, 28, 28)),
])
def test_image_shape_is_read_from_the_arrays(shape, image_shape):
    raw = from_arrays(np.zeros(shape, np.uint8), [0, 1, 0, 1])
    assert raw.image_shape == image_shape and raw.x_train.shape == (4, int(np.prod(image_shape)))


def test_channel_last_images_become_channel_planes():
    x = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)  # as keras holds CIFAR-10
    raw = from_arrays(x, [0, 1])
    assert raw.image_shape == (3, 32, 32)
    np.testing.assert_array_equal(raw.x_train[1, :1024], x[1, :, :, 0].ravel())  # red plane first
    np.testing.assert_array_equal(raw.x_train[1, 2048:], x[1, :, :, 2].ravel())


@pytest.mark.parametrize("change, expected", [
    (dict(y_train=np.arange(20) % 3 * 1.0), "y_train must hold integer labels 0..C-1; got dtype float64"),
    (dict(y_train=np.arange(20) % 3 - 1), r"y_train\[0\] is -1, but labels must be class indices 0\.\.C-1"),
    (dict(y_train=np.arange(19) % 3), r"y_train must be 1-D with one label per row \(20\); got shape \(19,\)"),
    (dict(y_test=np.array([0, 1, 2, 3, 0, 1]), label_names=["a", "b", "c"]),
     r"y_test labels must be integers 0\.\.2; got values from 0 to 3"),
    (dict(x_test=np.zeros((6, 5))), "x_test has 5 features per row but x_train has 12"),
    (dict(x_train=np.full((20, 12), np.nan)), "x_train holds NaN or infinite values"),
    (dict(x_train=np.zeros((20, 12), complex)), "x_train must hold real numbers; got dtype complex128"),
    (dict(x_train=np.zeros(20)), r"x_train must be rows \(N, D\) .*got shape \(20,\)"),
    (dict(y_train=np.zeros(20, int), y_test=np.zeros(6, int)), "needs 2 to 20 .* classes; got 1"),
])
def test_bad_arrays_are_refused_clearly(change, expected):
    a = arrays()
    a.update(change)
    with pytest.raises(DataError, match=expected):
        from_arrays(**a)


def test_label_names_fix_the_number_of_classes():
    a = arrays()
    with pytest.raises(DataError, match=r"y_train labels must be integers 0\.\.1"):
        from_arrays(**a, label_names=["cat", "dog"])


def test_npz_round_trip_with_optional_keys(tmp_path):
    a = arrays(d=12)
    path = tmp_path / "set.npz"
    np.savez(path, **a, label_names=np.array(["a", "b", "c"]), image_shape=np.array([3, 2, 2]))
    raw = load_npz(path)
    np.testing.assert_array_equal(raw.x_test, a["x_test"])
    assert raw.label_names == ["a", "b", "c"] and raw.image_shape == (3, 2, 2) and raw.name == "set.npz"
    assert str(path) in raw.source


def test_npz_missing_key_lists_the_keys_present(tmp_path):
    a = arrays()
    path = tmp_path / "set.npz"
    np.savez(path, X=a["x_train"], y=a["y_train"], x_test=a["x_test"], y_test=a["y_test"])
    with pytest.raises(DataError, match=r"missing x_train, y_train; it holds X, y, x_test, y_test"):
        load_npz(path)


def test_npz_with_object_arrays_is_refused_without_unpickling(tmp_path):
    a = arrays()
    a["y_train"] = np.array([object()] * 20)
    path = tmp_path / "set.npz"
    np.savez(path, **a)
    with pytest.raises(DataError, match="cannot read it as an .npz of plain arrays"):
        load_npz(path)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 broken", b"\x80\x04pickle"])
def test_unreadable_npz(tmp_path, content):
    path = tmp_path / "set.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"{path}: cannot read it"):
        load_npz(path)


def test_missing_npz_file_says_what_a_dataset_is(tmp_path):
    with pytest.raises(DataError, match="no such file; a dataset is cifar10, fashion-mnist, sample, or an .npz"):
        load_dataset(tmp_path / "nope.npz")


def test_shared_cifar10_subset_trains_directly():
    path = shared_file("cifar10-subset.npz")
    s = load_dataset(str(path), n_val=1000)
    assert s.X_train.shape == (4170, 3072) and s.X_val.shape == (1000, 3072) and s.X_test.shape == (1017, 3072)
    assert s.image_shape == (3, 32, 32) and s.label_names[0] == "airplane" and s.n_classes == 10
    assert s.X_train.dtype == np.float32 and s.X_train.flags.c_contiguous and s.y_train.dtype == np.int64
    with np.load(path) as npz:
        x = npz["x_train"][:4170].astype(np.float64)
    np.testing.assert_allclose(s.mean, x.mean(axis=0), rtol=1e-12)
    with pytest.raises(DataError, match="split 'a2' .* needs CIFAR-10's training batches; .* use split 'a3'"):
        load_dataset(path, split="a2")

"""The embedded Fashion-MNIST sample: small, stratified, and the real images byte for byte."""
import numpy as np
import pytest

from data_helpers import debian_fashion, fashion_files, write_files
from fastmlp.data import load_dataset, load_fashion_mnist, load_npz, load_sample, make_sample
from fastmlp.data.sample import SAMPLE_FILE

MAX_BYTES = 3_000_000


def test_is_small_and_credited():
    assert SAMPLE_FILE.stat().st_size <= MAX_BYTES
    readme = (SAMPLE_FILE.parent / "README.md").read_text()
    assert "Zalando Research" in readme and "MIT" in (SAMPLE_FILE.parent / "LICENSE").read_text()


def test_loads_stratified_with_labels_0_to_9():
    raw = load_sample()
    assert raw.x_train.shape == (5500, 784) and raw.x_test.shape == (1000, 784) and raw.x_train.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(raw.y_train, minlength=10), [550] * 10)
    np.testing.assert_array_equal(np.bincount(raw.y_test, minlength=10), [100] * 10)
    assert raw.image_shape == (1, 28, 28) and raw.label_names[0] == "T-shirt/top" and raw.name == "sample"
    assert "Fashion-MNIST" in raw.source and "Zalando" in raw.source


def test_trains_through_load_dataset():
    s = load_dataset("sample", n_val=500)
    assert s.X_train.shape == (5000, 784) and s.X_val.shape == (500, 784) and s.X_train.dtype == np.float32
    assert set(np.unique(s.y_val)) == set(range(10))  # the original order mixes the classes


def test_is_byte_identical_to_the_real_fashion_mnist():
    real = load_fashion_mnist(debian_fashion())
    with np.load(SAMPLE_FILE) as npz:
        train_index, test_index = npz["train_index"], npz["test_index"]
    sample = load_sample()
    assert np.all(np.diff(train_index) > 0) and np.all(np.diff(test_index) > 0)
    np.testing.assert_array_equal(sample.x_train, real.x_train[train_index])
    np.testing.assert_array_equal(sample.y_train, real.y_train[train_index])
    np.testing.assert_array_equal(sample.x_test, real.x_test[test_index])
    np.testing.assert_array_equal(sample.y_test, real.y_test[test_index])


def test_generator_builds_a_seeded_stratified_sample(tmp_path):
    files, arrays = fashion_files(n_train=40, n_test=20)
    write_files(tmp_path / "src", files)
    outs = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for out in outs:
        make_sample.main(["--source", str(tmp_path / "src"), "--n-train", "20", "--n-test", "10", "--out", str(out)])
    a, b = load_npz(outs[0]), load_npz(outs[1])
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(np.bincount(a.y_train), [2] * 10)
    with np.load(outs[0]) as npz:
        images = arrays["train-images-idx3-ubyte.gz"].reshape(40, 784)
        np.testing.assert_array_equal(a.x_train, images[npz["train_index"]])
    with pytest.raises(SystemExit, match="multiple of 10"):
        make_sample.main(["--source", str(tmp_path / "src"), "--n-train", "25", "--out", str(outs[0])])
